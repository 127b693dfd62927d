// Package nodetest starts in-process raft groups on raft's in-memory
// transport and stores, for tests of the node and the HTTP API.
package nodetest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/masterkv/masterkv/raftnode/fsm"
	"github.com/masterkv/masterkv/raftnode/node"
)

// Cluster is a group of in-process nodes.
type Cluster struct {
	t      testing.TB
	Nodes  []*node.Node
	Trans  []*raft.InmemTransport
	Snaps  []*raft.InmemSnapshotStore
	peers  []node.Peer
	logs   []*raft.InmemStore
	config Options
}

// Options tune a test cluster.
type Options struct {
	// HTTPAddrs, when set, gives each node's HTTP address for forwarding.
	HTTPAddrs []string
	// SnapshotDelay as in node.Config (0: no snapshot after failover).
	SnapshotDelay time.Duration
	// Tune adjusts each node's raft config after the fast test defaults.
	Tune func(*raft.Config)
	// Logger receives all nodes' logs; nil discards them.
	Logger *slog.Logger
}

// FastTimeouts makes elections and heartbeats quick for tests.
func FastTimeouts(c *raft.Config) {
	c.HeartbeatTimeout = 100 * time.Millisecond
	c.ElectionTimeout = 100 * time.Millisecond
	c.LeaderLeaseTimeout = 50 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
}

// New starts n nodes (ids node0..), bootstrapped by node0, fully connected,
// and waits for a leader. They are closed when the test ends.
func New(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &Cluster{t: t, config: opts}
	for i := 0; i < n; i++ {
		addr, tr := raft.NewInmemTransport(raft.ServerAddress(fmt.Sprintf("node%d", i)))
		p := node.Peer{ID: fmt.Sprintf("node%d", i), RaftAddr: string(addr)}
		if i < len(opts.HTTPAddrs) {
			p.HTTPAddr = opts.HTTPAddrs[i]
		}
		c.peers = append(c.peers, p)
		c.Trans = append(c.Trans, tr)
		c.Snaps = append(c.Snaps, raft.NewInmemSnapshotStore())
		c.logs = append(c.logs, raft.NewInmemStore())
	}
	for i := range c.Trans {
		for j := range c.Trans {
			if i != j {
				c.Trans[i].Connect(c.Trans[j].LocalAddr(), c.Trans[j])
			}
		}
	}
	for i := 0; i < n; i++ {
		c.Nodes = append(c.Nodes, c.start(i, i == 0))
	}
	c.WaitLeader()
	return c
}

func (c *Cluster) start(i int, bootstrap bool) *node.Node {
	c.t.Helper()
	tune := func(rc *raft.Config) {
		FastTimeouts(rc)
		if c.config.Tune != nil {
			c.config.Tune(rc)
		}
	}
	nd, err := node.New(node.Config{
		ID: c.peers[i].ID, Peers: c.peers, Bootstrap: bootstrap,
		SnapshotDelay: c.config.SnapshotDelay, ApplyTimeout: 5 * time.Second,
		Logger: c.config.Logger,
	}, node.Deps{Transport: c.Trans[i], Logs: c.logs[i], Stable: c.logs[i], Snaps: c.Snaps[i], Tune: tune})
	if err != nil {
		c.t.Fatalf("start node%d: %v", i, err)
	}
	c.t.Cleanup(func() { _ = nd.Close() })
	return nd
}

// WaitLeader waits up to 10 s for a leader and returns it.
func (c *Cluster) WaitLeader() *node.Node {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		for _, n := range c.Nodes {
			if n != nil && n.IsLeader() {
				return n
			}
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("no leader within 10s")
			return nil
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Followers returns the nodes that are not the leader.
func (c *Cluster) Followers() []*node.Node {
	var out []*node.Node
	for _, n := range c.Nodes {
		if n != nil && !n.IsLeader() {
			out = append(out, n)
		}
	}
	return out
}

// Index returns the position of n in Nodes.
func (c *Cluster) Index(n *node.Node) int {
	for i, m := range c.Nodes {
		if m == n {
			return i
		}
	}
	c.t.Fatalf("node %s not in cluster", n.ID())
	return -1
}

// Isolate cuts node i off from every other node, both ways.
func (c *Cluster) Isolate(i int) {
	for j := range c.Trans {
		if j != i {
			c.Trans[i].Disconnect(c.Trans[j].LocalAddr())
			c.Trans[j].Disconnect(c.Trans[i].LocalAddr())
		}
	}
}

// Rejoin reconnects node i to every other node.
func (c *Cluster) Rejoin(i int) {
	for j := range c.Trans {
		if j != i {
			c.Trans[i].Connect(c.Trans[j].LocalAddr(), c.Trans[j])
			c.Trans[j].Connect(c.Trans[i].LocalAddr(), c.Trans[i])
		}
	}
}

// Stop shuts node i down and keeps its stores, so Restart can bring it back
// with its log, stable store and snapshots.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	if err := c.Nodes[i].Close(); err != nil {
		c.t.Fatalf("stop node%d: %v", i, err)
	}
	c.Nodes[i] = nil
	c.Isolate(i)
}

// Restart starts node i again on its kept stores and a fresh transport.
func (c *Cluster) Restart(i int) *node.Node {
	c.t.Helper()
	_, tr := raft.NewInmemTransport(raft.ServerAddress(c.peers[i].RaftAddr))
	c.Trans[i] = tr
	c.Rejoin(i)
	c.Nodes[i] = c.start(i, false)
	return c.Nodes[i]
}

// RestartIsolated starts node i again on its kept stores with a fresh
// transport that is connected to no one, so a test can look at what the
// node recovered on its own before Rejoin lets it catch up.
func (c *Cluster) RestartIsolated(i int) *node.Node {
	c.t.Helper()
	_, tr := raft.NewInmemTransport(raft.ServerAddress(c.peers[i].RaftAddr))
	c.Trans[i] = tr
	c.Nodes[i] = c.start(i, false)
	return c.Nodes[i]
}

// FirstIndex returns the first index still in node i's raft log (0 when the
// log is empty). After a snapshot it shows how far the log was compacted.
func (c *Cluster) FirstIndex(i int) uint64 {
	c.t.Helper()
	first, err := c.logs[i].FirstIndex()
	if err != nil {
		c.t.Fatalf("node%d first log index: %v", i, err)
	}
	return first
}

// WaitRecords waits up to 15 s until the store of every node at the given
// positions (every running node when none is given) holds exactly want,
// epochs included. It looks at the store itself, so it
// cannot return before the FSM has applied the entries.
func (c *Cluster) WaitRecords(want []fsm.Record, nodes ...int) {
	c.t.Helper()
	if len(nodes) == 0 {
		for i, n := range c.Nodes {
			if n != nil {
				nodes = append(nodes, i)
			}
		}
	}
	match := func(i int) bool {
		n := c.Nodes[i]
		return n != nil && reflect.DeepEqual(n.FSM().Records(), want)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		done := true
		for _, i := range nodes {
			if !match(i) {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, i := range nodes {
		if match(i) {
			continue
		}
		if n := c.Nodes[i]; n == nil {
			c.t.Errorf("node%d is not running", i)
		} else {
			c.t.Errorf("%s (applied index %d) holds\n %+v\nwant\n %+v", n.ID(), n.Status().AppliedIndex, n.FSM().Records(), want)
		}
	}
	c.t.Fatalf("nodes %v do not hold the wanted records within 15s", nodes)
}
