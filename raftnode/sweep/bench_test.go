package sweep_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-cleanhttp"

	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/testserver"
	"github.com/masterkv/masterkv/raftnode/httpapi"
	"github.com/masterkv/masterkv/raftnode/publish"
)

// Benchmarks of the cross-datacenter sweep on a real raftnode process and
// three real, WAN-joined Consul datacenters: the first distribution of
// 10,000 clusters into every datacenter, and a steady-state pass that finds
// nothing to change. Each measures its floor in the same run, on the same
// agents. See docs/BENCHMARKS-sweep.md for the commands and the figures.
//
// Run with -benchtime=1x (first distribution) and -benchtime=3x (steady
// state): each iteration of the first is a fresh node and empty
// datacenters; each iteration of the second waits for one sweep interval.

const (
	benchClusters       = 10000
	benchKeysPerCluster = 6
	benchKeys           = benchClusters * benchKeysPerCluster
	// benchSweepInterval is MASTERKV_CONSUL_SWEEP_INTERVAL in both.
	benchSweepInterval = 5 * time.Second
)

// benchPrefix is the node's key prefix (the default) with its slash.
const benchPrefix = discovery.DefaultPrefix + "/"

// ---------------------------------------------------------------------------
// BenchmarkSweepFirstDistribution10k

// BenchmarkSweepFirstDistribution10k runs a real single-node raftnode
// process with the cross-datacenter sweep on (consul-txn, 64 ops per
// transaction, 5 s interval) against three WAN-joined datacenters, its
// agent being dc1's. It loads 10,000 clusters with /v1/populate and times
// from the first populate request until all 60,000 keys are in every
// datacenter: each datacenter's own agent is polled every 100 ms for the
// clusters' main keys (consul-txn writes a cluster's six keys in one
// atomic transaction, so its main key stands for all six), and afterwards
// every key of every datacenter is listed and compared with the node's
// records. The node's own publisher and the sweep both write dc1.
//
// Floor, in the same iteration on the same agents once the node is
// stopped: the same 60,000 keys written under a fresh prefix into each
// datacenter through its own agent, in transactions of 60 sets (10
// clusters), 8 in flight per datacenter, the three datacenters at once.
// An informative second floor sends the same transactions for all three
// datacenters through dc1's agent (?dc=), as the sweep does.
func BenchmarkSweepFirstDistribution10k(b *testing.B) {
	dcs := benchWAN(b)
	bin := buildRaftnode(b)
	direct := make([]*api.Client, len(dcs)) // each datacenter's own agent
	via := make([]*api.Client, len(dcs))    // dc1's agent with ?dc=
	for i, c := range dcs {
		direct[i] = newBenchClient(b, c.Addr(), "")
		via[i] = newBenchClient(b, dcs[0].Addr(), c.Datacenter)
	}

	var total, populate, floor, floorVia, listCost []time.Duration
	var nodeDone [4][]time.Duration // consul, consul:dc1, consul:dc2, consul:dc3
	var present [3][]time.Duration
	var hwm, rss []int64
	var passes []int
	round := 0
	for b.Loop() {
		round++
		for i, c := range direct {
			benchDeleteTree(b, c, benchPrefix, dcs[i].Datacenter)
		}
		n := startSweepNode(b, bin, dcs[0].Addr())

		want := benchWantMains()
		watch := watchPresence(direct, want)
		st := n.record(100 * time.Millisecond)
		t0 := time.Now()
		n.populate(b, benchClusters)
		populated := time.Since(t0)
		at := watch.wait(b, 5*time.Minute)
		samples := st.stop()

		// Check every key of every datacenter against the node's records.
		pairs := n.records(b)
		for i, c := range direct {
			benchVerify(b, c, dcs[i].Datacenter, pairs)
		}
		h, r := n.procKB(b, "VmHWM"), n.procKB(b, "VmRSS")
		done, started := nodeDoneTimes(samples, t0)
		n.stop()

		// The floors, on idle agents.
		floor = append(floor, floorAllDCs(b, direct, fmt.Sprintf("bench-floor-%d/", round), pairs))
		floorVia = append(floorVia, floorAllDCs(b, via, fmt.Sprintf("bench-floor-via-%d/", round), pairs))
		for i, c := range direct {
			benchDeleteTree(b, c, fmt.Sprintf("bench-floor-%d/", round), dcs[i].Datacenter)
			benchDeleteTree(b, c, fmt.Sprintf("bench-floor-via-%d/", round), dcs[i].Datacenter)
		}

		last := time.Duration(0)
		for i, d := range at {
			present[i] = append(present[i], d.Sub(t0))
			last = max(last, d.Sub(t0))
		}
		total = append(total, last)
		populate = append(populate, populated)
		listCost = append(listCost, watch.cost())
		for i := range nodeDone {
			nodeDone[i] = append(nodeDone[i], done[i])
		}
		passes = append(passes, started)
		hwm, rss = append(hwm, h), append(rss, r)
		b.Logf("round %d: every key in 3 datacenters after %s (dc1 %s, dc2 %s, dc3 %s); populate %s; floor %s, via dc1 %s; node confirmed consul %s dc1 %s dc2 %s dc3 %s; %d sweep passes started; peak RSS %d MB",
			round, last.Round(time.Millisecond), at[0].Sub(t0).Round(time.Millisecond), at[1].Sub(t0).Round(time.Millisecond), at[2].Sub(t0).Round(time.Millisecond),
			populated.Round(time.Millisecond), floor[len(floor)-1].Round(time.Millisecond), floorVia[len(floorVia)-1].Round(time.Millisecond),
			done[0].Round(time.Millisecond), done[1].Round(time.Millisecond), done[2].Round(time.Millisecond), done[3].Round(time.Millisecond), started, h>>10)
	}

	s, f := benchMean(total), benchMean(floor)
	b.ReportMetric(s.Seconds(), "distribution-s")
	b.ReportMetric(f.Seconds(), "floor-s")
	b.ReportMetric(s.Seconds()/f.Seconds(), "ratio")
	b.ReportMetric(float64(slices.Max(hwm))/1024, "peak-rss-MB")
	// Where the time goes.
	b.ReportMetric(benchMean(populate).Seconds(), "populate-s")
	for i, name := range []string{"dc1", "dc2", "dc3"} {
		b.ReportMetric(benchMean(present[i]).Seconds(), name+"-present-s")
	}
	for i, name := range []string{"consul", "dc1", "dc2", "dc3"} {
		b.ReportMetric(benchMean(nodeDone[i]).Seconds(), "node-"+name+"-done-s")
	}
	b.ReportMetric(benchMean(floorVia).Seconds(), "floor-via-dc1-s")
	b.ReportMetric(s.Seconds()/benchMean(floorVia).Seconds(), "ratio-via-dc1")
	b.ReportMetric(float64(slices.Max(passes)), "sweep-passes")
	b.ReportMetric(float64(slices.Max(rss))/1024, "end-rss-MB")
	b.ReportMetric(benchMean(listCost).Seconds()*1000, "presence-poll-ms")
	b.Logf("first distribution %.2f s, floor %.2f s, ratio %.2f (target 1.5); peak RSS %.1f MB (target 100)",
		s.Seconds(), f.Seconds(), s.Seconds()/f.Seconds(), float64(slices.Max(hwm))/1024)
}

// presence polls each datacenter's agent for the clusters' main keys and
// records when each first held all of them.
type presence struct {
	mu    sync.Mutex
	at    []time.Time
	polls int
	spent time.Duration
	stop  chan struct{}
	wg    sync.WaitGroup
	errs  []error
}

func watchPresence(clients []*api.Client, want map[string]bool) *presence {
	p := &presence{at: make([]time.Time, len(clients)), errs: make([]error, len(clients)), stop: make(chan struct{})}
	for i, c := range clients {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				t := time.Now()
				// One level below the prefix: a cluster's main key and its
				// "<main>/" folder, 20,000 names instead of 60,000 pairs.
				keys, _, err := c.KV().Keys(benchPrefix, "/", nil)
				now := time.Now()
				p.mu.Lock()
				p.polls++
				p.spent += now.Sub(t)
				p.mu.Unlock()
				if err != nil {
					p.errs[i] = err
				} else if countMains(keys, want) == len(want) {
					p.mu.Lock()
					p.at[i] = now
					p.mu.Unlock()
					return
				}
				select {
				case <-p.stop:
					return
				case <-tick.C:
				}
			}
		}()
	}
	return p
}

func countMains(keys []string, want map[string]bool) int {
	n := 0
	for _, k := range keys {
		if want[k] {
			n++
		}
	}
	return n
}

// wait returns when every datacenter held every main key.
func (p *presence) wait(b *testing.B, timeout time.Duration) []time.Time {
	b.Helper()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		close(p.stop)
		<-done
		b.Fatalf("not every datacenter held the %d clusters within %s: %v %v", benchClusters, timeout, p.at, errors.Join(p.errs...))
	}
	return p.at
}

// cost is the mean duration of one poll of one datacenter.
func (p *presence) cost() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.spent / time.Duration(max(p.polls, 1))
}

// benchWantMains is the main key of every benchmark cluster.
func benchWantMains() map[string]bool {
	want := make(map[string]bool, benchClusters)
	for i := range benchClusters {
		alias, _ := benchMaster(i)
		want[benchPrefix+alias] = true
	}
	return want
}

// nodeDoneTimes reads, from status samples taken during the distribution,
// when each of the node's Consul publishers (its own, then the sweep's
// dc1, dc2, dc3) had confirmed every cluster at its epoch, and how many
// sweep passes started meanwhile. A pass re-marks every cluster, so a pass
// started near the end delays "confirmed" past the moment the keys were
// present.
func nodeDoneTimes(samples []statusSample, t0 time.Time) ([4]time.Duration, int) {
	var done [4]time.Duration
	names := []string{"consul", "consul:dc1", "consul:dc2", "consul:dc3"}
	var final uint64
	if len(samples) > 0 {
		final = samples[len(samples)-1].st.StoreIndex
	}
	starts := map[time.Time]bool{}
	for _, s := range samples {
		all := append(slices.Clone(s.st.Stores), s.st.sweepDCs()...)
		for _, st := range all {
			if st.LastSweep != nil && !st.LastSweep.At.IsZero() && st.LastSweep.Clusters > 0 {
				starts[st.LastSweep.At] = true
			}
			k := slices.Index(names, st.Store)
			if k < 0 || done[k] != 0 {
				continue
			}
			if s.st.Clusters == benchClusters && s.st.StoreIndex == final && st.Applied >= final && st.Backlog == 0 {
				done[k] = s.at.Sub(t0)
			}
		}
	}
	return done, len(starts)
}

// ---------------------------------------------------------------------------
// BenchmarkSweepSteadyState10k

// BenchmarkSweepSteadyState10k: the same node and datacenters, after the
// first distribution of 10,000 clusters has settled and a first full pass
// found nothing to do; nothing changes. Each iteration waits for the next
// completed pass in every datacenter (last_sweep in /v1/status) and
// reports its duration (the slowest datacenter), keys read and keys
// written, which must be 0.
//
// proxy=on puts a recording reverse proxy in front of dc1's agent (the
// node's MASTERKV_CONSUL_ADDRESS) and counts the node's read and write
// transactions per datacenter during each pass; proxy=off measures the
// same passes without it. The informative floor is the pass's reads
// issued by the benchmark itself through dc1's agent once the node is
// stopped: per datacenter, read transactions of a get and a get-tree for
// each of 32 clusters, 8 in flight, the three datacenters at once.
func BenchmarkSweepSteadyState10k(b *testing.B) {
	b.Run("proxy=off", func(b *testing.B) { benchSteady(b, false) })
	b.Run("proxy=on", func(b *testing.B) { benchSteady(b, true) })
}

func benchSteady(b *testing.B, proxied bool) {
	dcs := benchWAN(b)
	bin := buildRaftnode(b)
	addr := dcs[0].Addr()
	var rec *recorder
	if proxied {
		rec = newRecorder(b, addr)
		addr = rec.addr
	}
	n := startSweepNode(b, bin, addr)
	direct := make([]*api.Client, len(dcs))
	for i, c := range dcs {
		direct[i] = newBenchClient(b, c.Addr(), "")
	}
	t0 := time.Now()
	n.populate(b, benchClusters)
	watchPresence(direct, benchWantMains()).wait(b, 5*time.Minute)
	settled := time.Now()
	b.Logf("first distribution %s", settled.Sub(t0).Round(time.Millisecond))
	// The first pass that started after the distribution is the warm-up:
	// it is the first to find every cluster in place.
	prev := n.waitPass(b, settled, 2*benchSweepInterval+time.Minute)
	checkSteadyPass(b, prev)
	pairs := n.records(b)
	for i, c := range direct {
		benchVerify(b, c, dcs[i].Datacenter, pairs)
	}

	var worst []time.Duration
	var perDC [3][]time.Duration
	var read, written []int
	var reads, writes map[string][]int
	if rec != nil {
		reads, writes = map[string][]int{}, map[string][]int{}
	}
	for b.Loop() {
		var before map[string]txnCount
		if rec != nil {
			before = rec.snapshot()
		}
		after := prev[0].LastSweep.At
		for _, d := range prev {
			if d.LastSweep.At.After(after) {
				after = d.LastSweep.At
			}
		}
		cur := n.waitPass(b, after.Add(time.Nanosecond), 2*benchSweepInterval+time.Minute)
		checkSteadyPass(b, cur)
		w, kr, kw := time.Duration(0), 0, 0
		for i, d := range cur {
			r := d.LastSweep
			perDC[i] = append(perDC[i], r.Duration)
			w = max(w, r.Duration)
			kr += r.KeysRead
			kw += r.KeysWritten
		}
		worst = append(worst, w)
		read, written = append(read, kr/len(cur)), append(written, kw)
		if rec != nil {
			delta := rec.since(before)
			for dc, c := range delta {
				reads[dc] = append(reads[dc], c.read)
				writes[dc] = append(writes[dc], c.write)
				if c.write != 0 {
					b.Errorf("steady-state pass: %d write transactions into %q, want 0", c.write, dc)
				}
			}
			b.Logf("pass: max %s (dc1 %s, dc2 %s, dc3 %s); transactions through the proxy (read/write) %v",
				w.Round(time.Millisecond), cur[0].LastSweep.Duration.Round(time.Millisecond), cur[1].LastSweep.Duration.Round(time.Millisecond),
				cur[2].LastSweep.Duration.Round(time.Millisecond), delta)
		} else {
			b.Logf("pass: max %s (dc1 %s, dc2 %s, dc3 %s)", w.Round(time.Millisecond), cur[0].LastSweep.Duration.Round(time.Millisecond),
				cur[1].LastSweep.Duration.Round(time.Millisecond), cur[2].LastSweep.Duration.Round(time.Millisecond))
		}
		prev = cur
	}
	h := n.procKB(b, "VmHWM")
	n.stop()
	via := make([]*api.Client, len(dcs))
	for i, c := range dcs {
		via[i] = newBenchClient(b, dcs[0].Addr(), c.Datacenter)
	}
	readFloor := readFloorAllDCs(b, via, pairs)

	b.ReportMetric(benchMean(worst).Seconds(), "pass-s")
	b.ReportMetric(slices.Max(worst).Seconds(), "pass-max-s")
	for i, name := range []string{"dc1", "dc2", "dc3"} {
		b.ReportMetric(benchMean(perDC[i]).Seconds(), name+"-pass-s")
	}
	b.ReportMetric(float64(slices.Max(written)), "keys-written")
	b.ReportMetric(float64(slices.Min(read)), "keys-read-per-dc")
	b.ReportMetric(readFloor.Seconds(), "read-floor-s")
	b.ReportMetric(benchMean(worst).Seconds()/readFloor.Seconds(), "ratio-to-read-floor")
	b.ReportMetric(float64(h)/1024, "peak-rss-MB")
	if rec != nil {
		for _, dc := range []string{"dc1", "dc2", "dc3"} {
			b.ReportMetric(float64(slices.Max(writes[dc])), dc+"-write-txns")
			b.ReportMetric(float64(slices.Max(reads[dc])), dc+"-read-txns")
		}
		b.ReportMetric(float64(slices.Max(writes[""])+slices.Max(reads[""])), "node-own-txns")
	}
	b.Logf("steady-state pass %.2f s (max %.2f s; target 2 s), keys written %d (target 0), keys read per datacenter %d (want %d); read floor %.2f s",
		benchMean(worst).Seconds(), slices.Max(worst).Seconds(), slices.Max(written), slices.Min(read), benchKeys, readFloor.Seconds())
}

// checkSteadyPass asserts that a pass found everything in place.
func checkSteadyPass(b *testing.B, dcs []storeStatus) {
	b.Helper()
	for _, d := range dcs {
		r := d.LastSweep
		if r.KeysWritten != 0 || r.KeysRead != benchKeys || r.KeysUnchanged != benchKeys || r.KeysFailed != 0 || r.Clusters != benchClusters || r.Stale != 0 {
			b.Fatalf("%s steady-state pass = %+v, want %d clusters, %d keys read and unchanged, 0 written", d.Store, *r, benchClusters, benchKeys)
		}
	}
}

// waitPass waits until every datacenter's last pass started at or after
// since, and returns the datacenters' status sorted by name.
func (n *sweepNode) waitPass(b *testing.B, since time.Time, timeout time.Duration) []storeStatus {
	b.Helper()
	deadline := time.Now().Add(timeout)
	var st nodeStatus
	for {
		err := n.getJSON("/v1/status", &st)
		if err == nil {
			dcs := st.sweepDCs()
			ok := len(dcs) == 3
			for _, d := range dcs {
				ok = ok && d.LastSweep != nil && !d.LastSweep.At.Before(since)
			}
			if ok {
				return dcs
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("no pass in every datacenter since %s within %s: %+v (%v)", since.Format(time.StampMilli), timeout, st.Sweep, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// recorder is a reverse proxy in front of one agent that counts the
// transactions passing through it, by ?dc= and by kind: a write is a
// transaction with any operation other than get and get-tree.
type recorder struct {
	addr   string
	mu     sync.Mutex
	counts map[string]txnCount
	other  atomic.Int64
}

type txnCount struct{ read, write int }

func (c txnCount) String() string { return fmt.Sprintf("%d/%d", c.read, c.write) }

func newRecorder(b *testing.B, target string) *recorder {
	b.Helper()
	u, err := url.Parse("http://" + target)
	if err != nil {
		b.Fatal(err)
	}
	t := cleanhttp.DefaultPooledTransport()
	t.MaxIdleConnsPerHost = 64
	r := &recorder{counts: map[string]txnCount{}}
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u) }, Transport: t}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/v1/txn" {
			body, err := io.ReadAll(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			req.Body = io.NopCloser(bytes.NewReader(body))
			r.count(req.URL.Query().Get("dc"), body)
		} else {
			r.other.Add(1)
		}
		proxy.ServeHTTP(w, req)
	}))
	b.Cleanup(srv.Close)
	r.addr = srv.Listener.Addr().String()
	return r
}

func (r *recorder) count(dc string, body []byte) {
	var ops []struct{ KV *struct{ Verb string } }
	write := true
	if json.Unmarshal(body, &ops) == nil {
		write = false
		for _, op := range ops {
			if op.KV == nil || (op.KV.Verb != string(api.KVGet) && op.KV.Verb != string(api.KVGetTree)) {
				write = true
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.counts[dc]
	if write {
		c.write++
	} else {
		c.read++
	}
	r.counts[dc] = c
}

func (r *recorder) snapshot() map[string]txnCount {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps(r.counts)
}

// since is what passed through since snapshot s, for every ?dc= seen
// ("" is the node's own publisher, which sends no dc).
func (r *recorder) since(s map[string]txnCount) map[string]txnCount {
	cur := r.snapshot()
	out := map[string]txnCount{"": {}, "dc1": {}, "dc2": {}, "dc3": {}}
	for dc, c := range cur {
		out[dc] = txnCount{c.read - s[dc].read, c.write - s[dc].write}
	}
	return out
}

func maps(m map[string]txnCount) map[string]txnCount {
	out := make(map[string]txnCount, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// ---------------------------------------------------------------------------
// The datacenters and the node

// benchWAN starts dc1, dc2 and dc3, WAN-joined to dc1, and waits until
// every agent lists all three (wan in sweep_test.go, for benchmarks).
func benchWAN(b *testing.B) []*testserver.Consul {
	b.Helper()
	dc1 := testserver.StartConsul(b, testserver.ConsulOptions{Datacenter: "dc1"})
	dcs := []*testserver.Consul{dc1}
	for _, name := range []string{"dc2", "dc3"} {
		dcs = append(dcs, testserver.StartConsul(b, testserver.ConsulOptions{Datacenter: name, JoinWAN: []*testserver.Consul{dc1}}))
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range dcs {
		cl := newBenchClient(b, c.Addr(), "")
		for {
			got, err := cl.Catalog().Datacenters()
			if err == nil && len(got) == 3 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s lists datacenters %v (%v), want three", c.Datacenter, got, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return dcs
}

// newBenchClient pools 8 connections, as many as the floors keep in
// flight per datacenter; dc, when set, is sent as ?dc=.
func newBenchClient(b *testing.B, addr, dc string) *api.Client {
	b.Helper()
	t := cleanhttp.DefaultPooledTransport()
	t.MaxIdleConnsPerHost = 8
	c, err := api.NewClient(&api.Config{Address: addr, Datacenter: dc, Transport: t})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func benchDeleteTree(b *testing.B, c *api.Client, prefix, dc string) {
	b.Helper()
	if _, err := c.KV().DeleteTree(prefix, nil); err != nil {
		b.Fatalf("delete %s in %s: %v", prefix, dc, err)
	}
}

// buildRaftnode builds the node binary once per benchmark.
func buildRaftnode(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "raftnode")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/masterkv/masterkv/raftnode").CombinedOutput(); err != nil {
		b.Fatalf("go build raftnode: %v\n%s", err, out)
	}
	return bin
}

// sweepNode is one raftnode process.
type sweepNode struct {
	cmd     *exec.Cmd
	url     string
	http    *http.Client
	exited  chan struct{}
	logPath string
	stopped bool
}

// startSweepNode runs a dev node (single-node group, no tokens) with the
// sweep on, its agent at consulAddr, and waits until it leads.
func startSweepNode(b *testing.B, bin, consulAddr string) *sweepNode {
	b.Helper()
	dir := b.TempDir()
	httpAddr, raftAddr := benchAddr(b), benchAddr(b)
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
		"MASTERKV_CONSUL_ADDRESS="+consulAddr,
		"MASTERKV_CONSUL_KV_STORE_PROVIDER=consul-txn",
		"MASTERKV_CONSUL_MAX_KVS_PER_TRANSACTION=64",
		"MASTERKV_CONSUL_CROSS_DATA_CENTER_DISTRIBUTION=true",
		"MASTERKV_CONSUL_SWEEP_INTERVAL="+benchSweepInterval.String(),
		// A drift check reads every cluster back; it would overlap the
		// measured passes.
		"MASTERKV_DRIFT_CHECK_INTERVAL=0",
	)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	n := &sweepNode{cmd: cmd, url: "http://" + httpAddr, http: &http.Client{Timeout: 3 * time.Minute}, exited: make(chan struct{}), logPath: logPath}
	go func() { _ = cmd.Wait(); close(n.exited) }()
	b.Cleanup(func() {
		if b.Failed() {
			if out, err := os.ReadFile(logPath); err == nil {
				b.Logf("raftnode stderr:\n%s", out[max(0, len(out)-8000):])
			}
		}
		n.stop()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st nodeStatus
		if err := n.getJSON("/v1/status", &st); err == nil && st.State == "Leader" && st.CaughtUp && st.Sweep != nil && len(st.Sweep.Datacenters) == 3 {
			return n
		}
		select {
		case <-n.exited:
			b.Fatalf("raftnode exited during start")
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("raftnode did not lead and sweep three datacenters within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (n *sweepNode) stop() {
	if n.stopped {
		return
	}
	n.stopped = true
	_ = n.cmd.Process.Kill()
	<-n.exited
}

func benchAddr(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// nodeStatus is the part of GET /v1/status the benchmarks read.
type nodeStatus struct {
	State      string        `json:"state"`
	CaughtUp   bool          `json:"caught_up"`
	Clusters   int           `json:"clusters"`
	StoreIndex uint64        `json:"store_index"`
	Stores     []storeStatus `json:"stores"`
	Sweep      *struct {
		Leading     bool          `json:"leading"`
		Datacenters []storeStatus `json:"datacenters"`
	} `json:"sweep"`
}

type storeStatus struct {
	Store     string               `json:"store"`
	Applied   uint64               `json:"applied_epoch"`
	Backlog   int                  `json:"backlog"`
	Written   uint64               `json:"written"`
	Unchanged uint64               `json:"unchanged"`
	Failed    uint64               `json:"failed"`
	LastError string               `json:"last_error"`
	LastSweep *publish.SweepReport `json:"last_sweep"`
}

func (s nodeStatus) sweepDCs() []storeStatus {
	if s.Sweep == nil {
		return nil
	}
	return s.Sweep.Datacenters
}

func (n *sweepNode) getJSON(path string, v any) error {
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

func (n *sweepNode) post(b *testing.B, path string, body []byte) []byte {
	b.Helper()
	resp, err := n.http.Post(n.url+path, "application/json", bytes.NewReader(body))
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

// benchMaster is cluster i's master.
func benchMaster(i int) (alias, host string) {
	return fmt.Sprintf("c%05d", i), fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)
}

// populate loads clusters with POST /v1/populate, as many per request as
// fit the body limit (9 requests for 10,000).
func (n *sweepNode) populate(b *testing.B, clusters int) {
	b.Helper()
	type entry struct {
		Cluster string `json:"cluster"`
		Host    string `json:"host"`
		Port    int    `json:"port"`
	}
	send := func(batch []entry) {
		body, _ := json.Marshal(map[string]any{"masters": batch})
		var res struct{ Checked, Submitted int }
		if err := json.Unmarshal(n.post(b, "/v1/populate", body), &res); err != nil {
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
		s := len(alias) + len(host) + 40
		if size+s > httpapi.MaxBodyBytes-1024 {
			send(batch)
			batch, size = nil, 20
		}
		batch, size = append(batch, entry{alias, host, 3306}), size+s
	}
	send(batch)
}

// records returns every pair of the node's records, by key, after
// checking each record's master against what was populated.
func (n *sweepNode) records(b *testing.B) map[string]string {
	b.Helper()
	var res struct {
		Masters []struct {
			Cluster string             `json:"cluster"`
			Master  string             `json:"master"`
			Pairs   []discovery.KVPair `json:"pairs"`
		} `json:"masters"`
	}
	if err := n.getJSON("/v1/masters", &res); err != nil {
		b.Fatal(err)
	}
	if len(res.Masters) != benchClusters {
		b.Fatalf("node holds %d clusters, want %d", len(res.Masters), benchClusters)
	}
	want := make(map[string]string, benchKeys)
	for _, m := range res.Masters {
		i, err := strconv.Atoi(strings.TrimPrefix(m.Cluster, "c"))
		if err != nil {
			b.Fatalf("cluster %q", m.Cluster)
		}
		if _, host := benchMaster(i); m.Master != host+":3306" || len(m.Pairs) != benchKeysPerCluster {
			b.Fatalf("cluster %s: master %s with %d pairs, want %s:3306 with %d", m.Cluster, m.Master, len(m.Pairs), host, benchKeysPerCluster)
		}
		for _, p := range m.Pairs {
			want[p.Key] = p.Value
		}
	}
	return want
}

// statusSample is /v1/status at a moment.
type statusSample struct {
	at time.Time
	st nodeStatus
}

type statusRecorder struct {
	mu      sync.Mutex
	samples []statusSample
	done    chan struct{}
	stopped chan struct{}
}

// record polls /v1/status every interval until stop.
func (n *sweepNode) record(interval time.Duration) *statusRecorder {
	r := &statusRecorder{done: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(r.stopped)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-r.done:
				return
			case <-tick.C:
			}
			var st nodeStatus
			if n.getJSON("/v1/status", &st) == nil {
				r.mu.Lock()
				r.samples = append(r.samples, statusSample{time.Now(), st})
				r.mu.Unlock()
			}
		}
	}()
	return r
}

func (r *statusRecorder) stop() []statusSample {
	close(r.done)
	<-r.stopped
	return r.samples
}

// procKB reads a "Vm..." line of the node's /proc status, in kB.
func (n *sweepNode) procKB(b *testing.B, field string) int64 {
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

// benchVerify lists the prefix in one datacenter and compares every key.
func benchVerify(b *testing.B, c *api.Client, dc string, want map[string]string) {
	b.Helper()
	pairs, _, err := c.KV().List(benchPrefix, nil)
	if err != nil {
		b.Fatalf("list %s in %s: %v", benchPrefix, dc, err)
	}
	if len(pairs) != len(want) {
		b.Fatalf("%s holds %d keys under %s, want %d", dc, len(pairs), benchPrefix, len(want))
	}
	for _, p := range pairs {
		if v, ok := want[p.Key]; !ok || v != string(p.Value) {
			b.Fatalf("%s: %s = %q, want %q (known %v)", dc, p.Key, p.Value, v, ok)
		}
	}
}

// ---------------------------------------------------------------------------
// Floors

// floorAllDCs writes want under prefix into every client's datacenter at
// once (floorWrite each) and returns how long the slowest took.
func floorAllDCs(b *testing.B, clients []*api.Client, prefix string, want map[string]string) time.Duration {
	b.Helper()
	keys := sortedKeys(want)
	const opsPerTxn = 10 * benchKeysPerCluster
	var txns []api.TxnOps
	for i := 0; i < len(keys); i += opsPerTxn {
		var ops api.TxnOps
		for _, k := range keys[i:min(i+opsPerTxn, len(keys))] {
			ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVSet, Key: prefix + k, Value: []byte(want[k])}})
		}
		txns = append(txns, ops)
	}
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	t0 := time.Now()
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = runTxns(c, txns, false)
		}()
	}
	wg.Wait()
	took := time.Since(t0)
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	for i, c := range clients {
		got, _, err := c.KV().Keys(prefix, "", nil)
		if err != nil || len(got) != len(want) {
			b.Fatalf("floor prefix %s in datacenter %d holds %d keys (err %v), want %d", prefix, i+1, len(got), err, len(want))
		}
	}
	return took
}

// readFloorAllDCs reads every cluster of want the way a steady pass does
// (a get of the main key and a get-tree below it, 32 clusters per
// transaction, 8 in flight) in every client's datacenter at once, and
// returns how long the slowest took.
func readFloorAllDCs(b *testing.B, clients []*api.Client, want map[string]string) time.Duration {
	b.Helper()
	var mains []string
	for k := range want {
		if strings.Count(k, "/") == strings.Count(benchPrefix, "/") {
			mains = append(mains, k)
		}
	}
	slices.Sort(mains)
	if len(mains) != benchClusters {
		b.Fatalf("%d main keys, want %d", len(mains), benchClusters)
	}
	var txns []api.TxnOps
	for i := 0; i < len(mains); i += 32 {
		var ops api.TxnOps
		for _, k := range mains[i:min(i+32, len(mains))] {
			ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVGet, Key: k}}, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVGetTree, Key: k + "/"}})
		}
		txns = append(txns, ops)
	}
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	t0 := time.Now()
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = runTxns(c, txns, true)
		}()
	}
	wg.Wait()
	took := time.Since(t0)
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	return took
}

// runTxns sends txns, 8 in flight. Reads must return 6 keys per cluster.
func runTxns(c *api.Client, txns []api.TxnOps, read bool) error {
	work := make(chan api.TxnOps)
	errc := make(chan error, len(txns))
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ops := range work {
				ok, resp, _, err := c.Txn().Txn(ops, nil)
				switch {
				case err != nil || !ok:
					errc <- fmt.Errorf("floor txn: ok=%v err=%v resp=%+v", ok, err, resp)
				case read && len(resp.Results) != len(ops)/2*benchKeysPerCluster:
					errc <- fmt.Errorf("floor read txn returned %d keys, want %d", len(resp.Results), len(ops)/2*benchKeysPerCluster)
				}
			}
		}()
	}
	for _, ops := range txns {
		work <- ops
	}
	close(work)
	wg.Wait()
	close(errc)
	return <-errc
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys) // a cluster's six keys are adjacent
	return keys
}

func benchMean(ds []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(max(len(ds), 1))
}
