package front_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/hashicorp/raft"

	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/front/failover"
	"github.com/masterkv/masterkv/internal/front/populate"
	"github.com/masterkv/masterkv/internal/front/submit"
	"github.com/masterkv/masterkv/internal/nodeclient"
	"github.com/masterkv/masterkv/internal/orchestratorapi"
	"github.com/masterkv/masterkv/internal/webhook"
	"github.com/masterkv/masterkv/raftnode/httpapi"
	"github.com/masterkv/masterkv/raftnode/nodetest"
)

// The credentials the fixtures in events/ were made with. They exist only
// for the fixtures.
const (
	fixtureToken  = "fixture-webhook-token-0001"
	fixtureSecret = "fixture-hmac-secret-0001"
	nodeToken     = "node-token"
)

// fixtureTime is the t of the signed fixtures and the nodes' clock.
var fixtureTime = time.Unix(1740830400, 0).UTC()

// group is a three-node raft group with each node's HTTP API on a real
// loopback listener, as raftnode/httpapi's tests build it.
type group struct {
	raft *nodetest.Cluster
	urls []string
}

type groupOptions struct {
	// leaderWait is how long a follower waits for a leader (0: 5s).
	leaderWait time.Duration
}

func newGroup(t *testing.T, o groupOptions) *group {
	t.Helper()
	const n = 3
	g := &group{}
	var srvs []*httptest.Server
	for range n {
		srv := httptest.NewUnstartedServer(http.NotFoundHandler())
		t.Cleanup(srv.Close)
		srvs = append(srvs, srv)
		g.urls = append(g.urls, "http://"+srv.Listener.Addr().String())
	}
	g.raft = nodetest.New(t, n, nodetest.Options{HTTPAddrs: g.urls, Tune: func(rc *raft.Config) {
		// Slower than nodetest's fastest, so leadership stays put under -race.
		rc.HeartbeatTimeout = 400 * time.Millisecond
		rc.ElectionTimeout = 400 * time.Millisecond
		rc.LeaderLeaseTimeout = 200 * time.Millisecond
	}})
	for i, nd := range g.raft.Nodes {
		srvs[i].Config.Handler = httpapi.New(nd, nd.FSM(), httpapi.Options{
			Layout: discovery.NewLayout("mysql/master", true), Tokens: []string{nodeToken},
			LeaderWait: o.leaderWait, Now: func() time.Time { return fixtureTime }, Logger: quiet,
		})
		srvs[i].Start()
	}
	return g
}

var quiet = slog.New(slog.DiscardHandler)

// leader returns the position of the leader.
func (g *group) leader(t *testing.T) int {
	t.Helper()
	return g.raft.Index(g.raft.WaitLeader())
}

// lastIndex returns the leader's id and raft LastIndex.
func (g *group) lastIndex(t *testing.T) (string, uint64) {
	t.Helper()
	l := g.raft.WaitLeader()
	return l.ID(), l.Status().LastIndex
}

// assertNoNewEntry fails when the leader's log grew since (id, idx).
func (g *group) assertNoNewEntry(t *testing.T, id string, idx uint64) {
	t.Helper()
	gotID, got := g.lastIndex(t)
	if gotID != id {
		t.Fatalf("leader moved from %s to %s during the test; cannot compare raft indexes", id, gotID)
	}
	if got != idx {
		t.Errorf("leader raft LastIndex = %d, want %d unchanged (something was committed)", got, idx)
	}
}

// seed commits a failover through the leader's HTTP API.
func (g *group) seed(t *testing.T, cluster, host string, port int) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"cluster": cluster, "host": host, "port": port})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, g.urls[g.leader(t)]+"/v1/failover", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+nodeToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("seed %s: %v", cluster, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("seed %s: status %d: %s", cluster, resp.StatusCode, b)
	}
	g.waitRecord(t, cluster, host+":"+strconv.Itoa(port))
}

// waitRecord waits until every node holds cluster with master (host:port).
func (g *group) waitRecord(t *testing.T, cluster, master string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok := true
		for _, n := range g.raft.Nodes {
			rec, found := n.FSM().Record(cluster)
			ok = ok && found && rec.Master.HostPort() == master
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every node holds %s = %s within 10s", cluster, master)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// assertNoRecord fails when any node holds cluster.
func (g *group) assertNoRecord(t *testing.T, cluster string) {
	t.Helper()
	for _, n := range g.raft.Nodes {
		if rec, ok := n.FSM().Record(cluster); ok {
			t.Errorf("%s holds %s = %s, want no record", n.ID(), cluster, rec.Master.HostPort())
		}
	}
}

// attempt is one request the functions sent to a node.
type attempt struct {
	node   string
	path   string
	status int // 0: transport error
	body   int
	key    string
}

// recorder is a transport that records every attempt.
type recorder struct {
	mu   sync.Mutex
	log  []attempt
	next http.RoundTripper
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	a := attempt{node: "http://" + req.URL.Host, path: req.URL.RequestURI(), body: int(req.ContentLength), key: req.Header.Get("Idempotency-Key")}
	resp, err := r.next.RoundTrip(req)
	if err == nil {
		a.status = resp.StatusCode
	}
	r.mu.Lock()
	r.log = append(r.log, a)
	r.mu.Unlock()
	return resp, err
}

func (r *recorder) attempts() []attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]attempt(nil), r.log...)
}

// nodesClient returns a node client on urls whose attempts rec records.
func nodesClient(t *testing.T, rec *recorder, urls ...string) *nodeclient.Client {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	var rt http.RoundTripper = tr
	if rec != nil {
		rec.next = tr
		rt = rec
	}
	c, err := nodeclient.New(nodeclient.Config{
		Nodes: urls, Token: nodeToken, Timeout: 10 * time.Second, ConnectTimeout: time.Second, Attempts: 6,
	}, nodeclient.Options{Transport: rt, Backoff: 20 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatalf("node client: %v", err)
	}
	return c
}

// functions are the three handlers, wired as the mains wire them.
type functions struct {
	failover *failover.Handler
	submit   *submit.Handler
	populate *populate.Handler
}

// newFunctions wires the handlers to nodes; now is the webhook clock and
// orch the orchestrator source (nil: none).
func newFunctions(nodes *nodeclient.Client, now func() time.Time, orch populate.Source) functions {
	creds := webhook.Credentials{Tokens: []string{fixtureToken}, Secrets: []string{fixtureSecret}}
	return functions{
		failover: failover.New(nodes, creds.Verifier(now), quiet),
		submit:   submit.New(nodes, creds.Verifier(now), quiet),
		populate: populate.New(nodes, orch, quiet),
	}
}

// fixedClock is the webhook clock at the signed fixtures' t.
func fixedClock() time.Time { return fixtureTime }

// invoke runs fn's handler on payload as the Lambda runtime does
// (lambda.NewHandler decodes the event and encodes the answer).
func (f functions) invoke(t *testing.T, fn string, payload []byte) ([]byte, error) {
	t.Helper()
	var h any
	switch fn {
	case "failover":
		h = f.failover.Handle
	case "submit":
		h = f.submit.Handle
	case "populate":
		h = f.populate.Handle
	default:
		t.Fatalf("no function %q", fn)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	return lambda.NewHandler(h).Invoke(ctx, payload)
}

// httpAnswer is a function's HTTP answer, decoded.
type httpAnswer struct {
	StatusCode      int               `json:"statusCode"`
	Headers         map[string]string `json:"headers"`
	Body            string            `json:"body"`
	IsBase64Encoded bool              `json:"isBase64Encoded"`
	Cookies         []string          `json:"cookies"`
}

// mustHTTP decodes an HTTP function's answer and checks its status.
func mustHTTP(t *testing.T, out []byte, err error, status int) httpAnswer {
	t.Helper()
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	var a httpAnswer
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		t.Fatalf("answer %s is not a payload-2.0 response: %v", out, err)
	}
	if a.StatusCode != status {
		t.Fatalf("status = %d, want %d; body %s", a.StatusCode, status, a.Body)
	}
	return a
}

// decodeBody decodes an answer's JSON body into v.
func decodeBody(t *testing.T, a httpAnswer, v any) {
	t.Helper()
	if ct := a.Headers["Content-Type"]; ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if err := json.Unmarshal([]byte(a.Body), v); err != nil {
		t.Fatalf("body %s: %v", a.Body, err)
	}
}

// eventsDir is the repository's events/ folder.
var eventsDir = filepath.Join("..", "..", "events")

// fixture reads events/name.
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(eventsDir, name))
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return b
}

// editFixture decodes events/name, lets edit change it, and encodes it.
func editFixture(t *testing.T, name string, edit func(ev map[string]any)) []byte {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(fixture(t, name), &ev); err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	edit(ev)
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// headersOf returns an HTTP event's headers, to edit in place.
func headersOf(ev map[string]any) map[string]any { return ev["headers"].(map[string]any) }

// deadURL is a loopback URL nothing listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// fakeOrchestrator serves /api/clusters-info and /api/masters for
// masters, keyed by alias (or cluster name when the alias is empty); a
// master mapped to nil is listed without host and port, which the client
// reports as that cluster's error. orchestrator needs MySQL and cannot run
// here, so this stands in for its two read endpoints.
func fakeOrchestrator(t *testing.T, clusters []map[string]string, masters map[string]*orchestratorapi.Master) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/clusters-info", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(clusters)
	})
	mux.HandleFunc("GET /api/masters", func(w http.ResponseWriter, r *http.Request) {
		out := []map[string]any{}
		for _, ci := range clusters {
			key := ci["ClusterAlias"]
			if key == "" {
				key = ci["ClusterName"]
			}
			m, ok := masters[key]
			if !ok {
				continue
			}
			if m == nil {
				m = &orchestratorapi.Master{}
			}
			out = append(out, map[string]any{
				"Key": map[string]any{"Hostname": m.Host, "Port": m.Port}, "ReadOnly": false, "ClusterName": ci["ClusterName"],
			})
		}
		_ = json.NewEncoder(w).Encode(out)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// orchestrator returns a client of the fake at url.
func orchestrator(t *testing.T, url string) *orchestratorapi.Client {
	t.Helper()
	c, err := orchestratorapi.New(url, orchestratorapi.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// containsAll reports whether s contains every part.
func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
