package publish_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/raft"

	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/raftnode/nodetest"
)

func TestFailoverLandsInEveryNodesStores(t *testing.T) {
	g := newGroup(t, discovery.NewLayout("mysql/master", true), nodetest.Options{})
	e := g.failover("c1", "10.0.0.1")
	g.everywhere(10*time.Second, g.want("c1", "10.0.0.1", e))
	e = g.failover("c1", "10.0.0.2")
	g.everywhere(10*time.Second, g.want("c1", "10.0.0.2", e))
	for i, ps := range g.pubs {
		for _, p := range ps {
			if st := p.Status(); st.AppliedEpoch != e || st.Backlog != 0 || st.Failed != 0 {
				t.Errorf("node%d %s status = %+v, want applied epoch %d, no backlog, no failures", i, p.Name(), st, e)
			}
		}
	}
}

func TestPartitionedNodeConverges(t *testing.T) {
	for _, viaSnapshot := range []bool{false, true} {
		t.Run(fmt.Sprintf("snapshot=%v", viaSnapshot), func(t *testing.T) {
			opts := nodetest.Options{}
			if viaSnapshot {
				opts.Tune = func(c *raft.Config) { c.TrailingLogs = 2; c.SnapshotThreshold = 4 }
			}
			g := newGroup(t, discovery.NewLayout("mysql/master", true), opts)
			e := g.failover("c1", "10.0.0.1")
			g.everywhere(10*time.Second, g.want("c1", "10.0.0.1", e))

			k := g.raft.Index(g.raft.Followers()[0])
			restoresBefore := g.raft.Nodes[k].Status().SnapshotRestores
			g.raft.Isolate(k)
			var others []int
			for i := range g.raft.Nodes {
				if i != k {
					others = append(others, i)
				}
			}
			var last uint64
			for j := 2; j <= 9; j++ {
				last = g.failover("c1", fmt.Sprintf("10.0.0.%d", j))
			}
			e2 := g.failover("c2", "10.0.1.1")
			g.everywhere(10*time.Second, g.want("c1", "10.0.0.9", last), others...)
			if err := g.consulHolds(k, g.want("c1", "10.0.0.9", last)); err == nil {
				t.Fatalf("isolated node%d's Consul already holds the new master", k)
			}
			if viaSnapshot {
				for _, i := range others {
					if err := g.raft.Nodes[i].Snapshot(); err != nil {
						t.Fatalf("snapshot node%d: %v", i, err)
					}
				}
			}
			g.raft.Rejoin(k)
			g.everywhere(15*time.Second, g.want("c1", "10.0.0.9", last), k)
			g.everywhere(15*time.Second, g.want("c2", "10.0.1.1", e2), k)
			if got := g.raft.Nodes[k].Status().SnapshotRestores; viaSnapshot && got == restoresBefore {
				t.Errorf("node%d caught up without a snapshot install (restores %d)", k, got)
			} else if !viaSnapshot && got != restoresBefore {
				t.Errorf("node%d restored a snapshot (restores %d -> %d), want log replay", k, restoresBefore, got)
			}
		})
	}
}

// TestConsulOutage stops one node's Consul for 20 s while failovers go on:
// that node's ZooKeeper keeps being written on time, and its Consul
// converges once it is back.
func TestConsulOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("20 s outage; run without -short")
	}
	g := newGroup(t, discovery.NewLayout("mysql/master", true), nodetest.Options{})
	e := g.failover("c1", "10.0.0.1")
	g.everywhere(10*time.Second, g.want("c1", "10.0.0.1", e))
	g.consul[0].Stop()
	stopped := time.Now()
	zc := g.zkConn()
	var last uint64
	var host string
	for j := 2; time.Since(stopped) < 20*time.Second; j++ {
		host = fmt.Sprintf("10.0.%d.%d", j/250, j%250+1)
		last = g.failover("c1", host)
		want := g.want("c1", host, last)
		eventually(t, 2*time.Second, "node0's ZooKeeper during the Consul outage", func() error { return g.zkHolds(zc, 0, want) })
		time.Sleep(500 * time.Millisecond)
	}
	if st := statusOf(g, 0, "consul"); st.Failed == 0 || st.LastError == "" {
		t.Errorf("node0 consul status during the outage = %+v, want failures and a last error", st)
	}
	g.consul[0].Start()
	g.everywhere(15*time.Second, g.want("c1", host, last))
	if st := statusOf(g, 0, "consul"); st.Backlog != 0 || st.AppliedEpoch != last {
		t.Errorf("node0 consul status after the outage = %+v, want no backlog and epoch %d", st, last)
	}
}

func statusOf(g *group, i int, store string) (st struct {
	Failed       uint64
	LastError    string
	Backlog      int
	AppliedEpoch uint64
}) {
	for _, p := range g.pubs[i] {
		if p.Name() == store {
			s := p.Status()
			st.Failed, st.LastError, st.Backlog, st.AppliedEpoch = s.Failed, s.LastError, s.Backlog, s.AppliedEpoch
		}
	}
	return st
}

// TestNoStaleMasterAfterRestart: failover A->B, failback B->A, then restart
// every node in turn while watchers record every value node0..2's Consul
// and ZooKeeper hold for the main key. B must never reappear after the
// failback. Run with and without the epoch key: without it there is no
// store-side guard and only the caught-up gate protects.
func TestNoStaleMasterAfterRestart(t *testing.T) {
	for _, epochKey := range []bool{true, false} {
		t.Run(fmt.Sprintf("epoch_key=%v", epochKey), func(t *testing.T) {
			g := newGroup(t, discovery.NewLayout("mysql/master", epochKey), nodetest.Options{})
			const a, b = "10.0.0.1", "10.0.0.2"
			eA := g.failover("c1", a)
			g.everywhere(10*time.Second, g.want("c1", a, eA))
			eB := g.failover("c1", b)
			g.everywhere(10*time.Second, g.want("c1", b, eB))
			eA2 := g.failover("c1", a)
			g.everywhere(10*time.Second, g.want("c1", a, eA2))

			ctx, cancel := context.WithCancel(context.Background())
			var watchers []*recorder
			for i := range g.raft.Nodes {
				watchers = append(watchers, g.watchConsul(ctx, i, "mysql/master/c1"), g.watchZK(ctx, i, "mysql/master/c1"))
			}
			for _, w := range watchers {
				w.waitFirst(t)
			}
			for i := range g.raft.Nodes {
				g.restart(i)
				g.raft.WaitLeader()
				eventually(t, 10*time.Second, fmt.Sprintf("node%d caught up", i), func() error {
					if !g.raft.Nodes[i].CaughtUp() {
						return fmt.Errorf("not caught up")
					}
					for _, p := range g.pubs[i] {
						if p.Applied("c1") < eA2 {
							return fmt.Errorf("%s has not confirmed epoch %d", p.Name(), eA2)
						}
					}
					return nil
				})
			}
			// One more change proves the watchers were live to the end.
			eC := g.failover("c1", "10.0.0.3")
			g.everywhere(10*time.Second, g.want("c1", "10.0.0.3", eC))
			for _, w := range watchers {
				w.waitValue(t, "10.0.0.3:3306")
			}
			cancel()
			for _, w := range watchers {
				for _, v := range w.values() {
					if v == b+":3306" {
						t.Errorf("%s saw the demoted master %s again after the failback; values %v", w.name, v, w.values())
					}
				}
			}
		})
	}
}

// recorder keeps every value a watcher saw.
type recorder struct {
	name string
	mu   sync.Mutex
	seen []string
}

func (r *recorder) add(v string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.seen); n == 0 || r.seen[n-1] != v {
		r.seen = append(r.seen, v)
	}
}

func (r *recorder) values() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

func (r *recorder) waitFirst(t *testing.T) {
	t.Helper()
	eventually(t, 5*time.Second, r.name+" first value", func() error {
		if len(r.values()) == 0 {
			return fmt.Errorf("nothing yet")
		}
		return nil
	})
}

func (r *recorder) waitValue(t *testing.T, v string) {
	t.Helper()
	eventually(t, 10*time.Second, r.name+" sees "+v, func() error {
		vals := r.values()
		if len(vals) == 0 || vals[len(vals)-1] != v {
			return fmt.Errorf("values %v", vals)
		}
		return nil
	})
}

// watchConsul follows key in node i's Consul with blocking queries.
func (g *group) watchConsul(ctx context.Context, i int, key string) *recorder {
	r := &recorder{name: fmt.Sprintf("consul dc%d watcher", i)}
	kv := g.consulClient(i).KV()
	go func() {
		var index uint64
		for ctx.Err() == nil {
			p, meta, err := kv.Get(key, (&api.QueryOptions{WaitIndex: index, WaitTime: 2 * time.Second}).WithContext(ctx))
			if err != nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			if p == nil {
				r.add("<missing>")
			} else {
				r.add(string(p.Value))
			}
			index = meta.LastIndex
		}
	}()
	return r
}

// watchZK follows key in node i's ZooKeeper chroot with data watches.
func (g *group) watchZK(ctx context.Context, i int, key string) *recorder {
	r := &recorder{name: fmt.Sprintf("zookeeper node%d watcher", i)}
	c := g.zkConn()
	path := g.chroot(i) + discovery.ZKPath(key)
	go func() {
		for ctx.Err() == nil {
			b, _, ch, err := c.GetW(path)
			if err != nil {
				if strings.Contains(err.Error(), "node does not exist") {
					r.add("<missing>")
				}
				time.Sleep(20 * time.Millisecond)
				continue
			}
			r.add(string(b))
			select {
			case <-ch:
			case <-ctx.Done():
			}
		}
	}()
	return r
}
