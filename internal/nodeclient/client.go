// Package nodeclient sends the Lambda functions' requests to masterkv's
// node group. Any node will do, because followers forward writes to the
// leader: a node that cannot be reached, or that answers 503, is passed
// over for the next one, and a node slow to answer is hedged: the request
// goes to the next node too. Every request carries an idempotency key, so
// a retry after an unknown outcome, or a hedged copy, never commits twice.
package nodeclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Errors of Do.
var (
	// ErrNoKey refuses a request without an idempotency key: retrying it
	// would not be safe.
	ErrNoKey = errors.New("request has no idempotency key")
	// ErrUnavailable means every attempt failed to connect or got a 503
	// (or 502/504 from a proxy), or the caller's deadline came first.
	ErrUnavailable = errors.New("no node of the group could serve the request")
	// ErrTooLarge means a node's answer exceeded MaxResponseBytes.
	ErrTooLarge = errors.New("node answer too large")
	// ErrNodeAuth means the nodes refused the client's own token (401):
	// the client is misconfigured, whatever its caller sent.
	ErrNodeAuth = errors.New("the nodes refused this function's token: check MASTERKV_NODE_TOKEN against the nodes' MASTERKV_API_TOKENS")
)

// MaxResponseBytes bounds a node's answer. A submit of every cluster lists
// six pairs per cluster; 5 MiB leaves room for tens of thousands of
// clusters and stays under Lambda's 6 MB response limit.
const MaxResponseBytes = 5 << 20

// answerMargin is kept back from the caller's deadline, so that the
// function still has time to answer after the last attempt.
const answerMargin = 500 * time.Millisecond

// maxBackoff caps the pause between rounds of the nodes.
const maxBackoff = 2 * time.Second

// Request is one call of the node API.
type Request struct {
	Method string
	// Path is the node API path with its query, e.g. "/v1/failover?wait=all".
	Path        string
	Body        []byte
	ContentType string
	// IdempotencyKey is sent as the Idempotency-Key header; it is required.
	IdempotencyKey string
}

// Response is a node's answer, read in full.
type Response struct {
	Status      int
	ContentType string
	Body        []byte
	// Node is the base URL of the node that answered.
	Node string
}

// Options are the knobs that do not come from the environment.
type Options struct {
	// Transport replaces the HTTP transport built from Config.
	Transport http.RoundTripper
	// Backoff is the pause after a full round of failed nodes; it doubles
	// each round up to 2s. Zero means 250ms.
	Backoff time.Duration
	// Logger receives a line per failed attempt; nil discards them.
	Logger *slog.Logger
}

// Client sends requests to the node group. It is safe for concurrent use
// and meant to be built once, at cold start.
type Client struct {
	nodes    []*url.URL
	auth     string
	timeout  time.Duration
	hedge    time.Duration
	attempts int
	backoff  time.Duration
	http     *http.Client
	log      *slog.Logger
	// preferred is the node that answered last: a warm function starts there.
	preferred atomic.Int32
}

// New returns a client for cfg, which must be valid. It reads the TLS
// files, if any, once and opens no connection.
func New(cfg Config, opts Options) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	nodes, _ := parseNodes(cfg.Nodes)
	files, err := cfg.loadTLS()
	if err != nil {
		return nil, err
	}
	tr := opts.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		d := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
		t.DialContext = d.DialContext
		t.TLSHandshakeTimeout = cfg.ConnectTimeout
		if files != nil {
			// ConnectTimeout bounds the connect and the handshake.
			t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				return files.DialContext(ctx, d, network, addr)
			}
		}
		t.MaxIdleConnsPerHost = 4
		tr = t
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 250 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Client{
		nodes: nodes, auth: "Bearer " + cfg.Token, timeout: cfg.Timeout, hedge: cfg.HedgeDelay, attempts: cfg.Attempts,
		backoff: opts.Backoff, http: &http.Client{Transport: tr}, log: opts.Logger,
	}, nil
}

// retryable reports a status that means "try another node": the node has
// no leader or lost it mid-commit (503), or a proxy in front of it could
// not reach it (502, 504).
func retryable(status int) bool {
	return status == http.StatusServiceUnavailable || status == http.StatusBadGateway || status == http.StatusGatewayTimeout
}

// attemptTimeout is the time one attempt may take: Config.Timeout, cut to
// what is left before ctx's deadline minus answerMargin. ok is false when
// too little is left to try.
func (c *Client) attemptTimeout(ctx context.Context) (time.Duration, bool) {
	if ctx.Err() != nil {
		return 0, false
	}
	d := c.timeout
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl)-answerMargin)
	}
	return d, d >= 50*time.Millisecond
}

// pause waits d unless ctx ends or d would eat into answerMargin.
func (c *Client) pause(ctx context.Context, d time.Duration) bool {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl)-answerMargin-d < 50*time.Millisecond {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// once sends req to one node and reads the answer.
func (c *Client) once(ctx context.Context, timeout time.Duration, node *url.URL, req Request) (Response, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, req.Method, node.String()+req.Path, bytes.NewReader(req.Body))
	if err != nil {
		return Response{}, fmt.Errorf("build request: %w", err)
	}
	hr.Header.Set("Authorization", c.auth)
	// net/http also retries a request with this header on a stale
	// keep-alive connection, which a thawed Lambda often holds.
	hr.Header.Set("Idempotency-Key", req.IdempotencyKey)
	hr.Header.Set("Accept", "application/json")
	hr.Header.Set("User-Agent", "masterkv-lambda")
	if req.ContentType != "" {
		hr.Header.Set("Content-Type", req.ContentType)
	}
	resp, err := c.http.Do(hr)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is logged beside it already
		}
		return Response{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return Response{}, fmt.Errorf("read answer: %w", err)
	}
	if len(body) > MaxResponseBytes {
		return Response{}, fmt.Errorf("%s answered more than %d bytes: %w", node.Redacted(), MaxResponseBytes, ErrTooLarge)
	}
	return Response{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: body, Node: node.Redacted()}, nil
}

// errorMessage returns the message of a node's error answer
// ({"error": ...} or orchestrator's {"Message": ...}), or the start of
// the body.
func errorMessage(body []byte) string {
	var e struct {
		Error   string `json:"error"`
		Message string `json:"Message"`
	}
	if json.Unmarshal(body, &e) == nil {
		if e.Error != "" {
			return e.Error
		}
		if e.Message != "" {
			return e.Message
		}
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
