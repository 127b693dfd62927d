package consulkv_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/masterkv/masterkv/internal/consulkv"
	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/internal/testserver"
)

// listMin mirrors consulkv.listMin: Read lists the prefix from this many
// clusters on.
const listMin = 256

// callLog is a recording reverse proxy like recorder, but it records every
// request, not only transactions: a Read of many clusters is one plain
// GET /v1/kv/<prefix>?recurse, which recorder does not see.
type callLog struct {
	addr string

	mu    sync.Mutex
	calls []call
}

// call is one request through the proxy and the agent's answer.
type call struct {
	Method string
	Path   string
	Query  url.Values
	Status int
	Ops    []recordedOp // PUT /v1/txn only
}

func startCallLog(t *testing.T, target string) *callLog {
	t.Helper()
	u, err := url.Parse("http://" + target)
	if err != nil {
		t.Fatalf("proxy target: %v", err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	l := &callLog{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := call{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query()}
		if r.Method == http.MethodPut && r.URL.Path == "/v1/txn" {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			if err := json.Unmarshal(body, &c.Ops); err != nil {
				t.Errorf("proxy: txn body is not a JSON array of ops: %v: %s", err, body)
			}
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		proxy.ServeHTTP(sw, r)
		c.Status = sw.status
		l.mu.Lock()
		l.calls = append(l.calls, c)
		l.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	l.addr = strings.TrimPrefix(srv.URL, "http://")
	return l
}

// take returns the calls recorded so far and forgets them.
func (l *callLog) take() []call {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.calls
	l.calls = nil
	return out
}

// txnsOf returns the transactions among calls, in order.
func txnsOf(calls []call) []txnRecord {
	var out []txnRecord
	for _, c := range calls {
		if c.Method == http.MethodPut && c.Path == "/v1/txn" {
			out = append(out, txnRecord{Ops: c.Ops, Status: c.Status})
		}
	}
	return out
}

// readsOf returns the transactions that only read (get, get-tree).
func readsOf(txns []txnRecord) []txnRecord {
	var out []txnRecord
	for _, x := range txns {
		if !x.write() {
			out = append(out, x)
		}
	}
	return out
}

// kvGets returns the plain KV reads (GET /v1/kv/...), listings included.
func kvGets(calls []call) []call {
	var out []call
	for _, c := range calls {
		if c.Method == http.MethodGet && strings.HasPrefix(c.Path, "/v1/kv/") {
			out = append(out, c)
		}
	}
	return out
}

// listsOf returns the recursive KV listings among calls.
func listsOf(calls []call) []call {
	var out []call
	for _, c := range kvGets(calls) {
		if c.Query.Has("recurse") {
			out = append(out, c)
		}
	}
	return out
}

// prefixLists counts the listings of the whole default prefix.
func prefixLists(calls []call) int {
	n := 0
	for _, c := range listsOf(calls) {
		if c.Path == "/v1/kv/"+layout.Prefix() {
			n++
		}
	}
	return n
}

// createOnly reports whether x is a create-only write: a cas at index 0 on
// every key.
func createOnly(x txnRecord) bool {
	for _, op := range x.Ops {
		if op.KV.Verb != string(api.KVCAS) || op.KV.Index != 0 {
			return false
		}
	}
	return len(x.Ops) > 0
}

// countCreates counts the create-only transactions.
func countCreates(txns []txnRecord) int {
	n := 0
	for _, x := range txns {
		if createOnly(x) {
			n++
		}
	}
	return n
}

// refusedCreates counts the create-only writes Consul refused.
func refusedCreates(txns []txnRecord) int {
	n := 0
	for _, x := range txns {
		if createOnly(x) && x.Status != http.StatusOK {
			n++
		}
	}
	return n
}

// shape summarises transactions in order: "create-only 409" (a cas at
// index 0 on every key), "write 200", or "read" for one or more read
// transactions in a row (a read retries without the main keys it found
// missing).
func shape(txns []txnRecord) string {
	var out []string
	for _, x := range txns {
		switch {
		case !x.write():
			if len(out) == 0 || out[len(out)-1] != "read" {
				out = append(out, "read")
			}
		case createOnly(x):
			out = append(out, fmt.Sprintf("create-only %d", x.Status))
		default:
			out = append(out, fmt.Sprintf("write %d", x.Status))
		}
	}
	return strings.Join(out, ", ")
}

// read calls Read with a deadline.
func read(t *testing.T, s *consulkv.Store, clusters []kvstore.Cluster) map[string]kvstore.Observed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	got, err := s.Read(ctx, clusters)
	if err != nil {
		t.Fatalf("Read of %d clusters: %v", len(clusters), err)
	}
	return got
}

// moved is m with a different host and IPv4 (the port and empty IPv6 stay):
// a change of 3 keys plus the epoch.
func moved(m master.Master) master.Master {
	m.Host = "moved-" + m.Host
	m.IPv4 = strings.Replace(m.IPv4, "10.0.", "10.9.", 1)
	return m
}

// armed returns a store through l whose creating first is on: it starts
// off, and a write that reads a cluster absent (alias, new) turns it on.
func armed(t *testing.T, a *agent, l *callLog, alias string) *consulkv.Store {
	t.Helper()
	s := newStore(t, a, consulkv.Config{Address: l.addr, Provider: consulkv.ProviderTxn, MaxOpsPerTxn: 64})
	checkOutcome(t, write(t, s, cluster(alias, sampleMaster(999), 1))[0], kvstore.Written, 6)
	return s
}

// TestTxnCreateOnlyFirstWrite: a new store reads before its first write
// (creating first starts off); once a read found a cluster absent, clusters
// the store has never written are written without any read (no read
// transaction, no KV GET), as create-only transactions of a cas at index 0
// on each key that Consul accepts. Every outcome is Written with 6 keys and
// Consul holds exactly the clusters.
func TestTxnCreateOnlyFirstWrite(t *testing.T) {
	t.Parallel()
	a := startAgent(t, testserver.ConsulOptions{})
	l := startCallLog(t, a.Addr())
	s := armed(t, a, l, "create-first")
	if got, want := shape(txnsOf(l.take())), "read, write 200"; got != want {
		t.Errorf("new store, first write: transactions: %s; want %s", got, want)
	}

	var cs []kvstore.Cluster
	for i := range 25 {
		cs = append(cs, cluster(fmt.Sprintf("create-%02d", i), sampleMaster(i), uint64(1+i)))
	}
	for _, o := range write(t, s, cs...) {
		checkOutcome(t, o, kvstore.Written, 6)
	}
	calls := l.take()
	txns := txnsOf(calls)
	if reads := readsOf(txns); len(reads) != 0 {
		t.Errorf("%d read transactions for new clusters, want none", len(reads))
	}
	if gets := kvGets(calls); len(gets) != 0 {
		t.Errorf("%d KV GETs for new clusters, want none", len(gets))
	}
	// 10 whole clusters (60 ops) per transaction: 3 transactions.
	if len(txns) != 3 {
		t.Errorf("%d transactions of sizes %v, want 3", len(txns), sizes(txns))
	}
	ops := map[string]int{}
	for i, x := range writesOf(txns) {
		if x.Status != http.StatusOK || !createOnly(x) {
			t.Errorf("write transaction %d: status %d, verbs %v; want 200 and only cas at index 0", i, x.Status, verbs(x))
		}
		for _, op := range x.Ops {
			ops[op.KV.Key]++
		}
	}
	for _, c := range cs {
		for _, p := range c.Pairs {
			if ops[p.Key] != 1 {
				t.Errorf("%s: %d ops in write transactions, want exactly 1", p.Key, ops[p.Key])
			}
		}
		a.checkHolds(t, c)
	}
	if len(ops) != 6*len(cs) {
		t.Errorf("write transactions touch %d keys, want %d", len(ops), 6*len(cs))
	}
}

// TestTxnProbeBeforeCreating: a new store given a large batch reads a
// first group of clusters; when they are mostly absent it creates the rest
// without reading them (a first distribution), and when they exist it
// reads the rest as before and sends no create-only transaction (a
// restart over a full datacenter).
func TestTxnProbeBeforeCreating(t *testing.T) {
	t.Parallel()
	a := startAgent(t, testserver.ConsulOptions{})
	l := startCallLog(t, a.Addr())
	const n = 1000
	var fresh, moved2 []kvstore.Cluster
	for i := range n {
		fresh = append(fresh, cluster(fmt.Sprintf("probe-%04d", i), sampleMaster(i), 1))
		moved2 = append(moved2, cluster(fmt.Sprintf("probe-%04d", i), moved(sampleMaster(i)), 2))
	}

	l.take()
	for _, o := range write(t, newStore(t, a, consulkv.Config{Address: l.addr, Provider: consulkv.ProviderTxn, MaxOpsPerTxn: 64}), fresh...) {
		checkOutcome(t, o, kvstore.Written, 6)
	}
	txns := txnsOf(l.take())
	// The probe: 32 clusters in one read, sent again without the gets of
	// the missing main keys.
	if reads := readsOf(txns); len(reads) > 2 {
		t.Errorf("new clusters: %d read transactions, want at most 2 (one group of 32)", len(reads))
	}
	creates := countCreates(txns)
	if writes := writesOf(txns); creates < len(writes)-4 || refusedCreates(txns) != 0 {
		t.Errorf("new clusters: %d of %d write transactions create-only, %d refused; want all but the probe's, none refused", creates, len(writes), refusedCreates(txns))
	}
	for _, c := range fresh {
		a.checkHolds(t, c)
	}

	for _, o := range write(t, newStore(t, a, consulkv.Config{Address: l.addr, Provider: consulkv.ProviderTxn, MaxOpsPerTxn: 64}), moved2...) {
		checkOutcome(t, o, kvstore.Written, 4)
	}
	txns = txnsOf(l.take())
	if c := countCreates(txns); c != 0 {
		t.Errorf("existing clusters: %d create-only transactions, want none", c)
	}
	// 1,000 clusters at 32 per read transaction, all present: one round.
	if reads := readsOf(txns); len(reads) != (n+31)/32 {
		t.Errorf("existing clusters: %d read transactions, want %d", len(reads), (n+31)/32)
	}
	for _, c := range moved2 {
		a.checkHolds(t, c)
	}
}

// TestTxnCreateOnlyRefused: a create-only write that finds a key of the
// cluster already there is refused by Consul and the cluster is read and
// planned normally: a hand-put key is overwritten (Written, right values),
// a newer epoch wins (Stale, nothing touched). A new store over clusters
// that already exist (a restart) sends no create-only transaction; one that
// just found a cluster absent sends them for one batch only. Creating
// first goes on when a read finds a cluster absent and off when a
// create-only write is refused.
func TestTxnCreateOnlyRefused(t *testing.T) {
	t.Parallel()
	a := startAgent(t, testserver.ConsulOptions{})
	l := startCallLog(t, a.Addr())
	// Subtests share the proxy: they run in order.

	t.Run("hand-put hostname", func(t *testing.T) {
		c := cluster("refused-hand", sampleMaster(1), 5)
		a.put(t, c.MainKey()+"/hostname", "intruder")
		s := armed(t, a, l, c.Alias+"-arm")
		l.take()
		checkOutcome(t, write(t, s, c)[0], kvstore.Written, 6)
		a.checkHolds(t, c)
		if got, want := shape(txnsOf(l.take())), "create-only 409, read, write 200"; got != want {
			t.Errorf("transactions: %s; want %s", got, want)
		}
	})

	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, main string)
	}{
		{"newer epoch alone", func(t *testing.T, main string) { a.put(t, main+"/epoch", "99") }},
		{"newer cluster", func(t *testing.T, main string) {
			alias := strings.TrimPrefix(main, layout.Prefix())
			checkOutcome(t, write(t, newStore(t, a, consulkv.Config{Provider: consulkv.ProviderTxn}), cluster(alias, sampleMaster(2), 99))[0], kvstore.Written, 6)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cluster("refused-"+strings.ReplaceAll(tc.name, " ", "-"), sampleMaster(3), 11)
			tc.setup(t, c.MainKey())
			before := a.snapshot(t, c.Alias)
			s := armed(t, a, l, c.Alias+"-arm")
			l.take()
			checkOutcome(t, write(t, s, c)[0], kvstore.Stale, 0)
			after := a.snapshot(t, c.Alias)
			if !entriesEqual(after, before) {
				t.Errorf("stale write changed consul:\nbefore %v\n after %v", before, after)
			}
			if got := after[c.EpochKey()].Value; got != "99" {
				t.Errorf("newer epoch overwritten: %q", got)
			}
			if got, want := shape(txnsOf(l.take())), "create-only 409, read"; got != want {
				t.Errorf("transactions: %s; want %s", got, want)
			}
		})
	}

	// A store rewrites 300 clusters another store wrote, in batches of one
	// transaction (10 clusters, 60 ops) or of ten. A new store (a restart)
	// reads first from the start; an armed one (it just found a cluster
	// absent) tries the first batch create-only, and each of that batch's
	// transactions, planned together, may be refused; later batches read.
	for _, tc := range []struct {
		armed bool
		batch int
	}{{false, 10}, {false, 100}, {true, 10}, {true, 100}} {
		t.Run(fmt.Sprintf("existing clusters, armed %v, batches of %d", tc.armed, tc.batch), func(t *testing.T) {
			const n = 300
			prefix := fmt.Sprintf("existing-%v%d", tc.armed, tc.batch)
			var before, after []kvstore.Cluster
			for i := range n {
				alias := fmt.Sprintf("%s-%03d", prefix, i)
				before = append(before, cluster(alias, sampleMaster(i), 1))
				after = append(after, cluster(alias, moved(sampleMaster(i)), 2))
			}
			for _, o := range write(t, newStore(t, a, consulkv.Config{Provider: consulkv.ProviderTxn, MaxOpsPerTxn: 64}), before...) {
				checkOutcome(t, o, kvstore.Written, 6)
			}
			s := newStore(t, a, consulkv.Config{Address: l.addr, Provider: consulkv.ProviderTxn, MaxOpsPerTxn: 64})
			if tc.armed {
				s = armed(t, a, l, prefix+"-arm")
			}
			l.take()
			var refused, creates []int // per batch
			for start := 0; start < n; start += tc.batch {
				for _, o := range write(t, s, after[start:start+tc.batch]...) {
					checkOutcome(t, o, kvstore.Written, 4)
				}
				txns := txnsOf(l.take())
				refused = append(refused, refusedCreates(txns))
				creates = append(creates, countCreates(txns))
			}
			lo, hi := 0, 0
			if tc.armed {
				lo, hi = 1, tc.batch/10
			}
			if refused[0] < lo || refused[0] > hi || slices.Max(refused[1:]) != 0 {
				t.Errorf("refused create-only transactions per batch: %v; want %d to %d in the first, none after", refused, lo, hi)
			}
			if !slices.Equal(creates, refused) {
				t.Errorf("create-only transactions per batch: %v, refused %v; want all refused", creates, refused)
			}
			for _, c := range after {
				a.checkHolds(t, c)
			}
		})
	}

	// Batches mixing existing clusters with a few absent ones (a restart
	// after clusters were added, a pass over a partly deleted prefix) must
	// not keep turning creating first on: only the first batch of an armed
	// store may have create-only transactions refused.
	t.Run("existing clusters with some absent, armed", func(t *testing.T) {
		const n, batch = 300, 30
		var existing, all []kvstore.Cluster
		for i := range n {
			c := cluster(fmt.Sprintf("mixed-%03d", i), sampleMaster(i), 1)
			if i%10 != 0 {
				existing = append(existing, c)
			}
			all = append(all, cluster(c.Alias, moved(sampleMaster(i)), 2))
		}
		write(t, newStore(t, a, consulkv.Config{Provider: consulkv.ProviderTxn, MaxOpsPerTxn: 64}), existing...)
		s := armed(t, a, l, "mixed-arm")
		l.take()
		var refused []int
		for start := 0; start < n; start += batch {
			for k, o := range write(t, s, all[start:start+batch]...) {
				keys := 4
				if (start+k)%10 == 0 {
					keys = 6
				}
				checkOutcome(t, o, kvstore.Written, keys)
			}
			refused = append(refused, refusedCreates(txnsOf(l.take())))
		}
		if refused[0] == 0 || slices.Max(refused[1:]) != 0 {
			t.Errorf("refused create-only transactions per batch: %v; want some in the first, none after", refused)
		}
		for _, c := range all {
			a.checkHolds(t, c)
		}
	})

	t.Run("creating first on and off", func(t *testing.T) {
		var old []kvstore.Cluster
		for i := range 5 {
			old = append(old, cluster(fmt.Sprintf("cycle-old-%d", i), sampleMaster(i), 1))
		}
		write(t, newStore(t, a, consulkv.Config{Provider: consulkv.ProviderTxn}), old...)
		s := newStore(t, a, consulkv.Config{Address: l.addr, Provider: consulkv.ProviderTxn, MaxOpsPerTxn: 64})
		l.take()
		step := func(name, want string, cs []kvstore.Cluster, keys ...int) {
			t.Helper()
			for i, o := range write(t, s, cs...) {
				checkOutcome(t, o, kvstore.Written, keys[i])
			}
			if got := shape(txnsOf(l.take())); got != want {
				t.Errorf("%s: transactions: %s; want %s", name, got, want)
			}
			for _, c := range cs {
				a.checkHolds(t, c)
			}
		}
		newer := func(i int) kvstore.Cluster { return cluster(old[i].Alias, moved(sampleMaster(i)), 2) }
		var fresh []kvstore.Cluster
		for i := range 6 {
			fresh = append(fresh, cluster(fmt.Sprintf("cycle-new-%d", i), sampleMaster(900+i), 1))
		}
		step("new store, existing cluster", "read, write 200", []kvstore.Cluster{newer(0)}, 4)
		step("existing cluster, half absent", "read, write 200", []kvstore.Cluster{newer(1), fresh[0]}, 4, 6)
		step("mostly absent clusters", "read, write 200", []kvstore.Cluster{newer(4), fresh[1], fresh[2]}, 4, 6, 6)
		step("new clusters, on", "create-only 200", fresh[3:], 6, 6, 6)
		step("existing cluster, on", "create-only 409, read, write 200", []kvstore.Cluster{newer(2)}, 4)
		step("existing cluster, off", "read, write 200", []kvstore.Cluster{newer(3)}, 4)
	})
}

// TestReadListMatchesPerClusterReads: a Read of listMin or more clusters
// under one prefix is one consistent recursive GET of the prefix, plus a
// read of each cluster it found without keys, and returns exactly what reading the clusters in small
// chunks (read transactions) returns: a key deleted or changed by hand, a
// cluster absent entirely (empty, not missing), extra keys one and two
// levels below a cluster (every reader returns every key below a main key).
// Keys of clusters not asked for (x10 beside x1) are not mixed in, and no
// cluster not asked for is returned. Fewer clusters, or clusters under different prefixes,
// are read with transactions.
func TestReadListMatchesPerClusterReads(t *testing.T) {
	t.Parallel()
	a := startAgent(t, testserver.ConsulOptions{})
	l := startCallLog(t, a.Addr())
	writer := newStore(t, a, consulkv.Config{Provider: consulkv.ProviderTxn, MaxOpsPerTxn: 64})

	var asked []kvstore.Cluster
	for i := range 300 {
		asked = append(asked, cluster(fmt.Sprintf("list-%03d", i), sampleMaster(i), 3))
	}
	x1, x10 := cluster("x1", sampleMaster(501), 4), cluster("x10", sampleMaster(502), 5)
	gone := cluster("list-gone", sampleMaster(503), 1)
	write(t, writer, slices.Concat(asked, []kvstore.Cluster{x1, x10, cluster("list-other", sampleMaster(504), 1)})...)
	asked = append(asked, x1, gone)

	deleted, edited := asked[7], asked[8]
	a.del(t, deleted.MainKey()+"/ipv6")
	a.put(t, edited.MainKey()+"/hostname", "edited")
	a.put(t, x1.MainKey()+"/note", "one level below")
	a.put(t, x1.MainKey()+"/hostname/extra", "two levels below")
	a.put(t, x10.MainKey()+"/note", "x10's")

	want := map[string]kvstore.Observed{}
	for _, c := range asked {
		want[c.Alias] = kvstore.Observed(pairsOf(c))
	}
	delete(want[deleted.Alias], deleted.MainKey()+"/ipv6")
	want[edited.Alias][edited.MainKey()+"/hostname"] = "edited"
	want[x1.Alias][x1.MainKey()+"/note"] = "one level below"
	want[x1.Alias][x1.MainKey()+"/hostname/extra"] = "two levels below"
	want[gone.Alias] = kvstore.Observed{}

	for _, provider := range providers {
		t.Run(provider, func(t *testing.T) {
			l.take()
			got := read(t, newStore(t, a, consulkv.Config{Address: l.addr, Provider: provider, MaxOpsPerTxn: 64}), asked)
			calls := l.take()
			if n := prefixLists(calls); n != 1 || calls[0].Path != "/v1/kv/"+layout.Prefix() {
				t.Fatalf("Read of %d clusters: %d listings of the prefix, first request %s; want one listing first", len(asked), n, calls[0].Path)
			}
			// Then only the cluster the listing found without keys is
			// read again on its own (a listing hides ACL-filtered keys).
			for _, c := range calls[1:] {
				for _, op := range c.Ops {
					if !strings.Contains(op.KV.Key, gone.Alias) {
						t.Errorf("after the listing: transaction op on %s, want only %s's keys", op.KV.Key, gone.Alias)
					}
				}
				if c.Path != "/v1/txn" && !strings.Contains(c.Path, gone.Alias) {
					t.Errorf("after the listing: %s %s, want only reads of %s", c.Method, c.Path, gone.Alias)
				}
			}
			if len(calls) > 3 {
				t.Errorf("Read of %d clusters: %d requests, want the listing and at most 2 reads of %s", len(asked), len(calls), gone.Alias)
			}
			if c := listsOf(calls)[0]; c.Path != "/v1/kv/"+layout.Prefix() || !c.Query.Has("consistent") || c.Status != http.StatusOK {
				t.Errorf("listing GET %s?%s: status %d, want a consistent listing of /v1/kv/%s", c.Path, c.Query.Encode(), c.Status, layout.Prefix())
			}

			// The same clusters read in chunks below listMin.
			s := newStore(t, a, consulkv.Config{Address: l.addr, Provider: provider, MaxOpsPerTxn: 64})
			chunked := map[string]kvstore.Observed{}
			for start := 0; start < len(asked); start += 50 {
				maps.Copy(chunked, read(t, s, asked[start:min(start+50, len(asked))]))
			}
			if n := prefixLists(l.take()); n != 0 {
				t.Errorf("chunked reads: %d listings of the prefix, want none", n)
			}
			for alias, obs := range got {
				if !maps.Equal(obs, chunked[alias]) {
					t.Errorf("%s: listing read %v, chunked reads %v", alias, obs, chunked[alias])
				}
			}
			if len(got) != len(chunked) {
				t.Errorf("listing read %d clusters, chunked reads %d", len(got), len(chunked))
			}
			for alias, w := range want {
				if obs, ok := got[alias]; !ok || !maps.Equal(obs, w) {
					t.Errorf("Read(%s) = %v (present %v), want %v", alias, obs, ok, w)
				}
			}
			if len(got) != len(want) {
				t.Errorf("Read returned %d clusters, want the %d asked for", len(got), len(want))
			}

			// Survey: the same listing, compared as it is walked. Exact
			// are the clusters whose own pairs are all there with their
			// values; extra keys (x1's) do not matter.
			l.take()
			same, err := newStore(t, a, consulkv.Config{Address: l.addr, Provider: provider, MaxOpsPerTxn: 64}).Survey(context.Background(), asked)
			if err != nil {
				t.Fatalf("Survey: %v", err)
			}
			if calls := l.take(); len(calls) != 1 || len(listsOf(calls)) != 1 {
				t.Errorf("Survey of %d clusters: %d requests, want exactly one listing", len(asked), len(calls))
			}
			for i, c := range asked {
				exact := len(kvstore.Diff(c, want[c.Alias])) == 0
				if same[i] != exact {
					t.Errorf("Survey(%s) = %v, want %v (Read gives %v)", c.Alias, same[i], exact, got[c.Alias])
				}
			}
			if !same[0] || same[7] || same[8] || !same[len(same)-2] || same[len(same)-1] {
				t.Errorf("Survey: want exact for untouched clusters and x1, not for the deleted, edited and absent ones; got %v", same)
			}
		})
	}

	t.Run("below listMin", func(t *testing.T) {
		l.take()
		read(t, newStore(t, a, consulkv.Config{Address: l.addr, Provider: consulkv.ProviderTxn, MaxOpsPerTxn: 64}), asked[:listMin-1])
		calls := l.take()
		if lists, reads := listsOf(calls), readsOf(txnsOf(calls)); len(lists) != 0 || len(reads) == 0 {
			t.Errorf("Read of %d clusters: %d listings, %d read transactions; want read transactions only", listMin-1, len(lists), len(reads))
		}
	})

	t.Run("two prefixes", func(t *testing.T) {
		other := kvstore.NewCluster(discovery.NewLayout("elsewhere/master", true), "list-elsewhere", sampleMaster(0), 3)
		l.take()
		got := read(t, newStore(t, a, consulkv.Config{Address: l.addr, Provider: consulkv.ProviderTxn, MaxOpsPerTxn: 64}), append(asked[:300:300], other))
		calls := l.take()
		if lists, reads := listsOf(calls), readsOf(txnsOf(calls)); len(lists) != 0 || len(reads) == 0 {
			t.Errorf("Read of 301 clusters under two prefixes: %d listings, %d read transactions; want read transactions only", len(lists), len(reads))
		}
		if !maps.Equal(got[asked[0].Alias], want[asked[0].Alias]) {
			t.Errorf("Read(%s) = %v, want %v", asked[0].Alias, got[asked[0].Alias], want[asked[0].Alias])
		}
	})
}

// TestTxnReadThenWriteWithoutRead: a Read that finds clusters exactly as
// given (by listing, or by read transactions below listMin) lets a fresh
// store plan their next change from the indexes read: no read transaction,
// only cas and check-index at those (non-zero) indexes, accepted. A cluster
// the Read found different is not taken as read: its change leaves Consul
// exactly right, hand edit included. A hand edit after the Read refuses the
// planned write, and the cluster is read and written for real.
func TestTxnReadThenWriteWithoutRead(t *testing.T) {
	t.Parallel()
	a := startAgent(t, testserver.ConsulOptions{})
	l := startCallLog(t, a.Addr())
	for _, tc := range []struct {
		name   string
		n      int
		survey bool
	}{
		{"listing", 300, false},
		{"read transactions", 40, false},
		{"survey listing", 300, true},
		{"survey read transactions", 40, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cs []kvstore.Cluster
			for i := range tc.n {
				cs = append(cs, cluster(fmt.Sprintf("remember%d%v-%03d", tc.n, tc.survey, i), sampleMaster(i), 1))
			}
			write(t, newStore(t, a, consulkv.Config{Provider: consulkv.ProviderTxn, MaxOpsPerTxn: 64}), cs...)
			differs := cs[9]
			a.put(t, differs.MainKey()+"/ipv6", "fd00::bad") // the change below keeps ipv6 ""

			s := newStore(t, a, consulkv.Config{Address: l.addr, Provider: consulkv.ProviderTxn, MaxOpsPerTxn: 64})
			l.take()
			if tc.survey {
				if _, err := s.Survey(context.Background(), cs); err != nil {
					t.Fatalf("Survey: %v", err)
				}
			} else {
				read(t, s, cs)
			}
			if lists := listsOf(l.take()); (len(lists) == 1) != (tc.n >= listMin) {
				t.Fatalf("Read of %d clusters: %d listings", tc.n, len(lists))
			}

			// Nine clusters read exactly move: one transaction, no read.
			var changed []kvstore.Cluster
			for i, c := range cs[:9] {
				changed = append(changed, cluster(c.Alias, moved(sampleMaster(i)), 2))
			}
			for _, o := range write(t, s, changed...) {
				checkOutcome(t, o, kvstore.Written, 4)
			}
			calls := l.take()
			txns := txnsOf(calls)
			if reads, gets := readsOf(txns), kvGets(calls); len(reads) != 0 || len(gets) != 0 {
				t.Errorf("write after Read: %d read transactions, %d KV GETs; want none", len(reads), len(gets))
			}
			writes := writesOf(txns)
			if len(writes) != 1 {
				t.Fatalf("write after Read: transactions: %s; want one write", shape(txns))
			}
			x := writes[0]
			// Per cluster: cas on the 3 moved keys and the epoch, check-index
			// on port and ipv6, every one at the index read.
			if v := verbs(x); x.Status != http.StatusOK || v["cas"] != 4*len(changed) || v["check-index"] != 2*len(changed) || len(x.Ops) != 6*len(changed) {
				t.Errorf("write after Read: status %d, verbs %v; want 200, %d cas and %d check-index", x.Status, v, 4*len(changed), 2*len(changed))
			}
			zero := 0
			for _, op := range x.Ops {
				if op.KV.Index == 0 {
					zero++
				}
			}
			if zero > 0 {
				t.Errorf("write after Read: %d of %d ops at index 0, want all at the index read", zero, len(x.Ops))
			}
			for _, c := range changed {
				a.checkHolds(t, c)
			}

			// The cluster that differed when read: its change leaves
			// exactly the cluster, the stray ipv6 included.
			next := cluster(differs.Alias, moved(sampleMaster(9)), 2)
			checkOutcome(t, write(t, s, next)[0], kvstore.Written, 5)
			a.checkHolds(t, next)

			// Edited by hand after the Read: the planned write is refused,
			// the cluster read, written right.
			late := cs[tc.n-1]
			a.put(t, late.MainKey()+"/port", "1")
			l.take()
			next = cluster(late.Alias, moved(sampleMaster(tc.n-1)), 2)
			checkOutcome(t, write(t, s, next)[0], kvstore.Written, 5)
			a.checkHolds(t, next)
			txns = txnsOf(l.take())
			if got, want := shape(txns), "write 409, read, write 200"; got != want {
				t.Errorf("write after a hand edit: transactions: %s; want %s", got, want)
			}
		})
	}
}
