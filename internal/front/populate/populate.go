// Package populate is the scheduled populate function: it gathers the
// current masters (from the schedule's input, or from an orchestrator
// API) and posts them to the node group's POST /v1/populate in batches
// under the nodes' body limit. The nodes commit only clusters they lack.
package populate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/masterkv/masterkv/internal/front"
	"github.com/masterkv/masterkv/internal/nodeclient"
	"github.com/masterkv/masterkv/internal/orchestratorapi"
)

// Config is the populate function's configuration.
type Config struct {
	nodeclient.Config
	// OrchestratorURL is the orchestrator API asked for the masters when
	// the event carries none; empty means the event must carry them.
	OrchestratorURL      string        `envconfig:"MASTERKV_ORCHESTRATOR_URL"`
	OrchestratorUser     string        `envconfig:"MASTERKV_ORCHESTRATOR_USER"`
	OrchestratorPassword string        `envconfig:"MASTERKV_ORCHESTRATOR_PASSWORD"`
	OrchestratorTimeout  time.Duration `envconfig:"MASTERKV_ORCHESTRATOR_TIMEOUT" default:"5s"`
}

// NodeClient is the node group the function posts to.
func (c Config) NodeClient() nodeclient.Config { return c.Config }

// Validate checks every setting.
func (c Config) Validate() error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	if c.OrchestratorURL != "" {
		if _, err := c.Orchestrator(); err != nil {
			return fmt.Errorf("config: MASTERKV_ORCHESTRATOR_URL: %w", err)
		}
	}
	if c.OrchestratorPassword != "" && c.OrchestratorUser == "" {
		return fmt.Errorf("config: MASTERKV_ORCHESTRATOR_PASSWORD is set without MASTERKV_ORCHESTRATOR_USER")
	}
	if c.OrchestratorTimeout <= 0 {
		return fmt.Errorf("config: MASTERKV_ORCHESTRATOR_TIMEOUT must be above 0, got %s", c.OrchestratorTimeout)
	}
	return nil
}

// Orchestrator returns the client of OrchestratorURL, or nil when unset.
func (c Config) Orchestrator() (*orchestratorapi.Client, error) {
	if c.OrchestratorURL == "" {
		return nil, nil
	}
	return orchestratorapi.New(c.OrchestratorURL, orchestratorapi.Options{
		User: c.OrchestratorUser, Password: c.OrchestratorPassword, Timeout: c.OrchestratorTimeout,
	})
}

// Nodes sends a request to the node group.
type Nodes = front.Nodes

// Source lists the current masters.
type Source interface {
	Masters(ctx context.Context) ([]orchestratorapi.Master, error)
}

var (
	_ Nodes  = (*nodeclient.Client)(nil)
	_ Source = (*orchestratorapi.Client)(nil)
)

// ErrNoSource is an event without masters when no orchestrator is configured.
var ErrNoSource = errors.New("the event carries no masters and MASTERKV_ORCHESTRATOR_URL is not set")

// Counts is the function's result, summed over the batches: masters the
// nodes checked, committed (clusters they lacked) and skipped (known).
type Counts struct {
	Checked   int `json:"checked"`
	Submitted int `json:"submitted"`
	Skipped   int `json:"skipped"`
}

// Handler serves the function's invocations.
type Handler struct {
	nodes  Nodes
	source Source
	log    *slog.Logger
}

// New returns the handler. source may be nil (the events must then carry
// the masters); log may be nil.
func New(nodes Nodes, source Source, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{nodes: nodes, source: source, log: log}
}

// Handle runs one scheduled populate. Masters that are invalid, or that
// orchestrator could not report, are left out and make the invocation
// fail after the others were posted, so a bad entry never blocks the rest
// and never goes unnoticed.
func (h *Handler) Handle(ctx context.Context, raw json.RawMessage) (Counts, error) {
	t, err := parseEvent(ctx, raw)
	if err != nil {
		return Counts{}, err
	}
	masters, srcErr := t.masters, error(nil)
	source := "event"
	if len(masters) == 0 {
		if h.source == nil {
			return Counts{}, ErrNoSource
		}
		source = "orchestrator"
		var found []orchestratorapi.Master
		found, srcErr = h.source.Masters(ctx)
		if srcErr != nil && len(found) == 0 {
			return Counts{}, fmt.Errorf("read masters: %w", srcErr)
		}
		for _, m := range found {
			masters = append(masters, Master{Cluster: m.Cluster, Host: m.Host, Port: m.Port})
		}
	}
	counts, err := h.post(ctx, t.key, masters)
	h.log.InfoContext(ctx, "populate done", "source", source, "checked", counts.Checked, "submitted", counts.Submitted, "skipped", counts.Skipped)
	if err = errors.Join(srcErr, err); err != nil {
		h.log.WarnContext(ctx, "populate incomplete", "err", err)
		return counts, err
	}
	return counts, nil
}
