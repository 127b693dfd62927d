package consulkv_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
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

// providers are both writers; most behaviours must hold for each.
var providers = []string{consulkv.ProviderPlain, consulkv.ProviderTxn}

// layout is the default key layout with the epoch key: 6 keys per cluster.
var layout = discovery.NewLayout(discovery.DefaultPrefix, true)

// The suffixes of a cluster's keys in layout order; "" is the main key.
var suffixes = []string{"", "/hostname", "/port", "/ipv4", "/ipv6", "/epoch"}

// agent is a real Consul agent and a separate client that inspects it,
// independent of the code under test.
type agent struct {
	*testserver.Consul
	kv  *api.KV
	api *api.Client
}

func startAgent(t *testing.T, opts testserver.ConsulOptions) *agent {
	t.Helper()
	c := testserver.StartConsul(t, opts)
	cli, err := api.NewClient(&api.Config{Address: c.Addr(), Token: opts.ManagementToken})
	if err != nil {
		t.Fatalf("inspecting consul client: %v", err)
	}
	return &agent{Consul: c, kv: cli.KV(), api: cli}
}

// newStore builds a store; cfg.Address defaults to the agent.
func newStore(t *testing.T, a *agent, cfg consulkv.Config) *consulkv.Store {
	t.Helper()
	if cfg.Address == "" {
		cfg.Address = a.Addr()
	}
	s, err := consulkv.New(cfg)
	if err != nil {
		t.Fatalf("consulkv.New(%+v): %v", cfg, err)
	}
	return s
}

// master returns a distinct master for n: host db-n.example, port 3306+n%100,
// ipv4 10.0.x.y, ipv6 empty (as orchestrator writes it when unresolved).
func sampleMaster(n int) master.Master {
	return master.Master{
		Host: fmt.Sprintf("db-%d.example", n),
		Port: 3306 + n%100,
		IPv4: fmt.Sprintf("10.0.%d.%d", n/250%250, n%250+1),
	}
}

func cluster(alias string, m master.Master, epoch uint64) kvstore.Cluster {
	return kvstore.NewCluster(layout, alias, m, epoch)
}

// entry is one stored key as Consul reports it.
type entry struct {
	Value string
	Index uint64
}

// snapshot reads everything Consul holds for alias under the default
// layout: its main key and every key below it, with values and ModifyIndex.
func (a *agent) snapshot(t *testing.T, alias string) map[string]entry {
	t.Helper()
	return a.snapshotKey(t, layout.ClusterKey(alias))
}

func (a *agent) snapshotKey(t *testing.T, main string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	q := &api.QueryOptions{RequireConsistent: true}
	p, _, err := a.kv.Get(main, q)
	if err != nil {
		t.Fatalf("inspect get %s: %v", main, err)
	}
	if p != nil {
		out[p.Key] = entry{string(p.Value), p.ModifyIndex}
	}
	below, _, err := a.kv.List(main+"/", q)
	if err != nil {
		t.Fatalf("inspect list %s/: %v", main, err)
	}
	for _, p := range below {
		out[p.Key] = entry{string(p.Value), p.ModifyIndex}
	}
	return out
}

func (a *agent) put(t *testing.T, key, value string) {
	t.Helper()
	if _, err := a.kv.Put(&api.KVPair{Key: key, Value: []byte(value)}, nil); err != nil {
		t.Fatalf("hand put %s: %v", key, err)
	}
}

func (a *agent) del(t *testing.T, key string) {
	t.Helper()
	if _, err := a.kv.Delete(key, nil); err != nil {
		t.Fatalf("hand delete %s: %v", key, err)
	}
}

// values drops the indexes of a snapshot.
func values(s map[string]entry) map[string]string {
	out := map[string]string{}
	for k, e := range s {
		out[k] = e.Value
	}
	return out
}

// pairsOf is what Consul must hold for c.
func pairsOf(c kvstore.Cluster) map[string]string {
	out := map[string]string{}
	for _, p := range c.Pairs {
		out[p.Key] = p.Value
	}
	return out
}

// checkHolds fails unless Consul holds exactly c's pairs under c.
func (a *agent) checkHolds(t *testing.T, c kvstore.Cluster) {
	t.Helper()
	got, want := values(a.snapshotKey(t, c.MainKey())), pairsOf(c)
	if !mapsEqual(got, want) {
		t.Errorf("consul holds for %s:\n got %v\nwant %v", c.Alias, got, want)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// write calls Write with a deadline and checks one outcome per cluster, in
// order, with alias and epoch copied.
func write(t *testing.T, s *consulkv.Store, clusters ...kvstore.Cluster) []kvstore.Outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := s.Write(ctx, clusters)
	if len(out) != len(clusters) {
		t.Fatalf("Write returned %d outcomes for %d clusters", len(out), len(clusters))
	}
	for i, o := range out {
		if o.Alias != clusters[i].Alias || o.Epoch != clusters[i].Epoch {
			t.Fatalf("outcome %d is for %s@%d, want %s@%d", i, o.Alias, o.Epoch, clusters[i].Alias, clusters[i].Epoch)
		}
	}
	return out
}

// checkOutcome fails unless o has status and keys and, for non-failed
// statuses, no error.
func checkOutcome(t *testing.T, o kvstore.Outcome, status kvstore.Status, keys int) {
	t.Helper()
	if o.Status != status || o.Keys != keys || (status != kvstore.Failed && o.Err != nil) {
		t.Errorf("outcome for %s@%d = %v keys=%d err=%v, want %v keys=%d", o.Alias, o.Epoch, o.Status, o.Keys, o.Err, status, keys)
	}
}

// newUUID returns a random UUID, the shape Consul wants for ACL tokens.
func newUUID(t *testing.T) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random: %v", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// txnRecord is one PUT /v1/txn that went through the recording proxy.
type txnRecord struct {
	Ops    []recordedOp
	Status int
}

type recordedOp struct {
	KV struct {
		Verb  string
		Key   string
		Index uint64
	}
}

// write reports whether the transaction changes anything; reads are only
// get and get-tree.
func (r txnRecord) write() bool {
	for _, op := range r.Ops {
		if op.KV.Verb != string(api.KVGet) && op.KV.Verb != string(api.KVGetTree) {
			return true
		}
	}
	return false
}

// recorder is a reverse proxy in front of a real agent that records every
// transaction sent through it, with the agent's answer.
type recorder struct {
	addr string

	mu   sync.Mutex
	txns []txnRecord
	puts int // PUT /v1/kv requests (plain writes)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func startRecorder(t *testing.T, target string) *recorder {
	t.Helper()
	u, err := url.Parse("http://" + target)
	if err != nil {
		t.Fatalf("proxy target: %v", err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut {
			proxy.ServeHTTP(w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/v1/kv/") {
			rec.mu.Lock()
			rec.puts++
			rec.mu.Unlock()
		}
		if r.URL.Path != "/v1/txn" {
			proxy.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var ops []recordedOp
		if err := json.Unmarshal(body, &ops); err != nil {
			t.Errorf("proxy: txn body is not a JSON array of ops: %v: %s", err, body)
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		proxy.ServeHTTP(sw, r)
		rec.mu.Lock()
		rec.txns = append(rec.txns, txnRecord{Ops: ops, Status: sw.status})
		rec.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	rec.addr = strings.TrimPrefix(srv.URL, "http://")
	return rec
}

// take returns the transactions recorded so far and forgets them.
func (r *recorder) take() []txnRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.txns
	r.txns, r.puts = nil, 0
	return out
}

func writesOf(txns []txnRecord) []txnRecord {
	var out []txnRecord
	for _, x := range txns {
		if x.write() {
			out = append(out, x)
		}
	}
	return out
}

// aliasOf is the cluster a key belongs to under the default prefix.
func aliasOf(key string) string {
	rest := strings.TrimPrefix(key, layout.Prefix())
	alias, _, _ := strings.Cut(rest, "/")
	return alias
}

// verbs counts the verbs of a transaction, e.g. {"set": 52, "cas": 8}.
func verbs(x txnRecord) map[string]int {
	out := map[string]int{}
	for _, op := range x.Ops {
		out[op.KV.Verb]++
	}
	return out
}

func sizes(txns []txnRecord) []int {
	out := make([]int, len(txns))
	for i, x := range txns {
		out[i] = len(x.Ops)
	}
	return out
}

func maxSize(txns []txnRecord) int {
	return slices.Max(append(sizes(txns), 0))
}
