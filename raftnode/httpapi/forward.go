package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// headerForwardedBy marks a request a follower forwarded, so the receiver
// never forwards it again: a leader change mid-flight yields a 503 the
// caller can retry, never a loop.
const headerForwardedBy = "X-Masterkv-Forwarded-By"

var errForward = errors.New("cannot reach the leader")

// forwardedHeaders are the request headers passed on to the leader.
var forwardedHeaders = []string{"Authorization", "Content-Type", "Idempotency-Key", "Accept"}

// forward replays a write on the leader and relays its answer.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, body []byte) {
	if by := r.Header.Get(headerForwardedBy); by != "" {
		s.fail(w, r, fmt.Errorf("request forwarded by %s reached a node that is not the leader: %w", by, errForward))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.LeaderWait)
	leader, err := s.node.LeaderPeer(ctx)
	cancel()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if leader.ID == s.node.ID() {
		s.serveHere(w, r, body)
		return
	}
	if leader.HTTPAddr == "" {
		s.fail(w, r, fmt.Errorf("leader %q has no usable HTTP address: %w", leader.ID, errForward))
		return
	}
	fctx, fcancel := context.WithTimeout(r.Context(), s.leaderBudget(r))
	defer fcancel()
	req, err := http.NewRequestWithContext(fctx, r.Method, baseURL(leader.HTTPAddr)+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		s.fail(w, r, fmt.Errorf("forward to leader %s: %v: %w", leader.ID, err, errForward))
		return
	}
	for _, h := range forwardedHeaders {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	req.Header.Set(headerForwardedBy, s.node.ID())
	resp, err := s.forwarder.Do(req)
	if err != nil {
		s.fail(w, r, fmt.Errorf("forward to leader %s: %v: %w", leader.ID, err, errForward))
		return
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.Header().Set("X-Masterkv-Leader", leader.ID)
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// forwardSlack covers, in leaderBudget, the network and what the leader
// does outside its timeouts (decoding, DNS lookups).
const forwardSlack = 2 * time.Second

// leaderBudget is the longest the leader may take to answer the write r:
// ApplyTimeout to queue and commit it, ApplyTimeout again for the barrier
// that makes followers apply it, ReceiptTimeout for its stores and, with
// ?wait=all, WaitAllTimeout for the other nodes. A forward waits that long
// (plus slack), never a fixed time: a committed write must not be reported
// as failed because the node relaying it gave up first.
func (s *Server) leaderBudget(r *http.Request) time.Duration {
	b := 2*s.opts.ApplyTimeout + s.opts.ReceiptTimeout + forwardSlack
	if r.URL.Query().Get("wait") == "all" {
		b += s.opts.WaitAllTimeout
	}
	return b
}

// MaxRequestTime is the longest a request may take on this node, for the
// HTTP server's WriteTimeout: the wait for an election (LeaderWait), the
// leader's budget for a ?wait=all write, and a second election while the
// write is forwarded.
func (s *Server) MaxRequestTime() time.Duration {
	r := &http.Request{URL: &url.URL{RawQuery: "wait=all"}}
	return 2*s.opts.LeaderWait + s.leaderBudget(r)
}

// localRetriesKey counts, in a request's context, how often serveHere
// served it again on this node.
type localRetriesKey struct{}

// maxLocalRetries bounds serveHere: leadership that comes and goes faster
// than a request can commit ends in a 503 rather than a loop.
const maxLocalRetries = 3

// serveHere serves a write again on this node, which became the leader
// while the write waited for an election (the first election after start,
// or one it won mid-request): forwarding it to itself is what the leader
// would do with it anyway. The handler runs from the start again, so the
// request is validated and proposed exactly as if it had just arrived.
func (s *Server) serveHere(w http.ResponseWriter, r *http.Request, body []byte) {
	n, _ := r.Context().Value(localRetriesKey{}).(int)
	if n >= maxLocalRetries {
		s.fail(w, r, fmt.Errorf("leadership moved %d times while the request waited; retry: %w", n, errForward))
		return
	}
	r2 := r.Clone(context.WithValue(r.Context(), localRetriesKey{}, n+1))
	r2.Body = io.NopCloser(bytes.NewReader(body))
	s.mux.ServeHTTP(w, r2)
}

func baseURL(addr string) string {
	if strings.Contains(addr, "://") {
		return strings.TrimRight(addr, "/")
	}
	return "http://" + addr
}
