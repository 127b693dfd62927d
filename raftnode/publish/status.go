package publish

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/masterkv/masterkv/internal/kvstore"
)

// Status is what /v1/status shows of one store on one node.
type Status struct {
	Store string `json:"store"`
	// AppliedEpoch is the highest epoch this store confirmed.
	AppliedEpoch uint64    `json:"applied_epoch"`
	Backlog      int       `json:"backlog"`
	LastWriteAt  time.Time `json:"last_write_at,omitzero"`
	LastError    string    `json:"last_error,omitempty"`
	LastErrorAt  time.Time `json:"last_error_at,omitzero"`
	Written      uint64    `json:"written"`
	Unchanged    uint64    `json:"unchanged"`
	Stale        uint64    `json:"stale"`
	Failed       uint64    `json:"failed"`
	// Edited counts writes that found a hand edit and left it alone.
	Edited uint64 `json:"edited"`
	// Refusals counts writes the store refused for good (see Refused).
	Refusals uint64 `json:"refusals"`
	// Refused lists clusters the store refuses for good at their committed
	// epoch (an ACL that denies their keys, a path it cannot hold). They are
	// left out of later writes until their epoch changes, or RefusedRetry.
	Refused []string `json:"refused,omitempty"`
	// Drift lists clusters whose stored keys differ from the committed
	// state at the last check.
	Drift          []string  `json:"drift,omitempty"`
	DriftCheckedAt time.Time `json:"drift_checked_at,omitzero"`
	// HandEdits lists clusters whose store holds their committed epoch
	// with other values (edited by hand), left alone because repair is
	// off.
	HandEdits []string `json:"hand_edits,omitempty"`
	// KeysWritten counts keys changed in the store since start.
	KeysWritten uint64 `json:"keys_written"`
	// LastSweep is the last full pass, for publishers that sweep.
	LastSweep *SweepReport `json:"last_sweep,omitempty"`
}

func (s *Status) count(o kvstore.Outcome) {
	switch o.Status {
	case kvstore.Written:
		s.Written++
		s.KeysWritten += uint64(o.Keys)
	case kvstore.Unchanged:
		s.Unchanged++
	case kvstore.Stale:
		s.Stale++
	case kvstore.Edited:
		s.Edited++
	case kvstore.Refused:
		s.Refusals++
	default:
		s.Failed++
	}
}

// Status returns a copy of the store's status.
func (p *Publisher) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.status
	s.Drift = append([]string(nil), s.Drift...)
	s.HandEdits = slices.Sorted(maps.Keys(p.edits))
	s.Refused = slices.Sorted(maps.Keys(p.refused))
	if s.LastSweep != nil {
		r := *s.LastSweep
		s.LastSweep = &r
	}
	return s
}

// Applied returns the epoch the store confirmed for alias.
func (p *Publisher) Applied(alias string) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.applied[alias]
}

// Wait blocks until the store has attempted alias at epoch or later, or
// ctx ends, and returns the outcome: "ok", "stale: ..." or "error: ...", or
// "pending" when ctx ended first.
func (p *Publisher) Wait(ctx context.Context, alias string, epoch uint64) string {
	for {
		p.mu.Lock()
		a, ok := p.attempts[alias]
		ch := p.changed
		p.mu.Unlock()
		if ok && a.epoch >= epoch {
			return describe(a.outcome)
		}
		select {
		case <-ctx.Done():
			return "pending"
		case <-ch:
		}
	}
}

func describe(o kvstore.Outcome) string {
	switch o.Status {
	case kvstore.Written, kvstore.Unchanged:
		return "ok"
	case kvstore.Stale:
		return "stale: the store holds a newer epoch"
	case kvstore.Edited:
		return "edited: the store holds this epoch with values edited by hand; left alone (repair is off)"
	case kvstore.Refused:
		return "refused: " + o.Err.Error()
	}
	return "error: " + o.Err.Error()
}
