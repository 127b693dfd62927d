package publish_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/raftnode/fsm"
	"github.com/masterkv/masterkv/raftnode/publish"
)

// countingSource is the FSM, counting the watches left open.
type countingSource struct {
	*fsm.FSM
	open atomic.Int64
}

func (s *countingSource) Watch() (<-chan struct{}, func()) {
	ch, cancel := s.FSM.Watch()
	s.open.Add(1)
	var once atomic.Bool
	return ch, func() {
		if once.CompareAndSwap(false, true) {
			s.open.Add(-1)
		}
		cancel()
	}
}

// nullStore holds nothing and accepts every write.
type nullStore struct{}

func (nullStore) Name() string { return "null" }
func (nullStore) Write(_ context.Context, cs []kvstore.Cluster) []kvstore.Outcome {
	out := make([]kvstore.Outcome, len(cs))
	for i, c := range cs {
		out[i] = kvstore.Outcome{Alias: c.Alias, Epoch: c.Epoch, Status: kvstore.Written}
	}
	return out
}
func (nullStore) Read(context.Context, []kvstore.Cluster) (map[string]kvstore.Observed, error) {
	return map[string]kvstore.Observed{}, nil
}

// TestPublisherRunRemovesItsWatch is issue 9 item 10 at the publisher: the
// sweep starts publishers on every leadership gain, and each one's FSM
// watch was never removed (200 start/stop cycles left 200 watchers, every
// one notified on every apply). A publisher whose Run returns leaves none.
func TestPublisherRunRemovesItsWatch(t *testing.T) {
	src := &countingSource{FSM: fsm.New()}
	for range 200 {
		p := publish.New(nullStore{}, src, publish.Config{Layout: discovery.NewLayout("mysql/master", true), Logger: quiet})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); p.Run(ctx) }()
		for deadline := time.Now().Add(5 * time.Second); src.open.Load() == 0; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("Run did not watch the FSM within 5s")
			}
		}
		cancel()
		<-done
	}
	if n := src.open.Load(); n != 0 {
		t.Errorf("after 200 publisher start/stop cycles %d watches are open, want 0", n)
	}
}
