package httpapi_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/raftnode/httpapi"
	"github.com/masterkv/masterkv/raftnode/metrics"
	"github.com/masterkv/masterkv/raftnode/nodetest"
	"github.com/masterkv/masterkv/raftnode/publish"
)

// TestMetricsNeedsToken: /metrics is served behind the same bearer token
// as the API, and answers Prometheus text with masterkv's metrics.
func TestMetricsNeedsToken(t *testing.T) {
	g := nodetest.New(t, 1, nodetest.Options{})
	m := metrics.New()
	m.Register(metrics.NewStatusCollector(g.Nodes[0], func() []publish.Status { return nil }))
	srv := httptest.NewServer(httpapi.New(g.Nodes[0], g.Nodes[0].FSM(), httpapi.Options{
		Layout: discovery.NewLayout("mysql/master", true), Tokens: []string{"tok"}, Metrics: m.Handler(),
		Logger: slog.New(slog.DiscardHandler),
	}))
	defer srv.Close()
	get := func(auth string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get(""); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics without a token: %d, want 401", code)
	}
	code, body := get("Bearer tok")
	if code != http.StatusOK || !strings.Contains(body, `masterkv_raft_state{state="leader"} 1`) {
		t.Errorf("GET /metrics with the token: %d, body lacks the leader state:\n%.500s", code, body)
	}
}
