// Package failover is the failover webhook function: it authenticates a
// Function URL or HTTP API request (bearer token or HMAC signature),
// forwards it to POST /v1/failover on the node group with an idempotency
// key, and relays the node's answer.
package failover

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/aws/aws-lambda-go/events"

	"github.com/masterkv/masterkv/internal/front"
	"github.com/masterkv/masterkv/internal/lambdahttp"
	"github.com/masterkv/masterkv/internal/nodeclient"
	"github.com/masterkv/masterkv/internal/webhook"
)

// Route is the node API path a failover stands for; a signature covers it,
// so a failover's signature is worth nothing to another function.
const Route = "/v1/failover"

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

// Handle answers one request. It never returns an error: every outcome is
// an HTTP answer, so the caller sees a status rather than a Lambda error.
func (h *Handler) Handle(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (lambdahttp.Response, error) {
	req, err := lambdahttp.Parse(ev)
	if err != nil {
		return h.refuse(ctx, err), nil
	}
	if req.Method != http.MethodPost {
		return h.refuse(ctx, fmt.Errorf("%w: %s; use POST", lambdahttp.ErrMethod, req.Method), "Allow", "POST"), nil
	}
	how, err := h.Verifier.Verify(req.Headers, webhook.Request{Method: req.Method, Route: Route, Body: req.Body})
	if err != nil {
		return h.refuse(ctx, err, "WWW-Authenticate", `Bearer realm="masterkv"`), nil
	}
	bodyID, header := webhook.BodyID(req.Body), req.Header(webhook.KeyHeader)
	if bodyID != "" && header != "" && bodyID != header {
		return h.refuse(ctx, fmt.Errorf("id: differs from the Idempotency-Key header: %w", lambdahttp.ErrBadRequest)), nil
	}
	delivery := req.RequestID
	if how == webhook.MethodSignature {
		delivery = req.Header(webhook.SignatureHeader)
	}
	key := webhook.FailoverKey(bodyID, header, delivery, req.Body)
	if err := webhook.CheckKey(key); err != nil {
		return h.refuse(ctx, fmt.Errorf("%w: %w", err, lambdahttp.ErrBadRequest)), nil
	}
	path := Route
	if q, _ := url.ParseQuery(req.RawQuery); q.Get("wait") == "all" {
		path += "?wait=all"
	}
	resp, err := h.Nodes.Do(ctx, nodeclient.Request{
		Method: http.MethodPost, Path: path, Body: req.Body, ContentType: req.Header("Content-Type"), IdempotencyKey: key,
	})
	if err != nil {
		h.Log.Log(ctx, front.FaultLevel(err), "failover not forwarded", "auth", how, "idempotency_key", key, "err", err)
		return lambdahttp.JSON(front.StatusOf(err), map[string]string{"error": front.PublicMessage(err)}), nil
	}
	h.Log.InfoContext(ctx, "failover forwarded", "auth", how, "idempotency_key", key, "node", resp.Node, "status", resp.Status)
	return lambdahttp.Raw(resp.Status, resp.ContentType, resp.Body), nil
}

// refuse answers {"error": ...} and logs the refusal. Bodies and headers
// are never logged: they carry credentials.
func (h *Handler) refuse(ctx context.Context, err error, headers ...string) lambdahttp.Response {
	status := front.StatusOf(err)
	h.Log.InfoContext(ctx, "request refused", "status", status, "err", err)
	return lambdahttp.JSON(status, map[string]string{"error": err.Error()}, headers...)
}
