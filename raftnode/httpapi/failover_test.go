package httpapi_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
)

// TestFailoverCommitsOnEveryNode posts failovers in each accepted encoding,
// mostly to a follower (which forwards to the leader), and checks the
// receipt and that all three nodes hold the record at the receipt's epoch.
func TestFailoverCommitsOnEveryNode(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	tests := []struct {
		name        string
		toLeader    bool
		body        string
		contentType string // "" for the helper's default
		alias, host string
		port        int
		ipv4, ipv6  string
	}{
		{
			name: "json", body: `{"cluster":"orders","host":"10.0.0.5","port":3306}`,
			alias: "orders", host: "10.0.0.5", port: 3306, ipv4: "10.0.0.5",
		},
		{
			name: "form as sent by an orchestrator hook's curl -d", body: "cluster=billing&host=10.0.0.6&port=3307",
			alias: "billing", host: "10.0.0.6", port: 3307, ipv4: "10.0.0.6",
		},
		{
			name: "json labelled as a form by curl -d", body: `  {"cluster":"users","host":"10.0.0.7","port":"3308"}`,
			contentType: "application/x-www-form-urlencoded",
			alias:       "users", host: "10.0.0.7", port: 3308, ipv4: "10.0.0.7",
		},
		{
			name: "ipv6 host", body: `{"cluster":"v6","host":"fd00::5","port":3306}`,
			alias: "v6", host: "fd00::5", port: 3306, ipv6: "fd00::5",
		},
		{
			name: "explicit addresses are kept", body: "cluster=named&host=db-7.example.com&port=3306&ipv4=10.0.0.8&ipv6=fd00%3A%3A8",
			alias: "named", host: "db-7.example.com", port: 3306, ipv4: "10.0.0.8", ipv6: "fd00::8",
		},
		{
			name: "orchestrator default alias with a colon", body: `{"cluster":"db-1:3306","host":"10.0.0.9","port":3306}`,
			alias: "db-1:3306", host: "10.0.0.9", port: 3306, ipv4: "10.0.0.9",
		},
		{
			name: "json to the leader", toLeader: true, body: `{"cluster":"direct","host":"10.0.1.5","port":3306}`,
			alias: "direct", host: "10.0.1.5", port: 3306, ipv4: "10.0.1.5",
		},
	}
	var lastEpoch uint64
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target, wantForwardedTo := c.follower(t), c.raft.WaitLeader().ID()
			if tc.toLeader {
				target, wantForwardedTo = c.leader(t), ""
			}
			var hdr []string
			if tc.contentType != "" {
				hdr = []string{"Content-Type", tc.contentType}
			}
			r := c.do(t, target, http.MethodPost, "/v1/failover", tc.body, hdr...)
			mustStatus(t, r, http.StatusOK)
			if got := r.header.Get("X-Masterkv-Leader"); got != wantForwardedTo {
				t.Errorf("X-Masterkv-Leader = %q, want %q", got, wantForwardedTo)
			}
			mustKeys(t, r.body, "cluster", "master", "epoch", "pairs")
			var got receipt
			decodeStrict(t, r.body, &got)
			wantMaster := fmt.Sprintf("%s:%d", tc.host, tc.port)
			if got.Cluster != tc.alias || got.Master != wantMaster {
				t.Errorf("receipt cluster, master = %q, %q; want %q, %q", got.Cluster, got.Master, tc.alias, wantMaster)
			}
			if got.Epoch <= lastEpoch {
				t.Errorf("epoch = %d, want more than the previous failover's %d", got.Epoch, lastEpoch)
			}
			lastEpoch = got.Epoch
			if want := wantPairs(tc.alias, tc.host, tc.port, tc.ipv4, tc.ipv6, got.Epoch); !slices.Equal(got.Pairs, want) {
				t.Errorf("pairs =\n%v\nwant\n%v", got.Pairs, want)
			}
			c.waitRecord(t, tc.alias, wantMaster, got.Epoch)
			for _, n := range c.running() {
				rec, _ := n.FSM().Record(tc.alias)
				if rec.Master.IPv4 != tc.ipv4 || rec.Master.IPv6 != tc.ipv6 {
					t.Errorf("%s: %s ipv4, ipv6 = %q, %q; want %q, %q", n.ID(), tc.alias, rec.Master.IPv4, rec.Master.IPv6, tc.ipv4, tc.ipv6)
				}
			}
		})
	}
}

// TestFailoverIdempotencyKey retries a failover with the same key in every
// way a sender can, on the follower that took it and on the leader: each
// retry answers the first epoch, marked duplicate, and commits nothing.
func TestFailoverIdempotencyKey(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	f := c.follower(t)
	const body = `{"cluster":"orders","host":"10.0.0.5","port":3306}`
	first := c.mustFailover(t, f, body, "Idempotency-Key", "hook-1")
	if first.Duplicate || first.ID != "hook-1" {
		t.Fatalf("first answer id, duplicate = %q, %v; want hook-1, false", first.ID, first.Duplicate)
	}
	c.waitRecord(t, "orders", "10.0.0.5:3306", first.Epoch)
	leaderID, idx := c.lastIndex(t)

	tests := []struct {
		name string
		node int
		body string
		hdr  []string
	}{
		{"header to the same follower", f, body, []string{"Idempotency-Key", "hook-1"}},
		{"header to the leader", c.leader(t), body, []string{"Idempotency-Key", "hook-1"}},
		{"body id to the follower", f, `{"cluster":"orders","host":"10.0.0.5","port":3306,"id":"hook-1"}`, nil},
		{"body id equal to the header", f, `{"cluster":"orders","host":"10.0.0.5","port":3306,"id":"hook-1"}`, []string{"Idempotency-Key", "hook-1"}},
		{"form id to the leader", c.leader(t), "cluster=orders&host=10.0.0.5&port=3306&id=hook-1", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := c.do(t, tc.node, http.MethodPost, "/v1/failover", tc.body, tc.hdr...)
			mustStatus(t, r, http.StatusOK)
			mustKeys(t, r.body, "cluster", "master", "epoch", "pairs", "id", "duplicate")
			var got receipt
			decodeStrict(t, r.body, &got)
			if got.Epoch != first.Epoch || !got.Duplicate || got.ID != "hook-1" {
				t.Errorf("epoch, duplicate, id = %d, %v, %q; want %d, true, hook-1", got.Epoch, got.Duplicate, got.ID, first.Epoch)
			}
			if !slices.Equal(got.Pairs, first.Pairs) {
				t.Errorf("pairs = %v, want the first answer's %v", got.Pairs, first.Pairs)
			}
			c.assertNoNewEntry(t, leaderID, idx)
		})
	}
	c.assertRecordEverywhere(t, "orders", "10.0.0.5:3306", first.Epoch)
}

// TestFailoverExpected checks the expected guard: a mismatch answers 409
// and leaves the record alone on every node; a match or a redelivery of the
// same change commits.
func TestFailoverExpected(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	seed := c.mustFailover(t, c.leader(t), `{"cluster":"orders","host":"10.0.0.5","port":3306}`)
	c.waitRecord(t, "orders", "10.0.0.5:3306", seed.Epoch)

	for _, tg := range c.targets(t) {
		t.Run("mismatch to "+tg.name, func(t *testing.T) {
			r := c.do(t, tg.node, http.MethodPost, "/v1/failover", `{"cluster":"orders","host":"10.0.0.6","port":3306,"expected":"10.0.0.9:3306"}`)
			mustAPIError(t, r, http.StatusConflict, "", "10.0.0.5:3306", "10.0.0.9:3306")
			c.assertRecordEverywhere(t, "orders", "10.0.0.5:3306", seed.Epoch)
		})
	}

	steps := []struct {
		name       string
		node       int
		alias      string
		body       string
		wantStatus int
		wantMaster string
	}{
		{"expected is the current master", c.follower(t), "orders", `{"cluster":"orders","host":"10.0.0.6","port":3306,"expected":"10.0.0.5:3306"}`, http.StatusOK, "10.0.0.6:3306"},
		{"redelivery: current master is already the new one", c.leader(t), "orders", "cluster=orders&host=10.0.0.6&port=3306&expected=10.0.0.5%3A3306", http.StatusOK, "10.0.0.6:3306"},
		{"late webhook of an older failover", c.follower(t), "orders", `{"cluster":"orders","host":"10.0.0.5","port":3306,"expected":"10.0.0.4:3306"}`, http.StatusConflict, "10.0.0.6:3306"},
		{"expected for a cluster not yet in the store", c.follower(t), "fresh", `{"cluster":"fresh","host":"10.0.0.7","port":3306,"expected":"10.0.0.1:3306"}`, http.StatusOK, "10.0.0.7:3306"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			r := c.do(t, st.node, http.MethodPost, "/v1/failover", st.body)
			if r.status != st.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", r.status, st.wantStatus, r.body)
			}
			// The leader answered, so its store is up to date.
			rec, ok := c.raft.WaitLeader().FSM().Record(st.alias)
			if !ok || rec.Master.HostPort() != st.wantMaster {
				t.Fatalf("%s = %+v (found %v), want master %s", st.alias, rec, ok, st.wantMaster)
			}
			c.assertRecordEverywhere(t, st.alias, st.wantMaster, rec.Epoch)
		})
	}
}

// TestRotatedTokens checks that both configured tokens are accepted, also
// through a follower that forwards the caller's Authorization.
func TestRotatedTokens(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	for _, tg := range c.targets(t) {
		for _, tok := range []string{token, rotatedToken} {
			t.Run(tg.name+" "+tok, func(t *testing.T) {
				alias := "rot-" + tg.name + "-" + tok
				rc := c.mustFailover(t, tg.node, `{"cluster":"`+alias+`","host":"10.0.0.5","port":3306}`, "Authorization", "Bearer "+tok)
				c.waitRecord(t, alias, "10.0.0.5:3306", rc.Epoch)
			})
		}
	}
}

// TestFailoverExpectedEpochABA runs A→B, the failback B→A, then a late
// redelivery of the first hook (no id), each with the expected_epoch the
// hook read before posting. The redelivery answers 409 and A stays on every
// node; a redelivery of the failback answers its receipt again, marked
// duplicate, and leaves the record at its epoch. (Both are raft entries:
// the refusal and the recognition are replicated outcomes.)
func TestFailoverExpectedEpochABA(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	a := c.mustFailover(t, c.leader(t), `{"cluster":"orders","host":"10.0.0.5","port":3306}`)
	c.waitRecord(t, "orders", "10.0.0.5:3306", a.Epoch)

	// The hook sends form fields, expected_epoch templated in as a string.
	first := fmt.Sprintf("cluster=orders&host=10.0.0.6&port=3306&expected=10.0.0.5%%3A3306&expected_epoch=%d", a.Epoch)
	b := c.mustFailover(t, c.follower(t), first)
	failback := fmt.Sprintf(`{"cluster":"orders","host":"10.0.0.5","port":3306,"expected":"10.0.0.6:3306","expected_epoch":"%d"}`, b.Epoch)
	back := c.mustFailover(t, c.follower(t), failback)
	c.waitRecord(t, "orders", "10.0.0.5:3306", back.Epoch)

	for _, tg := range c.targets(t) {
		t.Run("late first hook to "+tg.name, func(t *testing.T) {
			r := c.do(t, tg.node, http.MethodPost, "/v1/failover", first)
			mustAPIError(t, r, http.StatusConflict, "", fmt.Sprintf("expected_epoch %d", a.Epoch))
			c.assertRecordEverywhere(t, "orders", "10.0.0.5:3306", back.Epoch)
		})
		t.Run("redelivered failback to "+tg.name, func(t *testing.T) {
			got := c.mustFailover(t, tg.node, failback)
			if got.Epoch != back.Epoch || !got.Duplicate || got.Master != "10.0.0.5:3306" {
				t.Errorf("redelivery answered %s at epoch %d, duplicate %v; want 10.0.0.5:3306 at %d, duplicate", got.Master, got.Epoch, got.Duplicate, back.Epoch)
			}
			c.assertRecordEverywhere(t, "orders", "10.0.0.5:3306", back.Epoch)
		})
	}
}
