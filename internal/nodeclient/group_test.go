package nodeclient_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/nodeclient"
	"github.com/masterkv/masterkv/raftnode/httpapi"
	"github.com/masterkv/masterkv/raftnode/nodetest"
)

// group is a real three-node masterkv group in process: raft on the
// in-memory transport, each node's HTTP API on a loopback listener. A node
// can be frozen as SIGSTOP freezes a process: its HTTP server takes
// requests and never answers, and its raft is cut off.
type group struct {
	raft   *nodetest.Cluster
	urls   []string
	frozen atomic.Int32
}

func newGroup(t testing.TB) *group {
	t.Helper()
	g := &group{}
	g.frozen.Store(-1)
	thaw := make(chan struct{})
	var srvs []*httptest.Server
	for range 3 {
		srv := httptest.NewUnstartedServer(http.NotFoundHandler())
		t.Cleanup(srv.Close)
		srvs = append(srvs, srv)
		g.urls = append(g.urls, "http://"+srv.Listener.Addr().String())
	}
	// Elections as in raftnode/httpapi's tests: slow enough that leadership
	// stays put under -race, fast enough for a test.
	g.raft = nodetest.New(t, 3, nodetest.Options{HTTPAddrs: g.urls, Tune: func(rc *raft.Config) {
		rc.HeartbeatTimeout = 400 * time.Millisecond
		rc.ElectionTimeout = 400 * time.Millisecond
		rc.LeaderLeaseTimeout = 200 * time.Millisecond
	}})
	discard := slog.New(slog.DiscardHandler)
	for i, nd := range g.raft.Nodes {
		api := httpapi.New(nd, nd.FSM(), httpapi.Options{
			Layout: discovery.NewLayout("mysql/master", true), Tokens: []string{"node-token"}, Logger: discard,
		})
		srvs[i].Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if int(g.frozen.Load()) == i {
				select { // a stopped process answers nothing
				case <-r.Context().Done():
				case <-thaw:
				}
				return
			}
			api.ServeHTTP(w, r)
		})
		srvs[i].Start()
	}
	// Runs before the servers' Close: a held request must not block it.
	t.Cleanup(func() { close(thaw) })
	return g
}

// freeze stops node i answering and cuts its raft off.
func (g *group) freeze(i int) {
	g.frozen.Store(int32(i))
	g.raft.Isolate(i)
}

func (g *group) leader() int { return g.raft.Index(g.raft.WaitLeader()) }

// client returns a Lambda node client for the group's nodes in order.
func (g *group) client(t testing.TB, hedge time.Duration, order ...int) *nodeclient.Client {
	t.Helper()
	var nodes []string
	for _, i := range order {
		nodes = append(nodes, g.urls[i])
	}
	// The functions' defaults, but for the hedge delay under test.
	c, err := nodeclient.New(nodeclient.Config{
		Nodes: nodes, Token: "node-token", Timeout: 12 * time.Second, ConnectTimeout: 2 * time.Second,
		HedgeDelay: hedge, Attempts: 6,
	}, nodeclient.Options{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func failoverRequest(key, host string) nodeclient.Request {
	return nodeclient.Request{
		Method: http.MethodPost, Path: "/v1/failover", ContentType: "application/json", IdempotencyKey: key,
		Body: []byte(fmt.Sprintf(`{"cluster":"orders","host":%q,"port":3306}`, host)),
	}
}

type receipt struct {
	Master    string `json:"master"`
	Epoch     uint64 `json:"epoch"`
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate"`
}

// TestDoHedgesAFrozenNode freezes one node of a real group, the first the
// client tries, and sends a failover: the client must not wait out its
// 12 s per-node timeout but send the request to the next node once the
// hedge delay passes. A frozen follower then costs the hedge delay; a
// frozen leader costs the election, because the follower holding the
// write re-sends it to the new leader. Either way the write is acknowledged
// within the election plus a second, and commits once under the key.
func TestDoHedgesAFrozenNode(t *testing.T) {
	const hedge = 250 * time.Millisecond // MASTERKV_NODE_HEDGE_DELAY's default
	for _, tc := range []struct {
		name         string
		freezeLeader bool
	}{{"frozen follower", false}, {"frozen leader", true}} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGroup(t)
			l := g.leader()
			victim := (l + 1) % 3
			if tc.freezeLeader {
				victim = l
			}
			order := []int{victim, (victim + 1) % 3, (victim + 2) % 3}
			c := g.client(t, hedge, order...)

			frozeAt := time.Now()
			g.freeze(victim)
			var elected atomic.Int64 // ns after the freeze a node other than victim led
			go func() {
				for time.Since(frozeAt) < 10*time.Second {
					for i, n := range g.raft.Nodes {
						if i != victim && n.IsLeader() {
							elected.Store(int64(time.Since(frozeAt)))
							return
						}
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()

			resp, err := c.Do(t.Context(), failoverRequest("hedged-key", "10.0.0.6"))
			took := time.Since(frozeAt)
			if err != nil || resp.Status != http.StatusOK {
				t.Fatalf("Do = %d %s, %v after %s; want 200", resp.Status, resp.Body, err, took.Round(time.Millisecond))
			}
			if resp.Node == g.urls[victim] {
				t.Errorf("answered by the frozen node %s", resp.Node)
			}
			var rc receipt
			if err := json.Unmarshal(resp.Body, &rc); err != nil {
				t.Fatalf("decode %s: %v", resp.Body, err)
			}
			if rc.Master != "10.0.0.6:3306" || rc.ID != "hedged-key" || rc.Duplicate {
				t.Errorf("receipt = %+v, want 10.0.0.6:3306 committed once under hedged-key", rc)
			}
			// Within the election plus 1 s, and for a follower (no election)
			// within the hedge delay plus 1 s; either way far below 12 s.
			limit := hedge + time.Second
			if tc.freezeLeader {
				waitUntil(t, func() bool { return elected.Load() > 0 })
				limit = time.Duration(elected.Load()) + time.Second
			}
			t.Logf("acknowledged %s after the freeze (limit %s)", took.Round(time.Millisecond), limit.Round(time.Millisecond))
			if took > limit {
				t.Errorf("acknowledged %s after the freeze, want within %s", took.Round(time.Millisecond), limit.Round(time.Millisecond))
			}
			for i, n := range g.raft.Nodes {
				if i == victim {
					continue
				}
				rec, ok := n.FSM().Record("orders")
				if !ok || rec.Epoch != rc.Epoch || rec.RequestID != "hedged-key" {
					t.Errorf("%s holds orders = %+v, want epoch %d from hedged-key", n.ID(), rec, rc.Epoch)
				}
			}
		})
	}
}

// waitUntil polls cond for up to 10 s.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
	}
}

// BenchmarkDoForwardedFailover measures what MASTERKV_NODE_HEDGE_DELAY is
// set from: the latency of a normal failover sent by the Lambda client to
// a follower, which forwards it to the leader, on loopback. It reports the
// p50 and p99 of one call. Run with
//
//	go test -run '^$' -bench DoForwardedFailover -benchtime 2000x ./internal/nodeclient/
func BenchmarkDoForwardedFailover(b *testing.B) {
	g := newGroup(b)
	l := g.leader()
	c := g.client(b, 0, (l+1)%3)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		resp, err := c.Do(b.Context(), failoverRequest(fmt.Sprintf("bench-%d", i), fmt.Sprintf("10.0.%d.%d", i/250%250, i%250+1)))
		lat = append(lat, time.Since(start))
		if err != nil || resp.Status != http.StatusOK {
			b.Fatalf("Do = %d %s, %v", resp.Status, resp.Body, err)
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
