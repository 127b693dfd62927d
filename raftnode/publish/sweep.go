package publish

import (
	"time"

	"github.com/masterkv/masterkv/internal/kvstore"
)

// SweepReport describes one full pass over every cluster.
type SweepReport struct {
	At            time.Time     `json:"at"`
	Duration      time.Duration `json:"duration_ns"`
	Clusters      int           `json:"clusters"`
	KeysRead      int           `json:"keys_read"`
	KeysWritten   int           `json:"keys_written"`
	KeysUnchanged int           `json:"keys_unchanged"`
	KeysFailed    int           `json:"keys_failed"`
	// Stale counts clusters left alone because the store held a newer epoch.
	Stale     int    `json:"stale"`
	LastError string `json:"last_error,omitempty"`
}

// sweepPass is a pass in progress: the clusters not yet attempted.
type sweepPass struct {
	pending map[string]bool
	report  SweepReport
}

// startSweep marks every committed cluster for a read-compare-write pass.
// While a pass is still running (a slow or unreachable datacenter) the tick
// is skipped: restarting would keep a long pass from ever finishing, and
// committed changes do not wait for passes anyway.
func (p *Publisher) startSweep() {
	recs := p.src.Records()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sweep != nil {
		return
	}
	pass := &sweepPass{pending: make(map[string]bool, len(recs)), report: SweepReport{At: p.cfg.Now()}}
	for _, r := range recs {
		pass.pending[r.Cluster] = true
		p.force[r.Cluster] = true
	}
	p.sweep = pass
	if len(recs) == 0 {
		p.finishSweep()
	}
}

// sweepRecord counts a batch's outcomes into the pass; p.mu is held.
func (p *Publisher) sweepRecord(clusters []kvstore.Cluster, outs []kvstore.Outcome) {
	pass := p.sweep
	if pass == nil {
		return
	}
	for i, o := range outs {
		if !pass.pending[o.Alias] {
			continue
		}
		delete(pass.pending, o.Alias)
		keys := len(clusters[i].Pairs)
		r := &pass.report
		r.Clusters++
		switch o.Status {
		case kvstore.Written:
			r.KeysRead += keys
			r.KeysWritten += o.Keys
			r.KeysUnchanged += keys - o.Keys
		case kvstore.Unchanged:
			r.KeysRead += keys
			r.KeysUnchanged += keys
		case kvstore.Stale:
			r.KeysRead += keys
			r.Stale++
		default:
			r.KeysFailed += keys
			r.LastError = o.Err.Error()
		}
	}
	if len(pass.pending) == 0 {
		p.finishSweep()
	}
}

// finishSweep publishes the pass's report; p.mu is held.
func (p *Publisher) finishSweep() {
	r := p.sweep.report
	r.Duration = p.cfg.Now().Sub(r.At)
	p.status.LastSweep = &r
	p.sweep = nil
}
