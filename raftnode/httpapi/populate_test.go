package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/masterkv/masterkv/internal/command"
	"github.com/masterkv/masterkv/raftnode/fsm"
	"github.com/masterkv/masterkv/raftnode/httpapi"
)

// populateAnswer is the answer of POST /v1/populate.
type populateAnswer struct {
	Checked   int `json:"checked"`
	Submitted int `json:"submitted"`
	Skipped   int `json:"skipped"`
}

// mustPopulate posts body to node i and checks the exact answer.
func (c *apiCluster) mustPopulate(t *testing.T, i int, body string, want populateAnswer, hdr ...string) {
	t.Helper()
	r := c.do(t, i, http.MethodPost, "/v1/populate", body, hdr...)
	mustStatus(t, r, http.StatusOK)
	mustKeys(t, r.body, "checked", "submitted", "skipped")
	var got populateAnswer
	decodeStrict(t, r.body, &got)
	if got != want {
		t.Errorf("populate answered %+v, want %+v", got, want)
	}
}

// TestPopulateInjectsOnce populates through a follower, then populates again
// with a changed master for a cluster the store holds: that entry is
// skipped and the record keeps its master and epoch on every node.
func TestPopulateInjectsOnce(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	f := c.follower(t)

	c.mustPopulate(t, f, `{"masters":[
		{"cluster":"orders","host":"10.0.0.5","port":3306},
		{"cluster":"billing","host":"db-2.example.com","port":"3307","ipv4":"10.0.0.6"}]}`,
		populateAnswer{Checked: 2, Submitted: 2})
	// The leader answered, so its store is up to date.
	orders, _ := c.raft.WaitLeader().FSM().Record("orders")
	if orders.Epoch == 0 || orders.Source != command.Populate || orders.Master.IPv4 != "10.0.0.5" {
		t.Fatalf("orders = %+v, want a populated record with ipv4 10.0.0.5", orders)
	}
	c.assertRecordEverywhere(t, "orders", "10.0.0.5:3306", orders.Epoch)
	c.assertRecordEverywhere(t, "billing", "db-2.example.com:3307", orders.Epoch)

	tests := []struct {
		name string
		node int
		body string
		want populateAnswer
		// added is a cluster the populate must inject ("" for none).
		added, addedMaster string
	}{
		{
			name: "changed master is skipped, new cluster injected", node: f,
			body: `{"masters":[{"cluster":"orders","host":"10.0.0.99","port":3306},{"cluster":"users","host":"10.0.0.7","port":3306}]}`,
			want: populateAnswer{Checked: 2, Submitted: 1, Skipped: 1}, added: "users", addedMaster: "10.0.0.7:3306",
		},
		{
			name: "all known, on the leader", node: c.leader(t),
			body: `{"masters":[{"cluster":"billing","host":"10.0.0.98","port":3306},{"cluster":"orders","host":"10.0.0.99","port":3307}]}`,
			want: populateAnswer{Checked: 2, Skipped: 2},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c.mustPopulate(t, tc.node, tc.body, tc.want)
			c.assertRecordEverywhere(t, "orders", "10.0.0.5:3306", orders.Epoch)
			c.assertRecordEverywhere(t, "billing", "db-2.example.com:3307", orders.Epoch)
			if tc.added != "" {
				rec, ok := c.raft.WaitLeader().FSM().Record(tc.added)
				if !ok || rec.Epoch <= orders.Epoch {
					t.Fatalf("%s = %+v (found %v), want it injected after epoch %d", tc.added, rec, ok, orders.Epoch)
				}
				c.assertRecordEverywhere(t, tc.added, tc.addedMaster, rec.Epoch)
			}
		})
	}

	for _, tg := range c.targets(t) {
		for _, body := range []string{`{"masters":[]}`, `{}`} {
			t.Run("empty "+body+" to "+tg.name, func(t *testing.T) {
				leaderID, before := c.lastIndex(t)
				c.mustPopulate(t, tg.node, body, populateAnswer{})
				c.assertNoNewEntry(t, leaderID, before)
			})
		}
	}
}

// TestPopulateInvalidCommitsNothing sends batches with one bad entry to the
// leader and to a follower: 400 naming masters[i].field, and neither the
// good entries nor anything else is committed.
func TestPopulateInvalidCommitsNothing(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	seed := c.mustFailover(t, c.leader(t), `{"cluster":"seed","host":"10.0.0.5","port":3306}`, "Idempotency-Key", "seed-key")
	c.waitRecord(t, "seed", "10.0.0.5:3306", seed.Epoch)

	good := `{"cluster":"good","host":"10.0.0.8","port":3306}`
	batch := func(entries ...string) string { return `{"masters":[` + strings.Join(entries, ",") + `]}` }
	tests := []struct {
		name, body string
		hdr        []string
		status     int
		field      string
		contains   []string
	}{
		{name: "bad host", body: batch(good, `{"cluster":"b","host":"db 1","port":3306}`), status: 400, field: "masters[1].host"},
		{name: "port 0", body: batch(`{"cluster":"b","host":"10.0.0.9","port":0}`, good), status: 400, field: "masters[0].port"},
		{name: "port 70000", body: batch(good, `{"cluster":"b","host":"10.0.0.9","port":70000}`), status: 400, field: "masters[1].port"},
		{name: "missing port", body: batch(good, `{"cluster":"b","host":"10.0.0.9"}`), status: 400, field: "masters[1].port"},
		{name: "missing cluster", body: batch(good, good[:1]+`"host":"10.0.0.9","port":3306}`), status: 400, field: "masters[1].cluster"},
		{name: "alias with slash", body: batch(good, `{"cluster":"c2","host":"10.0.0.9","port":3306}`, `{"cluster":"a/b","host":"10.0.0.9","port":3306}`), status: 400, field: "masters[2].cluster"},
		{name: "alias of 201 bytes", body: batch(`{"cluster":"` + strings.Repeat("a", 201) + `","host":"10.0.0.9","port":3306}`), status: 400, field: "masters[0].cluster"},
		{name: "bad ipv4", body: batch(good, `{"cluster":"b","host":"db1","port":3306,"ipv4":"10.0.0"}`), status: 400, field: "masters[1].ipv4"},
		{name: "bad ipv6", body: batch(`{"cluster":"b","host":"db1","port":3306,"ipv6":"fe80::1%eth0"}`), status: 400, field: "masters[0].ipv6"},
		{name: "loopback host of a new cluster", body: batch(good, `{"cluster":"b","host":"127.0.0.1","port":3306}`), status: 400, field: "masters[1].host", contains: []string{"loopback"}},
		{name: "localhost of a new cluster", body: batch(`{"cluster":"b","host":"localhost","port":3306}`, good), status: 400, field: "masters[0].host"},
		{name: "loopback ipv4 of a new cluster", body: batch(good, `{"cluster":"b","host":"db1","port":3306,"ipv4":"127.0.0.1"}`), status: 400, field: "masters[1].ipv4"},
		{name: "duplicate cluster", body: batch(good, `{"cluster":"c2","host":"10.0.0.9","port":3306}`, `{"cluster":"good","host":"10.0.0.9","port":3306}`), status: 400, field: "masters[2].cluster", contains: []string{"masters[0].cluster"}},
		{name: "duplicate cluster, same master", body: batch(good, good), status: 400, field: "masters[1].cluster"},
		{name: "unknown field in an entry", body: batch(good, `{"cluster":"b","host":"10.0.0.9","port":3306,"force":true}`), status: 400, field: "masters[1]", contains: []string{"force"}},
		{name: "unknown top-level field", body: `{"masters":[` + good + `],"force":true}`, status: 400, field: "body"},
		{name: "masters not a list", body: `{"masters":` + good + `}`, status: 400, field: "body"},
		{name: "malformed json", body: `{"masters":[` + good, status: 400, field: "body"},
		{name: "form body", body: "cluster=good&host=10.0.0.8&port=3306", status: 400, field: "body"},
		{name: "oversize body", body: padTo(batch(good), httpapi.MaxBodyBytes+1), status: 413},
		{name: "id differs from Idempotency-Key", body: `{"masters":[` + good + `],"id":"p-1"}`, hdr: []string{"Idempotency-Key", "p-2"}, status: 400, field: "id"},
		{name: "id reused from a failover", body: batch(good), hdr: []string{"Idempotency-Key", "seed-key"}, status: 422},
	}
	for _, tg := range c.targets(t) {
		for _, tc := range tests {
			t.Run(tg.name+"/"+tc.name, func(t *testing.T) {
				leaderID, before := c.lastIndex(t)
				r := c.do(t, tg.node, http.MethodPost, "/v1/populate", tc.body, tc.hdr...)
				mustAPIError(t, r, tc.status, tc.field, tc.contains...)
				c.assertNoNewEntry(t, leaderID, before)
				for _, n := range c.running() {
					if got := n.FSM().Len(); got != 1 {
						t.Errorf("%s holds %d clusters, want only the seed", n.ID(), got)
					}
				}
			})
		}
	}
}

// TestPopulatePortErrorNamesEntry sends a batch whose second entry has a
// port that is not a number. Every other invalid field is reported as
// masters[i].field; this one must be too, or a caller with a 500-entry
// batch cannot tell which entry is wrong.
func TestPopulatePortErrorNamesEntry(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	for _, tc := range []struct{ name, port string }{{"string", `"abc"`}, {"fraction", `3306.5`}, {"bool", `true`}} {
		t.Run(tc.name, func(t *testing.T) {
			leaderID, before := c.lastIndex(t)
			r := c.do(t, c.follower(t), http.MethodPost, "/v1/populate",
				`{"masters":[{"cluster":"a","host":"10.0.0.8","port":3306},{"cluster":"b","host":"10.0.0.9","port":`+tc.port+`}]}`)
			mustAPIError(t, r, http.StatusBadRequest, "masters[1].port")
			c.assertNoNewEntry(t, leaderID, before)
		})
	}
}

// TestPopulateRetryIsIdempotent retries a populate with the same
// Idempotency-Key, as a scheduler or Lambda retry does: the retry must get
// the first answer again and commit nothing, not a 422.
func TestPopulateRetryIsIdempotent(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	const body = `{"masters":[{"cluster":"orders","host":"10.0.0.5","port":3306}]}`
	c.mustPopulate(t, c.follower(t), body, populateAnswer{Checked: 1, Submitted: 1}, "Idempotency-Key", "pop-1")
	orders, _ := c.raft.WaitLeader().FSM().Record("orders")
	c.waitRecord(t, "orders", "10.0.0.5:3306", orders.Epoch)
	for _, tg := range c.targets(t) {
		t.Run(tg.name, func(t *testing.T) {
			leaderID, before := c.lastIndex(t)
			c.mustPopulate(t, tg.node, body, populateAnswer{Checked: 1, Submitted: 1}, "Idempotency-Key", "pop-1")
			c.assertNoNewEntry(t, leaderID, before)
		})
	}
}

// TestPopulateRetryOfManyIsIdempotent retries a keyed populate that
// injected more clusters than a remembered result keeps records for
// (fsm.KeepRecords): the retry still answers the first counts, from the
// remembered count alone.
func TestPopulateRetryOfManyIsIdempotent(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	n := fsm.KeepRecords + 2
	var masters []string
	for i := range n {
		masters = append(masters, fmt.Sprintf(`{"cluster":"p%02d","host":"10.0.2.%d","port":3306}`, i, i+1))
	}
	body := `{"masters":[` + strings.Join(masters, ",") + `]}`
	c.mustPopulate(t, c.follower(t), body, populateAnswer{Checked: n, Submitted: n}, "Idempotency-Key", "pop-many")
	rec, _ := c.raft.WaitLeader().FSM().Record("p00")
	c.waitRecord(t, "p00", "10.0.2.1:3306", rec.Epoch)
	for _, tg := range c.targets(t) {
		t.Run(tg.name, func(t *testing.T) {
			leaderID, before := c.lastIndex(t)
			c.mustPopulate(t, tg.node, body, populateAnswer{Checked: n, Submitted: n}, "Idempotency-Key", "pop-many")
			c.assertNoNewEntry(t, leaderID, before)
		})
	}
}

// TestPopulateLoopbackOfKnownCluster sends a loopback master for a cluster
// the store already holds. The guard is input validation: the same batch
// must be refused whether or not the receiving node's store has caught up
// with the cluster, not answered 200 "skipped" by one node and 400 by a
// lagging one.
func TestPopulateLoopbackOfKnownCluster(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	seed := c.mustFailover(t, c.leader(t), `{"cluster":"seed","host":"10.0.0.5","port":3306}`)
	c.waitRecord(t, "seed", "10.0.0.5:3306", seed.Epoch)
	for _, tg := range c.targets(t) {
		t.Run(tg.name, func(t *testing.T) {
			leaderID, before := c.lastIndex(t)
			r := c.do(t, tg.node, http.MethodPost, "/v1/populate", `{"masters":[{"cluster":"seed","host":"127.0.0.1","port":3306}]}`)
			mustAPIError(t, r, http.StatusBadRequest, "masters[0].host", "loopback")
			c.assertNoNewEntry(t, leaderID, before)
		})
	}
	c.assertRecordEverywhere(t, "seed", "10.0.0.5:3306", seed.Epoch)
}
