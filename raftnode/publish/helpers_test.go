package publish_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/hashicorp/consul/api"

	"github.com/masterkv/masterkv/internal/command"
	"github.com/masterkv/masterkv/internal/consulkv"
	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/internal/testserver"
	"github.com/masterkv/masterkv/internal/zkkv"
	"github.com/masterkv/masterkv/raftnode/node"
	"github.com/masterkv/masterkv/raftnode/nodetest"
	"github.com/masterkv/masterkv/raftnode/publish"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// group is an in-process raft group whose node i publishes to its own
// Consul agent (its own datacenter, not WAN-joined, so only the nodes can
// make them agree) and to its own chroot of one ZooKeeper server.
type group struct {
	t      *testing.T
	raft   *nodetest.Cluster
	layout discovery.Layout
	zk     *testserver.ZooKeeper
	consul []*testserver.Consul
	stops  []func()
	pubs   [][]*publish.Publisher
}

func newGroup(t *testing.T, layout discovery.Layout, opts nodetest.Options) *group {
	t.Helper()
	return newGroupWith(t, layout, opts, nil)
}

// newGroupWith is newGroup; when servers are given (one per node, not yet
// started) their URLs become the nodes' HTTP addresses.
func newGroupWith(t *testing.T, layout discovery.Layout, opts nodetest.Options, servers []*httptest.Server) *group {
	t.Helper()
	g := &group{t: t, layout: layout, zk: testserver.StartZooKeeper(t)}
	for i := 0; i < 3; i++ {
		g.consul = append(g.consul, testserver.StartConsul(t, testserver.ConsulOptions{Datacenter: fmt.Sprintf("dc%d", i)}))
	}
	for _, srv := range servers {
		opts.HTTPAddrs = append(opts.HTTPAddrs, "http://"+srv.Listener.Addr().String())
	}
	g.raft = nodetest.New(t, 3, opts)
	g.stops = make([]func(), 3)
	g.pubs = make([][]*publish.Publisher, 3)
	for i := range g.raft.Nodes {
		g.startPublishers(i)
	}
	t.Cleanup(func() {
		for _, stop := range g.stops {
			if stop != nil {
				stop()
			}
		}
	})
	return g
}

func (g *group) chroot(i int) string { return fmt.Sprintf("/node%d", i) }

// startPublishers runs node i's ZooKeeper and Consul publishers, as
// raftnode's main does.
func (g *group) startPublishers(i int) {
	g.t.Helper()
	n := g.raft.Nodes[i]
	zs, err := zkkv.New(zkkv.Config{Servers: []string{g.zk.Addr()}, Chroot: g.chroot(i), OpTimeout: 2 * time.Second, Logger: quiet})
	if err != nil {
		g.t.Fatal(err)
	}
	cs, err := consulkv.New(consulkv.Config{Address: g.consul[i].Addr(), Provider: consulkv.ProviderTxn, Timeout: 2 * time.Second})
	if err != nil {
		g.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	g.pubs[i] = nil
	for _, s := range []publish.Store{zs, cs} {
		p := publish.New(s, n.FSM(), publish.Config{
			Layout: g.layout, Ready: n.CaughtUp, RetryMin: 50 * time.Millisecond, RetryMax: time.Second, Logger: quiet,
		})
		g.pubs[i] = append(g.pubs[i], p)
		wg.Add(1)
		go func() { defer wg.Done(); p.Run(ctx) }()
	}
	g.stops[i] = func() { cancel(); wg.Wait(); zs.Close() }
}

// restart stops node i and its publishers and starts them again on the
// node's kept raft stores.
func (g *group) restart(i int) {
	g.t.Helper()
	g.stops[i]()
	g.stops[i] = nil
	g.raft.Stop(i)
	g.raft.Restart(i)
	g.startPublishers(i)
}

var at time.Duration

// failover commits a failover on the leader and returns its epoch.
func (g *group) failover(cluster, host string) uint64 {
	g.t.Helper()
	at += time.Second
	c := command.Command{
		Type: command.Failover, ID: fmt.Sprintf("%s-%s-%d", cluster, host, at), At: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(at).UnixMilli(),
		Failover: &command.FailoverPayload{Entry: command.Entry{Cluster: cluster, Master: master.Master{Host: host, Port: 3306, IPv4: host}}},
	}
	// A leader change under load (fast test timeouts) refuses or loses the
	// proposal; retrying with the same id is safe.
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := g.raft.WaitLeader().Propose(context.Background(), c)
		if err == nil {
			return res.Index
		}
		if time.Now().After(deadline) || !(errors.Is(err, node.ErrNotLeader) || errors.Is(err, node.ErrOutcomeUnknown)) {
			g.t.Fatalf("failover %s -> %s: %v", cluster, host, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// want is the pairs a store must hold for cluster at epoch.
func (g *group) want(cluster, host string, epoch uint64) []discovery.KVPair {
	return g.layout.Pairs(cluster, master.Master{Host: host, Port: 3306, IPv4: host}, epoch)
}

func (g *group) consulClient(i int) *api.Client {
	c, err := api.NewClient(&api.Config{Address: g.consul[i].Addr()})
	if err != nil {
		g.t.Fatal(err)
	}
	return c
}

// consulHolds reports what node i's Consul holds that differs from want.
func (g *group) consulHolds(i int, want []discovery.KVPair) error {
	kv := g.consulClient(i).KV()
	for _, p := range want {
		got, _, err := kv.Get(p.Key, nil)
		if err != nil {
			return err
		}
		if got == nil || string(got.Value) != p.Value {
			return fmt.Errorf("consul dc%d %s = %v, want %q", i, p.Key, value(got), p.Value)
		}
	}
	return nil
}

func value(p *api.KVPair) any {
	if p == nil {
		return "<missing>"
	}
	return string(p.Value)
}

func (g *group) zkConn() *zk.Conn {
	g.t.Helper()
	c, _, err := zk.Connect([]string{g.zk.Addr()}, 5*time.Second, zk.WithLogInfo(false), zk.WithLogger(nopLogger{}))
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(c.Close)
	return c
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}

// zkHolds reports what node i's ZooKeeper chroot holds that differs.
func (g *group) zkHolds(c *zk.Conn, i int, want []discovery.KVPair) error {
	for _, p := range want {
		path := g.chroot(i) + discovery.ZKPath(p.Key)
		b, _, err := c.Get(path)
		if err != nil {
			return fmt.Errorf("zookeeper %s: %w", path, err)
		}
		if string(b) != p.Value {
			return fmt.Errorf("zookeeper %s = %q, want %q", path, b, p.Value)
		}
	}
	return nil
}

// eventually polls check until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not within %s: %v", what, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// everywhere waits until every listed node's Consul and ZooKeeper hold want.
func (g *group) everywhere(timeout time.Duration, want []discovery.KVPair, nodes ...int) {
	g.t.Helper()
	c := g.zkConn()
	if len(nodes) == 0 {
		nodes = []int{0, 1, 2}
	}
	eventually(g.t, timeout, "stores hold "+want[0].Value, func() error {
		var errs []string
		for _, i := range nodes {
			if err := g.consulHolds(i, want); err != nil {
				errs = append(errs, err.Error())
			}
			if err := g.zkHolds(c, i, want); err != nil {
				errs = append(errs, err.Error())
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("%s", strings.Join(errs, "; "))
		}
		return nil
	})
}

type apiPair struct{ key, value string }

func (p apiPair) pair() *api.KVPair { return &api.KVPair{Key: p.key, Value: []byte(p.value)} }
