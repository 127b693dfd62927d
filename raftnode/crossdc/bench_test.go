package crossdc_test

import (
	"bytes"
	"cmp"
	"context"
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

	"github.com/masterkv/masterkv/internal/consulkv"
	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/internal/testserver"
	"github.com/masterkv/masterkv/raftnode/httpapi"
	"github.com/masterkv/masterkv/raftnode/publish"
)

// Benchmarks of the cross-datacenter distribution on a real raftnode process and
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

// sweepInterval is benchSweepInterval, or BENCH_SWEEP_INTERVAL for a
// diagnostic run of the first distribution without passes.
func sweepInterval() string {
	if v := os.Getenv("BENCH_SWEEP_INTERVAL"); v != "" {
		return v
	}
	return benchSweepInterval.String()
}

// benchPrefix is the node's key prefix (the default) with its slash.
const benchPrefix = discovery.DefaultPrefix + "/"

// ---------------------------------------------------------------------------
// BenchmarkSweepFirstDistribution10k

// BenchmarkSweepFirstDistribution10k runs a real single-node raftnode
// process with the cross-datacenter distribution on (consul-txn, 64 ops per
// transaction, 5 s interval) against three WAN-joined datacenters, its
// agent being dc1's. It loads 10,000 clusters with /v1/populate and times
// from the first populate request until all 60,000 keys are in every
// datacenter. The node's own publisher and the distributor both write dc1.
//
// When a datacenter held every key is found without loading it: every
// 20 ms each datacenter's agent is asked for a key that does not exist,
// which answers with the KV table's raft index (X-Consul-Index). The run
// ends when /v1/status shows every publisher of the node confirmed every
// cluster; then every key of every datacenter is listed and compared with
// the node's records, and the largest ModifyIndex among them is the write
// that completed the datacenter: the first probe that saw that index gives
// its time (at most one probe interval late).
//
// Floor, in the same iteration on the same agents once the node is
// stopped: the same 60,000 keys written under a fresh prefix into each
// datacenter through its own agent, in transactions of 60 sets (10
// clusters), 8 in flight per datacenter, the three datacenters at once.
// An informative second floor sends the same transactions for all three
// datacenters through dc1's agent (?dc=), as the distributor does.
func BenchmarkSweepFirstDistribution10k(b *testing.B) {
	dcs := benchWAN(b)
	bin := buildRaftnode(b)
	direct := make([]*api.Client, len(dcs)) // each datacenter's own agent
	via := make([]*api.Client, len(dcs))    // dc1's agent with ?dc=
	for i, c := range dcs {
		direct[i] = newBenchClient(b, c.Addr(), "")
		via[i] = newBenchClient(b, dcs[0].Addr(), c.Datacenter)
	}

	var total, populate, confirmed, floor, floorVia []time.Duration
	var nodeDone [3][]time.Duration // consul (the node's own, dc1), consul:dc2, consul:dc3
	var present [3][]time.Duration
	var hwm, rss, heap, liveHeap, mastersHWM []int64
	var passes []int
	var cpuRun, cpuFloor, cpuFloorVia []cpuUse
	round := 0
	for b.Loop() {
		round++
		for i, c := range direct {
			benchDeleteTree(b, c, benchPrefix, dcs[i].Datacenter)
		}
		addr := dcs[0].Addr()
		var rec *recorder
		if os.Getenv("BENCH_FIRST_PROXY") == "1" {
			// Diagnostic: count the node's transactions and connections.
			rec = newRecorder(b, addr)
			addr = rec.addr
		}
		n := startSweepNode(b, bin, addr)

		probe := probeIndexes(direct, 20*time.Millisecond)
		st := n.record(50 * time.Millisecond)
		c0 := takeCPU(b, n)
		t0 := time.Now()
		n.populate(b, benchClusters)
		populated := time.Since(t0)
		var after nodeStatus
		if err := n.getJSON("/v1/status", &after); err != nil || after.Clusters != benchClusters {
			b.Fatalf("after populate: %d clusters (%v)", after.Clusters, err)
		}
		samples := st.waitConfirmed(b, after.StoreIndex, 5*time.Minute)
		tConfirmed := time.Since(t0)
		cpuRun = append(cpuRun, takeCPU(b, n).sub(c0))
		probes := probe.stop()
		// Memory before the checks below ask the node for its records.
		h, r := n.procKB(b, "VmHWM"), n.procKB(b, "VmRSS")
		logEnd := n.logSize()

		// Check every key of every datacenter against the node's records,
		// and find when each datacenter was complete.
		if rec != nil {
			b.Logf("round %d: requests through the proxy (read txns/write txns/listings) %v; %d other requests; %d connections opened", round, rec.snapshot(), rec.other.Load(), rec.conns.Load())
		}
		pairs := n.records(b)
		mastersHWM = append(mastersHWM, n.procKB(b, "VmHWM"))
		var last time.Duration
		for i, c := range direct {
			idx := benchVerify(b, c, dcs[i].Datacenter, pairs)
			at, ok := probes.firstAt(i, idx)
			if !ok {
				b.Fatalf("%s: no probe saw index %d", dcs[i].Datacenter, idx)
			}
			present[i] = append(present[i], at.Sub(t0))
			last = max(last, at.Sub(t0))
		}
		b.Logf("round %d node metrics: %s", round, n.storeMetrics(b))
		n.stop()
		if hp, live := n.gcPeakHeap(b, logEnd); hp > 0 {
			heap, liveHeap = append(heap, hp), append(liveHeap, live)
		}
		done, started := nodeDoneTimes(samples, t0, after.StoreIndex)

		// The floors, on idle agents.
		f0 := takeCPU(b, nil)
		floor = append(floor, floorAllDCs(b, direct, fmt.Sprintf("bench-floor-%d/", round), pairs))
		f1 := takeCPU(b, nil)
		floorVia = append(floorVia, floorAllDCs(b, via, fmt.Sprintf("bench-floor-via-%d/", round), pairs))
		cpuFloor, cpuFloorVia = append(cpuFloor, f1.sub(f0)), append(cpuFloorVia, takeCPU(b, nil).sub(f1))
		for i, c := range direct {
			benchDeleteTree(b, c, fmt.Sprintf("bench-floor-%d/", round), dcs[i].Datacenter)
			benchDeleteTree(b, c, fmt.Sprintf("bench-floor-via-%d/", round), dcs[i].Datacenter)
		}

		total = append(total, last)
		populate = append(populate, populated)
		confirmed = append(confirmed, tConfirmed)
		for i := range nodeDone {
			nodeDone[i] = append(nodeDone[i], done[i])
		}
		passes = append(passes, started)
		hwm, rss = append(hwm, h), append(rss, r)
		b.Logf("round %d: every key in 3 datacenters after %s (dc1 %s, dc2 %s, dc3 %s); populate %s; node confirmed all %s (own dc1 %s, sweep dc2 %s dc3 %s); %d sweep passes started; peak RSS %d MB",
			round, last.Round(time.Millisecond), present[0][round-1].Round(time.Millisecond), present[1][round-1].Round(time.Millisecond), present[2][round-1].Round(time.Millisecond),
			populated.Round(time.Millisecond), tConfirmed.Round(time.Millisecond),
			done[0].Round(time.Millisecond), done[1].Round(time.Millisecond), done[2].Round(time.Millisecond), started, h>>10)
		b.Logf("round %d: floor %s, via dc1 %s; CPU seconds run %v, floor %v, floor via dc1 %v",
			round, floor[round-1].Round(time.Millisecond), floorVia[round-1].Round(time.Millisecond), cpuRun[round-1], cpuFloor[round-1], cpuFloorVia[round-1])
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
	b.ReportMetric(benchMean(confirmed).Seconds(), "node-confirmed-s")
	for i, name := range []string{"dc1", "dc2", "dc3"} {
		b.ReportMetric(benchMean(nodeDone[i]).Seconds(), "node-"+name+"-done-s")
	}
	b.ReportMetric(benchMean(floorVia).Seconds(), "floor-via-dc1-s")
	b.ReportMetric(s.Seconds()/benchMean(floorVia).Seconds(), "ratio-via-dc1")
	b.ReportMetric(float64(slices.Max(passes)), "sweep-passes")
	b.ReportMetric(float64(slices.Max(rss))/1024, "end-rss-MB")
	// The node's peak after the benchmark's GET /v1/masters of 10,000
	// records, for comparison (not part of the distribution).
	b.ReportMetric(float64(slices.Max(mastersHWM))/1024, "after-get-masters-peak-rss-MB")
	if len(heap) > 0 {
		b.ReportMetric(float64(slices.Max(heap))/(1<<20), "gc-peak-heap-MB")
		b.ReportMetric(float64(slices.Max(liveHeap))/(1<<20), "gc-peak-live-MB")
	}
	run, fl, fv := meanCPU(cpuRun), meanCPU(cpuFloor), meanCPU(cpuFloorVia)
	b.ReportMetric(run.node, "node-cpu-s")
	b.ReportMetric(run.consul, "consul-cpu-s")
	b.ReportMetric(run.machine, "machine-cpu-s")
	b.ReportMetric(run.bench, "bench-cpu-s")
	b.ReportMetric(fl.consul, "floor-consul-cpu-s")
	b.ReportMetric(fl.machine, "floor-machine-cpu-s")
	b.ReportMetric(fv.consul, "floor-via-consul-cpu-s")
	b.Logf("first distribution %.2f s, floor %.2f s, ratio %.2f (target 1.5); peak RSS %.1f MB (target 100)",
		s.Seconds(), f.Seconds(), s.Seconds()/f.Seconds(), float64(slices.Max(hwm))/1024)
}

// indexProbe asks each datacenter's agent for a missing key every
// interval and records the KV index it answers with.
type indexProbe struct {
	mu      sync.Mutex
	samples [][]indexSample
	done    chan struct{}
	wg      sync.WaitGroup
}

type indexSample struct {
	at    time.Time
	index uint64
}

func probeIndexes(clients []*api.Client, interval time.Duration) *indexProbe {
	p := &indexProbe{samples: make([][]indexSample, len(clients)), done: make(chan struct{})}
	for i, c := range clients {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				_, meta, err := c.KV().Get("bench-probe/missing", nil)
				at := time.Now()
				if err == nil {
					p.mu.Lock()
					p.samples[i] = append(p.samples[i], indexSample{at, meta.LastIndex})
					p.mu.Unlock()
				}
				select {
				case <-p.done:
					return
				case <-tick.C:
				}
			}
		}()
	}
	return p
}

func (p *indexProbe) stop() *indexProbe {
	close(p.done)
	p.wg.Wait()
	return p
}

// firstAt is when datacenter i was first seen at index or later.
func (p *indexProbe) firstAt(i int, index uint64) (time.Time, bool) {
	for _, s := range p.samples[i] {
		if s.index >= index {
			return s.at, true
		}
	}
	return time.Time{}, false
}

// waitConfirmed waits until a status sample shows every Consul publisher
// of the node (its own, listed twice: under stores and as the distributor's
// local dc1, and the distributor's dc2 and dc3) confirmed every cluster at
// final, stops recording and returns the samples.
func (r *statusRecorder) waitConfirmed(b *testing.B, final uint64, timeout time.Duration) []statusSample {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r.mu.Lock()
		var last nodeStatus
		if len(r.samples) > 0 {
			last = r.samples[len(r.samples)-1].st
		}
		r.mu.Unlock()
		all := append(slices.Clone(last.Stores), last.sweepDCs()...)
		ok := len(all) == 4
		for _, s := range all {
			ok = ok && confirmedAll(last, s, final)
		}
		if ok {
			return r.stop()
		}
		if time.Now().After(deadline) {
			r.stop()
			b.Fatalf("publishers did not confirm %d clusters within %s: %+v", benchClusters, timeout, all)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// confirmedAll: the store confirmed every cluster of a node whose last
// command is final.
func confirmedAll(n nodeStatus, s storeStatus, final uint64) bool {
	return n.Clusters == benchClusters && n.StoreIndex == final && s.Applied >= final && s.Backlog == 0
}

// nodeDoneTimes reads, from status samples taken during the distribution,
// when each of the node's Consul publishers (its own, which writes dc1,
// then the distributor's dc2 and dc3) had confirmed every cluster, and how many
// sweep passes over a non-empty store completed meanwhile, summed over the
// three datacenters. A pass sends the clusters it finds different to the
// write path, so a pass started near the end can delay "confirmed" past
// the moment the keys were present.
func nodeDoneTimes(samples []statusSample, t0 time.Time, final uint64) ([3]time.Duration, int) {
	var done [3]time.Duration
	names := []string{"consul", "consul:dc2", "consul:dc3"}
	starts := map[time.Time]bool{}
	for _, s := range samples {
		for _, st := range append(slices.Clone(s.st.Stores), s.st.sweepDCs()...) {
			if st.LastSweep != nil && st.LastSweep.Clusters > 0 {
				starts[st.LastSweep.At] = true
			}
			if k := slices.Index(names, st.Store); k >= 0 && done[k] == 0 && confirmedAll(s.st, st, final) {
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
// same passes without it. The reported peak RSS covers the whole run
// (first distribution and passes).
//
// Floor (informative; the target is absolute): the pass's reads issued by
// the benchmark itself through dc1's agent once the node is stopped: per
// datacenter, read transactions of a get and a get-tree for each of 32
// clusters, 8 in flight, the three datacenters at once. Also the same
// reads into each datacenter's own agent, into dc1 alone, and one
// recursive GET of the whole prefix per datacenter through dc1's agent.
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
	st := n.record(50 * time.Millisecond)
	t0 := time.Now()
	n.populate(b, benchClusters)
	var after nodeStatus
	if err := n.getJSON("/v1/status", &after); err != nil || after.Clusters != benchClusters {
		b.Fatalf("after populate: %d clusters (%v)", after.Clusters, err)
	}
	st.waitConfirmed(b, after.StoreIndex, 5*time.Minute)
	settled := time.Now()
	b.Logf("first distribution %s", settled.Sub(t0).Round(time.Millisecond))
	// The first pass that started after the distribution is the warm-up:
	// it is the first to find every cluster in place.
	prev := n.waitPass(b, settled, 2*benchSweepInterval+time.Minute)
	checkSteadyPass(b, prev)

	var worst []time.Duration
	var perDC [3][]time.Duration
	var read, written []int
	var reads, writes, lists map[string][]int
	var cpu []cpuUse // per interval: one pass per datacenter, then idle
	if rec != nil {
		reads, writes, lists = map[string][]int{}, map[string][]int{}, map[string][]int{}
	}
	for b.Loop() {
		var before map[string]txnCount
		if rec != nil {
			before = rec.snapshot()
		}
		c0 := takeCPU(b, n)
		after := prev[0].LastSweep.At
		for _, d := range prev {
			if d.LastSweep.At.After(after) {
				after = d.LastSweep.At
			}
		}
		cur := n.waitPass(b, after.Add(time.Nanosecond), 2*benchSweepInterval+time.Minute)
		checkSteadyPass(b, cur)
		cpu = append(cpu, takeCPU(b, n).sub(c0))
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
				lists[dc] = append(lists[dc], c.list)
				if c.write != 0 {
					b.Errorf("steady-state pass: %d write transactions into %q, want 0", c.write, dc)
				}
			}
			b.Logf("pass: max %s (dc1 %s, dc2 %s, dc3 %s); CPU s %v; requests through the proxy (read txns/write txns/listings) %v",
				w.Round(time.Millisecond), cur[0].LastSweep.Duration.Round(time.Millisecond), cur[1].LastSweep.Duration.Round(time.Millisecond),
				cur[2].LastSweep.Duration.Round(time.Millisecond), cpu[len(cpu)-1], delta)
		} else {
			b.Logf("pass: max %s (dc1 %s, dc2 %s, dc3 %s); CPU s %v", w.Round(time.Millisecond), cur[0].LastSweep.Duration.Round(time.Millisecond),
				cur[1].LastSweep.Duration.Round(time.Millisecond), cur[2].LastSweep.Duration.Round(time.Millisecond), cpu[len(cpu)-1])
		}
		prev = cur
	}
	// The peak of the whole run (first distribution and passes), read
	// before GET /v1/masters below.
	h := n.procKB(b, "VmHWM")
	pairs, clusters := n.clusters(b)
	for i, c := range direct {
		benchVerify(b, c, dcs[i].Datacenter, pairs)
	}
	n.stop()
	via := make([]*api.Client, len(dcs))
	for i, c := range dcs {
		via[i] = newBenchClient(b, dcs[0].Addr(), c.Datacenter)
	}
	r0 := takeCPU(b, nil)
	readFloor := readFloorAllDCs(b, via, pairs)
	r1 := takeCPU(b, nil)
	// The store layer alone: consulkv writing the unchanged clusters into
	// every datacenter through dc1's agent, in batches of 1,000, as the
	// sweep's publishers hand them over (each store reads, compares and
	// finds nothing to write).
	storePass := storePassAllDCs(b, dcs, clusters)
	r2 := takeCPU(b, nil)
	readCPU, storeCPU := r1.sub(r0), r2.sub(r1)
	// Informative: the same reads into each datacenter's own agent, into
	// dc1 alone, and one recursive GET of the prefix per datacenter
	// through dc1's agent.
	readDirect := readFloorAllDCs(b, direct, pairs)
	readOne := readFloorAllDCs(b, direct[:1], pairs)
	readList := listFloorAllDCs(b, via)

	b.ReportMetric(benchMean(worst).Seconds(), "pass-s")
	b.ReportMetric(slices.Max(worst).Seconds(), "pass-max-s")
	for i, name := range []string{"dc1", "dc2", "dc3"} {
		b.ReportMetric(benchMean(perDC[i]).Seconds(), name+"-pass-s")
	}
	b.ReportMetric(float64(slices.Max(written)), "keys-written")
	b.ReportMetric(float64(slices.Min(read)), "keys-read-per-dc")
	b.ReportMetric(readFloor.Seconds(), "read-floor-s")
	b.ReportMetric(benchMean(worst).Seconds()/readFloor.Seconds(), "ratio-to-read-floor")
	b.ReportMetric(readCPU.bench, "read-floor-client-cpu-s")
	b.ReportMetric(readCPU.consul, "read-floor-consul-cpu-s")
	b.ReportMetric(storePass.Seconds(), "consulkv-pass-s")
	b.ReportMetric(storeCPU.bench, "consulkv-pass-client-cpu-s")
	b.ReportMetric(storeCPU.consul, "consulkv-pass-consul-cpu-s")
	b.ReportMetric(readDirect.Seconds(), "read-floor-direct-s")
	b.ReportMetric(readOne.Seconds(), "read-floor-dc1-only-s")
	b.ReportMetric(readList.Seconds(), "list-floor-s")
	b.ReportMetric(float64(h)/1024, "peak-rss-MB")
	c := meanCPU(cpu)
	b.ReportMetric(c.node, "node-cpu-s")
	b.ReportMetric(c.consul, "consul-cpu-s")
	b.ReportMetric(c.machine, "machine-cpu-s")
	if rec != nil {
		// dc1 is written by the node's own publisher, which sends no ?dc=;
		// the distributor's dc1 publisher would show as "dc1" and must be idle.
		for _, dc := range []string{"", "dc2", "dc3"} {
			name := cmp.Or(dc, "dc1")
			b.ReportMetric(float64(slices.Max(writes[dc])), name+"-write-txns")
			b.ReportMetric(float64(slices.Max(reads[dc])), name+"-read-txns")
			b.ReportMetric(float64(slices.Max(lists[dc])), name+"-listings")
		}
		b.ReportMetric(float64(slices.Max(writes["dc1"])+slices.Max(reads["dc1"])+slices.Max(lists["dc1"])), "sweep-dc1-requests")
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
	conns  atomic.Int64 // connections the node opened
}

// txnCount counts read and write transactions and recursive listings.
type txnCount struct{ read, write, list int }

func (c txnCount) String() string { return fmt.Sprintf("%d/%d/%d", c.read, c.write, c.list) }

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
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/v1/txn" {
			body, err := io.ReadAll(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			req.Body = io.NopCloser(bytes.NewReader(body))
			r.count(req.URL.Query().Get("dc"), body)
		} else if strings.HasPrefix(req.URL.Path, "/v1/kv/") && req.URL.Query().Has("recurse") && req.Method == http.MethodGet {
			r.countList(req.URL.Query().Get("dc"))
		} else {
			r.other.Add(1)
		}
		proxy.ServeHTTP(w, req)
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			r.conns.Add(1)
		}
	}
	srv.Start()
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

func (r *recorder) countList(dc string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.counts[dc]
	c.list++
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
		out[dc] = txnCount{c.read - s[dc].read, c.write - s[dc].write, c.list - s[dc].list}
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
		"MASTERKV_CONSUL_SWEEP_INTERVAL="+sweepInterval(),
		// A drift check reads every cluster back; it would overlap the
		// measured passes.
		"MASTERKV_DRIFT_CHECK_INTERVAL=0",
	)
	if os.Getenv("BENCH_NODE_GCTRACE") == "1" {
		// Diagnostic: the node's GC trace, for gcPeakHeap.
		cmd.Env = append(cmd.Env, "GODEBUG=gctrace=1")
	}
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
		// Also wait for the group's one survey of the stores (its rebase
		// entry): committed in the middle of the populate it would be the
		// last entry, and no store epoch ever reaches a rebase that changed
		// nothing.
		if err := n.getJSON("/v1/status", &st); err == nil && st.State == "Leader" && st.CaughtUp && st.Generation.Index > 0 && st.Sweep != nil && len(st.Sweep.Datacenters) == 3 {
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
	State      string `json:"state"`
	CaughtUp   bool   `json:"caught_up"`
	Clusters   int    `json:"clusters"`
	StoreIndex uint64 `json:"store_index"`
	Generation struct {
		Index uint64 `json:"index"` // of the last rebase; 0 before the first survey
	} `json:"generation"`
	Stores []storeStatus `json:"stores"`
	Sweep  *struct {
		Leading     bool          `json:"leading"`
		Datacenters []storeStatus `json:"datacenters"`
	} `json:"cross_datacenter"`
}

type storeStatus struct {
	Store      string               `json:"store"`
	Datacenter string               `json:"datacenter"` // in the distributor section
	Local      bool                 `json:"local"`      // the node's own publisher`
	Applied    uint64               `json:"applied_epoch"`
	Backlog    int                  `json:"backlog"`
	Written    uint64               `json:"written"`
	Unchanged  uint64               `json:"unchanged"`
	Failed     uint64               `json:"failed"`
	LastError  string               `json:"last_error"`
	LastSweep  *publish.SweepReport `json:"last_sweep"`
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
	want, _ := n.clusters(b)
	return want
}

// clusters is records, plus the records as the publishers hand them to
// a store.
func (n *sweepNode) clusters(b *testing.B) (map[string]string, []kvstore.Cluster) {
	b.Helper()
	var res struct {
		Masters []struct {
			Cluster string             `json:"cluster"`
			Master  string             `json:"master"`
			Host    string             `json:"host"`
			Port    int                `json:"port"`
			IPv4    string             `json:"ipv4"`
			IPv6    string             `json:"ipv6"`
			Epoch   uint64             `json:"epoch"`
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
	var clusters []kvstore.Cluster
	layout := discovery.NewLayout(discovery.DefaultPrefix, true)
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
		c := kvstore.NewCluster(layout, m.Cluster, master.Master{Host: m.Host, Port: m.Port, IPv4: m.IPv4, IPv6: m.IPv6}, m.Epoch)
		if !slices.Equal(c.Pairs, m.Pairs) {
			b.Fatalf("cluster %s: pairs %v, node has %v", m.Cluster, c.Pairs, m.Pairs)
		}
		clusters = append(clusters, c)
	}
	return want, clusters
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

// benchVerify lists the prefix in one datacenter, compares every key and
// returns the largest ModifyIndex among them.
func benchVerify(b *testing.B, c *api.Client, dc string, want map[string]string) uint64 {
	b.Helper()
	pairs, _, err := c.KV().List(benchPrefix, nil)
	if err != nil {
		b.Fatalf("list %s in %s: %v", benchPrefix, dc, err)
	}
	if len(pairs) != len(want) {
		b.Fatalf("%s holds %d keys under %s, want %d", dc, len(pairs), benchPrefix, len(want))
	}
	var idx uint64
	for _, p := range pairs {
		if v, ok := want[p.Key]; !ok || v != string(p.Value) {
			b.Fatalf("%s: %s = %q, want %q (known %v)", dc, p.Key, p.Value, v, ok)
		}
		idx = max(idx, p.ModifyIndex)
	}
	return idx
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
	took := allAtOnce(b, len(clients), func(i int) error { return runTxns(clients[i], txns, false) })
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
// consistent read transaction, 8 in flight) in every client's datacenter
// at once, and returns how long the slowest took.
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
	return allAtOnce(b, len(clients), func(i int) error { return runTxns(clients[i], txns, true) })
}

// storePassAllDCs runs, for every datacenter at once, what a sweep pass
// asks of the store: consulkv (consul-txn, 64 ops, through dc1's agent
// with ?dc=) surveys every cluster in one Survey, as a pass does. Every
// cluster must come back exact.
func storePassAllDCs(b *testing.B, dcs []*testserver.Consul, clusters []kvstore.Cluster) time.Duration {
	b.Helper()
	cs, err := consulkv.New(consulkv.Config{Address: dcs[0].Addr(), Provider: consulkv.ProviderTxn, MaxOpsPerTxn: 64})
	if err != nil {
		b.Fatal(err)
	}
	return allAtOnce(b, len(dcs), func(i int) error {
		same, err := cs.ForDatacenter(dcs[i].Datacenter).Survey(context.Background(), clusters)
		if err != nil {
			return err
		}
		if k := slices.Index(same, false); k >= 0 {
			return fmt.Errorf("%s: cluster %s differs", dcs[i].Datacenter, clusters[k].Alias)
		}
		return nil
	})
}

// listFloorAllDCs lists the prefix recursively (consistent) in every
// client's datacenter at once and returns how long the slowest took.
func listFloorAllDCs(b *testing.B, clients []*api.Client) time.Duration {
	b.Helper()
	return allAtOnce(b, len(clients), func(i int) error {
		pairs, _, err := clients[i].KV().List(benchPrefix, consistent)
		if err == nil && len(pairs) != benchKeys {
			err = fmt.Errorf("list returned %d keys, want %d", len(pairs), benchKeys)
		}
		return err
	})
}

// allAtOnce runs fn for every datacenter i in [0,n) at the same time and
// returns how long the slowest took; any error fails the benchmark.
func allAtOnce(b *testing.B, n int, fn func(i int) error) time.Duration {
	b.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	took := time.Since(t0)
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	return took
}

// consistent is how consulkv reads: ?consistent.
var consistent = &api.QueryOptions{RequireConsistent: true}

// runTxns sends txns, 8 in flight. Reads are consistent, as consulkv's,
// and must return 6 keys per cluster.
func runTxns(c *api.Client, txns []api.TxnOps, read bool) error {
	work := make(chan api.TxnOps)
	errc := make(chan error, len(txns))
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ops := range work {
				var q *api.QueryOptions
				if read {
					q = consistent // as consulkv reads
				}
				ok, resp, _, err := c.Txn().Txn(ops, q)
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

// ---------------------------------------------------------------------------
// Where the time goes

// cpuUse is CPU time in seconds: the node's, the Consul agents' (children
// of this process), this process's, and the whole machine's busy time.
type cpuUse struct{ node, consul, bench, machine float64 }

func (c cpuUse) sub(o cpuUse) cpuUse {
	return cpuUse{c.node - o.node, c.consul - o.consul, c.bench - o.bench, c.machine - o.machine}
}

func (c cpuUse) String() string {
	return fmt.Sprintf("node %.1f consul %.1f bench %.1f machine %.1f", c.node, c.consul, c.bench, c.machine)
}

func meanCPU(cs []cpuUse) cpuUse {
	var m cpuUse
	for _, c := range cs {
		m.node, m.consul, m.bench, m.machine = m.node+c.node, m.consul+c.consul, m.bench+c.bench, m.machine+c.machine
	}
	k := float64(max(len(cs), 1))
	return cpuUse{m.node / k, m.consul / k, m.bench / k, m.machine / k}
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// takeCPU reads /proc; n may be nil.
func takeCPU(b *testing.B, n *sweepNode) cpuUse {
	b.Helper()
	var c cpuUse
	if n != nil {
		c.node = procCPU(n.cmd.Process.Pid)
	}
	c.bench = procCPU(os.Getpid())
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatalf("read /proc: %v", err)
	}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if comm, ppid, ok := procParent(pid); ok && ppid == os.Getpid() && comm == "consul" {
			c.consul += procCPU(pid)
		}
	}
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatalf("read /proc/stat: %v", err)
	}
	line, _, _ := strings.Cut(string(stat), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal
	for i, v := range f[1:min(len(f), 9)] {
		if i == 3 || i == 4 {
			continue // idle, iowait
		}
		t, _ := strconv.ParseFloat(v, 64)
		c.machine += t / clockTicks
	}
	return c
}

// procStat returns the fields of /proc/pid/stat after the command name.
func procStat(pid int) (comm string, rest []string, ok bool) {
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", nil, false
	}
	lo, hi := bytes.IndexByte(s, '('), bytes.LastIndexByte(s, ')')
	if lo < 0 || hi < lo {
		return "", nil, false
	}
	return string(s[lo+1 : hi]), strings.Fields(string(s[hi+1:])), true
}

func procParent(pid int) (string, int, bool) {
	comm, rest, ok := procStat(pid)
	if !ok || len(rest) < 2 {
		return "", 0, false
	}
	ppid, err := strconv.Atoi(rest[1])
	return comm, ppid, err == nil
}

// procCPU is utime+stime of pid in seconds.
func procCPU(pid int) float64 {
	_, rest, ok := procStat(pid)
	if !ok || len(rest) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(rest[11], 64)
	s, _ := strconv.ParseFloat(rest[12], 64)
	return (u + s) / clockTicks
}

// storeMetrics returns the node's per-store lines of /metrics: outcomes,
// keys written and the time spent in batch writes.
func (n *sweepNode) storeMetrics(b *testing.B) string {
	b.Helper()
	resp, err := n.http.Get(n.url + "/metrics")
	if err != nil {
		b.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(body), "\n") {
		for _, p := range []string{"masterkv_store_clusters_total{", "masterkv_store_write_seconds_sum{", "masterkv_store_write_seconds_count{", "go_gc_duration_seconds_count"} {
			if strings.HasPrefix(line, p) {
				line = strings.NewReplacer("masterkv_store_", "", "_total", "", "go_gc_duration_seconds_count", "gcs", `status=`, "", `store=`, "", `"`, "").Replace(line)
				out = append(out, line)
			}
		}
	}
	return strings.Join(out, "; ")
}

// gcPeakHeap reads the node's GC trace (BENCH_NODE_GCTRACE=1) up to byte
// end of its log: the largest heap at the start of a GC and the largest
// live heap after one, in bytes; 0 without a trace.
func (n *sweepNode) gcPeakHeap(b *testing.B, end int64) (peak, live int64) {
	b.Helper()
	log, err := os.ReadFile(n.logPath)
	if err != nil {
		return 0, 0
	}
	log = log[:min(int64(len(log)), end)]
	for _, line := range strings.Split(string(log), "\n") {
		// gc 12 @1.2s 3%: ... ms cpu, 40->42->20 MB, 44 MB goal, ...
		if !strings.HasPrefix(line, "gc ") {
			continue
		}
		for _, part := range strings.Split(line, ", ") {
			if heaps, ok := strings.CutSuffix(part, " MB"); ok && strings.Count(heaps, "->") == 2 {
				f := strings.Split(heaps, "->")
				start, _ := strconv.ParseInt(f[0], 10, 64)
				after, _ := strconv.ParseInt(f[2], 10, 64)
				peak, live = max(peak, start<<20), max(live, after<<20)
			}
		}
	}
	if keep := os.Getenv("BENCH_NODE_LOG"); keep != "" {
		_ = os.WriteFile(keep, log, 0o644)
	}
	return peak, live
}

// logSize is how much the node has logged so far.
func (n *sweepNode) logSize() int64 {
	fi, err := os.Stat(n.logPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}
