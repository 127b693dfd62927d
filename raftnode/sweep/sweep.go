// Package sweep is the leader's cross-datacenter distribution: with
// MASTERKV_CONSUL_CROSS_DATA_CENTER_DISTRIBUTION the leader lists the
// datacenters its Consul knows and keeps the current master of every
// cluster written into each of them (?dc=).
//
// Each datacenter gets its own publish.Publisher over the consul store for
// that datacenter, so a committed change goes to every datacenter at once
// (not at the next tick), a change arriving during a pass is queued, a slow
// or unreachable datacenter delays no other, and every interval each
// publisher reads every cluster for real and writes what differs.
package sweep

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/masterkv/masterkv/internal/consulkv"
	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/raftnode/publish"
)

// Leader tells whether this node may sweep.
type Leader interface {
	IsLeader() bool
	CaughtUp() bool
}

// Config tunes the sweep.
type Config struct {
	Layout discovery.Layout
	// Interval between full passes and datacenter listings (default 1m).
	Interval time.Duration
	// Concurrency bounds the datacenters written at the same moment.
	Concurrency int
	// LeaderPoll is how often leadership is checked (default 250ms).
	LeaderPoll time.Duration
	RetryMax   time.Duration
	Observe    func(store string, seconds float64, outs []kvstore.Outcome)
	Logger     *slog.Logger
}

// Sweeper runs the per-datacenter publishers while this node leads.
type Sweeper struct {
	consul *consulkv.Store
	src    publish.Source
	node   Leader
	cfg    Config
	sem    chan struct{}

	mu      sync.Mutex
	running map[string]*dcPublisher
	listErr string
	listAt  time.Time
}

type dcPublisher struct {
	pub    *publish.Publisher
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a sweeper writing through consul's agent.
func New(consul *consulkv.Store, src publish.Source, node Leader, cfg Config) *Sweeper {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.LeaderPoll <= 0 {
		cfg.LeaderPoll = 250 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Sweeper{
		consul: consul, src: src, node: node, cfg: cfg,
		sem: make(chan struct{}, cfg.Concurrency), running: map[string]*dcPublisher{},
	}
}

// Run sweeps while this node is the leader, until ctx ends. A follower
// never sweeps; a new leader takes over within one poll.
func (s *Sweeper) Run(ctx context.Context) {
	poll := time.NewTicker(s.cfg.LeaderPoll)
	defer poll.Stop()
	defer s.stopAll()
	var nextList time.Time
	for {
		leading := s.node.IsLeader() && s.node.CaughtUp()
		switch {
		case !leading:
			if s.stopAll() {
				s.cfg.Logger.Info("cross-datacenter sweep stopped: not the leader")
			}
			nextList = time.Time{}
		case time.Now().After(nextList):
			s.refresh(ctx)
			nextList = time.Now().Add(s.cfg.Interval)
		}
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		}
	}
}

// refresh lists the datacenters and starts or stops their publishers.
func (s *Sweeper) refresh(ctx context.Context) {
	dcs, err := s.consul.Datacenters()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listAt = time.Now()
	if err != nil {
		s.listErr = err.Error()
		s.cfg.Logger.Warn("cross-datacenter sweep: cannot list datacenters; keeping the known ones", "err", err)
		return
	}
	s.listErr = ""
	want := map[string]bool{}
	for _, dc := range dcs {
		want[dc] = true
		if _, ok := s.running[dc]; ok {
			continue
		}
		store := &limited{Store: s.consul.ForDatacenter(dc), sem: s.sem}
		p := publish.New(store, s.src, publish.Config{
			Layout: s.cfg.Layout, Ready: s.node.CaughtUp, SweepInterval: s.cfg.Interval,
			RetryMax: s.cfg.RetryMax, Observe: s.cfg.Observe, Logger: s.cfg.Logger,
		})
		pctx, cancel := context.WithCancel(ctx)
		d := &dcPublisher{pub: p, cancel: cancel, done: make(chan struct{})}
		go func() { defer close(d.done); p.Run(pctx) }()
		s.running[dc] = d
		s.cfg.Logger.Info("cross-datacenter sweep: writing datacenter", "datacenter", dc)
	}
	for dc, d := range s.running {
		if !want[dc] {
			d.cancel()
			<-d.done
			delete(s.running, dc)
			s.cfg.Logger.Info("cross-datacenter sweep: datacenter gone", "datacenter", dc)
		}
	}
}

// stopAll stops every publisher; it reports whether any was running.
func (s *Sweeper) stopAll() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	had := len(s.running) > 0
	for dc, d := range s.running {
		d.cancel()
		<-d.done
		delete(s.running, dc)
	}
	return had
}

// Status is the sweep's part of /v1/status.
type Status struct {
	Leading       bool             `json:"leading"`
	ListedAt      time.Time        `json:"listed_at,omitzero"`
	ListError     string           `json:"list_error,omitempty"`
	Datacenters   []publish.Status `json:"datacenters"`
	IntervalNanos time.Duration    `json:"interval_ns"`
}

// Status reports every datacenter's publisher, sorted by name.
func (s *Sweeper) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Leading: len(s.running) > 0, ListedAt: s.listAt, ListError: s.listErr, Datacenters: []publish.Status{}, IntervalNanos: s.cfg.Interval}
	for _, d := range s.running {
		st.Datacenters = append(st.Datacenters, d.pub.Status())
	}
	sort.Slice(st.Datacenters, func(i, j int) bool { return st.Datacenters[i].Store < st.Datacenters[j].Store })
	return st
}

// Publishers returns the running per-datacenter publishers.
func (s *Sweeper) Publishers() []*publish.Publisher {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*publish.Publisher
	for _, d := range s.running {
		out = append(out, d.pub)
	}
	return out
}

// limited bounds how many datacenters are written at the same moment.
type limited struct {
	*consulkv.Store
	sem chan struct{}
}

func (l *limited) Write(ctx context.Context, clusters []kvstore.Cluster) []kvstore.Outcome {
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return kvstore.Failures(clusters, ctx.Err())
	}
	defer func() { <-l.sem }()
	return l.Store.Write(ctx, clusters)
}
