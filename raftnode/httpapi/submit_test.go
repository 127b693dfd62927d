package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/masterkv/masterkv/internal/command"
	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/raftnode/fsm"
)

// orchestratorAnswer is orchestrator's API response shape.
type orchestratorAnswer struct {
	Code    string
	Message string
	Details json.RawMessage
}

// mustOrchestratorAnswer checks that r is exactly {"Code","Message",
// "Details"} with the given status and code, and returns it.
func mustOrchestratorAnswer(t *testing.T, r response, status int, code string) orchestratorAnswer {
	t.Helper()
	mustStatus(t, r, status)
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	mustKeys(t, r.body, "Code", "Message", "Details")
	var a orchestratorAnswer
	decodeStrict(t, r.body, &a)
	if a.Code != code {
		t.Errorf("Code = %q, want %q; body %s", a.Code, code, r.body)
	}
	return a
}

// kvLines is what `orchestrator-client -c submit-masters-to-kv-stores`
// prints: jq '.Details[] | .Key + ":" + .Value', one line per pair.
func kvLines(t *testing.T, details json.RawMessage) []string {
	t.Helper()
	var pairs []struct{ Key, Value string }
	if err := json.Unmarshal(details, &pairs); err != nil {
		t.Fatalf("Details %s is not a list of pairs: %v", details, err)
	}
	lines := make([]string, 0, len(pairs))
	for _, p := range pairs {
		lines = append(lines, p.Key+":"+p.Value)
	}
	return lines
}

// TestSubmitEmptyStore checks that submitting nothing answers "Submitted 0
// masters" with an empty list (never null, which jq's .Details[] refuses)
// and commits nothing.
func TestSubmitEmptyStore(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	for _, tg := range c.targets(t) {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			for _, path := range []string{"/api/submit-masters-to-kv-stores", "/api/submit-masters-to-kv-stores/"} {
				t.Run(tg.name+" "+method+" "+path, func(t *testing.T) {
					leaderID, before := c.lastIndex(t)
					a := mustOrchestratorAnswer(t, c.do(t, tg.node, method, path, ""), http.StatusOK, "OK")
					if a.Message != "Submitted 0 masters" || string(a.Details) != "[]" {
						t.Errorf("Message, Details = %q, %s; want %q, []", a.Message, a.Details, "Submitted 0 masters")
					}
					if lines := kvLines(t, a.Details); len(lines) != 0 {
						t.Errorf("orchestrator-client would print %q, want nothing", lines)
					}
					c.assertNoNewEntry(t, leaderID, before)
				})
			}
		}
	}
}

// TestSubmitMastersToKVStores submits all clusters and single clusters with
// GET and POST on the leader and on a follower: the answer has
// orchestrator's exact shape, Details holds every pair of the submitted
// clusters at a new, higher epoch, and every node holds that epoch.
func TestSubmitMastersToKVStores(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	a := c.mustFailover(t, c.leader(t), `{"cluster":"alpha","host":"10.0.0.5","port":3306}`)
	b := c.mustFailover(t, c.follower(t), `{"cluster":"db-1:3306","host":"fd00::7","port":3307}`)
	c.waitRecord(t, "alpha", "10.0.0.5:3306", a.Epoch)
	c.waitRecord(t, "db-1:3306", "fd00::7:3307", b.Epoch)

	// The lines orchestrator-client prints, spelled out for epoch e.
	alphaLines := func(e uint64) []string {
		s := strconv.FormatUint(e, 10)
		return []string{
			"mysql/master/alpha:10.0.0.5:3306",
			"mysql/master/alpha/hostname:10.0.0.5",
			"mysql/master/alpha/port:3306",
			"mysql/master/alpha/ipv4:10.0.0.5",
			"mysql/master/alpha/ipv6:",
			"mysql/master/alpha/epoch:" + s,
		}
	}
	dbLines := func(e uint64) []string {
		s := strconv.FormatUint(e, 10)
		return []string{
			"mysql/master/db-1:3306:fd00::7:3307",
			"mysql/master/db-1:3306/hostname:fd00::7",
			"mysql/master/db-1:3306/port:3307",
			"mysql/master/db-1:3306/ipv4:",
			"mysql/master/db-1:3306/ipv6:fd00::7",
			"mysql/master/db-1:3306/epoch:" + s,
		}
	}
	type cluster struct {
		alias, master string
		pairs         func(uint64) []discovery.KVPair
		lines         func(uint64) []string
	}
	alpha := cluster{"alpha", "10.0.0.5:3306", func(e uint64) []discovery.KVPair {
		return wantPairs("alpha", "10.0.0.5", 3306, "10.0.0.5", "", e)
	}, alphaLines}
	db := cluster{"db-1:3306", "fd00::7:3307", func(e uint64) []discovery.KVPair {
		return wantPairs("db-1:3306", "fd00::7", 3307, "", "fd00::7", e)
	}, dbLines}

	tests := []struct {
		name   string
		node   int
		method string
		path   string
		want   []cluster
	}{
		{"all GET leader", c.leader(t), "GET", "/api/submit-masters-to-kv-stores", []cluster{alpha, db}},
		{"all POST follower", c.follower(t), "POST", "/api/submit-masters-to-kv-stores", []cluster{alpha, db}},
		{"all GET follower trailing slash", c.follower(t), "GET", "/api/submit-masters-to-kv-stores/", []cluster{alpha, db}},
		{"alias GET follower", c.follower(t), "GET", "/api/submit-masters-to-kv-stores/alpha", []cluster{alpha}},
		{"alias POST leader", c.leader(t), "POST", "/api/submit-masters-to-kv-stores/alpha", []cluster{alpha}},
		{"alias with colon GET leader", c.leader(t), "GET", "/api/submit-masters-to-kv-stores/db-1:3306", []cluster{db}},
		{"alias with colon POST follower", c.follower(t), "POST", "/api/submit-masters-to-kv-stores/db-1:3306", []cluster{db}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			leader := c.raft.WaitLeader()
			var prev uint64
			for _, cl := range tc.want {
				rec, _ := leader.FSM().Record(cl.alias)
				prev = max(prev, rec.Epoch)
			}
			ans := mustOrchestratorAnswer(t, c.do(t, tc.node, tc.method, tc.path, ""), http.StatusOK, "OK")
			if want := "Submitted " + strconv.Itoa(len(tc.want)) + " masters"; ans.Message != want {
				t.Errorf("Message = %q, want %q", ans.Message, want)
			}
			var details []discovery.KVPair
			decodeStrict(t, ans.Details, &details)
			if len(details) != 6*len(tc.want) {
				t.Fatalf("Details has %d pairs, want %d: %v", len(details), 6*len(tc.want), details)
			}
			epoch, err := strconv.ParseUint(details[5].Value, 10, 64)
			if err != nil || details[5].Key != "mysql/master/"+tc.want[0].alias+"/epoch" {
				t.Fatalf("Details[5] = %+v, want the epoch pair of %s", details[5], tc.want[0].alias)
			}
			if epoch <= prev {
				t.Errorf("epoch after submit = %d, want more than %d", epoch, prev)
			}
			var wantDetails []discovery.KVPair
			var wantLines []string
			for _, cl := range tc.want {
				wantDetails = append(wantDetails, cl.pairs(epoch)...)
				wantLines = append(wantLines, cl.lines(epoch)...)
			}
			if !slices.Equal(details, wantDetails) {
				t.Errorf("Details =\n%v\nwant\n%v", details, wantDetails)
			}
			if got := kvLines(t, ans.Details); !slices.Equal(got, wantLines) {
				t.Errorf("orchestrator-client would print\n%q\nwant\n%q", got, wantLines)
			}
			for _, cl := range tc.want {
				c.waitRecord(t, cl.alias, cl.master, epoch)
				if rec, _ := leader.FSM().Record(cl.alias); rec.Source != command.Submit {
					t.Errorf("%s source = %s, want submit", cl.alias, rec.Source)
				}
			}
		})
	}
}

// TestSubmitRefusals checks that an unknown or invalid alias answers in
// orchestrator's shape with Details null, and commits nothing.
func TestSubmitRefusals(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	seed := c.mustFailover(t, c.leader(t), `{"cluster":"alpha","host":"10.0.0.5","port":3306}`)
	c.waitRecord(t, "alpha", "10.0.0.5:3306", seed.Epoch)
	tests := []struct {
		name, method, path string
		status             int
		contains           string
	}{
		{"unknown alias GET", "GET", "/api/submit-masters-to-kv-stores/nope", http.StatusNotFound, `"nope"`},
		{"unknown alias POST", "POST", "/api/submit-masters-to-kv-stores/nope", http.StatusNotFound, `"nope"`},
		{"unknown alias with colon", "GET", "/api/submit-masters-to-kv-stores/db-9:3306", http.StatusNotFound, `"db-9:3306"`},
		{"alias with whitespace", "GET", "/api/submit-masters-to-kv-stores/al%20pha", http.StatusBadRequest, "cluster"},
	}
	for _, tg := range c.targets(t) {
		for _, tc := range tests {
			t.Run(tg.name+" "+tc.name, func(t *testing.T) {
				leaderID, before := c.lastIndex(t)
				a := mustOrchestratorAnswer(t, c.do(t, tg.node, tc.method, tc.path, ""), tc.status, "ERROR")
				if string(a.Details) != "null" {
					t.Errorf("Details = %s, want null", a.Details)
				}
				if !strings.Contains(a.Message, tc.contains) {
					t.Errorf("Message = %q, want it to contain %q", a.Message, tc.contains)
				}
				c.assertNoNewEntry(t, leaderID, before)
			})
		}
		t.Run(tg.name+" missing token", func(t *testing.T) {
			leaderID, before := c.lastIndex(t)
			r := c.do(t, tg.node, "GET", "/api/submit-masters-to-kv-stores", "", "Authorization", "")
			mustStatus(t, r, http.StatusUnauthorized)
			c.assertNoNewEntry(t, leaderID, before)
		})
	}
	c.assertRecordEverywhere(t, "alpha", "10.0.0.5:3306", seed.Epoch)
}

// TestSubmitIdempotencyKey checks that a submit retried with the same key
// answers the first submit again and commits nothing new.
func TestSubmitIdempotencyKey(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	seed := c.mustFailover(t, c.leader(t), `{"cluster":"alpha","host":"10.0.0.5","port":3306}`)
	c.waitRecord(t, "alpha", "10.0.0.5:3306", seed.Epoch)
	first := mustOrchestratorAnswer(t, c.do(t, c.follower(t), "POST", "/api/submit-masters-to-kv-stores", "", "Idempotency-Key", "sub-1"), http.StatusOK, "OK")
	lines := kvLines(t, first.Details)
	rec, _ := c.raft.WaitLeader().FSM().Record("alpha")
	c.waitRecord(t, "alpha", "10.0.0.5:3306", rec.Epoch)
	for _, tg := range c.targets(t) {
		t.Run(tg.name, func(t *testing.T) {
			leaderID, before := c.lastIndex(t)
			again := mustOrchestratorAnswer(t, c.do(t, tg.node, "GET", "/api/submit-masters-to-kv-stores", "", "Idempotency-Key", "sub-1"), http.StatusOK, "OK")
			if got := kvLines(t, again.Details); again.Message != first.Message || !slices.Equal(got, lines) {
				t.Errorf("retry answered %q %q, want the first answer %q %q", again.Message, got, first.Message, lines)
			}
			c.assertNoNewEntry(t, leaderID, before)
		})
	}
}

// TestSubmitIdempotencyKeyLarge retries a keyed submit of more clusters
// than a remembered result keeps records for (fsm.KeepRecords): the retry
// commits nothing and answers the first submit's count and epoch, marked
// Duplicate, with no pairs (issue 9 item 5: remembering every pair of every
// keyed submit grew the id table without bound).
func TestSubmitIdempotencyKeyLarge(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	n := fsm.KeepRecords + 2
	var masters []string
	for i := range n {
		masters = append(masters, fmt.Sprintf(`{"cluster":"c%02d","host":"10.0.1.%d","port":3306}`, i, i+1))
	}
	c.mustPopulate(t, c.leader(t), `{"masters":[`+strings.Join(masters, ",")+`]}`, populateAnswer{Checked: n, Submitted: n})
	first := mustOrchestratorAnswer(t, c.do(t, c.follower(t), "POST", "/api/submit-masters-to-kv-stores", "", "Idempotency-Key", "sub-big"), http.StatusOK, "OK")
	if got := len(kvLines(t, first.Details)); got != 6*n {
		t.Fatalf("first submit listed %d pairs, want %d", got, 6*n)
	}
	rec, _ := c.raft.WaitLeader().FSM().Record("c00")
	c.waitRecord(t, "c00", "10.0.1.1:3306", rec.Epoch)
	for _, tg := range c.targets(t) {
		t.Run(tg.name, func(t *testing.T) {
			leaderID, before := c.lastIndex(t)
			r := c.do(t, tg.node, "GET", "/api/submit-masters-to-kv-stores", "", "Idempotency-Key", "sub-big")
			mustStatus(t, r, http.StatusOK)
			mustKeys(t, r.body, "Code", "Message", "Details", "duplicate", "epoch")
			var again struct {
				Code, Message string
				Details       []json.RawMessage
				Duplicate     bool   `json:"duplicate"`
				Epoch         uint64 `json:"epoch"`
			}
			decodeStrict(t, r.body, &again)
			if again.Code != "OK" || again.Message != first.Message || len(again.Details) != 0 || !again.Duplicate || again.Epoch != rec.Epoch {
				t.Errorf("retry answered %+v, want OK %q, no details, duplicate at epoch %d", again, first.Message, rec.Epoch)
			}
			c.assertNoNewEntry(t, leaderID, before)
		})
	}
}

// TestSubmitErrorsUseOrchestratorShape checks every way a submit can fail
// on a follower: each must answer {"Code":"ERROR","Message":..,"Details":
// null}. orchestrator-client's api() treats an answer without "Code" as
// success: it prints nothing and exits 0, so any other shape turns a
// failed submit into a silent success for the operator.
func TestSubmitErrorsUseOrchestratorShape(t *testing.T) {
	tests := []struct {
		name   string
		hdr    []string
		cut    func(t *testing.T, c *apiCluster)
		status int
	}{
		{name: "wrong token", hdr: []string{"Authorization", "Bearer nope"}, status: http.StatusUnauthorized},
		{name: "leader HTTP unreachable", status: http.StatusServiceUnavailable, cut: func(t *testing.T, c *apiCluster) {
			c.srvs[c.leader(t)].Close()
		}},
		{name: "no leader", status: http.StatusServiceUnavailable, cut: func(t *testing.T, c *apiCluster) {
			f := c.follower(t)
			for i := range c.raft.Nodes {
				if i != f {
					c.raft.Stop(i)
				}
			}
			waitFor(t, 10*time.Second, "the survivor to see no leader", func() bool {
				return c.raft.Nodes[f].Status().Leader.ID == ""
			})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newAPICluster(t, clusterOptions{leaderWait: leaderWait, fastRaft: true})
			seed := c.mustFailover(t, c.leader(t), `{"cluster":"alpha","host":"10.0.0.5","port":3306}`)
			c.waitRecord(t, "alpha", "10.0.0.5:3306", seed.Epoch)
			f := c.follower(t)
			if tc.cut != nil {
				tc.cut(t, c)
			}
			for _, path := range []string{"/api/submit-masters-to-kv-stores", "/api/submit-masters-to-kv-stores/alpha"} {
				a := mustOrchestratorAnswer(t, c.do(t, f, "GET", path, "", tc.hdr...), tc.status, "ERROR")
				if a.Message == "" || string(a.Details) != "null" {
					t.Errorf("%s: Message, Details = %q, %s; want a message and null", path, a.Message, a.Details)
				}
			}
		})
	}
}

// TestSubmitWaitAll is issue 11 item 9: ?wait=all was documented for
// submit but ignored. With it, the answer also says, per other node,
// whether it applied the submit in all its stores ("nodes"), for all
// clusters and for one; the extra fields are lower case, as failover's.
func TestSubmitWaitAll(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	c.mustPopulate(t, c.leader(t), `{"masters":[{"cluster":"a","host":"10.0.3.1","port":3306},{"cluster":"b","host":"10.0.3.2","port":3306}]}`,
		populateAnswer{Checked: 2, Submitted: 2})
	rec, _ := c.raft.WaitLeader().FSM().Record("b")
	c.waitRecord(t, "b", "10.0.3.2:3306", rec.Epoch) // every node holds both
	for _, path := range []string{"/api/submit-masters-to-kv-stores?wait=all", "/api/submit-masters-to-kv-stores/a?wait=all"} {
		t.Run(path, func(t *testing.T) {
			r := c.do(t, c.follower(t), http.MethodPost, path, "")
			mustStatus(t, r, http.StatusOK)
			mustKeys(t, r.body, "Code", "Message", "Details", "nodes")
			var a struct {
				Code, Message string
				Details       []json.RawMessage
				Nodes         map[string]string `json:"nodes"`
			}
			decodeStrict(t, r.body, &a)
			if len(a.Nodes) != 2 {
				t.Fatalf("nodes = %v, want the two other nodes", a.Nodes)
			}
			for id, st := range a.Nodes {
				if st != "ok" {
					t.Errorf("node %s = %q, want ok", id, st)
				}
			}
		})
	}
}
