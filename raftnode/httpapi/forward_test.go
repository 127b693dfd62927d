package httpapi_test

import (
	"net/http"
	"testing"
	"time"
)

// leaderWait is the API's LeaderWait in the tests without a leader.
const leaderWait = 300 * time.Millisecond

// TestNoLeaderAnswers503 stops two of three nodes so the group has no
// leader, then writes to the survivor: every write answers 503 after about
// LeaderWait, while validation, known
// idempotency keys, reads, status and health are still answered at once.
func TestNoLeaderAnswers503(t *testing.T) {
	for _, tc := range []struct {
		name           string
		survivorLeader bool
	}{{"old follower survives", false}, {"old leader survives", true}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newAPICluster(t, clusterOptions{leaderWait: leaderWait, fastRaft: true})
			seed := c.mustFailover(t, c.leader(t), `{"cluster":"orders","host":"10.0.0.5","port":3306}`, "Idempotency-Key", "seed-key")
			c.waitRecord(t, "orders", "10.0.0.5:3306", seed.Epoch)

			s := c.follower(t)
			if tc.survivorLeader {
				s = c.leader(t)
			}
			for i := range c.raft.Nodes {
				if i != s {
					c.raft.Stop(i)
				}
			}
			survivor := c.raft.Nodes[s]
			waitFor(t, 10*time.Second, "the survivor to see no leader", func() bool {
				st := survivor.Status()
				return st.Leader.ID == "" && st.State != "Leader"
			})
			lastIndex := survivor.Status().LastIndex

			writes := []struct {
				name, method, path, body string
				orchestrator             bool
			}{
				{"failover json", "POST", "/v1/failover", `{"cluster":"orders","host":"10.0.0.6","port":3306}`, false},
				{"failover form", "POST", "/v1/failover", "cluster=orders&host=10.0.0.6&port=3306", false},
				{"failover of a new cluster", "POST", "/v1/failover", `{"cluster":"fresh","host":"10.0.0.6","port":3306}`, false},
				{"populate", "POST", "/v1/populate", `{"masters":[{"cluster":"fresh","host":"10.0.0.6","port":3306}]}`, false},
				{"submit all", "GET", "/api/submit-masters-to-kv-stores", "", true},
				{"submit alias", "POST", "/api/submit-masters-to-kv-stores/orders", "", true},
			}
			for _, w := range writes {
				t.Run(w.name, func(t *testing.T) {
					start := time.Now()
					r := c.do(t, s, w.method, w.path, w.body)
					elapsed := time.Since(start)
					if w.orchestrator {
						// The body's shape is TestSubmitErrorsUseOrchestratorShape's.
						mustStatus(t, r, http.StatusServiceUnavailable)
					} else {
						mustAPIError(t, r, http.StatusServiceUnavailable, "", "no leader")
					}
					if elapsed < leaderWait || elapsed > leaderWait+3*time.Second {
						t.Errorf("answered after %s, want about LeaderWait %s", elapsed, leaderWait)
					}
				})
			}

			prompt := []struct {
				name, method, path, body string
				hdr                      []string
				status                   int
			}{
				{"bad input is refused before waiting", "POST", "/v1/failover", `{"cluster":"orders","host":"127.0.0.1","port":3306}`, nil, http.StatusBadRequest},
				{"known idempotency key is answered from the store", "POST", "/v1/failover", `{"cluster":"orders","host":"10.0.0.5","port":3306}`, []string{"Idempotency-Key", "seed-key"}, http.StatusOK},
				{"reused idempotency key is refused", "POST", "/v1/failover", `{"cluster":"orders","host":"10.0.0.7","port":3306}`, []string{"Idempotency-Key", "seed-key"}, http.StatusUnprocessableEntity},
				{"read", "GET", "/v1/masters/orders", "", nil, http.StatusOK},
				{"status", "GET", "/v1/status", "", nil, http.StatusOK},
				{"healthz", "GET", "/healthz", "", nil, http.StatusOK},
			}
			for _, p := range prompt {
				t.Run(p.name, func(t *testing.T) {
					start := time.Now()
					r := c.do(t, s, p.method, p.path, p.body, p.hdr...)
					elapsed := time.Since(start)
					mustStatus(t, r, p.status)
					if elapsed >= leaderWait {
						t.Errorf("answered after %s, want at once (before LeaderWait %s)", elapsed, leaderWait)
					}
				})
			}

			rec, ok := survivor.FSM().Record("orders")
			if !ok || rec.Master.HostPort() != "10.0.0.5:3306" || rec.Epoch != seed.Epoch {
				t.Errorf("survivor holds orders = %+v (found %v), want 10.0.0.5:3306 at epoch %d", rec, ok, seed.Epoch)
			}
			if _, ok := survivor.FSM().Record("fresh"); ok {
				t.Errorf("survivor holds fresh, want nothing committed without a leader")
			}
			if got := survivor.Status().LastIndex; got != lastIndex {
				t.Errorf("survivor raft LastIndex = %d, want %d unchanged", got, lastIndex)
			}
		})
	}
}

// TestForwardLeaderUnreachable closes the leader's HTTP server while raft
// keeps it leader: a follower answers 503 naming the leader instead of
// hanging or committing.
func TestForwardLeaderUnreachable(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	seed := c.mustFailover(t, c.leader(t), `{"cluster":"orders","host":"10.0.0.5","port":3306}`)
	c.waitRecord(t, "orders", "10.0.0.5:3306", seed.Epoch)
	l, f := c.leader(t), c.follower(t)
	c.srvs[l].Close()
	leaderID, before := c.lastIndex(t)
	tests := []struct {
		name, method, path, body string
		orchestrator             bool
	}{
		{"failover", "POST", "/v1/failover", `{"cluster":"orders","host":"10.0.0.6","port":3306}`, false},
		{"populate", "POST", "/v1/populate", `{"masters":[{"cluster":"fresh","host":"10.0.0.6","port":3306}]}`, false},
		{"submit", "GET", "/api/submit-masters-to-kv-stores", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := c.do(t, f, tc.method, tc.path, tc.body)
			if tc.orchestrator {
				// The body's shape is TestSubmitErrorsUseOrchestratorShape's.
				mustStatus(t, r, http.StatusServiceUnavailable)
			} else {
				mustAPIError(t, r, http.StatusServiceUnavailable, "", "cannot reach the leader", leaderID)
			}
			c.assertNoNewEntry(t, leaderID, before)
		})
	}
	c.assertRecordEverywhere(t, "orders", "10.0.0.5:3306", seed.Epoch)
}

// TestForwardedRequestIsNotForwardedAgain sends a request marked as already
// forwarded to a follower, as a leader change mid-flight would: it answers
// 503 itself instead of forwarding a second time, and nothing commits.
func TestForwardedRequestIsNotForwardedAgain(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	f := c.follower(t)
	leaderID, before := c.lastIndex(t)
	r := c.do(t, f, "POST", "/v1/failover", `{"cluster":"orders","host":"10.0.0.6","port":3306}`, "X-Masterkv-Forwarded-By", "node9")
	mustAPIError(t, r, http.StatusServiceUnavailable, "", "node9")
	if by := r.header.Get("X-Masterkv-Leader"); by != "" {
		t.Errorf("X-Masterkv-Leader = %q, want no second hop", by)
	}
	c.assertNoNewEntry(t, leaderID, before)

	// The same request without the mark is forwarded and commits.
	rc := c.mustFailover(t, f, `{"cluster":"orders","host":"10.0.0.6","port":3306}`)
	c.waitRecord(t, "orders", "10.0.0.6:3306", rc.Epoch)
}
