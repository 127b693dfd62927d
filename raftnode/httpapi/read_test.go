package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/masterkv/masterkv/internal/discovery"
)

// recordView is a record as GET /v1/masters shows it.
type recordView struct {
	Cluster   string             `json:"cluster"`
	Master    string             `json:"master"`
	Host      string             `json:"host"`
	Port      int                `json:"port"`
	IPv4      string             `json:"ipv4"`
	IPv6      string             `json:"ipv6"`
	Epoch     uint64             `json:"epoch"`
	UpdatedAt string             `json:"updated_at"`
	Source    string             `json:"source"`
	RequestID string             `json:"request_id"`
	Pairs     []discovery.KVPair `json:"pairs"`
}

var viewKeys = []string{"cluster", "master", "host", "port", "ipv4", "ipv6", "epoch", "updated_at", "source", "request_id", "pairs"}

// TestReadMasters reads the records from every node, the leader and both
// followers, including an alias with ':' as orchestrator names clusters.
func TestReadMasters(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	for i := range c.raft.Nodes {
		t.Run(fmt.Sprintf("empty store node%d", i), func(t *testing.T) {
			r := c.do(t, i, http.MethodGet, "/v1/masters", "")
			mustStatus(t, r, http.StatusOK)
			if got := string(r.body); got != "{\n  \"masters\": []\n}\n" {
				t.Errorf("body = %q, want an empty list, not null", got)
			}
		})
	}

	fo := c.mustFailover(t, c.follower(t), `{"cluster":"db-1:3306","host":"10.0.0.5","port":3306}`, "Idempotency-Key", "r-1")
	c.mustPopulate(t, c.leader(t), `{"masters":[{"cluster":"alpha","host":"db-2.example.com","port":3307,"ipv6":"fd00::2"}]}`, populateAnswer{Checked: 1, Submitted: 1})
	// The leader answered, so its store holds both; wait for the others.
	alpha, _ := c.raft.WaitLeader().FSM().Record("alpha")
	c.waitRecord(t, "db-1:3306", "10.0.0.5:3306", fo.Epoch)
	c.waitRecord(t, "alpha", "db-2.example.com:3307", alpha.Epoch)
	wantDB := recordView{
		Cluster: "db-1:3306", Master: "10.0.0.5:3306", Host: "10.0.0.5", Port: 3306, IPv4: "10.0.0.5",
		Epoch: fo.Epoch, UpdatedAt: "2025-03-01T12:00:00.000Z", Source: "failover", RequestID: "r-1",
		Pairs: wantPairs("db-1:3306", "10.0.0.5", 3306, "10.0.0.5", "", fo.Epoch),
	}
	wantAlpha := recordView{
		Cluster: "alpha", Master: "db-2.example.com:3307", Host: "db-2.example.com", Port: 3307, IPv6: "fd00::2",
		Epoch: alpha.Epoch, UpdatedAt: "2025-03-01T12:00:00.000Z", Source: "populate",
		Pairs: wantPairs("alpha", "db-2.example.com", 3307, "", "fd00::2", alpha.Epoch),
	}
	if alpha.Epoch <= fo.Epoch {
		t.Fatalf("alpha epoch = %d, want more than the failover's %d", alpha.Epoch, fo.Epoch)
	}

	for i := range c.raft.Nodes {
		for _, path := range []string{"/v1/masters/db-1:3306", "/v1/masters/db-1%3A3306"} {
			t.Run(fmt.Sprintf("node%d GET %s", i, path), func(t *testing.T) {
				r := c.do(t, i, http.MethodGet, path, "")
				mustStatus(t, r, http.StatusOK)
				mustKeys(t, r.body, viewKeys...)
				var got recordView
				decodeStrict(t, r.body, &got)
				if !equalView(got, wantDB) {
					t.Errorf("got  %+v\nwant %+v", got, wantDB)
				}
			})
		}
		t.Run(fmt.Sprintf("node%d GET /v1/masters", i), func(t *testing.T) {
			r := c.do(t, i, http.MethodGet, "/v1/masters", "")
			mustStatus(t, r, http.StatusOK)
			mustKeys(t, r.body, "masters")
			var got struct{ Masters []recordView }
			decodeStrict(t, r.body, &got)
			want := []recordView{wantAlpha, wantDB} // sorted by cluster
			if !slices.EqualFunc(got.Masters, want, equalView) {
				t.Errorf("masters =\n%+v\nwant\n%+v", got.Masters, want)
			}
		})
	}
}

func equalView(a, b recordView) bool { return reflect.DeepEqual(a, b) }

// status mirrors node.Status as JSON.
type status struct {
	NodeID            string   `json:"node_id"`
	State             string   `json:"state"`
	Leader            peer     `json:"leader"`
	Peers             []member `json:"peers"`
	Term              uint64   `json:"term"`
	LastIndex         uint64   `json:"last_index"`
	CommitIndex       uint64   `json:"commit_index"`
	AppliedIndex      uint64   `json:"applied_index"`
	LastSnapshotIndex uint64   `json:"last_snapshot_index"`
	Clusters          int      `json:"clusters"`
	// Stores lists the node's external stores; the test nodes have none.
	Stores []json.RawMessage `json:"stores"`
}

type peer struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}

type member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	Suffrage string `json:"suffrage"`
}

// TestStatus checks /v1/status on every node: its own id and state, the
// leader with its HTTP address, and every peer.
func TestStatus(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	fo := c.mustFailover(t, c.follower(t), `{"cluster":"orders","host":"10.0.0.5","port":3306}`)
	c.waitRecord(t, "orders", "10.0.0.5:3306", fo.Epoch)
	l := c.leader(t)
	wantLeader := peer{ID: fmt.Sprintf("node%d", l), RaftAddr: fmt.Sprintf("node%d", l), HTTPAddr: c.urls[l]}
	var wantPeers []member
	for i := range c.raft.Nodes {
		wantPeers = append(wantPeers, member{ID: fmt.Sprintf("node%d", i), RaftAddr: fmt.Sprintf("node%d", i), HTTPAddr: c.urls[i], Suffrage: "Voter"})
	}
	for i := range c.raft.Nodes {
		t.Run(fmt.Sprintf("node%d", i), func(t *testing.T) {
			r := c.do(t, i, http.MethodGet, "/v1/status", "")
			mustStatus(t, r, http.StatusOK)
			// The status view grows with the node; require what is checked.
			mustHaveKeys(t, r.body, "node_id", "state", "leader", "peers", "term", "last_index", "applied_index", "clusters", "stores")
			var got status
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Fatalf("decode %s: %v", r.body, err)
			}
			wantState := "Follower"
			if i == l {
				wantState = "Leader"
			}
			if got.NodeID != fmt.Sprintf("node%d", i) || got.State != wantState {
				t.Errorf("node_id, state = %q, %q; want node%d, %s", got.NodeID, got.State, i, wantState)
			}
			if got.Leader != wantLeader {
				t.Errorf("leader = %+v, want %+v", got.Leader, wantLeader)
			}
			if !slices.Equal(got.Peers, wantPeers) {
				t.Errorf("peers = %+v, want %+v", got.Peers, wantPeers)
			}
			if got.Stores == nil || len(got.Stores) != 0 {
				t.Errorf("stores = %v, want [] (no stores configured)", got.Stores)
			}
			if got.Clusters != 1 || got.AppliedIndex < fo.Epoch || got.LastIndex < got.AppliedIndex || got.Term == 0 {
				t.Errorf("clusters %d, term %d, last %d, applied %d; want 1 cluster, term > 0, last >= applied >= %d",
					got.Clusters, got.Term, got.LastIndex, got.AppliedIndex, fo.Epoch)
			}
		})
	}
}

// TestHealthz checks that /healthz answers without a token (load balancer
// probes carry none) while the rest of the API does not.
func TestHealthz(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	tests := []struct {
		name, method, path, auth string
		status                   int
		health                   string // the "status" field of the answer; "" to skip
	}{
		{"healthz without token", "GET", "/healthz", "", http.StatusOK, "ok"},
		{"healthz with a wrong token", "GET", "/healthz", "Bearer nope", http.StatusOK, "ok"},
		{"healthz is GET only", "POST", "/healthz", "Bearer " + token, http.StatusMethodNotAllowed, ""},
		// A method no route takes is told only to a caller with a token.
		{"healthz POST without token", "POST", "/healthz", "", http.StatusUnauthorized, ""},
		{"status without token", "GET", "/v1/status", "", http.StatusUnauthorized, ""},
		{"masters without token", "GET", "/v1/masters", "", http.StatusUnauthorized, ""},
	}
	for i := range c.raft.Nodes {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("node%d %s", i, tc.name), func(t *testing.T) {
				hdr := []string{"Authorization", tc.auth}
				r := c.do(t, i, tc.method, tc.path, "", hdr...)
				mustStatus(t, r, tc.status)
				if tc.health != "" {
					var h struct{ Status string }
					if err := json.Unmarshal(r.body, &h); err != nil || h.Status != tc.health {
						t.Errorf("body = %s, want a JSON object with status %q", r.body, tc.health)
					}
				}
			})
		}
	}
}

// TestBearerSchemeIsCaseInsensitive: RFC 9110 makes the scheme name
// case-insensitive; the token itself is compared exactly.
func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	for _, tc := range []struct {
		auth string
		want int
	}{
		{"bearer " + token, http.StatusOK},
		{"BEARER " + token, http.StatusOK},
		{"Bearer " + strings.ToUpper(token), http.StatusUnauthorized},
		{"Basic " + token, http.StatusUnauthorized},
		{"Bearer", http.StatusUnauthorized},
	} {
		r := c.do(t, c.leader(t), http.MethodGet, "/v1/status", "", "Authorization", tc.auth)
		if r.status != tc.want {
			t.Errorf("Authorization %q: status %d, want %d", tc.auth, r.status, tc.want)
		}
	}
}
