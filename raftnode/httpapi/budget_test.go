package httpapi_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/raftnode/httpapi"
	"github.com/masterkv/masterkv/raftnode/nodetest"
)

// newCustomCluster is newAPICluster with a hook on each node's API options
// and one around each node's handler, for tests that slow a node down or
// change its budgets. Elections are as slow as newAPICluster's default, so
// leadership stays put under -race.
func newCustomCluster(t *testing.T, opts func(i int, o *httpapi.Options), wrap func(i int, h http.Handler) http.Handler) *apiCluster {
	t.Helper()
	const n = 3
	c := &apiCluster{}
	for range n {
		srv := httptest.NewUnstartedServer(http.NotFoundHandler())
		t.Cleanup(srv.Close)
		c.srvs = append(c.srvs, srv)
		c.urls = append(c.urls, "http://"+srv.Listener.Addr().String())
	}
	c.raft = nodetest.New(t, n, nodetest.Options{HTTPAddrs: c.urls, Tune: func(rc *raft.Config) {
		rc.HeartbeatTimeout = 400 * time.Millisecond
		rc.ElectionTimeout = 400 * time.Millisecond
		rc.LeaderLeaseTimeout = 200 * time.Millisecond
	}})
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	for i, nd := range c.raft.Nodes {
		o := httpapi.Options{
			Layout: discovery.NewLayout("mysql/master", true), Tokens: []string{token, rotatedToken},
			Now: func() time.Time { return fixedNow }, Logger: discard,
		}
		if opts != nil {
			opts(i, &o)
		}
		var h http.Handler = httpapi.New(nd, nd.FSM(), o)
		if wrap != nil {
			h = wrap(i, h)
		}
		c.srvs[i].Config.Handler = h
		c.srvs[i].Start()
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	c.client = &http.Client{Timeout: 30 * time.Second, Transport: tr}
	t.Cleanup(tr.CloseIdleConnections)
	return c
}

// TestForwardOutlastsLeaderBudget sends a failover with ?wait=all through a
// follower while the third node never confirms it: the leader commits, waits
// its whole WaitAllTimeout (3 s, the scaled-down budget) and answers 200 with
// that node "pending". The follower's forward client has a fixed 1 s timeout,
// as the 15 s one was fixed below a leader budget of 10 s apply + 5 s receipt
// + 10 s wait=all: the follower must give the leader its whole budget anyway
// and relay the 200, not answer 503 for a committed write.
func TestForwardOutlastsLeaderBudget(t *testing.T) {
	const waitAll = 3 * time.Second
	var silent atomic.Int32 // position of the node whose /applied never confirms
	silent.Store(-1)
	c := newCustomCluster(t, func(i int, o *httpapi.Options) {
		o.WaitAllTimeout = waitAll
		o.ReceiptTimeout = 100 * time.Millisecond
		o.Client = &http.Client{Timeout: time.Second} // the "smaller fixed value"
	}, func(i int, h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if int(silent.Load()) == i && strings.HasSuffix(r.URL.Path, "/applied") {
				http.Error(w, `{"error":"slow"}`, http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	l, f := c.leader(t), c.follower(t)
	silent.Store(int32(3 - l - f))

	start := time.Now()
	r := c.do(t, f, http.MethodPost, "/v1/failover?wait=all", `{"cluster":"orders","host":"10.0.0.5","port":3306}`, "Idempotency-Key", "slow-wait-all")
	elapsed := time.Since(start)
	mustStatus(t, r, http.StatusOK)
	if by := r.header.Get("X-Masterkv-Leader"); by != c.raft.Nodes[l].ID() {
		t.Errorf("X-Masterkv-Leader = %q, want the leader %s (forwarded)", by, c.raft.Nodes[l].ID())
	}
	if !strings.Contains(string(r.body), `"pending`) {
		t.Errorf("receipt %s does not show the silent node pending", r.body)
	}
	if elapsed < waitAll {
		t.Errorf("answered after %s, want the leader's whole WaitAllTimeout %s", elapsed, waitAll)
	}
	c.waitRecord(t, "orders", "10.0.0.5:3306", mustEpoch(t, c, l, "orders"))
}

// mustEpoch returns the epoch node i holds for alias.
func mustEpoch(t *testing.T, c *apiCluster, i int, alias string) uint64 {
	t.Helper()
	rec, ok := c.raft.Nodes[i].FSM().Record(alias)
	if !ok {
		t.Fatalf("%s holds no %s", c.raft.Nodes[i].ID(), alias)
	}
	return rec.Epoch
}
