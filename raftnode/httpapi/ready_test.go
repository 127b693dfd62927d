package httpapi_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/raftnode/httpapi"
	"github.com/masterkv/masterkv/raftnode/node"
)

// newDevNode starts a single-node group the way `make run` does (bootstrap
// on first start, its own HTTP address in Peers) with raft's default
// timeouts, and serves its API at once: the first election takes a second
// or two, so a test can write before it ends. It does not wait for a leader.
func newDevNode(t *testing.T) (*node.Node, string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	url := "http://" + srv.Listener.Addr().String()
	addr, tr := raft.NewInmemTransport("dev0")
	logs := raft.NewInmemStore()
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := node.New(node.Config{
		ID: "node1", Peers: []node.Peer{{ID: "node1", RaftAddr: string(addr), HTTPAddr: url}},
		Bootstrap: true, Logger: discard,
	}, node.Deps{Transport: tr, Logs: logs, Stable: logs, Snaps: raft.NewInmemSnapshotStore()})
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() { _ = n.Close() })
	srv.Config.Handler = httpapi.New(n, n.FSM(), httpapi.Options{
		Layout: discovery.NewLayout("mysql/master", true), Tokens: []string{token},
		Now: func() time.Time { return fixedNow }, Logger: discard,
	})
	srv.Start()
	return n, url
}

// TestWriteDuringFirstElection is `make run` followed at once by the
// README's curl: the write reaches the node before its first election
// ends. The node wins that election, so the write commits here instead of
// being "forwarded" to itself (which answered 503 "leader "node1" has no
// usable HTTP address"). /readyz answers 503 with its reason until the
// node is leader and caught up, then 200.
func TestWriteDuringFirstElection(t *testing.T) {
	n, url := newDevNode(t)
	c := &apiCluster{urls: []string{url}, client: &http.Client{Timeout: 20 * time.Second}}
	if st := n.Status(); st.Leader.ID != "" {
		t.Fatalf("test setup: leader %s already elected before the first request", st.Leader.ID)
	}
	if r := c.do(t, 0, http.MethodGet, "/readyz", "", "Authorization", ""); r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "no leader") {
		t.Errorf("/readyz before the election = %d %s, want 503 saying there is no leader", r.status, r.body)
	}

	start := time.Now()
	r := c.do(t, 0, http.MethodPost, "/v1/failover", "cluster=mycluster&host=10.0.0.12&port=3306", "Idempotency-Key", "first")
	mustStatus(t, r, http.StatusOK)
	var rc receipt
	decodeStrict(t, r.body, &rc)
	if rc.Cluster != "mycluster" || rc.Master != "10.0.0.12:3306" || rc.Epoch == 0 || rc.Duplicate {
		t.Errorf("receipt = %+v, want mycluster = 10.0.0.12:3306, a fresh commit", rc)
	}
	t.Logf("committed %s after the request was sent, during the first election", time.Since(start).Round(time.Millisecond))
	if rec, ok := n.FSM().Record("mycluster"); !ok || rec.Epoch != rc.Epoch {
		t.Errorf("store holds %+v (found %v), want epoch %d", rec, ok, rc.Epoch)
	}

	r = c.do(t, 0, http.MethodGet, "/readyz", "", "Authorization", "")
	mustStatus(t, r, http.StatusOK)
	var ready map[string]any
	if err := json.Unmarshal(r.body, &ready); err != nil || ready["status"] != "ready" || ready["leader"] != "node1" {
		t.Errorf("/readyz = %s, want status ready and leader node1", r.body)
	}
}

// TestReadyzReasons checks /readyz on a running three-node group: ready on
// every node; on a survivor without a leader, 503 naming the reason.
func TestReadyzReasons(t *testing.T) {
	c := newAPICluster(t, clusterOptions{fastRaft: true})
	for i := range c.raft.Nodes {
		waitFor(t, 10*time.Second, "node"+string(rune('0'+i))+" ready", func() bool {
			return c.do(t, i, http.MethodGet, "/readyz", "", "Authorization", "").status == http.StatusOK
		})
	}
	s := c.follower(t)
	for i := range c.raft.Nodes {
		if i != s {
			c.raft.Stop(i)
		}
	}
	waitFor(t, 10*time.Second, "the survivor to see no leader", func() bool {
		return c.raft.Nodes[s].Status().Leader.ID == ""
	})
	r := c.do(t, s, http.MethodGet, "/readyz", "", "Authorization", "")
	mustAPIError(t, r, http.StatusServiceUnavailable, "", "no leader")
	if !strings.Contains(string(r.body), "leader") {
		t.Errorf("/readyz body %s does not say why", r.body)
	}
}
