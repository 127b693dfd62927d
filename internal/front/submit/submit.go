// Package submit is orchestrator's submit-masters-to-kv-stores as a
// function behind an HTTP API: it authenticates the request, forwards it
// to the node group, and relays the node's answer in orchestrator's shape
// {"Code","Message","Details"}, so orchestrator-client can call it.
package submit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/masterkv/masterkv/internal/front"
	"github.com/masterkv/masterkv/internal/lambdahttp"
	"github.com/masterkv/masterkv/internal/nodeclient"
	"github.com/masterkv/masterkv/internal/webhook"
)

// Route is the path of the orchestrator endpoint, on the HTTP API and on
// the nodes; "/{alias}" may follow.
const Route = "/api/submit-masters-to-kv-stores"

// Config is the function's configuration.
type Config = front.ForwardConfig

// Nodes sends a request to the node group.
type Nodes = front.Nodes

// Handler serves the function's invocations.
type Handler struct{ front.Forwarder }

// New returns the handler. log may be nil.
func New(nodes Nodes, verifier *webhook.Verifier, log *slog.Logger) *Handler {
	return &Handler{front.NewForwarder(nodes, verifier, log)}
}

// Response is orchestrator's API answer.
type Response struct {
	Code    string
	Message string
	Details any
}

// Handle answers one request, always as HTTP (never a Lambda error).
func (h *Handler) Handle(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (lambdahttp.Response, error) {
	req, err := lambdahttp.Parse(ev)
	if err != nil {
		return h.refuse(ctx, err), nil
	}
	if req.Method != http.MethodGet && req.Method != http.MethodPost {
		return h.refuse(ctx, fmt.Errorf("%w: %s; use GET or POST", lambdahttp.ErrMethod, req.Method), "Allow", "GET, POST"), nil
	}
	// The route is signed, so it is known before the credentials are
	// judged; a path that names no route is told only to a caller with
	// good credentials.
	alias, pathErr := aliasOf(req)
	path := NodePath(alias)
	how, err := h.Verifier.Verify(req.Headers, webhook.Request{Method: req.Method, Route: path, Body: req.Body})
	if err != nil {
		return h.refuse(ctx, err, "WWW-Authenticate", `Bearer realm="masterkv"`), nil
	}
	if pathErr != nil {
		return h.refuse(ctx, pathErr), nil
	}
	key := req.Header(webhook.KeyHeader)
	switch {
	case key != "":
	case how == webhook.MethodSignature:
		// From the signature, so a replay inside its window is a
		// duplicate, as the failover function derives its key.
		key = webhook.FailoverKey("", "", req.Header(webhook.SignatureHeader), []byte(path))
	case req.RequestID != "":
		key = "submit-" + req.RequestID
	default:
		key = "submit-" + randomHex()
	}
	if err := webhook.CheckKey(key); err != nil {
		return h.refuse(ctx, fmt.Errorf("%w: %w", err, lambdahttp.ErrBadRequest)), nil
	}
	resp, err := h.Nodes.Do(ctx, nodeclient.Request{Method: http.MethodPost, Path: path, IdempotencyKey: key})
	if err != nil {
		h.Log.Log(ctx, front.FaultLevel(err), "submit not forwarded", "auth", how, "cluster", alias, "err", err)
		return lambdahttp.JSON(front.StatusOf(err), Response{Code: "ERROR", Message: front.PublicMessage(err)}), nil
	}
	h.Log.InfoContext(ctx, "submit forwarded", "auth", how, "cluster", alias, "node", resp.Node, "status", resp.Status)
	if !orchestratorShaped(resp.Body) {
		// Not the node API (a proxy's error page, say): wrap it.
		msg := fmt.Sprintf("node %s answered %d: %.200s", resp.Node, resp.Status, strings.TrimSpace(string(resp.Body)))
		return lambdahttp.JSON(resp.Status, Response{Code: "ERROR", Message: msg}), nil
	}
	return lambdahttp.Raw(resp.Status, "application/json", resp.Body), nil
}

// NodePath is the node API path of a submit of alias ("" for every
// cluster): the route its signature covers and the path it is sent to.
func NodePath(alias string) string {
	if alias == "" {
		return Route
	}
	return Route + "/" + url.PathEscape(alias)
}

// RouteOf is the route a signature of req covers (NodePath of its alias).
func RouteOf(req lambdahttp.Request) (string, error) {
	alias, err := aliasOf(req)
	return NodePath(alias), err
}

// aliasOf returns the cluster named by the route: the HTTP API's {alias}
// parameter, else what follows Route in the path ("" for all clusters).
func aliasOf(req lambdahttp.Request) (string, error) {
	if a := req.PathParameters["alias"]; a != "" {
		return a, nil
	}
	i := strings.Index(req.Path, Route)
	if i < 0 {
		return "", fmt.Errorf("path %q is not %s[/{alias}]: %w", req.Path, Route, lambdahttp.ErrBadRequest)
	}
	rest := req.Path[i+len(Route):]
	if rest == "" || rest == "/" {
		return "", nil
	}
	if rest[0] != '/' {
		return "", fmt.Errorf("path %q is not %s[/{alias}]: %w", req.Path, Route, lambdahttp.ErrBadRequest)
	}
	alias, err := url.PathUnescape(strings.TrimSuffix(rest[1:], "/"))
	if err != nil {
		return "", fmt.Errorf("path %q: alias is not valid percent-encoding: %w", req.Path, lambdahttp.ErrBadRequest)
	}
	return alias, nil
}

// orchestratorShaped reports a JSON object with a Code, as the node API
// answers under /api/.
func orchestratorShaped(body []byte) bool {
	var v map[string]json.RawMessage
	if json.Unmarshal(body, &v) != nil {
		return false
	}
	_, ok := v["Code"]
	return ok
}

func randomHex() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// refuse answers in orchestrator's shape and logs the refusal (never the
// request's headers or body).
func (h *Handler) refuse(ctx context.Context, err error, headers ...string) lambdahttp.Response {
	status := front.StatusOf(err)
	h.Log.InfoContext(ctx, "request refused", "status", status, "err", err)
	return lambdahttp.JSON(status, Response{Code: "ERROR", Message: err.Error()}, headers...)
}
