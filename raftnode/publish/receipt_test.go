package publish_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/raftnode/httpapi"
	"github.com/masterkv/masterkv/raftnode/nodetest"
)

type receipt struct {
	Epoch  uint64            `json:"epoch"`
	Stores map[string]string `json:"stores"`
	Nodes  map[string]string `json:"nodes"`
}

// TestReceipts: POST /v1/failover answers with the outcome in each of the
// answering node's stores, and with ?wait=all with every other node's.
func TestReceipts(t *testing.T) {
	servers := make([]*httptest.Server, 3)
	for i := range servers {
		servers[i] = httptest.NewUnstartedServer(nil)
	}
	layout := discovery.NewLayout("mysql/master", true)
	g := newGroupWith(t, layout, nodetest.Options{}, servers)
	for i, srv := range servers {
		pubs := make([]httpapi.Publisher, len(g.pubs[i]))
		for j, p := range g.pubs[i] {
			pubs[j] = p
		}
		srv.Config.Handler = httpapi.New(g.raft.Nodes[i], g.raft.Nodes[i].FSM(), httpapi.Options{
			Layout: layout, Publishers: pubs, ReceiptTimeout: 3 * time.Second, WaitAllTimeout: 5 * time.Second, Logger: quiet,
		})
		srv.Start()
		t.Cleanup(srv.Close)
	}
	leader := g.raft.Index(g.raft.WaitLeader())
	post := func(path string, form url.Values) receipt {
		t.Helper()
		resp, err := http.Post(servers[leader].URL+path, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var rc receipt
		if err := json.NewDecoder(resp.Body).Decode(&rc); err != nil || resp.StatusCode != 200 {
			t.Fatalf("POST %s: status %d, decode error %v", path, resp.StatusCode, err)
		}
		return rc
	}

	rc := post("/v1/failover?wait=all", url.Values{"cluster": {"c1"}, "host": {"10.0.0.1"}, "port": {"3306"}})
	if rc.Stores["consul"] != "ok" || rc.Stores["zookeeper"] != "ok" {
		t.Errorf("stores = %v, want consul and zookeeper ok", rc.Stores)
	}
	if len(rc.Nodes) != 2 {
		t.Errorf("nodes = %v, want the two other nodes", rc.Nodes)
	}
	for id, v := range rc.Nodes {
		if v != "ok" {
			t.Errorf("node %s = %q, want ok", id, v)
		}
	}
	// ?wait=all answered only once every node's stores hold it.
	for i := range g.raft.Nodes {
		for _, p := range g.pubs[i] {
			if got := p.Applied("c1"); got < rc.Epoch {
				t.Errorf("node%d %s applied %d after wait=all, want >= %d", i, p.Name(), got, rc.Epoch)
			}
		}
	}

	// The leader's Consul down: its receipt says so, ZooKeeper is still ok.
	g.consul[leader].Stop()
	rc = post("/v1/failover", url.Values{"cluster": {"c1"}, "host": {"10.0.0.2"}, "port": {"3306"}})
	if rc.Stores["zookeeper"] != "ok" || !strings.HasPrefix(rc.Stores["consul"], "error: ") {
		t.Errorf("stores with consul down = %v, want zookeeper ok and a consul error", rc.Stores)
	}
	g.consul[leader].Start()
	g.everywhere(15*time.Second, g.want("c1", "10.0.0.2", rc.Epoch))
}
