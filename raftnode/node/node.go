// Package node runs one member of masterkv's raft group: it owns the raft
// instance, the internal master store (the FSM) and the rules for proposing
// commands, and tells callers where the leader is so writes can be forwarded.
package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/masterkv/masterkv/internal/command"
	"github.com/masterkv/masterkv/internal/logging"
	"github.com/masterkv/masterkv/raftnode/fsm"
)

// Errors of proposing. The HTTP layer maps each to a status in one place.
var (
	// ErrNotLeader: this node is not the leader; nothing was committed, so
	// the request can be forwarded.
	ErrNotLeader = errors.New("this node is not the raft leader")
	// ErrNoLeader: the group has no leader right now (election or lost quorum).
	ErrNoLeader = errors.New("the raft group has no leader")
	// ErrOutcomeUnknown: leadership was lost while the entry was in flight;
	// it may or may not commit. Retrying with the same id is safe.
	ErrOutcomeUnknown = errors.New("leadership lost while committing; the outcome is unknown, retry with the same id")
	// ErrShutdown: the node is stopping.
	ErrShutdown = errors.New("the node is shutting down")
)

// Peer is one member of the group as configured.
type Peer struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}

// Config is what a node needs beyond its storage and transport.
type Config struct {
	ID string
	// Peers is the first membership, used to bootstrap and to map raft
	// server IDs to HTTP addresses for forwarding.
	Peers []Peer
	// Bootstrap the group when this node has no state yet.
	Bootstrap bool
	// SnapshotDelay is how long after a failover commit the leader takes a
	// raft snapshot; 0 turns it off.
	SnapshotDelay time.Duration
	// ApplyTimeout bounds how long an entry may wait to be queued for
	// commit; the commit itself ends when it commits or leadership is lost.
	ApplyTimeout time.Duration
	// OnPropose, when set, is told every proposal's outcome (metrics).
	OnPropose func(t command.Type, res fsm.Result, err error)
	Logger    *slog.Logger
}

// Deps are the raft parts; Open builds durable ones, tests in-memory ones.
type Deps struct {
	Transport raft.Transport
	Logs      raft.LogStore
	Stable    raft.StableStore
	Snaps     raft.SnapshotStore
	// Tune adjusts the raft config before use; may be nil.
	Tune func(*raft.Config)
	// Closers are closed after raft shuts down (stores, transport).
	Closers []io.Closer
}

// Node is one running member.
type Node struct {
	cfg   Config
	raft  *raft.Raft
	fsm   *fsm.FSM
	snaps raft.SnapshotStore
	log   *slog.Logger
	peers map[string]Peer
	deps  Deps

	catchUp       catchUp
	gens          atomic.Pointer[Generations] // the epoch-generation guard, for status
	leaderChanges atomic.Uint64
	leaderSeen    broadcast

	snapMu      sync.Mutex
	snapPending bool
	closed      chan struct{}
	closeOnce   sync.Once
}

// New starts a node on the given parts.
func New(cfg Config, d Deps) (*Node, error) {
	if cfg.ID == "" {
		return nil, errors.New("node: empty id")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ApplyTimeout <= 0 {
		cfg.ApplyTimeout = 10 * time.Second
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = logging.HCLog(cfg.Logger.With("component", "raft"))
	if d.Tune != nil {
		d.Tune(rc)
	}
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("node: raft config: %w", err)
	}
	n := &Node{
		cfg: cfg, fsm: fsm.New(), snaps: d.Snaps, deps: d,
		log:    cfg.Logger.With("node", cfg.ID),
		peers:  map[string]Peer{},
		closed: make(chan struct{}),
	}
	for _, p := range cfg.Peers {
		n.peers[p.ID] = p
	}
	target, err := lastCommand(d.Logs, d.Snaps, 0)
	if err != nil {
		return nil, fmt.Errorf("node: read log: %w", err)
	}
	n.catchUp.target = target
	if cfg.Bootstrap {
		has, err := raft.HasExistingState(d.Logs, d.Stable, d.Snaps)
		if err != nil {
			return nil, fmt.Errorf("node: check existing state: %w", err)
		}
		if !has {
			if err := raft.BootstrapCluster(rc, d.Logs, d.Stable, d.Snaps, d.Transport, n.membership(d.Transport)); err != nil {
				return nil, fmt.Errorf("node: bootstrap: %w", err)
			}
			n.log.Info("bootstrapped raft group", "peers", len(cfg.Peers))
		}
	}
	r, err := raft.NewRaft(rc, n.fsm, d.Logs, d.Stable, d.Snaps, d.Transport)
	if err != nil {
		return nil, fmt.Errorf("node: start raft: %w", err)
	}
	n.raft = r
	n.watchLeader()
	return n, nil
}

// watchLeader counts leader changes seen by this node, for metrics, and
// wakes the callers of NextLeader.
func (n *Node) watchLeader() {
	ch := make(chan raft.Observation, 64)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	n.raft.RegisterObserver(obs)
	go func() {
		defer n.raft.DeregisterObserver(obs)
		for {
			select {
			case <-ch:
				n.leaderChanges.Add(1)
				n.leaderSeen.notify()
			case <-n.closed:
				return
			}
		}
	}()
}

// LeaderChanges counts the leader changes this node observed.
func (n *Node) LeaderChanges() uint64 { return n.leaderChanges.Load() }

func (n *Node) membership(t raft.Transport) raft.Configuration {
	if len(n.cfg.Peers) == 0 {
		return raft.Configuration{Servers: []raft.Server{{ID: raft.ServerID(n.cfg.ID), Address: t.LocalAddr()}}}
	}
	var c raft.Configuration
	for _, p := range n.cfg.Peers {
		c.Servers = append(c.Servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.RaftAddr)})
	}
	return c
}

// ID returns the node's raft server ID.
func (n *Node) ID() string { return n.cfg.ID }

// FSM returns the replicated state machine that holds every cluster's record, for reads.
func (n *Node) FSM() *fsm.FSM { return n.fsm }

// IsLeader reports whether this node is the leader now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Propose commits c and returns its result. A command whose ID the store
// already holds is answered from the store without a new entry. Application
// refusals (conflict, unknown cluster, reused id) come back both in the
// result and as the error.
func (n *Node) Propose(ctx context.Context, c command.Command) (res fsm.Result, err error) {
	if n.cfg.OnPropose != nil {
		defer func() { n.cfg.OnPropose(c.Type, res, err) }()
	}
	return n.propose(ctx, c)
}

func (n *Node) propose(ctx context.Context, c command.Command) (fsm.Result, error) {
	if res, ok, err := n.fsm.Lookup(c); err != nil {
		return fsm.Result{}, err
	} else if ok {
		return res, res.Error()
	}
	if !n.IsLeader() {
		return fsm.Result{}, ErrNotLeader
	}
	b, err := command.Encode(c)
	if err != nil {
		return fsm.Result{}, fmt.Errorf("encode command: %w", err)
	}
	timeout := n.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	f := n.raft.Apply(b, timeout)
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader):
			return fsm.Result{}, ErrNotLeader
		case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrEnqueueTimeout),
			errors.Is(err, raft.ErrLeadershipTransferInProgress):
			return fsm.Result{}, ErrOutcomeUnknown
		case errors.Is(err, raft.ErrRaftShutdown):
			return fsm.Result{}, ErrShutdown
		}
		return fsm.Result{}, fmt.Errorf("raft apply: %w", err)
	}
	res, ok := f.Response().(fsm.Result)
	if !ok {
		return fsm.Result{}, fmt.Errorf("raft apply: unexpected response %T", f.Response())
	}
	if res.Err == nil {
		n.nudgeFollowers(timeout)
		if res.Type == command.Failover {
			n.scheduleSnapshot()
		}
	}
	return res, res.Error()
}

// nudgeFollowers makes followers apply a fresh commit now. A follower
// learns the commit index only from the next AppendEntries, which on an idle
// group comes after raft's CommitTimeout (50 ms): every follower's stores
// would get a failover that much later. A barrier appends an entry at once,
// and its replication carries the new commit index. Waiting for it keeps the
// log settled when Propose returns (tests compare raft indexes), at the cost
// of one more round trip to a quorum.
func (n *Node) nudgeFollowers(timeout time.Duration) {
	if err := n.raft.Barrier(timeout).Error(); err != nil {
		n.log.Debug("barrier after commit failed", "err", err)
	}
}

// LeaderPeer returns the leader as configured in Peers, waiting until ctx
// ends for one to be elected.
func (n *Node) LeaderPeer(ctx context.Context) (Peer, error) {
	return n.NextLeader(ctx, "")
}

// NextLeader returns the leader once one is known whose id is not prev,
// waiting until ctx ends: a caller holding a request for leader prev learns
// of its successor as soon as this node does. prev "" takes any leader.
func (n *Node) NextLeader(ctx context.Context, prev string) (Peer, error) {
	// The observer wakes the wait at once; the ticker only covers an
	// observation raft dropped (its channel is not blocking).
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		seen := n.leaderSeen.wait()
		addr, id := n.raft.LeaderWithID()
		if id != "" && string(id) != prev {
			return n.peerOf(id, addr), nil
		}
		select {
		case <-ctx.Done():
			if prev != "" {
				return Peer{}, fmt.Errorf("no leader other than %s: %w", prev, ErrNoLeader)
			}
			return Peer{}, ErrNoLeader
		case <-n.closed:
			return Peer{}, ErrShutdown
		case <-seen:
		case <-tick.C:
		}
	}
}

// scheduleSnapshot makes the leader snapshot SnapshotDelay after a failover,
// once per burst of failovers. See DESIGN.md: masterkv does not depend on it
// for correctness; it keeps restarts short.
func (n *Node) scheduleSnapshot() {
	if n.cfg.SnapshotDelay <= 0 {
		return
	}
	n.snapMu.Lock()
	defer n.snapMu.Unlock()
	if n.snapPending {
		return
	}
	n.snapPending = true
	time.AfterFunc(n.cfg.SnapshotDelay, func() {
		n.snapMu.Lock()
		n.snapPending = false
		n.snapMu.Unlock()
		select {
		case <-n.closed:
			return
		default:
		}
		if !n.IsLeader() {
			return
		}
		if err := n.Snapshot(); err != nil {
			n.log.Warn("snapshot after failover failed", "err", err)
			return
		}
		n.log.Info("snapshot after failover taken", "applied_index", n.raft.AppliedIndex())
	})
}

// Snapshot takes a snapshot of the FSM now and compacts the log behind it.
// Nothing applied since the last snapshot is not an error.
func (n *Node) Snapshot() error {
	if err := n.raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return err
	}
	return nil
}

// Close stops raft and releases the stores.
func (n *Node) Close() error {
	var err error
	n.closeOnce.Do(func() {
		close(n.closed)
		err = n.raft.Shutdown().Error()
		for _, c := range n.deps.Closers {
			if cerr := c.Close(); cerr != nil && err == nil {
				err = cerr
			}
		}
	})
	return err
}
