// Package publish keeps one external store (a ZooKeeper ensemble, a Consul
// datacenter) in line with the committed master records of this node.
//
// It runs outside raft's Apply: it reads committed records from the FSM and
// writes the clusters whose epoch is newer than what the store last
// confirmed, retrying failed writes with capped backoff until they succeed.
// Each store has its own Publisher, so a failing store never blocks another.
package publish

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/raftnode/fsm"
)

// Source is the committed state: the FSM.
type Source interface {
	Records() []fsm.Record
	Watch() (ch <-chan struct{}, cancel func())
}

var _ Source = (*fsm.FSM)(nil)

// Store is a writer that can also read back, for drift checks.
type Store interface {
	kvstore.Writer
	kvstore.Reader
}

// Config tunes a publisher.
type Config struct {
	Layout discovery.Layout
	// Ready gates the first write after start: until it returns true the
	// node may still be replaying an old log, and publishing would expose
	// an intermediate (stale) master. nil means always ready.
	Ready func() bool
	// RetryMin and RetryMax bound the backoff after a failed write.
	RetryMin, RetryMax time.Duration
	// BatchSize is the most clusters handed to one Write.
	BatchSize int
	// DriftInterval is how often the store is read back and compared with
	// the committed state; 0 turns drift checks off.
	DriftInterval time.Duration
	// DriftRepair rewrites hand edits (a store holding a cluster's own
	// epoch with other values) instead of only reporting them. A missing
	// cluster or an older epoch is distribution and is written either way
	// (kvstore.Judge), by every write, drift check and pass.
	DriftRepair bool
	// SweepInterval, when set, makes the publisher read and compare every
	// cluster (writing what differs) at start and at this interval: the
	// cross-datacenter distribution. Each pass is reported in Status.LastSweep.
	SweepInterval time.Duration
	// RefusedRetry is how long a cluster the store refused for good (see
	// kvstore.Refuser) is left out before it is tried again at the same
	// epoch (default 5m); a new epoch is tried at once.
	RefusedRetry time.Duration
	// Observe, when set, is told the duration and outcomes of every Write,
	// for metrics.
	Observe func(store string, seconds float64, outs []kvstore.Outcome)
	Logger  *slog.Logger
	// Now is the clock for status timestamps.
	Now func() time.Time
}

// Publisher pushes committed records to one store.
type Publisher struct {
	store Store
	src   Source
	cfg   Config
	log   *slog.Logger

	mu       sync.Mutex
	applied  map[string]uint64  // epoch the store confirmed per cluster
	attempts map[string]attempt // last outcome per cluster
	changed  chan struct{}      // closed and replaced after every batch
	status   Status
	force    map[string]bool    // drifted clusters to rewrite
	edits    map[string]uint64  // hand edits left alone, by the epoch they were found at
	refused  map[string]refusal // clusters the store refuses for good
	sweep    *sweepPass         // the pass in progress, if any

	sweepNow  chan struct{} // Sweep's requests
	surveyed  chan survey   // the read that starts a pass, when done
	driftDone chan struct{} // a drift check finished

	readers sync.WaitGroup // the reads started off the loop, which Run waits for
}

type attempt struct {
	epoch   uint64
	outcome kvstore.Outcome
}

// New returns a publisher of src into store; Run starts it.
func New(store Store, src Source, cfg Config) *Publisher {
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 100 * time.Millisecond
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = 30 * time.Second
	}
	if cfg.RefusedRetry <= 0 {
		cfg.RefusedRetry = 5 * time.Minute
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Publisher{
		store: store, src: src, cfg: cfg,
		log:       cfg.Logger.With("store", store.Name()),
		applied:   map[string]uint64{},
		attempts:  map[string]attempt{},
		changed:   make(chan struct{}),
		status:    Status{Store: store.Name()},
		force:     map[string]bool{},
		edits:     map[string]uint64{},
		refused:   map[string]refusal{},
		sweepNow:  make(chan struct{}, 1),
		surveyed:  make(chan survey, 1),
		driftDone: make(chan struct{}, 1),
	}
}

// Name is the store's name.
func (p *Publisher) Name() string { return p.store.Name() }

// Run publishes until ctx ends: each event (a commit, a retry falling due,
// a tick, a read finished off the loop) is handled by a method of loop,
// and then one batch of what is dirty is written.
//
// The loop only writes. Every read that is not part of a write (a drift
// check, a pass's survey) runs in a goroutine of its own and hands its
// findings back, so a commit never waits for a read: ZooKeeper has no
// listing, and a drift check of 10,000 clusters reads 60,000 znodes.
func (p *Publisher) Run(ctx context.Context) {
	defer p.readers.Wait() // after ctx ends, the reads return at once
	watch, unwatch := p.src.Watch()
	defer unwatch()
	drift, stopDrift := ticker(p.cfg.DriftInterval)
	defer stopDrift()
	sweep, stopSweep := ticker(p.cfg.SweepInterval)
	defer stopSweep()
	l := &loop{p: p, ctx: ctx, backoff: p.cfg.RetryMin}
	if sweep != nil {
		l.startSweep() // the pass at start
	}
	refusedTick := time.NewTicker(p.cfg.RefusedRetry) // refusals due for another try
	defer refusedTick.Stop()
	l.wait = time.NewTimer(0)
	defer l.wait.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-watch:
		case <-l.wait.C:
		case <-refusedTick.C:
		case <-drift:
			l.startDrift()
		case <-p.driftDone:
			l.drifting = false // and write what it marked for repair
		case <-sweep:
			l.startSweep()
		case <-p.sweepNow:
			l.startSweep()
		case sv := <-p.surveyed:
			p.finishSurvey(sv)
		}
		l.publish()
	}
}

// loop is Run's state, owned by its goroutine.
type loop struct {
	p        *Publisher
	ctx      context.Context
	wait     *time.Timer   // the next round: a retry, the next batch
	backoff  time.Duration // the wait after the next failed write
	writing  bool          // the last round wrote a batch, successfully
	deferred bool          // a pass is due once the backlog is written
	drifting bool          // a drift check is reading the store
}

// ticker returns the ticks of interval d and its stop, or a nil channel
// (never ready) when d is not positive.
func ticker(d time.Duration) (<-chan time.Time, func()) {
	if d <= 0 {
		return nil, func() {}
	}
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// startDrift starts a drift check off the loop, unless one is reading.
func (l *loop) startDrift() {
	if !l.p.ready() || l.drifting {
		return
	}
	l.drifting = true
	l.p.offLoop(func() {
		l.p.checkDrift(l.ctx)
		l.p.driftDone <- struct{}{} // buffered, and one check at a time
	})
}

// startSweep starts a pass, or defers it while a backlog is being written
// batch after successful batch: the backlog's clusters are being written
// under the guard anyway, and a pass would read them twice while they
// are. When writes fail the pass runs at once; it may be what finds out
// more.
func (l *loop) startSweep() {
	if l.writing {
		l.deferred = true
		return
	}
	l.p.startSweep(l.ctx)
}

// publish writes one batch of what is dirty, once the node is ready, starts
// a deferred pass once the backlog is written, and sets when the next
// round is due.
func (l *loop) publish() {
	p := l.p
	if !p.ready() {
		l.wait.Reset(50 * time.Millisecond)
		return
	}
	wrote, more, failed := p.publishOnce(l.ctx)
	l.writing = wrote && !failed
	if l.deferred && !l.writing {
		l.deferred = false
		p.startSweep(l.ctx)
	}
	switch {
	case failed:
		l.wait.Reset(l.backoff)
		l.backoff = min(2*l.backoff, p.cfg.RetryMax)
	case more:
		l.backoff = p.cfg.RetryMin
		l.wait.Reset(0)
	default:
		l.backoff = p.cfg.RetryMin
		if l.deferred {
			l.wait.Reset(0) // one more round finds the backlog written and starts the pass
		}
	}
}

// offLoop runs a read in its own goroutine; Run waits for it on return.
func (p *Publisher) offLoop(read func()) {
	p.readers.Add(1)
	go func() { defer p.readers.Done(); read() }()
}

func (p *Publisher) ready() bool { return p.cfg.Ready == nil || p.cfg.Ready() }

// dirty returns the records the store has not confirmed, newest epoch
// first, so a failover is not queued behind a bulk submit.
func (p *Publisher) dirty() []fsm.Record {
	recs := p.src.Records()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []fsm.Record
	for _, r := range recs {
		if (r.Epoch > p.applied[r.Cluster] || p.force[r.Cluster]) && !p.leftOut(r.Cluster, r.Epoch) {
			out = append(out, r)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Epoch > out[j].Epoch })
	p.status.Backlog = len(out)
	return out
}

// publishOnce writes one batch of dirty clusters. It reports whether there
// was any, whether more are waiting and whether any write failed.
func (p *Publisher) publishOnce(ctx context.Context) (wrote, more, failed bool) {
	dirty := p.dirty()
	if len(dirty) == 0 {
		return false, false, false
	}
	refused := 0
	batch := dirty[:min(len(dirty), p.cfg.BatchSize)]
	clusters := make([]kvstore.Cluster, len(batch))
	p.mu.Lock()
	for i, r := range batch {
		clusters[i] = p.cluster(r)
	}
	p.mu.Unlock()
	start := p.cfg.Now()
	outs := p.store.Write(ctx, clusters)
	p.settleRefusals(ctx, clusters, outs)
	if p.cfg.Observe != nil {
		p.cfg.Observe(p.store.Name(), p.cfg.Now().Sub(start).Seconds(), outs)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sweepRecord(clusters, outs)
	for _, o := range outs {
		p.status.count(o)
		switch o.Status {
		case kvstore.Failed:
			failed = true
			p.status.LastError, p.status.LastErrorAt = o.Err.Error(), p.cfg.Now()
		case kvstore.Refused:
			refused++ // not a reason to back off: the others go on
		}
		p.settle(o)
	}
	p.status.LastWriteAt = p.cfg.Now()
	p.status.Backlog = len(dirty) - len(batch)
	if failed {
		p.status.Backlog = len(dirty) - refused
		p.log.Warn("store write failed; will retry", "clusters", len(batch), "err", p.status.LastError)
	} else {
		p.log.Debug("store written", "clusters", len(batch), "duration", p.cfg.Now().Sub(start))
	}
	p.notify()
	return true, len(dirty) > len(batch), failed
}

// cluster builds r's publication unit; p.mu is held. Hand edits are kept
// unless repair is on. Without an epoch key the store cannot tell an older
// master from a hand edit, so an epoch this store has not confirmed yet is
// written as distribution (after a restart: every cluster once).
func (p *Publisher) cluster(r fsm.Record) kvstore.Cluster {
	c := kvstore.NewCluster(p.cfg.Layout, r.Cluster, r.Master, r.Epoch)
	c.KeepHandEdits = !p.cfg.DriftRepair && (c.EpochKey() != "" || r.Epoch <= p.applied[r.Cluster])
	return c
}

// settle records what the store did with a cluster, for receipts and for
// what is dirty; p.mu is held.
func (p *Publisher) settle(o kvstore.Outcome) {
	if o.Done() || o.Status == kvstore.Refused {
		delete(p.force, o.Alias)
	}
	switch {
	case o.Status == kvstore.Refused:
		p.noteRefusal(o)
	case o.Done():
		delete(p.refused, o.Alias)
	}
	p.settleRead(o)
}

// settleRead is settle for an outcome concluded from a pass's read, which
// may be older than a drift mark set since: the mark stays, and the write
// path reads the cluster again.
func (p *Publisher) settleRead(o kvstore.Outcome) {
	// A pass's read may settle an epoch older than one written while it
	// read; a receipt for the newer epoch must not wait for it again.
	if a, ok := p.attempts[o.Alias]; !ok || o.Epoch >= a.epoch {
		p.attempts[o.Alias] = attempt{epoch: o.Epoch, outcome: o}
	}
	if !o.Done() {
		return
	}
	if o.Epoch > p.applied[o.Alias] {
		p.applied[o.Alias] = o.Epoch
	}
	if o.Epoch > p.status.AppliedEpoch {
		p.status.AppliedEpoch = o.Epoch
	}
	if o.Status == kvstore.Stale {
		p.log.Warn("store holds a newer epoch; left it alone", "cluster", o.Alias, "epoch", o.Epoch)
	}
	if o.Status == kvstore.Edited {
		p.noteEdit(o.Alias, o.Epoch)
	} else if e, ok := p.edits[o.Alias]; ok && o.Epoch >= e {
		delete(p.edits, o.Alias)
	}
}

// noteEdit reports a hand edit left alone, logging it once per cluster and
// epoch; p.mu is held.
func (p *Publisher) noteEdit(alias string, epoch uint64) {
	if e, ok := p.edits[alias]; ok && e >= epoch {
		return
	}
	p.edits[alias] = epoch
	p.log.Warn("hand edit: the store holds the committed epoch with other values; left alone (MASTERKV_DRIFT_REPAIR=false)",
		"cluster", alias, "epoch", epoch)
}

// notify wakes receipt waiters; p.mu is held.
func (p *Publisher) notify() {
	close(p.changed)
	p.changed = make(chan struct{})
}
