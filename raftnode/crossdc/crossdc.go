// Package crossdc is the leader's cross-datacenter distribution: with
// MASTERKV_CONSUL_CROSS_DATA_CENTER_DISTRIBUTION the leader lists the
// datacenters its Consul knows and keeps the current master of every
// cluster written into each of them (?dc=).
//
// Each datacenter gets its own publish.Publisher over the consul store for
// that datacenter, so a committed change goes to every datacenter at once
// (not at the next tick), a change arriving during a pass is queued, a slow
// or unreachable datacenter delays no other, and every interval each
// publisher reads every cluster for real and writes what differs.
package crossdc

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

// Config tunes the distributor.
type Config struct {
	Layout discovery.Layout
	// Interval between full passes and datacenter listings (default 1m).
	Interval time.Duration
	// Concurrency bounds the datacenters written at the same moment.
	Concurrency int
	// LeaderPoll is how often leadership is checked (default 250ms).
	LeaderPoll time.Duration
	RetryMax   time.Duration
	// DriftRepair rewrites hand edits in the datacenters too (see
	// publish.Config.DriftRepair); distribution is written either way.
	DriftRepair bool
	Observe     func(store string, seconds float64, outs []kvstore.Outcome)
	Logger      *slog.Logger
	// Local is this node's own publisher into its Consul agent's
	// datacenter, if any. The distributor then leaves that datacenter to it and
	// only asks it for a pass every interval: one writer per datacenter
	// instead of two racing ones. Without it (or when the agent's
	// datacenter cannot be learnt) the distributor writes every datacenter.
	Local *publish.Publisher
}

// Distributor runs the per-datacenter publishers while this node leads.
type Distributor struct {
	consul *consulkv.Store
	src    publish.Source
	node   Leader
	cfg    Config
	sem    chan struct{}

	mu      sync.Mutex
	running map[string]*dcPublisher
	listErr string
	listAt  time.Time
	localDC string // the datacenter cfg.Local writes, once known
	leading bool

	localWarned bool // owned by the Run goroutine
}

type dcPublisher struct {
	pub    *publish.Publisher
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a crossDC writing through consul's agent.
func New(consul *consulkv.Store, src publish.Source, node Leader, cfg Config) *Distributor {
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
	return &Distributor{
		consul: consul, src: src, node: node, cfg: cfg,
		sem: make(chan struct{}, cfg.Concurrency), running: map[string]*dcPublisher{},
	}
}

// Run sweeps while this node is the leader, until ctx ends. A follower
// never sweeps; a new leader takes over within one poll.
func (s *Distributor) Run(ctx context.Context) {
	poll := time.NewTicker(s.cfg.LeaderPoll)
	defer poll.Stop()
	defer s.stopAll()
	var nextList time.Time
	for {
		leading := s.node.IsLeader() && s.node.CaughtUp()
		switch {
		case !leading:
			if s.stopAll() {
				s.cfg.Logger.Info("cross-datacenter distribution stopped: not the leader")
			}
			nextList = time.Time{}
		case time.Now().After(nextList):
			if s.refresh(ctx) {
				s.cfg.Local.Sweep()
			}
			nextList = time.Now().Add(s.cfg.Interval)
		}
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		}
	}
}

// refresh lists the datacenters and starts or stops their publishers. It
// reports whether the agent's own datacenter is left to cfg.Local, which
// then needs asking for the pass.
func (s *Distributor) refresh(ctx context.Context) (localPass bool) {
	dcs, err := s.consul.Datacenters()
	local := s.learnLocal()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leading = true
	s.listAt = time.Now()
	if err != nil {
		s.listErr = err.Error()
		s.cfg.Logger.Warn("cross-datacenter distribution: cannot list datacenters; keeping the known ones", "err", err)
		return local != ""
	}
	s.listErr = ""
	want := map[string]bool{}
	for _, dc := range dcs {
		if dc == local {
			continue // cfg.Local writes it
		}
		want[dc] = true
		if _, ok := s.running[dc]; ok {
			continue
		}
		store := &limited{Store: s.consul.ForDatacenter(dc), sem: s.sem}
		p := publish.New(store, s.src, publish.Config{
			Layout: s.cfg.Layout, Ready: s.node.CaughtUp, SweepInterval: s.cfg.Interval,
			RetryMax: s.cfg.RetryMax, DriftRepair: s.cfg.DriftRepair, Observe: s.cfg.Observe, Logger: s.cfg.Logger,
		})
		pctx, cancel := context.WithCancel(ctx)
		d := &dcPublisher{pub: p, cancel: cancel, done: make(chan struct{})}
		go func() { defer close(d.done); p.Run(pctx) }()
		s.running[dc] = d
		s.cfg.Logger.Info("cross-datacenter distribution: writing datacenter", "datacenter", dc)
	}
	for dc, d := range s.running {
		if !want[dc] {
			d.cancel()
			<-d.done
			delete(s.running, dc)
			s.cfg.Logger.Info("cross-datacenter distribution: datacenter gone", "datacenter", dc)
		}
	}
	return local != ""
}

// learnLocal returns the datacenter cfg.Local writes, asking the agent
// until it answers once; "" when there is no Local or it is not known yet.
func (s *Distributor) learnLocal() string {
	if s.cfg.Local == nil {
		return ""
	}
	s.mu.Lock()
	dc := s.localDC
	s.mu.Unlock()
	if dc != "" {
		return dc
	}
	dc, err := s.consul.Datacenter()
	if err != nil {
		if !s.localWarned { // once: it is asked again every interval
			s.localWarned = true
			s.cfg.Logger.Warn("cross-datacenter distribution: cannot learn the agent's datacenter; writing it too, beside this node's own publisher", "err", err)
		}
		return ""
	}
	s.mu.Lock()
	s.localDC = dc
	s.mu.Unlock()
	s.cfg.Logger.Info("cross-datacenter distribution: the agent's datacenter is left to this node's own publisher", "datacenter", dc)
	return dc
}

// stopAll stops every publisher; it reports whether any was running.
func (s *Distributor) stopAll() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	had := s.leading
	s.leading = false
	for dc, d := range s.running {
		d.cancel()
		<-d.done
		delete(s.running, dc)
	}
	return had
}

// Status is the distributor's part of /v1/status.
type Status struct {
	Leading       bool               `json:"leading"`
	ListedAt      time.Time          `json:"listed_at,omitzero"`
	ListError     string             `json:"list_error,omitempty"`
	Datacenters   []DatacenterStatus `json:"datacenters"`
	IntervalNanos time.Duration      `json:"interval_ns"`
}

// DatacenterStatus is one datacenter's publisher as the distributor sees it.
type DatacenterStatus struct {
	Datacenter string `json:"datacenter"`
	// Local marks the agent's own datacenter, written by this node's own
	// publisher (also listed under "stores") and swept through it.
	Local bool `json:"local,omitempty"`
	publish.Status
}

// Status reports every datacenter's publisher while this node leads,
// sorted by datacenter.
func (s *Distributor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Leading: s.leading, ListedAt: s.listAt, ListError: s.listErr, Datacenters: []DatacenterStatus{}, IntervalNanos: s.cfg.Interval}
	for dc, d := range s.running {
		st.Datacenters = append(st.Datacenters, DatacenterStatus{Datacenter: dc, Status: d.pub.Status()})
	}
	if s.leading && s.localDC != "" {
		st.Datacenters = append(st.Datacenters, DatacenterStatus{Datacenter: s.localDC, Local: true, Status: s.cfg.Local.Status()})
	}
	sort.Slice(st.Datacenters, func(i, j int) bool { return st.Datacenters[i].Datacenter < st.Datacenters[j].Datacenter })
	return st
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
