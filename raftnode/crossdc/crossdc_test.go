package crossdc_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/masterkv/masterkv/internal/command"
	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/internal/testserver"
	"github.com/masterkv/masterkv/raftnode/crossdc"
	"github.com/masterkv/masterkv/raftnode/node"
	"github.com/masterkv/masterkv/raftnode/nodetest"
	"github.com/masterkv/masterkv/raftnode/publish"
)

var (
	quiet  = slog.New(slog.NewTextHandler(io.Discard, nil))
	layout = discovery.NewLayout("mysql/master", true)
)

// wan starts three single-server datacenters, WAN-joined, and waits until
// dc1 lists all three.
func wan(t *testing.T) []*testserver.Consul {
	t.Helper()
	dc1 := testserver.StartConsul(t, testserver.ConsulOptions{Datacenter: "dc1"})
	dcs := []*testserver.Consul{dc1}
	for _, name := range []string{"dc2", "dc3"} {
		dcs = append(dcs, testserver.StartConsul(t, testserver.ConsulOptions{Datacenter: name, JoinWAN: []*testserver.Consul{dc1}}))
	}
	c := client(t, dc1)
	eventually(t, 30*time.Second, "dc1 lists three datacenters", func() error {
		got, err := c.Catalog().Datacenters()
		if err != nil || len(got) != 3 {
			return fmt.Errorf("datacenters %v, %v", got, err)
		}
		return nil
	})
	return dcs
}

// clients holds one client per agent: a new client (and transport) per
// call in a polling loop leaves its connections open, and an agent refuses
// more than 200 from one address (429).
var clients sync.Map // *testserver.Consul -> *api.Client

func client(t *testing.T, c *testserver.Consul) *api.Client {
	t.Helper()
	if cl, ok := clients.Load(c); ok {
		return cl.(*api.Client)
	}
	cl, err := api.NewClient(&api.Config{Address: c.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	cl2, _ := clients.LoadOrStore(c, cl)
	return cl2.(*api.Client)
}

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
		time.Sleep(10 * time.Millisecond)
	}
}

// startSweeper runs a crossDC for n through dc1's agent.
func startSweeper(t *testing.T, dc1 *testserver.Consul, n crossdc.Leader, src interface {
	crossdc.Leader
}, interval time.Duration) *crossdc.Distributor {
	t.Helper()
	return runSweeper(t, dc1.Addr(), n.(*node.Node), interval, nil)
}

// runSweeper runs a crossDC for nd through the agent at addr (an agent or
// a kvTap in front of one), with local as Config.Local.
func runSweeper(t *testing.T, addr string, nd *node.Node, interval time.Duration, local *publish.Publisher) *crossdc.Distributor {
	t.Helper()
	s := crossdc.New(newStore(t, addr), nd.FSM(), nd, crossdc.Config{
		Layout: layout, Interval: interval, LeaderPoll: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond, Logger: quiet,
		Local: local,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

var clock time.Duration

func failover(t *testing.T, c *nodetest.Cluster, cluster, host string) uint64 {
	t.Helper()
	clock += time.Second
	res, err := c.WaitLeader().Propose(context.Background(), command.Command{
		Type: command.Failover, At: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(clock).UnixMilli(),
		Failover: &command.FailoverPayload{Entry: command.Entry{Cluster: cluster, Master: master.Master{Host: host, Port: 3306, IPv4: host}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return res.Index
}

// holds checks that consul c holds cluster's pairs for host at epoch.
func holds(t *testing.T, c *testserver.Consul, cluster, host string, epoch uint64) error {
	kv := client(t, c).KV()
	for _, p := range layout.Pairs(cluster, master.Master{Host: host, Port: 3306, IPv4: host}, epoch) {
		got, _, err := kv.Get(p.Key, nil)
		if err != nil {
			return err
		}
		if got == nil || string(got.Value) != p.Value {
			return fmt.Errorf("%s: %s missing or not %q", c.Datacenter, p.Key, p.Value)
		}
	}
	return nil
}

func allHold(t *testing.T, dcs []*testserver.Consul, cluster, host string, epoch uint64) func() error {
	return func() error {
		for _, c := range dcs {
			if err := holds(t, c, cluster, host, epoch); err != nil {
				return err
			}
		}
		return nil
	}
}

// TestFailoverReachesEveryDatacenterAtOnce: with a one-minute interval, a
// committed failover is in all three datacenters within a second.
func TestFailoverReachesEveryDatacenterAtOnce(t *testing.T) {
	dcs := wan(t)
	g := nodetest.New(t, 1, nodetest.Options{})
	startSweeper(t, dcs[0], g.Nodes[0], g.Nodes[0], time.Minute)
	e := failover(t, g, "c1", "10.0.0.1")
	eventually(t, 10*time.Second, "first distribution", allHold(t, dcs, "c1", "10.0.0.1", e))
	for i := 2; i <= 4; i++ {
		host := fmt.Sprintf("10.0.0.%d", i)
		start := time.Now()
		e = failover(t, g, "c1", host)
		eventually(t, time.Second, "failover in every datacenter", allHold(t, dcs, "c1", host, e))
		t.Logf("failover %d visible in 3 datacenters after %s", i, time.Since(start))
	}
}

// TestDeletedKeysComeBack: keys deleted by hand in one datacenter are back
// after the next sweep (orchestrator's never-expiring cache, #1350, never
// brings them back).
func TestDeletedKeysComeBack(t *testing.T) {
	dcs := wan(t)
	g := nodetest.New(t, 1, nodetest.Options{})
	s := startSweeper(t, dcs[0], g.Nodes[0], g.Nodes[0], time.Second)
	e := failover(t, g, "c1", "10.0.0.1")
	eventually(t, 10*time.Second, "first distribution", allHold(t, dcs, "c1", "10.0.0.1", e))
	if _, err := client(t, dcs[1]).KV().DeleteTree("mysql/master/", nil); err != nil {
		t.Fatal(err)
	}
	if err := holds(t, dcs[1], "c1", "10.0.0.1", e); err == nil {
		t.Fatal("delete did not take")
	}
	eventually(t, 5*time.Second, "keys back in dc2", allHold(t, dcs, "c1", "10.0.0.1", e))
	st := s.Status()
	if !st.Leading || len(st.Datacenters) != 3 {
		t.Fatalf("status = %+v, want leading with three datacenters", st)
	}
	for _, d := range st.Datacenters {
		if d.LastSweep == nil || d.LastSweep.KeysRead == 0 {
			t.Errorf("%s: no sweep report: %+v", d.Store, d.LastSweep)
		}
	}
}

// TestDownDatacenterCatchesUp: dc3 is down during failovers; dc1 and dc2
// get each one on time, and dc3 catches up once it is back.
func TestDownDatacenterCatchesUp(t *testing.T) {
	dcs := wan(t)
	g := nodetest.New(t, 1, nodetest.Options{})
	s := startSweeper(t, dcs[0], g.Nodes[0], g.Nodes[0], 2*time.Second)
	e := failover(t, g, "c1", "10.0.0.1")
	eventually(t, 10*time.Second, "first distribution", allHold(t, dcs, "c1", "10.0.0.1", e))
	dcs[2].Stop()
	var host string
	for i := 2; i <= 6; i++ {
		host = fmt.Sprintf("10.0.0.%d", i)
		e = failover(t, g, "c1", host)
		eventually(t, time.Second, "failover in dc1 and dc2 while dc3 is down", allHold(t, dcs[:2], "c1", host, e))
	}
	var dc3 *struct{ failed uint64 }
	for _, d := range s.Status().Datacenters {
		if d.Store == "consul:dc3" {
			dc3 = &struct{ failed uint64 }{d.Failed}
			if d.LastError == "" {
				t.Errorf("dc3 status has no last error while down: %+v", d)
			}
		}
	}
	if dc3 == nil || dc3.failed == 0 {
		t.Errorf("dc3 status shows no failures while down")
	}
	dcs[2].Start()
	eventually(t, 20*time.Second, "dc3 caught up", allHold(t, dcs, "c1", host, e))
}

// TestOnlyTheLeaderSweeps: in a 3-node group only the leader writes other
// datacenters; when it stops, the new leader takes over within an interval.
func TestOnlyTheLeaderSweeps(t *testing.T) {
	dcs := wan(t)
	g := nodetest.New(t, 3, nodetest.Options{})
	sweepers := make([]*crossdc.Distributor, 3)
	for i, n := range g.Nodes {
		sweepers[i] = startSweeper(t, dcs[0], n, n, time.Second)
	}
	e := failover(t, g, "c1", "10.0.0.1")
	eventually(t, 10*time.Second, "first distribution", allHold(t, dcs, "c1", "10.0.0.1", e))
	leader := g.Index(g.WaitLeader())
	for i, s := range sweepers {
		if got := s.Status().Leading; got != (i == leader) {
			t.Errorf("node%d sweeping = %v, leader is node%d", i, got, leader)
		}
	}
	g.Stop(leader)
	next := g.Index(g.WaitLeader())
	eventually(t, 3*time.Second, "new leader sweeping", func() error {
		if !sweepers[next].Status().Leading {
			return fmt.Errorf("node%d not sweeping", next)
		}
		return nil
	})
	e = failover(t, g, "c1", "10.0.0.2")
	eventually(t, 5*time.Second, "failover through the new leader's sweep", allHold(t, dcs, "c1", "10.0.0.2", e))
}

// TestSteadyStateCostsOnlyReads: 10,000 clusters in 3 datacenters, nothing
// changed: a sweep reads every key and writes none. The crossDC talks to
// Consul through a kvTap: between a steady-state pass in every datacenter
// and the next, no write (a transaction with an operation other than get
// or get-tree, a PUT or DELETE of /v1/kv) reaches any datacenter, and each
// datacenter was read with a recursive listing of the prefix.
func TestSteadyStateCostsOnlyReads(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 clusters; run without -short")
	}
	dcs := wan(t)
	g := nodetest.New(t, 1, nodetest.Options{})
	const clusters = 10000
	for start := 0; start < clusters; start += 1000 {
		var entries []command.Entry
		for i := start; i < start+1000; i++ {
			entries = append(entries, command.Entry{Cluster: fmt.Sprintf("c%05d", i), Master: master.Master{Host: fmt.Sprintf("10.%d.%d.1", i/250, i%250), Port: 3306}})
		}
		if _, err := g.WaitLeader().Propose(context.Background(), command.Command{Type: command.Populate, At: 1, Populate: &command.PopulatePayload{Masters: entries}}); err != nil {
			t.Fatal(err)
		}
	}
	tap := newKVTap(t, dcs[0].Addr())
	s := runSweeper(t, tap.addr, g.Nodes[0], 3*time.Second, nil)
	// steady waits for a pass that found every key in place in every
	// datacenter and started at or after since.
	steady := func(what string, since time.Time) {
		t.Helper()
		eventually(t, 120*time.Second, what, func() error {
			st := s.Status()
			if len(st.Datacenters) != 3 {
				return fmt.Errorf("%d datacenters", len(st.Datacenters))
			}
			for _, d := range st.Datacenters {
				if d.LastSweep == nil || d.LastSweep.At.Before(since) || d.LastSweep.KeysUnchanged != clusters*6 {
					return fmt.Errorf("%s: last sweep %+v", d.Store, d.LastSweep)
				}
			}
			return nil
		})
	}
	// The first pass writes everything; wait for a later pass.
	steady("a steady-state sweep in every datacenter", time.Time{})
	// Count what reaches Consul from then until every datacenter has run a
	// whole pass more, one that started after the count began.
	before := tap.snapshot()
	since := time.Now()
	steady("another steady-state sweep in every datacenter", since)
	wire := tap.since(before)
	for _, dc := range dcNames(wire) {
		c := wire[dc]
		t.Logf("steady state, ?dc=%q: %v", dc, c)
		if c.writes() != 0 {
			t.Errorf("steady state: %d write transactions and %d KV PUT/DELETE into ?dc=%q, want 0", c.txnWrites, c.kvWrites, dc)
		}
	}
	for _, dc := range []string{"dc1", "dc2", "dc3"} {
		if wire[dc].lists < 1 {
			t.Errorf("steady state: %s read with %d listings of the prefix in a pass, want at least 1: %v", dc, wire[dc].lists, wire[dc])
		}
	}
	var names []string
	for _, d := range s.Status().Datacenters {
		r := d.LastSweep
		names = append(names, d.Store)
		if r.KeysWritten != 0 || r.KeysRead != clusters*6 || r.KeysFailed != 0 || r.Clusters != clusters {
			t.Errorf("%s steady-state sweep = %+v, want %d keys read and 0 written", d.Store, r, clusters*6)
		}
		t.Logf("%s: steady-state sweep of %d clusters took %s", d.Store, r.Clusters, r.Duration)
	}
	if !slices.Equal(names, []string{"consul:dc1", "consul:dc2", "consul:dc3"}) {
		t.Errorf("datacenters %v", names)
	}
}
