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
func moved(m discovery.Master) discovery.Master {
	m.Host = "moved-" + m.Host
	m.IPv4 = strings.Replace(m.IPv4, "10.0.", "10.9.", 1)
	return m
}

// TestTxnCreateOnlyFirstWrite: clusters a store has never written are
// written without any read (no read transaction, no KV GET), as create-only
// transactions of a cas at index 0 on each key that Consul accepts; every
// outcome is Written with 6 keys and Consul holds exactly the clusters.
func TestTxnCreateOnlyFirstWrite(t *testing.T) {
	t.Parallel()
	a := startAgent(t, testserver.ConsulOptions{})
	l := startCallLog(t, a.Addr())
	s := newStore(t, a, consulkv.Config{Address: l.addr, Provider: consulkv.ProviderTxn, MaxOpsPerTxn: 64})

	var cs []kvstore.Cluster
	for i := range 25 {
		cs = append(cs, cluster(fmt.Sprintf("create-%02d", i), master(i), uint64(1+i)))
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
		t.Errorf("%d write transactions of sizes %v, want 3", len(txns), sizes(txns))
	}
	ops := map[string]int{}
	for i, x := range txns {
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
				t.Errorf("%s: %d ops, want exactly 1", p.Key, ops[p.Key])
			}
		}
		a.checkHolds(t, c)
	}
	if len(ops) != 6*len(cs) {
		t.Errorf("write transactions touch %d keys, want %d", len(ops), 6*len(cs))
	}
}

// TestTxnCreateOnlyRefused: a create-only write that finds a key of the
// cluster already there is refused by Consul and the cluster is read and
// planned normally: a hand-put key is overwritten (Written, right values),
// a newer epoch wins (Stale, nothing touched). A fresh store over clusters
// that already exist (a restart) sends one refused create-only transaction
// and then reads first; a read that finds a cluster absent turns creating
// first back on.
func TestTxnCreateOnlyRefused(t *testing.T) {
	t.Parallel()
	a := startAgent(t, testserver.ConsulOptions{})
	l := startCallLog(t, a.Addr())
	fresh := func() *consulkv.Store {
		return newStore(t, a, consulkv.Config{Address: l.addr, Provider: consulkv.ProviderTxn, MaxOpsPerTxn: 64})
	}
	// Subtests share the proxy: they run in order.

	t.Run("hand-put hostname", func(t *testing.T) {
		c := cluster("refused-hand", master(1), 5)
		a.put(t, c.MainKey()+"/hostname", "intruder")
		l.take()
		checkOutcome(t, write(t, fresh(), c)[0], kvstore.Written, 6)
		a.checkHolds(t, c)
		txns := txnsOf(l.take())
		if got, want := shape(txns), "create-only 409, read, write 200"; got != want {
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
			checkOutcome(t, write(t, newStore(t, a, consulkv.Config{Provider: consulkv.ProviderTxn}), cluster(alias, master(2), 99))[0], kvstore.Written, 6)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cluster("refused-"+strings.ReplaceAll(tc.name, " ", "-"), master(3), 11)
			tc.setup(t, c.MainKey())
			before := a.snapshot(t, c.Alias)
			l.take()
			checkOutcome(t, write(t, fresh(), c)[0], kvstore.Stale, 0)
			if after := a.snapshot(t, c.Alias); !entriesEqual(after, before) {
				t.Errorf("stale write changed consul:\nbefore %v\n after %v", before, after)
			}
			if got := a.snapshot(t, c.Alias)[c.EpochKey()].Value; got != "99" {
				t.Errorf("newer epoch overwritten: %q", got)
			}
			txns := txnsOf(l.take())
			if got, want := shape(txns), "create-only 409, read"; got != want {
				t.Errorf("transactions: %s; want %s", got, want)
			}
		})
	}

	t.Run("restart over existing clusters", func(t *testing.T) {
		const n, batch = 300, 10 // a batch is 60 ops: one transaction
		var before, after []kvstore.Cluster
		for i := range n {
			alias := fmt.Sprintf("restart-%03d", i)
			before = append(before, cluster(alias, master(i), 1))
			after = append(after, cluster(alias, moved(master(i)), 2))
		}
		for _, o := range write(t, newStore(t, a, consulkv.Config{Provider: consulkv.ProviderTxn, MaxOpsPerTxn: 64}), before...) {
			checkOutcome(t, o, kvstore.Written, 6)
		}
		s := fresh()
		l.take()
		for start := 0; start < n; start += batch {
			for _, o := range write(t, s, after[start:start+batch]...) {
				checkOutcome(t, o, kvstore.Written, 4)
			}
		}
		txns := txnsOf(l.take())
		if got := refusedCreates(txns); got != 1 {
			t.Errorf("%d refused create-only transactions, want exactly 1 (the first batch's)", got)
		}
		if got, want := shape(txns[:min(2, len(txns))]), "create-only 409, read"; got != want {
			t.Errorf("first transactions: %s; want %s", got, want)
		}
		for _, c := range after {
			a.checkHolds(t, c)
		}

		// A batch with one absent cluster among existing ones: all are
		// read (creating first is off), the absent one turns it back on.
		back := cluster("restart-new-0", master(900), 1)
		out := write(t, s, after[0], back)
		checkOutcome(t, out[0], kvstore.Unchanged, 6)
		checkOutcome(t, out[1], kvstore.Written, 6)
		txns = txnsOf(l.take())
		if got, want := shape(txns), "read, write 200"; got != want {
			t.Errorf("transactions: %s; want %s", got, want)
		}
		var next []kvstore.Cluster
		for i := range 5 {
			next = append(next, cluster(fmt.Sprintf("restart-new-%d", i+1), master(901+i), 1))
		}
		for _, o := range write(t, s, next...) {
			checkOutcome(t, o, kvstore.Written, 6)
		}
		txns = txnsOf(l.take())
		if got, want := shape(txns), "create-only 200"; got != want {
			t.Errorf("after an absent cluster was read: transactions: %s; want %s", got, want)
		}
		for _, c := range append(next, back) {
			a.checkHolds(t, c)
		}
	})
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

// TestReadListMatchesPerClusterReads: a Read of listMin or more clusters
// under one prefix is one consistent recursive GET of the prefix and no
// transaction, and returns exactly what reading the clusters in small
// chunks (read transactions) returns: a key deleted or changed by hand, a
// cluster absent entirely (empty, not missing), an extra key one level
// below a cluster. Keys of clusters not asked for (x10 beside x1) and keys
// two levels below a main key are not mixed in, and no cluster not asked
// for is returned. Fewer clusters, or clusters under different prefixes,
// are read with transactions.
func TestReadListMatchesPerClusterReads(t *testing.T) {
	t.Parallel()
	a := startAgent(t, testserver.ConsulOptions{})
	l := startCallLog(t, a.Addr())
	writer := newStore(t, a, consulkv.Config{Provider: consulkv.ProviderTxn, MaxOpsPerTxn: 64})

	var asked []kvstore.Cluster
	for i := range 300 {
		asked = append(asked, cluster(fmt.Sprintf("list-%03d", i), master(i), 3))
	}
	x1, x10 := cluster("x1", master(501), 4), cluster("x10", master(502), 5)
	gone := cluster("list-gone", master(503), 1)
	write(t, writer, slices.Concat(asked, []kvstore.Cluster{x1, x10, cluster("list-other", master(504), 1)})...)
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
	want[gone.Alias] = kvstore.Observed{}

	for _, provider := range providers {
		t.Run(provider, func(t *testing.T) {
			l.take()
			got := read(t, newStore(t, a, consulkv.Config{Address: l.addr, Provider: provider, MaxOpsPerTxn: 64}), asked)
			calls := l.take()
			lists := listsOf(calls)
			if len(calls) != 1 || len(lists) != 1 {
				t.Fatalf("Read of %d clusters: %d requests (%d listings), want exactly one listing", len(asked), len(calls), len(lists))
			}
			if c := lists[0]; c.Path != "/v1/kv/"+layout.Prefix() || !c.Query.Has("consistent") || c.Status != http.StatusOK {
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
		other := kvstore.NewCluster(discovery.NewLayout("elsewhere/master", true), "list-elsewhere", master(0), 3)
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
		name string
		n    int
	}{
		{"listing", 300},
		{"read transactions", 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cs []kvstore.Cluster
			for i := range tc.n {
				cs = append(cs, cluster(fmt.Sprintf("remember%d-%03d", tc.n, i), master(i), 1))
			}
			write(t, newStore(t, a, consulkv.Config{Provider: consulkv.ProviderTxn, MaxOpsPerTxn: 64}), cs...)
			differs := cs[9]
			a.put(t, differs.MainKey()+"/ipv6", "fd00::bad") // the change below keeps ipv6 ""

			s := newStore(t, a, consulkv.Config{Address: l.addr, Provider: consulkv.ProviderTxn, MaxOpsPerTxn: 64})
			l.take()
			read(t, s, cs)
			if lists := listsOf(l.take()); (len(lists) == 1) != (tc.n >= listMin) {
				t.Fatalf("Read of %d clusters: %d listings", tc.n, len(lists))
			}

			// Ten unchanged clusters move: two transactions, no read.
			var changed []kvstore.Cluster
			for _, c := range cs[:10] {
				if c.Alias != differs.Alias {
					changed = append(changed, cluster(c.Alias, moved(master(indexOf(cs, c))), 2))
				}
			}
			for _, o := range write(t, s, changed...) {
				checkOutcome(t, o, kvstore.Written, 4)
			}
			calls := l.take()
			txns := txnsOf(calls)
			if reads, gets := readsOf(txns), kvGets(calls); len(reads) != 0 || len(gets) != 0 {
				t.Errorf("write after Read: %d read transactions, %d KV GETs; want none", len(reads), len(gets))
			}
			for _, x := range txns {
				v := verbs(x)
				if x.Status != http.StatusOK || v["set"] != 0 || v["cas"]+v["check-index"] != len(x.Ops) {
					t.Errorf("write after Read: status %d, verbs %v; want 200, cas and check-index only", x.Status, v)
				}
				for _, op := range x.Ops {
					if op.KV.Index == 0 {
						t.Errorf("write after Read: %s %s at index 0, want the index read", op.KV.Verb, op.KV.Key)
					}
				}
			}
			for _, c := range changed {
				a.checkHolds(t, c)
			}

			// The cluster that differed when read: its change leaves
			// exactly the cluster, the stray ipv6 included.
			next := cluster(differs.Alias, moved(master(9)), 2)
			checkOutcome(t, write(t, s, next)[0], kvstore.Written, 5)
			a.checkHolds(t, next)

			// Edited by hand after the Read: the planned write is refused,
			// the cluster read, written right.
			late := cs[tc.n-1]
			a.put(t, late.MainKey()+"/port", "1")
			l.take()
			next = cluster(late.Alias, moved(master(tc.n-1)), 2)
			checkOutcome(t, write(t, s, next)[0], kvstore.Written, 5)
			a.checkHolds(t, next)
			txns = txnsOf(l.take())
			if got, want := shape(txns), "write 409, read, write 200"; got != want {
				t.Errorf("write after a hand edit: transactions: %s; want %s", got, want)
			}
		})
	}
}

func indexOf(cs []kvstore.Cluster, c kvstore.Cluster) int {
	for i, x := range cs {
		if x.Alias == c.Alias {
			return i
		}
	}
	return -1
}
