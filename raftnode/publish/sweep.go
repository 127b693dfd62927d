package publish

import (
	"context"
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
	Stale int `json:"stale"`
	// HandEdited counts clusters left alone because the store held their
	// epoch with values edited by hand (repair off).
	HandEdited int    `json:"hand_edited"`
	LastError  string `json:"last_error,omitempty"`
}

// sweepPass is a pass in progress. It starts with one read of every
// cluster (the survey); the clusters that differ are then pending: marked
// for the write path, which reads each again and writes under the epoch
// guard.
type sweepPass struct {
	surveying bool
	pending   map[string]bool
	report    SweepReport
}

// survey is the result of a pass's first read: same[i] tells whether the
// store holds clusters[i] exactly.
type survey struct {
	pass     *sweepPass
	clusters []kvstore.Cluster
	same     []bool
	err      error
}

// Sweep asks for a pass now, as the sweep interval would; it does not wait
// for it. The cross-datacenter distribution uses it for the datacenter this
// node's own publisher writes. A request while a pass runs is dropped, as
// a tick would be.
func (p *Publisher) Sweep() {
	select {
	case p.sweepNow <- struct{}{}:
	default:
	}
}

// startSweep starts a read-compare-write pass over every committed
// cluster. While a pass is still running (a slow or unreachable datacenter)
// the tick is skipped: restarting would keep a long pass from ever
// finishing, and committed changes do not wait for passes anyway.
//
// The pass first reads every cluster in one Read, off the Run loop so that
// committed changes keep flowing while it reads: Consul answers a Read of
// many clusters with one recursive listing, which is about twice as cheap
// as reading the clusters one transaction at a time.
//
// A pass due while the publisher is busy writing a backlog, batch after
// successful batch (a first distribution, a bulk submit), waits until the
// backlog is written: see loop.startSweep, which calls this.
func (p *Publisher) startSweep(ctx context.Context) {
	p.mu.Lock()
	if p.sweep != nil {
		p.mu.Unlock()
		return
	}
	pass := &sweepPass{surveying: true, report: SweepReport{At: p.cfg.Now()}}
	p.sweep = pass
	p.mu.Unlock()
	recs := p.src.Records()
	clusters := make([]kvstore.Cluster, len(recs))
	for i, r := range recs {
		clusters[i] = kvstore.NewCluster(p.cfg.Layout, r.Cluster, r.Master, r.Epoch)
	}
	p.offLoop(func() {
		sv := survey{pass: pass, clusters: clusters}
		if len(clusters) > 0 {
			sv.same, sv.err = p.surveyStore(ctx, clusters)
		}
		p.surveyed <- sv // buffered, and one pass at a time
	})
}

// surveyStore reads clusters once and tells which the store holds exactly.
func (p *Publisher) surveyStore(ctx context.Context, clusters []kvstore.Cluster) ([]bool, error) {
	if s, ok := p.store.(kvstore.Surveyor); ok {
		return s.Survey(ctx, clusters)
	}
	obs, err := p.store.Read(ctx, clusters)
	if err != nil {
		return nil, err
	}
	same := make([]bool, len(clusters))
	for i, c := range clusters {
		same[i] = len(kvstore.Diff(c, obs[c.Alias])) == 0
	}
	return same, nil
}

// finishSurvey settles the clusters the store already holds exactly and
// leaves the others to the write path. A failed read leaves every cluster
// to it, which reads them one by one.
func (p *Publisher) finishSurvey(sv survey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pass := sv.pass
	pass.surveying = false
	pass.pending = map[string]bool{}
	if sv.err != nil {
		p.log.Warn("sweep: reading every cluster at once failed; reading them one by one", "err", sv.err)
	}
	settled := false
	for i, c := range sv.clusters {
		if sv.err == nil && sv.same[i] {
			// The same conclusion a Write draws from its read: unchanged.
			n := len(c.Pairs)
			pass.report.Clusters++
			pass.report.KeysRead += n
			pass.report.KeysUnchanged += n
			p.settleRead(kvstore.Outcome{Alias: c.Alias, Epoch: c.Epoch, Status: kvstore.Unchanged, Keys: n})
			settled = true
			continue
		}
		pass.pending[c.Alias] = true
		p.force[c.Alias] = true
	}
	if settled {
		p.notify()
	}
	if len(pass.pending) == 0 {
		p.finishSweep()
	}
}

// sweepRecord counts a batch's outcomes into the pass; p.mu is held.
func (p *Publisher) sweepRecord(clusters []kvstore.Cluster, outs []kvstore.Outcome) {
	pass := p.sweep
	if pass == nil || pass.surveying {
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
		case kvstore.Edited:
			r.KeysRead += keys
			r.KeysUnchanged += keys
			r.HandEdited++
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
