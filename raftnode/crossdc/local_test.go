package crossdc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-cleanhttp"

	"github.com/masterkv/masterkv/internal/consulkv"
	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/internal/testserver"
	"github.com/masterkv/masterkv/raftnode/crossdc"
	"github.com/masterkv/masterkv/raftnode/node"
	"github.com/masterkv/masterkv/raftnode/nodetest"
	"github.com/masterkv/masterkv/raftnode/publish"
)

// The agent's own datacenter (dc1 here) with Config.Local: the node's own
// publisher writes it and the distributor only asks that publisher for a pass
// every interval while leading.
//
// The node's own publisher and the crossDC each get their own consulkv
// store, each through its own kvTap in front of dc1's agent. In production
// they share one store; two taps tell their requests apart whatever ?dc=
// a broken sweep would send dc1's writes with (dc1, or none through its
// own store).

// kvTap is a reverse proxy in front of one Consul agent that counts the
// Consul KV requests passing through it by ?dc= ("" when the request names
// none: the agent's own datacenter).
type kvTap struct {
	addr string
	mu   sync.Mutex
	seen map[string]tapCount
}

// tapCount is what a kvTap saw for one ?dc= value.
type tapCount struct {
	txnReads  int // /v1/txn with only get and get-tree operations
	txnWrites int // /v1/txn with any other operation (or a body it could not parse)
	kvWrites  int // PUT or DELETE of /v1/kv/...
	lists     int // GET /v1/kv/<layout prefix>?recurse
	kvReads   int // any other GET of /v1/kv/...
	other     int // anything else: catalog, agent self
}

func (c tapCount) writes() int { return c.txnWrites + c.kvWrites }

// kv counts every KV request, read or write.
func (c tapCount) kv() int { return c.txnReads + c.txnWrites + c.kvWrites + c.lists + c.kvReads }

func (c tapCount) String() string {
	return fmt.Sprintf("txn read %d, txn write %d, kv write %d, list %d, kv read %d, other %d",
		c.txnReads, c.txnWrites, c.kvWrites, c.lists, c.kvReads, c.other)
}

func newKVTap(t *testing.T, target string) *kvTap {
	t.Helper()
	u, err := url.Parse("http://" + target)
	if err != nil {
		t.Fatal(err)
	}
	tr := cleanhttp.DefaultPooledTransport()
	tr.MaxIdleConnsPerHost = 64
	tap := &kvTap{seen: map[string]tapCount{}}
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u) }, Transport: tr}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body []byte
		if req.URL.Path == "/v1/txn" {
			var err error
			if body, err = io.ReadAll(req.Body); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
		tap.count(req, body)
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	tap.addr = srv.Listener.Addr().String()
	return tap
}

func (tap *kvTap) count(req *http.Request, body []byte) {
	q := req.URL.Query()
	tap.mu.Lock()
	defer tap.mu.Unlock()
	c := tap.seen[q.Get("dc")]
	switch {
	case req.URL.Path == "/v1/txn":
		if txnWrites(body) {
			c.txnWrites++
		} else {
			c.txnReads++
		}
	case strings.HasPrefix(req.URL.Path, "/v1/kv/"):
		switch {
		case req.Method == http.MethodPut || req.Method == http.MethodDelete:
			c.kvWrites++
		case q.Has("recurse") && req.URL.Path == "/v1/kv/"+layout.Prefix():
			c.lists++
		default:
			c.kvReads++
		}
	default:
		c.other++
	}
	tap.seen[q.Get("dc")] = c
}

// txnWrites reports whether a transaction body holds any operation other
// than a KV get or get-tree; an unreadable body counts as a write.
func txnWrites(body []byte) bool {
	var ops []struct{ KV *struct{ Verb string } }
	if json.Unmarshal(body, &ops) != nil || len(ops) == 0 {
		return true
	}
	for _, op := range ops {
		if op.KV == nil || (op.KV.Verb != string(api.KVGet) && op.KV.Verb != string(api.KVGetTree)) {
			return true
		}
	}
	return false
}

func (tap *kvTap) snapshot() map[string]tapCount {
	tap.mu.Lock()
	defer tap.mu.Unlock()
	out := make(map[string]tapCount, len(tap.seen))
	for dc, c := range tap.seen {
		out[dc] = c
	}
	return out
}

// since is what passed through since snapshot before, for every ?dc= seen.
func (tap *kvTap) since(before map[string]tapCount) map[string]tapCount {
	out := map[string]tapCount{}
	for dc, c := range tap.snapshot() {
		b := before[dc]
		out[dc] = tapCount{
			txnReads: c.txnReads - b.txnReads, txnWrites: c.txnWrites - b.txnWrites, kvWrites: c.kvWrites - b.kvWrites,
			lists: c.lists - b.lists, kvReads: c.kvReads - b.kvReads, other: c.other - b.other,
		}
	}
	return out
}

// dcNames lists the ?dc= values counts holds, sorted ("" first).
func dcNames(counts map[string]tapCount) []string {
	var out []string
	for dc := range counts {
		out = append(out, dc)
	}
	sort.Strings(out)
	return out
}

// newStore is a consul-txn store through addr, as startSweeper's.
func newStore(t *testing.T, addr string) *consulkv.Store {
	t.Helper()
	cs, err := consulkv.New(consulkv.Config{Address: addr, Provider: consulkv.ProviderTxn, MaxOpsPerTxn: 64, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// startLocal runs nd's own publisher into the agent's datacenter through
// addr, as raftnode's startPublishers does: no SweepInterval of its own.
func startLocal(t *testing.T, addr string, nd *node.Node) *publish.Publisher {
	t.Helper()
	p := publish.New(newStore(t, addr), nd.FSM(), publish.Config{
		Layout: layout, Ready: nd.CaughtUp, RetryMax: 200 * time.Millisecond, Logger: quiet,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return p
}

// localSetup is one node's own publisher and its crossDC with Config.Local,
// each through its own tap in front of dc1's agent.
type localSetup struct {
	local    *publish.Publisher
	crossDC  *crossdc.Distributor
	localTap *kvTap // the node's own publisher
	sweepTap *kvTap // the distributor
}

func startLocalSweep(t *testing.T, dc1 *testserver.Consul, nd *node.Node, interval time.Duration) *localSetup {
	t.Helper()
	ls := &localSetup{localTap: newKVTap(t, dc1.Addr()), sweepTap: newKVTap(t, dc1.Addr())}
	ls.local = startLocal(t, ls.localTap.addr, nd)
	ls.crossDC = runSweeper(t, ls.sweepTap.addr, nd, interval, ls.local)
	return ls
}

// checkOneWriter fails unless the crossDC sent no KV request into dc1
// (neither ?dc=dc1 nor, through its own store, no ?dc=) and the node's own
// publisher named no datacenter.
func (ls *localSetup) checkOneWriter(t *testing.T) {
	t.Helper()
	sw := ls.sweepTap.snapshot()
	for _, dc := range []string{"", "dc1"} {
		if c := sw[dc]; c.kv() != 0 {
			t.Errorf("the crossDC sent KV requests into dc1 (?dc=%q): %v; dc1 is the node's own publisher's alone", dc, c)
		}
	}
	for _, dc := range dcNames(ls.localTap.snapshot()) {
		if dc != "" {
			t.Errorf("the node's own publisher sent requests with ?dc=%s", dc)
		}
	}
}

// TestLocalDatacenterHasOneWriter: with Config.Local the distributor runs
// publishers for dc2 and dc3 only, reports dc1 as the local publisher's,
// failovers reach all three datacenters at once, and every write into dc1
// comes from the node's own publisher: the crossDC sends dc1 nothing.
func TestLocalDatacenterHasOneWriter(t *testing.T) {
	dcs := wan(t)
	g := nodetest.New(t, 1, nodetest.Options{})
	nd := g.Nodes[0]
	ls := startLocalSweep(t, dcs[0], nd, time.Minute)

	var st crossdc.Status
	eventually(t, 10*time.Second, "the distributor reporting three datacenters", func() error {
		st = ls.crossDC.Status()
		if !st.Leading || len(st.Datacenters) != 3 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	want := []crossdc.DatacenterStatus{
		{Datacenter: "dc1", Local: true, Status: publish.Status{Store: ls.local.Name()}},
		{Datacenter: "dc2", Status: publish.Status{Store: "consul:dc2"}},
		{Datacenter: "dc3", Status: publish.Status{Store: "consul:dc3"}},
	}
	if ls.local.Name() != "consul" {
		t.Errorf("local publisher's store is %q, want consul (the agent's own datacenter, no ?dc=)", ls.local.Name())
	}
	for i, w := range want {
		d := st.Datacenters[i]
		if d.Datacenter != w.Datacenter || d.Local != w.Local || d.Store != w.Store {
			t.Errorf("datacenter %d = {%s local=%v store=%s}, want {%s local=%v store=%s}",
				i, d.Datacenter, d.Local, d.Store, w.Datacenter, w.Local, w.Store)
		}
	}
	// The distributor's own publishers (not the local one): dc2 and dc3.
	var names []string
	for _, d := range ls.crossDC.Status().Datacenters {
		if !d.Local {
			names = append(names, d.Store)
		}
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "consul:dc2,consul:dc3" {
		t.Errorf("sweep publishers %v, want consul:dc2 and consul:dc3", names)
	}

	before := ls.localTap.snapshot()
	e := failover(t, g, "c1", "10.0.0.1")
	eventually(t, 10*time.Second, "first distribution", allHold(t, dcs, "c1", "10.0.0.1", e))
	const failovers = 4
	for i := 2; i <= failovers; i++ {
		host := fmt.Sprintf("10.0.0.%d", i)
		start := time.Now()
		e = failover(t, g, "c1", host)
		eventually(t, 2*time.Second, "failover in every datacenter", allHold(t, dcs, "c1", host, e))
		t.Logf("failover %d visible in 3 datacenters after %s", i, time.Since(start))
	}

	ls.checkOneWriter(t)
	if got := ls.localTap.since(before)[""].txnWrites; got < failovers {
		t.Errorf("node's own publisher: %d write transactions into dc1 for %d failovers", got, failovers)
	}
	sw := ls.sweepTap.snapshot()
	for _, dc := range []string{"dc2", "dc3"} {
		if sw[dc].txnWrites < failovers {
			t.Errorf("crossDC: %d write transactions into %s for %d failovers", sw[dc].txnWrites, dc, failovers)
		}
	}
	for _, dc := range dcNames(sw) {
		t.Logf("crossDC ?dc=%q: %v", dc, sw[dc])
	}
	t.Logf("node's own publisher: %v", ls.localTap.snapshot()[""])

	// The local entry is the node's own publisher's status.
	for _, d := range ls.crossDC.Status().Datacenters {
		if d.Local && d.AppliedEpoch != e {
			t.Errorf("local entry applied epoch %d, want %d", d.AppliedEpoch, e)
		}
	}
}

// TestLocalDatacenterSweptThroughLocalPublisher: keys deleted by hand in
// dc1 come back at the next interval, written by the node's own publisher
// (which has no sweep interval of its own) in a pass the distributor asked for,
// and the local entry reports that pass.
func TestLocalDatacenterSweptThroughLocalPublisher(t *testing.T) {
	dcs := wan(t)
	g := nodetest.New(t, 1, nodetest.Options{})
	nd := g.Nodes[0]
	localTap, sweepTap := newKVTap(t, dcs[0].Addr()), newKVTap(t, dcs[0].Addr())
	local := startLocal(t, localTap.addr, nd)
	e := failover(t, g, "c1", "10.0.0.1")
	eventually(t, 10*time.Second, "the node's own publisher writing dc1", func() error { return holds(t, dcs[0], "c1", "10.0.0.1", e) })
	if r := local.Status().LastSweep; r != nil {
		t.Fatalf("the node's own publisher swept on its own: %+v", r)
	}

	const interval = 2 * time.Second
	ls := &localSetup{local: local, localTap: localTap, sweepTap: sweepTap}
	ls.crossDC = runSweeper(t, sweepTap.addr, nd, interval, local)
	eventually(t, 10*time.Second, "first distribution", allHold(t, dcs, "c1", "10.0.0.1", e))
	eventually(t, 10*time.Second, "a first pass of the local publisher", func() error {
		if local.Status().LastSweep == nil {
			return fmt.Errorf("no pass")
		}
		return nil
	})

	if _, err := client(t, dcs[0]).KV().DeleteTree(layout.Prefix(), nil); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	if err := holds(t, dcs[0], "c1", "10.0.0.1", e); err == nil {
		t.Fatal("delete did not take")
	}
	before := localTap.snapshot()
	keys := len(layout.Pairs("c1", master.Master{Host: "10.0.0.1", Port: 3306, IPv4: "10.0.0.1"}, e))
	// The pass that rewrote the keys is reported until the next one, an
	// interval later.
	var local1 crossdc.DatacenterStatus
	eventually(t, 2*interval+5*time.Second, "keys back in dc1, reported by the local entry", func() error {
		if err := holds(t, dcs[0], "c1", "10.0.0.1", e); err != nil {
			return err
		}
		st := ls.crossDC.Status()
		for _, d := range st.Datacenters {
			if d.Datacenter != "dc1" {
				continue
			}
			local1 = d
			r := d.LastSweep
			if r == nil || r.At.Before(deleted) || r.KeysWritten != keys {
				return fmt.Errorf("local entry's last pass %+v", r)
			}
			return nil
		}
		return fmt.Errorf("no dc1 entry: %+v", st)
	})
	r := local1.LastSweep
	if !local1.Local || local1.Store != "consul" || r.Clusters != 1 || r.KeysRead != keys || r.KeysFailed != 0 {
		t.Errorf("dc1 entry = local %v store %s, pass %+v; want the local publisher's pass of 1 cluster, %d keys read and written", local1.Local, local1.Store, r, keys)
	}
	if got := localTap.since(before)[""].txnWrites; got == 0 {
		t.Errorf("the keys came back without a write of the node's own publisher")
	}
	ls.checkOneWriter(t)
	if err := allHold(t, dcs, "c1", "10.0.0.1", e)(); err != nil {
		t.Error(err)
	}
	for _, d := range ls.crossDC.Status().Datacenters {
		if d.LastSweep == nil || d.LastSweep.KeysRead == 0 {
			t.Errorf("%s: no sweep report: %+v", d.Datacenter, d.LastSweep)
		}
	}
}

// TestFollowerAsksNoLocalPass: a follower's crossDC never asks the node's
// own publisher for a pass, so keys deleted in dc1 stay deleted for three
// intervals; asked by hand, the same publisher brings them back. Only the
// follower runs a crossDC: a leader's would restore them through its own
// publisher.
func TestFollowerAsksNoLocalPass(t *testing.T) {
	dcs := wan(t)
	g := nodetest.New(t, 3, nodetest.Options{})
	leader := g.WaitLeader()
	f := g.Followers()[0]
	const interval = time.Second
	ls := startLocalSweep(t, dcs[0], f, interval)

	e := failover(t, g, "c1", "10.0.0.1")
	eventually(t, 10*time.Second, "the follower's own publisher writing dc1", func() error { return holds(t, dcs[0], "c1", "10.0.0.1", e) })
	if _, err := client(t, dcs[0]).KV().DeleteTree(layout.Prefix(), nil); err != nil {
		t.Fatal(err)
	}
	if err := holds(t, dcs[0], "c1", "10.0.0.1", e); err == nil {
		t.Fatal("delete did not take")
	}
	before := ls.localTap.snapshot()
	// Three intervals; f must stay a follower throughout, or a pass would
	// be right.
	for end := time.Now().Add(3*interval + 500*time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if !leader.IsLeader() || f.IsLeader() {
			t.Fatalf("leadership moved during the test (node%d led, node%d is the follower); cannot conclude", g.Index(leader), g.Index(f))
		}
	}
	if err := holds(t, dcs[0], "c1", "10.0.0.1", e); err == nil {
		t.Errorf("keys deleted in dc1 came back on a follower within %s", 3*interval)
	}
	if r := ls.local.Status().LastSweep; r != nil {
		t.Errorf("the follower's own publisher ran a pass: %+v", r)
	}
	if c := ls.localTap.since(before)[""]; c.kv() != 0 {
		t.Errorf("the follower's own publisher sent dc1 KV requests after the delete: %v", c)
	}
	if st := ls.crossDC.Status(); st.Leading || len(st.Datacenters) != 0 {
		t.Errorf("follower's sweep status %+v, want not leading and no datacenters", st)
	}
	for dc, c := range ls.sweepTap.snapshot() {
		if c.kv() != 0 {
			t.Errorf("the follower's crossDC sent KV requests (?dc=%q): %v", dc, c)
		}
	}

	// The control: a pass of the same publisher restores the keys, so
	// their absence above is the missing request, not a publisher that
	// could not.
	ls.local.Sweep()
	eventually(t, 5*time.Second, "keys back after a pass asked by hand", func() error { return holds(t, dcs[0], "c1", "10.0.0.1", e) })
}
