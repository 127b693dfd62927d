package publish_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/raft"

	"github.com/masterkv/masterkv/internal/command"
	"github.com/masterkv/masterkv/internal/consulkv"
	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/internal/testserver"
	"github.com/masterkv/masterkv/internal/zkkv"
	"github.com/masterkv/masterkv/raftnode/httpapi"
	"github.com/masterkv/masterkv/raftnode/nodetest"
	"github.com/masterkv/masterkv/raftnode/publish"
)

// Benchmarks of the two paths that matter in production: one failover
// until every node's stores show it, and a submit of every cluster. Each
// measures its floor (the work no implementation can avoid) in the same
// run, on the same servers, and reports both with the ratio. See
// docs/BENCHMARKS.md for the commands and the figures.

// benchLayout is the layout of both benchmarks: orchestrator's prefix with
// the epoch key.
var benchLayout = discovery.NewLayout(discovery.DefaultPrefix, true)

// ---------------------------------------------------------------------------
// BenchmarkFailoverToVisible

// BenchmarkFailoverToVisible posts one failover per iteration to the leader
// of an in-process 3-node group (each node with its own real Consul agent
// and its own chroot on one real ZooKeeper server) and measures from the
// POST until the new master is readable in all six stores, seen by
// long-lived watchers (Consul blocking queries, ZooKeeper data watches).
//
// Floor, per iteration on the same group: one raft commit (leader.Propose
// of a failover command) plus one Consul transaction writing a cluster's
// six keys into the leader's agent. A second, informative floor replaces
// that transaction with the writes a failover needs in all six stores at
// once (a 6-key transaction into each agent and a 6-op multi into each
// chroot), which shows what this machine can do when every store is
// written at the same moment.
//
// Raft timing profiles: "raft=test" is nodetest's FastTimeouts
// (CommitTimeout 5 ms) as every other test here; "raft=default" is
// raft.DefaultConfig's timeouts (CommitTimeout 50 ms), which is what
// raftnode runs with. Run with -benchtime=200x for 200 samples per profile.
func BenchmarkFailoverToVisible(b *testing.B) {
	for _, prof := range []struct {
		name string
		tune func(*raft.Config)
	}{
		{"raft=test", nil},
		{"raft=default", defaultRaftTimeouts},
	} {
		b.Run(prof.name, func(b *testing.B) { benchFailover(b, prof.tune) })
	}
}

// defaultRaftTimeouts undoes nodetest.FastTimeouts: raftnode itself uses
// raft.DefaultConfig unchanged.
func defaultRaftTimeouts(c *raft.Config) {
	d := raft.DefaultConfig()
	c.HeartbeatTimeout, c.ElectionTimeout = d.HeartbeatTimeout, d.ElectionTimeout
	c.LeaderLeaseTimeout, c.CommitTimeout = d.LeaderLeaseTimeout, d.CommitTimeout
}

func benchFailover(b *testing.B, tune func(*raft.Config)) {
	g := newBenchGroup(b, tune)
	const cluster = "bench"
	w := g.watch(b, benchLayout.Pairs(cluster, master.Master{Host: "x", Port: 1}, 0)[0].Key)

	var vis, post, leaderVis, followerVis, consulVis, zkVis, floor, all, commit, txn []time.Duration
	iter := 0
	sample := func(record bool) {
		iter++
		host := fmt.Sprintf("10.0.%d.%d", (iter/250)%250, iter%250+1)
		leader := g.raft.Index(g.raft.WaitLeader())

		// The failover, end to end.
		want := host + ":3306"
		t0 := time.Now()
		rc := g.postFailover(b, leader, url.Values{"cluster": {cluster}, "host": {host}, "port": {"3306"}})
		tPost := time.Since(t0)
		seen := w.waitSeen(b, want, 10*time.Second)
		if rc.Master != want || rc.Stores["consul"] != "ok" || rc.Stores["zookeeper"] != "ok" {
			b.Fatalf("failover receipt = %+v, want master %s with consul and zookeeper ok", rc, want)
		}
		var lv, fv, cv, zv time.Duration
		for k, at := range seen {
			d := at.Sub(t0)
			if k/2 == leader {
				lv = max(lv, d)
			} else {
				fv = max(fv, d)
			}
			if k%2 == 0 {
				cv = max(cv, d)
			} else {
				zv = max(zv, d)
			}
		}
		g.settle(b, cluster, rc.Epoch)
		g.verify(b, rc.Pairs)

		// The floors, each part measured with nothing else running: the
		// stores' writes first, then the raft commit (which sets the
		// publishers off in the background).
		iter++
		m := master.Master{Host: fmt.Sprintf("10.1.%d.%d", (iter/250)%250, iter%250+1), Port: 3306}
		m.IPv4 = m.Host
		t1 := time.Now()
		g.floorAll(b, m, uint64(iter))
		t2 := time.Now()
		g.floorTxn(b, leader, m, uint64(iter))
		t3 := time.Now()
		epoch := g.propose(b, "floor", m)
		t4 := time.Now()
		g.settle(b, "floor", epoch)

		if record {
			vis = append(vis, max(lv, fv))
			post = append(post, tPost)
			leaderVis = append(leaderVis, lv)
			followerVis = append(followerVis, fv)
			consulVis = append(consulVis, cv)
			zkVis = append(zkVis, zv)
			commit = append(commit, t4.Sub(t3))
			txn = append(txn, t3.Sub(t2))
			floor = append(floor, t4.Sub(t2))
			all = append(all, t2.Sub(t1)+t4.Sub(t3))
		}
	}
	// Warm up: the first writes create keys and znodes, connections open.
	for range 10 {
		sample(false)
	}
	for b.Loop() {
		sample(true)
	}

	p50, p99 := pct(vis, 50), pct(vis, 99)
	f50, f99 := pct(floor, 50), pct(floor, 99)
	b.ReportMetric(float64(len(vis)), "samples")
	b.ReportMetric(ms(p50), "p50-ms")
	b.ReportMetric(ms(p99), "p99-ms")
	b.ReportMetric(ms(f50), "floor-p50-ms")
	b.ReportMetric(ms(f99), "floor-p99-ms")
	b.ReportMetric(ms(p50)/ms(f50), "p50-ratio")
	b.ReportMetric(ms(p99)/ms(f99), "p99-ratio")
	// Where the time goes.
	b.ReportMetric(ms(pct(post, 50)), "post-p50-ms")
	b.ReportMetric(ms(pct(leaderVis, 50)), "leader-vis-p50-ms")
	b.ReportMetric(ms(pct(followerVis, 50)), "follower-vis-p50-ms")
	b.ReportMetric(ms(pct(consulVis, 50)), "consul-vis-p50-ms")
	b.ReportMetric(ms(pct(zkVis, 50)), "zk-vis-p50-ms")
	b.ReportMetric(ms(pct(commit, 50)), "commit-p50-ms")
	b.ReportMetric(ms(pct(all, 50)), "all-stores-floor-p50-ms")
	b.ReportMetric(ms(pct(all, 99)), "all-stores-floor-p99-ms")
	b.ReportMetric(ms(pct(txn, 50)), "txn-p50-ms")
	b.Logf("visible p50 %.2f ms p99 %.2f ms (target %.2f / %.2f ms); floor p50 %.2f ms p99 %.2f ms",
		ms(p50), ms(p99), 2*ms(f50), 3*ms(f99), ms(f50), ms(f99))
}

// benchGroup is the group of helpers_test.go for benchmarks: three
// in-process nodes, each publishing to its own Consul agent and its own
// ZooKeeper chroot, each with an httpapi server.
type benchGroup struct {
	raft    *nodetest.Cluster
	zk      *testserver.ZooKeeper
	consul  []*testserver.Consul
	clients []*api.Client
	zkc     *zk.Conn
	pubs    [][]*publish.Publisher
	servers []*httptest.Server
	http    *http.Client
}

func newBenchGroup(b *testing.B, tune func(*raft.Config)) *benchGroup {
	b.Helper()
	g := &benchGroup{zk: testserver.StartZooKeeper(b), http: &http.Client{Timeout: 15 * time.Second}}
	for i := 0; i < 3; i++ {
		c := testserver.StartConsul(b, testserver.ConsulOptions{Datacenter: fmt.Sprintf("dc%d", i)})
		g.consul = append(g.consul, c)
		cl, err := api.NewClient(&api.Config{Address: c.Addr()})
		if err != nil {
			b.Fatal(err)
		}
		g.clients = append(g.clients, cl)
	}
	opts := nodetest.Options{Tune: tune}
	for range 3 {
		srv := httptest.NewUnstartedServer(nil)
		g.servers = append(g.servers, srv)
		opts.HTTPAddrs = append(opts.HTTPAddrs, "http://"+srv.Listener.Addr().String())
	}
	g.raft = nodetest.New(b, 3, opts)
	g.pubs = make([][]*publish.Publisher, len(g.raft.Nodes))
	for i, n := range g.raft.Nodes {
		zs, err := zkkv.New(zkkv.Config{Servers: []string{g.zk.Addr()}, Chroot: benchChroot(i), OpTimeout: 2 * time.Second, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		cs, err := consulkv.New(consulkv.Config{Address: g.consul[i].Addr(), Provider: consulkv.ProviderTxn, Timeout: 2 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var pubs []httpapi.Publisher
		for _, s := range []publish.Store{zs, cs} {
			p := publish.New(s, n.FSM(), publish.Config{
				Layout: benchLayout, Ready: n.CaughtUp, RetryMin: 50 * time.Millisecond, RetryMax: time.Second, Logger: quiet,
			})
			g.pubs[i] = append(g.pubs[i], p)
			pubs = append(pubs, p)
			wg.Add(1)
			go func() { defer wg.Done(); p.Run(ctx) }()
		}
		b.Cleanup(func() { cancel(); wg.Wait(); zs.Close() })
		srv := g.servers[i]
		srv.Config.Handler = httpapi.New(n, n.FSM(), httpapi.Options{
			Layout: benchLayout, Publishers: pubs, ReceiptTimeout: 3 * time.Second, WaitAllTimeout: 5 * time.Second, Logger: quiet,
		})
		srv.Start()
		b.Cleanup(srv.Close)
	}
	c, _, err := zk.Connect([]string{g.zk.Addr()}, 5*time.Second, zk.WithLogInfo(false), zk.WithLogger(nopLogger{}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	g.zkc = c
	g.createFloorZnodes(b)
	return g
}

func benchChroot(i int) string { return fmt.Sprintf("/node%d", i) }

// benchReceipt is the part of a failover answer the benchmark checks.
type benchReceipt struct {
	Master string             `json:"master"`
	Epoch  uint64             `json:"epoch"`
	Pairs  []discovery.KVPair `json:"pairs"`
	Stores map[string]string  `json:"stores"`
}

func (g *benchGroup) postFailover(b *testing.B, i int, form url.Values) benchReceipt {
	b.Helper()
	resp, err := g.http.Post(g.servers[i].URL+"/v1/failover", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("POST /v1/failover: status %d, %v: %s", resp.StatusCode, err, body)
	}
	var rc benchReceipt
	if err := json.Unmarshal(body, &rc); err != nil {
		b.Fatalf("decode receipt %s: %v", body, err)
	}
	return rc
}

var benchClock = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// propose commits a failover on the leader, as group.failover does, and
// returns its epoch.
func (g *benchGroup) propose(b *testing.B, cluster string, m master.Master) uint64 {
	b.Helper()
	benchClock = benchClock.Add(time.Second)
	res, err := g.raft.WaitLeader().Propose(context.Background(), command.Command{
		Type: command.Failover, At: benchClock.UnixMilli(),
		Failover: &command.FailoverPayload{Entry: command.Entry{Cluster: cluster, Master: m}},
	})
	if err != nil {
		b.Fatalf("propose failover %s: %v", cluster, err)
	}
	return res.Index
}

// floorLayout keeps the floor's own keys away from the publishers' keys.
var floorLayout = discovery.NewLayout("bench-floor/"+discovery.DefaultPrefix, true)

// floorTxn writes a cluster's six keys into node i's Consul in one
// transaction.
func (g *benchGroup) floorTxn(b *testing.B, i int, m master.Master, epoch uint64) {
	b.Helper()
	var ops api.TxnOps
	for _, p := range floorLayout.Pairs("floor", m, epoch) {
		ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVSet, Key: p.Key, Value: []byte(p.Value)}})
	}
	ok, resp, _, err := g.clients[i].Txn().Txn(ops, nil)
	if err != nil || !ok {
		b.Fatalf("floor txn: ok=%v err=%v resp=%+v", ok, err, resp)
	}
}

// floorAll writes a cluster's six keys into every agent (one transaction
// each) and every chroot (one multi each), all at once.
func (g *benchGroup) floorAll(b *testing.B, m master.Master, epoch uint64) {
	b.Helper()
	pairs := floorLayout.Pairs("floor", m, epoch)
	var ops api.TxnOps
	for _, p := range pairs {
		ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVSet, Key: p.Key, Value: []byte(p.Value)}})
	}
	errs := make([]error, 2*len(g.consul))
	var wg sync.WaitGroup
	for i := range g.consul {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if ok, resp, _, err := g.clients[i].Txn().Txn(ops, nil); err != nil || !ok {
				errs[2*i] = fmt.Errorf("floor txn dc%d: ok=%v err=%v resp=%+v", i, ok, err, resp)
			}
		}()
		go func() {
			defer wg.Done()
			var zops []any
			for _, p := range pairs {
				zops = append(zops, &zk.SetDataRequest{Path: benchChroot(i) + discovery.ZKPath(p.Key), Data: []byte(p.Value), Version: -1})
			}
			if _, err := g.zkc.Multi(zops...); err != nil {
				errs[2*i+1] = fmt.Errorf("floor multi node%d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
}

// createFloorZnodes creates the znodes floorAll sets, with their parents.
func (g *benchGroup) createFloorZnodes(b *testing.B) {
	b.Helper()
	for i := range g.consul {
		for _, p := range floorLayout.Pairs("floor", master.Master{}, 0) {
			path := benchChroot(i) + discovery.ZKPath(p.Key)
			for j := 1; j <= len(path); j++ {
				if j < len(path) && path[j] != '/' {
					continue
				}
				if _, err := g.zkc.Create(path[:j], nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
					b.Fatalf("create %s: %v", path[:j], err)
				}
			}
		}
	}
}

// settle waits until every node's stores confirmed cluster at epoch, so
// one sample's background work never overlaps the next.
func (g *benchGroup) settle(b *testing.B, cluster string, epoch uint64) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		done := true
		for _, ps := range g.pubs {
			for _, p := range ps {
				done = done && p.Applied(cluster) >= epoch
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s at epoch %d not confirmed by every store within 10s", cluster, epoch)
		}
		time.Sleep(time.Millisecond)
	}
}

// verify checks every key of want in all six stores.
func (g *benchGroup) verify(b *testing.B, want []discovery.KVPair) {
	b.Helper()
	if len(want) != 6 {
		b.Fatalf("receipt has %d pairs, want 6", len(want))
	}
	for i := range g.consul {
		for _, p := range want {
			got, _, err := g.clients[i].KV().Get(p.Key, nil)
			if err != nil || got == nil || string(got.Value) != p.Value {
				b.Fatalf("consul dc%d %s = %v (err %v), want %q", i, p.Key, value(got), err, p.Value)
			}
			path := benchChroot(i) + discovery.ZKPath(p.Key)
			data, _, err := g.zkc.Get(path)
			if err != nil || string(data) != p.Value {
				b.Fatalf("zookeeper %s = %q (err %v), want %q", path, data, err, p.Value)
			}
		}
	}
}

// watchers follow one key in all six stores: watcher 2i is node i's
// Consul, 2i+1 node i's ZooKeeper chroot. Each records when it first saw
// each value.
type watchers struct {
	mu      sync.Mutex
	seen    [6]map[string]time.Time
	changed chan struct{}
}

func (w *watchers) add(k int, v string, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.seen[k][v]; !ok {
		w.seen[k][v] = at
		close(w.changed)
		w.changed = make(chan struct{})
	}
}

// waitSeen waits until every watcher saw v and returns when each did.
func (w *watchers) waitSeen(b *testing.B, v string, timeout time.Duration) [6]time.Time {
	b.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		w.mu.Lock()
		var out [6]time.Time
		missing := 0
		for k := range w.seen {
			at, ok := w.seen[k][v]
			if !ok {
				missing++
			}
			out[k] = at
		}
		ch := w.changed
		w.mu.Unlock()
		if missing == 0 {
			return out
		}
		select {
		case <-ch:
		case <-timer.C:
			b.Fatalf("%d of 6 stores did not show %s within %s", missing, v, timeout)
		}
	}
}

// watch starts the six watchers of key; they stop when the benchmark ends.
func (g *benchGroup) watch(b *testing.B, key string) *watchers {
	b.Helper()
	w := &watchers{changed: make(chan struct{})}
	for k := range w.seen {
		w.seen[k] = map[string]time.Time{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.Cleanup(func() { cancel(); wg.Wait() })
	for i := range g.consul {
		kv := g.clients[i].KV()
		wg.Add(2)
		go func() {
			defer wg.Done()
			var index uint64
			for ctx.Err() == nil {
				p, meta, err := kv.Get(key, (&api.QueryOptions{WaitIndex: index, WaitTime: 5 * time.Second}).WithContext(ctx))
				at := time.Now()
				if err != nil {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				if p != nil {
					w.add(2*i, string(p.Value), at)
				}
				index = meta.LastIndex
			}
		}()
		path := benchChroot(i) + discovery.ZKPath(key)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				data, _, ch, err := g.zkc.GetW(path)
				at := time.Now()
				if errors.Is(err, zk.ErrNoNode) {
					var ok bool
					if ok, _, ch, err = g.zkc.ExistsW(path); err == nil && ok {
						continue
					}
				}
				if err != nil {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				if data != nil {
					w.add(2*i+1, string(data), at)
				}
				select {
				case <-ch:
				case <-ctx.Done():
				}
			}
		}()
	}
	return w
}

// ---------------------------------------------------------------------------
// BenchmarkSubmitAll10k

const (
	submitClusters = 10000
	keysPerCluster = 6
)

// BenchmarkSubmitAll10k runs a real single-node raftnode process against
// one real Consul agent (consul-txn, 64 ops per transaction) and one real
// ZooKeeper server, loads 10,000 clusters with /v1/populate, waits until
// both stores hold them, then times POST /api/submit-masters-to-kv-stores
// (which answers once both stores attempted every cluster) and checks all
// 60,000 keys in Consul and ZooKeeper. It reports the submit's seconds and
// the node's peak RSS (VmHWM).
//
// Floor, in the same run on the same agent: the same 60,000 keys written
// under a fresh prefix in 60-op transactions, 8 in flight. Run with
// -benchtime=1x.
func BenchmarkSubmitAll10k(b *testing.B) {
	consul := testserver.StartConsul(b, testserver.ConsulOptions{Datacenter: "dc1"})
	zks := testserver.StartZooKeeper(b)
	n := startRaftnode(b,
		"MASTERKV_CONSUL_ADDRESS="+consul.Addr(),
		"MASTERKV_CONSUL_KV_STORE_PROVIDER=consul-txn",
		"MASTERKV_CONSUL_MAX_KVS_PER_TRANSACTION=64",
		"MASTERKV_ZK_ADDRESS="+zks.Addr(),
		"MASTERKV_RECEIPT_TIMEOUT=120s",
		// A drift check reads every cluster back from both stores; the
		// default (1m) could fire in the middle of the submit.
		"MASTERKV_DRIFT_CHECK_INTERVAL=0",
	)
	client := newBenchConsulClient(b, consul.Addr())
	zc, _, err := zk.Connect([]string{zks.Addr()}, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(nopLogger{}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(zc.Close)

	t0 := time.Now()
	n.populate(b, submitClusters)
	n.waitStores(b, submitClusters, 3*time.Minute)
	populated := time.Since(t0)
	baseHWM := n.procKB(b, "VmHWM")
	baseRSS := n.procKB(b, "VmRSS")
	b.Logf("populate of %d clusters in both stores: %s; node RSS %d MB, peak %d MB",
		submitClusters, populated.Round(time.Millisecond), baseRSS>>10, baseHWM>>10)

	var submit, floor, zkDone, consulDone, zkFloor, zkFloorBatched, zkReads []time.Duration
	var hwm int64
	round := 0
	for b.Loop() {
		round++
		resetHWM := n.resetHWM()
		run := n.submit(b)
		want := run.want
		submit = append(submit, run.took)
		zkDone = append(zkDone, run.done["zookeeper"])
		consulDone = append(consulDone, run.done["consul"])
		h := n.procKB(b, "VmHWM")
		if !resetHWM {
			h = max(h, baseHWM)
		}
		hwm = max(hwm, h)
		verifyConsul(b, client, want)
		verifyZK(b, zc, want)
		floor = append(floor, floorWrite(b, client, fmt.Sprintf("bench-floor-%d/", round), want))
		zkFloor = append(zkFloor, zkFloorWrite(b, zc, fmt.Sprintf("/bench-floor-%d", round), want, 1))
		zkFloorBatched = append(zkFloorBatched, zkFloorWrite(b, zc, fmt.Sprintf("/bench-floor-batched-%d", round), want, 10))
		zkReads = append(zkReads, zkReadAll(b, zc, want))
	}

	s, f := mean(submit), mean(floor)
	peak := max(hwm, baseHWM)
	b.ReportMetric(s.Seconds(), "submit-s")
	b.ReportMetric(f.Seconds(), "floor-s")
	b.ReportMetric(s.Seconds()/f.Seconds(), "ratio")
	b.ReportMetric(float64(peak)/1024, "peak-rss-MB")
	b.ReportMetric(float64(hwm)/1024, "submit-peak-rss-MB")
	b.ReportMetric(float64(baseRSS)/1024, "pre-submit-rss-MB")
	b.ReportMetric(populated.Seconds(), "populate-s")
	// Where the time goes: when each store had every cluster (0: missed
	// by the 20 ms status poll).
	b.ReportMetric(mean(zkDone).Seconds(), "zk-done-s")
	b.ReportMetric(mean(consulDone).Seconds(), "consul-done-s")
	// ZooKeeper's own floors, for comparison: the same znodes created
	// under a fresh path, one multi per cluster (as zkkv writes) and ten
	// clusters per multi, 8 in flight on one session.
	b.ReportMetric(mean(zkFloor).Seconds(), "zk-floor-s")
	b.ReportMetric(mean(zkFloorBatched).Seconds(), "zk-floor-batched-s")
	// What zkkv reads before it writes: six gets per cluster, 8 clusters
	// in flight on one session, as zkkv.Store.Write does.
	b.ReportMetric(mean(zkReads).Seconds(), "zk-reads-s")
	b.Logf("submit %.2f s, floor %.2f s, ratio %.2f (target 1.5); peak RSS %.1f MB (target 100)",
		s.Seconds(), f.Seconds(), s.Seconds()/f.Seconds(), float64(peak)/1024)
}

// procNode is one raftnode process.
type procNode struct {
	cmd     *exec.Cmd
	url     string
	dataDir string
	http    *http.Client
	exited  chan struct{}
}

// startRaftnode builds raftnode and runs one dev node (single-node group,
// no tokens) with env added, and waits until it leads.
func startRaftnode(b *testing.B, env ...string) *procNode {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "raftnode")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/masterkv/masterkv/raftnode").CombinedOutput(); err != nil {
		b.Fatalf("go build raftnode: %v\n%s", err, out)
	}
	httpAddr, raftAddr := benchFreeAddr(b), benchFreeAddr(b)
	logPath := filepath.Join(dir, "raftnode.stderr")
	f, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(bin)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MASTERKV_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env,
		"MASTERKV_DEV=true", "MASTERKV_NODE_ID=node1",
		"MASTERKV_DATA_DIR="+filepath.Join(dir, "data"),
		"MASTERKV_HTTP_ADDR="+httpAddr, "MASTERKV_RAFT_ADDR="+raftAddr,
		"MASTERKV_LOG_LEVEL=warn",
	)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	n := &procNode{cmd: cmd, url: "http://" + httpAddr, dataDir: filepath.Join(dir, "data"), http: &http.Client{Timeout: 3 * time.Minute}, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(n.exited) }()
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-n.exited
		if b.Failed() {
			if out, err := os.ReadFile(logPath); err == nil {
				b.Logf("raftnode stderr:\n%s", out[max(0, len(out)-8000):])
			}
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st benchStatus
		// The group's one survey of the stores (a rebase entry) is done
		// too, so it cannot land among the timed entries.
		if err := n.getJSON("/v1/status", &st); err == nil && st.State == "Leader" && st.CaughtUp && st.Generation.Index > 0 {
			return n
		}
		select {
		case <-n.exited:
			b.Fatalf("raftnode exited during start")
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("raftnode did not lead within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func benchFreeAddr(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// benchStatus is the part of GET /v1/status the benchmark reads.
type benchStatus struct {
	State    string `json:"state"`
	CaughtUp bool   `json:"caught_up"`
	Clusters int    `json:"clusters"`
	// Generation.Index is the raft index of the last rebase, 0 before
	// the group's first survey.
	Generation struct {
		Index uint64 `json:"index"`
	} `json:"generation"`
	Stores []struct {
		Store     string `json:"store"`
		Applied   uint64 `json:"applied_epoch"`
		Backlog   int    `json:"backlog"`
		Written   uint64 `json:"written"`
		Unchanged uint64 `json:"unchanged"`
		Failed    uint64 `json:"failed"`
		LastError string `json:"last_error"`
	} `json:"stores"`
}

func (n *procNode) getJSON(path string, v any) error {
	resp, err := n.http.Get(n.url + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", path, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (n *procNode) post(b *testing.B, path, contentType string, body []byte) []byte {
	b.Helper()
	resp, err := n.http.Post(n.url+path, contentType, bytes.NewReader(body))
	if err != nil {
		b.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("POST %s: status %d, %v: %.500s", path, resp.StatusCode, err, out)
	}
	return out
}

// benchMaster is cluster i's master in the submit benchmark.
func benchMaster(i int) (alias, host string) {
	return fmt.Sprintf("c%05d", i), fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)
}

// populate loads clusters with POST /v1/populate, as many per request as
// fit the body limit.
func (n *procNode) populate(b *testing.B, clusters int) {
	b.Helper()
	type entry struct {
		Cluster string `json:"cluster"`
		Host    string `json:"host"`
		Port    int    `json:"port"`
	}
	send := func(batch []entry) {
		body, _ := json.Marshal(map[string]any{"masters": batch})
		var res struct{ Checked, Submitted int }
		if err := json.Unmarshal(n.post(b, "/v1/populate", "application/json", body), &res); err != nil {
			b.Fatal(err)
		}
		if res.Submitted != len(batch) {
			b.Fatalf("populate submitted %d of %d", res.Submitted, len(batch))
		}
	}
	var batch []entry
	size := 20
	for i := range clusters {
		alias, host := benchMaster(i)
		e := entry{alias, host, 3306}
		s := len(alias) + len(host) + 40
		if size+s > httpapi.MaxBodyBytes-1024 {
			send(batch)
			batch, size = nil, 20
		}
		batch, size = append(batch, e), size+s
	}
	send(batch)
}

// waitStores waits until /v1/status shows every store with an empty
// backlog and clusters writes done.
func (n *procNode) waitStores(b *testing.B, clusters int, timeout time.Duration) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	var st benchStatus
	for {
		err := n.getJSON("/v1/status", &st)
		if err == nil && st.Clusters == clusters && len(st.Stores) == 2 {
			done := true
			for _, s := range st.Stores {
				done = done && s.Backlog == 0 && s.Written+s.Unchanged >= uint64(clusters)
			}
			if done {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("stores not filled within %s: %+v (%v)", timeout, st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// submitRun is what one submit did.
type submitRun struct {
	took  time.Duration
	want  map[string]string // every pair the answer lists, by key
	epoch uint64
	// done is when each store had confirmed every cluster at the submit's
	// epoch, from /v1/status polled every 20 ms during the submit.
	done map[string]time.Duration
}

// submit times POST /api/submit-masters-to-kv-stores and checks its answer.
func (n *procNode) submit(b *testing.B) submitRun {
	b.Helper()
	type sample struct {
		at time.Duration
		st benchStatus
	}
	var samples []sample
	stop := make(chan struct{})
	polled := make(chan struct{})
	t0 := time.Now()
	go func() {
		defer close(polled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			var st benchStatus
			if n.getJSON("/v1/status", &st) == nil {
				samples = append(samples, sample{time.Since(t0), st})
			}
		}
	}()
	body := n.post(b, "/api/submit-masters-to-kv-stores", "application/json", nil)
	run := submitRun{took: time.Since(t0), done: map[string]time.Duration{}}
	close(stop)
	<-polled
	var res struct {
		Code    string
		Message string
		Details []discovery.KVPair
		Stores  map[string]string
	}
	if err := json.Unmarshal(body, &res); err != nil {
		b.Fatalf("decode submit answer: %v", err)
	}
	if res.Code != "OK" || res.Message != fmt.Sprintf("Submitted %d masters", submitClusters) ||
		res.Stores["consul"] != "ok" || res.Stores["zookeeper"] != "ok" {
		b.Fatalf("submit answered %s %q stores %v, want OK, %d masters, both stores ok", res.Code, res.Message, res.Stores, submitClusters)
	}
	run.want = make(map[string]string, len(res.Details))
	for _, p := range res.Details {
		run.want[p.Key] = p.Value
	}
	if len(run.want) != submitClusters*keysPerCluster {
		b.Fatalf("submit details hold %d keys, want %d", len(run.want), submitClusters*keysPerCluster)
	}
	alias, host := benchMaster(submitClusters - 1)
	if k := discovery.DefaultPrefix + "/" + alias; run.want[k] != host+":3306" {
		b.Fatalf("submit details %s = %q, want %s:3306", k, run.want[k], host)
	}
	epoch, err := strconv.ParseUint(run.want[discovery.DefaultPrefix+"/"+alias+"/epoch"], 10, 64)
	if err != nil {
		b.Fatalf("submit epoch: %v", err)
	}
	run.epoch = epoch
	for _, smp := range samples {
		for _, st := range smp.st.Stores {
			if _, ok := run.done[st.Store]; !ok && st.Applied >= epoch && st.Backlog == 0 {
				run.done[st.Store] = smp.at
			}
		}
	}
	return run
}

// procKB reads a "Vm..." line of the node's /proc status, in kB.
func (n *procNode) procKB(b *testing.B, field string) int64 {
	b.Helper()
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.cmd.Process.Pid))
	if err != nil {
		b.Fatalf("read the node's memory (Linux /proc needed): %v", err)
	}
	for _, line := range strings.Split(string(s), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatalf("parse %q: %v", line, err)
			}
			return kb
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, n.cmd.Process.Pid)
	return 0
}

// resetHWM resets the node's peak RSS to its current RSS (Linux 4.0+), so
// the next VmHWM is the submit's own peak. It reports whether it worked.
func (n *procNode) resetHWM() bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", n.cmd.Process.Pid), []byte("5"), 0) == nil
}

// newBenchConsulClient pools as many connections as the floor keeps in
// flight, as consulkv does.
func newBenchConsulClient(b *testing.B, addr string) *api.Client {
	b.Helper()
	t := cleanhttp.DefaultPooledTransport()
	t.MaxIdleConnsPerHost = 8
	c, err := api.NewClient(&api.Config{Address: addr, Transport: t})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// verifyConsul lists the prefix once and compares every key.
func verifyConsul(b *testing.B, c *api.Client, want map[string]string) {
	b.Helper()
	pairs, _, err := c.KV().List(discovery.DefaultPrefix+"/", nil)
	if err != nil {
		b.Fatalf("list consul %s/: %v", discovery.DefaultPrefix, err)
	}
	if len(pairs) != len(want) {
		b.Fatalf("consul holds %d keys under %s/, want %d", len(pairs), discovery.DefaultPrefix, len(want))
	}
	for _, p := range pairs {
		if v, ok := want[p.Key]; !ok || v != string(p.Value) {
			b.Fatalf("consul %s = %q, want %q (known %v)", p.Key, p.Value, v, ok)
		}
	}
}

// verifyZK counts the znodes below the prefix and compares every value,
// 64 requests in flight on one session.
func verifyZK(b *testing.B, c *zk.Conn, want map[string]string) {
	b.Helper()
	root := discovery.ZKPath(discovery.DefaultPrefix)
	aliases, _, err := c.Children(root)
	if err != nil {
		b.Fatalf("zookeeper children of %s: %v", root, err)
	}
	if len(aliases) != submitClusters {
		b.Fatalf("zookeeper %s has %d children, want %d", root, len(aliases), submitClusters)
	}
	keys := make(chan string)
	var mu sync.Mutex
	var firstErr error
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	var znodes sync.Map
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for alias := range keys {
				main := root + "/" + alias
				kids, _, err := c.Children(main)
				if err != nil {
					fail(fmt.Errorf("children of %s: %w", main, err))
					continue
				}
				for _, p := range append([]string{main}, prefixed(main+"/", kids)...) {
					data, _, err := c.Get(p)
					if err != nil {
						fail(fmt.Errorf("get %s: %w", p, err))
						continue
					}
					znodes.Store(p, string(data))
				}
			}
		}()
	}
	for _, a := range aliases {
		keys <- a
	}
	close(keys)
	wg.Wait()
	if firstErr != nil {
		b.Fatalf("zookeeper: %v", firstErr)
	}
	count := 0
	znodes.Range(func(k, v any) bool {
		count++
		key := strings.TrimPrefix(k.(string), "/")
		if want[key] != v.(string) {
			b.Errorf("zookeeper %s = %q, want %q", k, v, want[key])
			return false
		}
		return true
	})
	if count != len(want) {
		b.Fatalf("zookeeper holds %d znodes below %s, want %d", count, root, len(want))
	}
}

func prefixed(p string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = p + n
	}
	return out
}

// floorWrite writes want under prefix in transactions of 10 clusters (60
// sets), 8 in flight, and returns how long it took.
func floorWrite(b *testing.B, c *api.Client, prefix string, want map[string]string) time.Duration {
	b.Helper()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys) // a cluster's six keys are adjacent
	const opsPerTxn = 10 * keysPerCluster
	var txns []api.TxnOps
	for i := 0; i < len(keys); i += opsPerTxn {
		var ops api.TxnOps
		for _, k := range keys[i:min(i+opsPerTxn, len(keys))] {
			ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVSet, Key: prefix + k, Value: []byte(want[k])}})
		}
		txns = append(txns, ops)
	}
	work := make(chan api.TxnOps)
	errc := make(chan error, len(txns))
	var wg sync.WaitGroup
	t0 := time.Now()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ops := range work {
				if ok, resp, _, err := c.Txn().Txn(ops, nil); err != nil || !ok {
					errc <- fmt.Errorf("floor txn: ok=%v err=%v resp=%+v", ok, err, resp)
				}
			}
		}()
	}
	for _, ops := range txns {
		work <- ops
	}
	close(work)
	wg.Wait()
	took := time.Since(t0)
	close(errc)
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	pairs, _, err := c.KV().Keys(prefix, "", nil)
	if err != nil || len(pairs) != len(want) {
		b.Fatalf("floor prefix %s holds %d keys (err %v), want %d", prefix, len(pairs), err, len(want))
	}
	return took
}

// zkFloorWrite creates want's znodes below root, perMulti clusters per
// multi (parents first), 8 multis in flight on one session, and returns
// how long that took.
func zkFloorWrite(b *testing.B, c *zk.Conn, root string, want map[string]string, perMulti int) time.Duration {
	b.Helper()
	acl := zk.WorldACL(zk.PermAll)
	for _, p := range []string{root, root + "/mysql", root + discovery.ZKPath(discovery.DefaultPrefix)} {
		if _, err := c.Create(p, nil, 0, acl); err != nil {
			b.Fatalf("create %s: %v", p, err)
		}
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys) // a main key, then its five children
	var multis [][]any
	per := perMulti * keysPerCluster
	for i := 0; i < len(keys); i += per {
		var ops []any
		for _, k := range keys[i:min(i+per, len(keys))] {
			ops = append(ops, &zk.CreateRequest{Path: root + discovery.ZKPath(k), Data: []byte(want[k]), Acl: acl})
		}
		multis = append(multis, ops)
	}
	work := make(chan []any)
	errc := make(chan error, len(multis))
	var wg sync.WaitGroup
	t0 := time.Now()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ops := range work {
				if _, err := c.Multi(ops...); err != nil {
					errc <- fmt.Errorf("zookeeper floor multi: %w", err)
				}
			}
		}()
	}
	for _, ops := range multis {
		work <- ops
	}
	close(work)
	wg.Wait()
	took := time.Since(t0)
	close(errc)
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	kids, _, err := c.Children(root + discovery.ZKPath(discovery.DefaultPrefix))
	if err != nil || len(kids) != submitClusters {
		b.Fatalf("zookeeper floor %s holds %d clusters (err %v), want %d", root, len(kids), err, submitClusters)
	}
	return took
}

// zkReadAll reads every cluster of want the way zkkv reads before a write
// (its six znodes at once, 8 clusters at once, one session) and returns how
// long that took.
func zkReadAll(b *testing.B, c *zk.Conn, want map[string]string) time.Duration {
	b.Helper()
	clusters := map[string][]string{}
	for k := range want {
		main := k
		if i := strings.LastIndexByte(k, '/'); strings.Count(k, "/") > 2 {
			main = k[:i]
		}
		clusters[main] = append(clusters[main], k)
	}
	work := make(chan []string)
	var failed sync.Map
	var wg sync.WaitGroup
	t0 := time.Now()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for keys := range work {
				var kw sync.WaitGroup
				for _, k := range keys {
					kw.Add(1)
					go func() {
						defer kw.Done()
						if data, _, err := c.Get(discovery.ZKPath(k)); err != nil || string(data) != want[k] {
							failed.Store(k, fmt.Sprintf("%q (err %v)", data, err))
						}
					}()
				}
				kw.Wait()
			}
		}()
	}
	for _, keys := range clusters {
		work <- keys
	}
	close(work)
	wg.Wait()
	took := time.Since(t0)
	failed.Range(func(k, v any) bool {
		b.Fatalf("zookeeper read %s = %s, want %q", k, v, want[k.(string)])
		return false
	})
	if len(clusters) != submitClusters {
		b.Fatalf("read %d clusters, want %d", len(clusters), submitClusters)
	}
	return took
}

// ---------------------------------------------------------------------------

// pct is the nearest-rank percentile p of ds.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func mean(ds []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(max(len(ds), 1))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
