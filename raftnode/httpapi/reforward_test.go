package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestForwardFollowsNewLeader freezes the leader as SIGSTOP would: its HTTP
// server accepts the forwarded write and never answers, and its raft is cut
// off, so the other two elect a new leader. The follower holding the write
// re-sends it, with the same Idempotency-Key, as soon as it learns of the new
// leader (which may be itself), instead of waiting out the old leader's
// budget: the write is acknowledged within the election plus a second, and
// commits once.
func TestForwardFollowsNewLeader(t *testing.T) {
	var frozen atomic.Int32 // position of the node whose HTTP server hangs
	frozen.Store(-1)
	var held atomic.Int32 // requests the frozen node swallowed
	thaw := make(chan struct{})
	c := newCustomCluster(t, nil, func(i int, h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if int(frozen.Load()) == i {
				held.Add(1)
				select { // a stopped process answers nothing
				case <-r.Context().Done():
				case <-thaw:
				}
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	// Registered after the servers' Close, so it runs first: a forward
	// still held by the frozen node must not block their shutdown.
	t.Cleanup(func() { close(thaw) })
	seed := c.mustFailover(t, c.leader(t), `{"cluster":"orders","host":"10.0.0.5","port":3306}`)
	c.waitRecord(t, "orders", "10.0.0.5:3306", seed.Epoch)
	old, f := c.leader(t), c.follower(t)
	oldID := c.raft.Nodes[old].ID()
	frozen.Store(int32(old))

	type answer struct {
		r       response
		err     error
		elapsed time.Duration
	}
	done := make(chan answer, 1)
	start := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(t.Context(), 8*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.urls[f]+"/v1/failover",
			strings.NewReader(`{"cluster":"orders","host":"10.0.0.6","port":3306}`))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "during-freeze")
		resp, err := c.client.Do(req)
		a := answer{err: err}
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			a.err = rerr
			a.r = response{status: resp.StatusCode, header: resp.Header, body: b}
		}
		a.elapsed = time.Since(start)
		done <- a
	}()
	waitFor(t, 5*time.Second, "the forward to reach the frozen leader", func() bool { return held.Load() > 0 })
	c.raft.Isolate(old)
	frozeAt := time.Now()
	var elected time.Duration
	waitFor(t, 10*time.Second, "a new leader among the other two", func() bool {
		for i, n := range c.raft.Nodes {
			if i != old && n.IsLeader() {
				elected = time.Since(frozeAt)
				return true
			}
		}
		return false
	})

	a := <-done
	if a.err != nil {
		t.Fatalf("write through %s while leader %s is frozen: %v after %s", c.raft.Nodes[f].ID(), oldID, a.err, a.elapsed.Round(time.Millisecond))
	}
	mustStatus(t, a.r, http.StatusOK)
	var rc receipt
	if err := json.Unmarshal(a.r.body, &rc); err != nil {
		t.Fatalf("decode receipt %s: %v", a.r.body, err)
	}
	if rc.Master != "10.0.0.6:3306" || rc.ID != "during-freeze" || rc.Duplicate {
		t.Errorf("receipt = %+v, want 10.0.0.6:3306 committed once under id during-freeze", rc)
	}
	if by := a.r.header.Get("X-Masterkv-Leader"); by == oldID {
		t.Errorf("X-Masterkv-Leader = %s, the frozen leader", by)
	}
	sinceFreeze := time.Since(frozeAt)
	t.Logf("new leader after %s; acknowledged %s after the freeze", elected.Round(time.Millisecond), sinceFreeze.Round(time.Millisecond))
	if sinceFreeze > elected+time.Second {
		t.Errorf("acknowledged %s after the freeze, want within the election (%s) plus 1s", sinceFreeze.Round(time.Millisecond), elected.Round(time.Millisecond))
	}
	for i, n := range c.raft.Nodes {
		if i == old {
			continue
		}
		if rec, ok := n.FSM().Record("orders"); !ok || rec.Epoch != rc.Epoch || rec.RequestID != "during-freeze" {
			t.Errorf("%s holds orders = %+v, want epoch %d from during-freeze", n.ID(), rec, rc.Epoch)
		}
	}
}

// TestReforwardCommitsOnce freezes the leader after it committed the
// forwarded write and before it answered (a pause between commit and
// reply). The follower re-sends the write to the new leader, which must
// answer it as the duplicate it is, not commit it again at a newer epoch:
// with the caller's key, and without one, because the follower gives a
// keyless write a key of its own before forwarding it (and does not show
// that key in the answer).
func TestReforwardCommitsOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		hdr  []string
	}{
		{"with the caller's key", []string{"Idempotency-Key", "paused-after-commit"}},
		{"without a key", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var frozen atomic.Int32
			frozen.Store(-1)
			committed := make(chan []byte, 1) // what the frozen leader would have answered
			thaw := make(chan struct{})
			c := newCustomCluster(t, nil, func(i int, h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if int(frozen.Load()) != i || r.URL.Path != "/v1/failover" {
						h.ServeHTTP(w, r)
						return
					}
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, r) // commits
					committed <- rec.Body.Bytes()
					select { // then stops before answering
					case <-r.Context().Done():
					case <-thaw:
					}
				})
			})
			t.Cleanup(func() { close(thaw) })
			seed := c.mustFailover(t, c.leader(t), `{"cluster":"orders","host":"10.0.0.5","port":3306}`)
			c.waitRecord(t, "orders", "10.0.0.5:3306", seed.Epoch)
			old, f := c.leader(t), c.follower(t)
			frozen.Store(int32(old))

			type answer struct {
				r   response
				err error
			}
			done := make(chan answer, 1)
			go func() {
				ctx, cancel := context.WithTimeout(t.Context(), 8*time.Second)
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.urls[f]+"/v1/failover",
					strings.NewReader(`{"cluster":"orders","host":"10.0.0.6","port":3306}`))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				for k := 0; k < len(tc.hdr); k += 2 {
					req.Header.Set(tc.hdr[k], tc.hdr[k+1])
				}
				resp, err := c.client.Do(req)
				if err != nil {
					done <- answer{err: err}
					return
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				done <- answer{r: response{status: resp.StatusCode, header: resp.Header, body: b}, err: err}
			}()
			var first receipt
			select {
			case b := <-committed:
				if err := json.Unmarshal(b, &first); err != nil || first.Master != "10.0.0.6:3306" {
					t.Fatalf("the frozen leader's own answer = %s (%v), want a committed failover to 10.0.0.6:3306", b, err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the forwarded write never reached the leader")
			}
			c.raft.Isolate(old)

			a := <-done
			if a.err != nil {
				t.Fatalf("write through %s while the leader is frozen: %v", c.raft.Nodes[f].ID(), a.err)
			}
			mustStatus(t, a.r, http.StatusOK)
			var rc receipt
			if err := json.Unmarshal(a.r.body, &rc); err != nil {
				t.Fatalf("decode receipt %s: %v", a.r.body, err)
			}
			if rc.Epoch != first.Epoch || !rc.Duplicate {
				t.Errorf("receipt epoch %d duplicate %v, want the frozen leader's commit (epoch %d) answered as a duplicate; body %s",
					rc.Epoch, rc.Duplicate, first.Epoch, a.r.body)
			}
			wantID := ""
			if tc.hdr != nil {
				wantID = tc.hdr[1]
			}
			if rc.ID != wantID {
				t.Errorf("receipt id = %q, want %q", rc.ID, wantID)
			}
			for i, n := range c.raft.Nodes {
				if i == old {
					continue
				}
				rec, ok := n.FSM().Record("orders")
				if !ok || rec.Epoch != first.Epoch || rec.Master.HostPort() != "10.0.0.6:3306" {
					t.Errorf("%s holds orders = %+v, want 10.0.0.6:3306 at epoch %d, committed once", n.ID(), rec, first.Epoch)
				}
				if tc.hdr == nil && !strings.HasPrefix(rec.RequestID, "fwd-") {
					t.Errorf("%s: keyless forwarded write committed under id %q, want a key the follower made up", n.ID(), rec.RequestID)
				}
			}
		})
	}
}
