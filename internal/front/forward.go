package front

import (
	"context"
	"errors"
	"log/slog"

	"github.com/masterkv/masterkv/internal/nodeclient"
	"github.com/masterkv/masterkv/internal/webhook"
)

// ForwardConfig is the configuration of a function that authenticates its
// caller and forwards the request to the node group (failover, submit).
type ForwardConfig struct {
	nodeclient.Config
	webhook.Credentials
}

// Validate checks every setting.
func (c ForwardConfig) Validate() error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	return c.Credentials.Validate()
}

// Nodes sends a request to the node group.
type Nodes interface {
	Do(ctx context.Context, req nodeclient.Request) (nodeclient.Response, error)
}

var _ Nodes = (*nodeclient.Client)(nil)

// Forwarder is what a function that authenticates requests and forwards
// them to the node group holds.
type Forwarder struct {
	Nodes    Nodes
	Verifier *webhook.Verifier
	Log      *slog.Logger
}

// NewForwarder returns a forwarder; log may be nil.
func NewForwarder(nodes Nodes, verifier *webhook.Verifier, log *slog.Logger) Forwarder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return Forwarder{Nodes: nodes, Verifier: verifier, Log: log}
}

// FaultLevel is the log level of a request the function could not forward:
// error when the function itself is misconfigured (the nodes refuse its
// token), which no retry mends; warn otherwise.
func FaultLevel(err error) slog.Level {
	if errors.Is(err, nodeclient.ErrNodeAuth) {
		return slog.LevelError
	}
	return slog.LevelWarn
}
