package consulkv_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/masterkv/masterkv/internal/consulkv"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/testserver"
)

// TestAgentDown: with the agent stopped every cluster fails quickly, and
// the same store writes again once the agent is back. Not parallel, so the
// time bound is not measured under the load of the other tests.
func TestAgentDown(t *testing.T) {
	a := startAgent(t, testserver.ConsulOptions{})
	stores := map[string]*consulkv.Store{}
	before := map[string][]kvstore.Cluster{}
	after := map[string][]kvstore.Cluster{}
	for _, provider := range providers {
		stores[provider] = newStore(t, a, consulkv.Config{Provider: provider, Timeout: time.Second})
		for i, alias := range []string{"down-1-" + provider, "down-2-" + provider} {
			before[provider] = append(before[provider], cluster(alias, sampleMaster(i), 1))
			after[provider] = append(after[provider], cluster(alias, sampleMaster(10+i), 2))
		}
		for _, o := range write(t, stores[provider], before[provider]...) {
			checkOutcome(t, o, kvstore.Written, 6)
		}
	}

	a.Stop()
	for _, provider := range providers {
		t.Run(provider+"/down", func(t *testing.T) {
			s := stores[provider]
			start := time.Now()
			out := write(t, s, after[provider]...)
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Write against a stopped agent took %v, want about the 1s timeout at most", d)
			}
			for _, o := range out {
				if o.Status != kvstore.Failed || o.Err == nil {
					t.Errorf("%s: outcome %v, err %v; want failed with an error", o.Alias, o.Status, o.Err)
				}
			}
			if _, err := s.Read(context.Background(), after[provider]); err == nil {
				t.Errorf("Read against a stopped agent: nil error")
			}
			if _, err := s.Datacenters(); err == nil {
				t.Errorf("Datacenters against a stopped agent: nil error")
			}
		})
	}

	a.Start()
	for _, provider := range providers {
		t.Run(provider+"/back", func(t *testing.T) {
			for _, o := range write(t, stores[provider], after[provider]...) {
				checkOutcome(t, o, kvstore.Written, 5)
			}
			for _, c := range after[provider] {
				a.checkHolds(t, c)
			}
		})
	}
}

// TestAgentHangs: an agent that accepts requests and never answers cannot
// be produced on demand with a real server, so a fake stands in. Write
// gives up after the configured Timeout, or earlier when ctx ends.
func TestAgentHangs(t *testing.T) {
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(hung.Close)
	t.Cleanup(func() { close(release) }) // runs first: frees handlers so Close returns
	addr := strings.TrimPrefix(hung.URL, "http://")

	tests := []struct {
		name    string
		timeout time.Duration
		ctx     time.Duration // 0: no deadline
		want    time.Duration // Write returns after about this long
	}{
		{"client timeout", time.Second, 0, time.Second},
		{"context deadline", time.Minute, 500 * time.Millisecond, 500 * time.Millisecond},
	}
	for _, provider := range providers {
		for _, tt := range tests {
			t.Run(provider+"/"+tt.name, func(t *testing.T) {
				s, err := consulkv.New(consulkv.Config{Address: addr, Provider: provider, Timeout: tt.timeout})
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				ctx := context.Background()
				if tt.ctx > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.ctx)
					defer cancel()
				}
				cs := []kvstore.Cluster{cluster("hung-1", sampleMaster(1), 1), cluster("hung-2", sampleMaster(2), 1)}
				start := time.Now()
				out := s.Write(ctx, cs)
				d := time.Since(start)
				if d < tt.want*9/10 || d > tt.want+2*time.Second {
					t.Errorf("Write against a hung agent returned after %v, want about %v", d, tt.want)
				}
				if len(out) != len(cs) {
					t.Fatalf("%d outcomes for %d clusters", len(out), len(cs))
				}
				for _, o := range out {
					if o.Status != kvstore.Failed || o.Err == nil {
						t.Errorf("%s: outcome %v, err %v; want failed with an error", o.Alias, o.Status, o.Err)
					}
				}
			})
		}
	}
}
