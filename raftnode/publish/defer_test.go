package publish_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/raft"

	"github.com/masterkv/masterkv/internal/command"
	"github.com/masterkv/masterkv/internal/consulkv"
	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/internal/testserver"
	"github.com/masterkv/masterkv/raftnode/fsm"
	"github.com/masterkv/masterkv/raftnode/publish"
)

// timedStore is a real consul-txn store that takes delay longer over every
// Write and records when each Write and each Survey ran. Until failUntil
// its Writes fail without reaching Consul. Read is the real store's.
type timedStore struct {
	*consulkv.Store
	delay     time.Duration
	failUntil time.Time

	mu      sync.Mutex
	writes  []writeSpan
	surveys []time.Time
}

type writeSpan struct {
	start, end time.Time
	clusters   int
	failed     bool
}

var errInjected = errors.New("injected write failure")

func (s *timedStore) Write(ctx context.Context, clusters []kvstore.Cluster) []kvstore.Outcome {
	start := time.Now()
	select {
	case <-ctx.Done():
	case <-time.After(s.delay):
	}
	var outs []kvstore.Outcome
	if start.Before(s.failUntil) {
		outs = kvstore.Failures(clusters, errInjected)
	} else {
		outs = s.Store.Write(ctx, clusters)
	}
	failed := false
	for _, o := range outs {
		failed = failed || !o.Done()
	}
	s.mu.Lock()
	s.writes = append(s.writes, writeSpan{start: start, end: time.Now(), clusters: len(clusters), failed: failed})
	s.mu.Unlock()
	return outs
}

func (s *timedStore) Survey(ctx context.Context, clusters []kvstore.Cluster) ([]bool, error) {
	s.mu.Lock()
	s.surveys = append(s.surveys, time.Now())
	s.mu.Unlock()
	return s.Store.Survey(ctx, clusters)
}

func (s *timedStore) log() ([]writeSpan, []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]writeSpan(nil), s.writes...), append([]time.Time(nil), s.surveys...)
}

var _ kvstore.Surveyor = (*timedStore)(nil)

// newConsulTxn connects a consul-txn store to the agent.
func newConsulTxn(t *testing.T, c *testserver.Consul) *consulkv.Store {
	t.Helper()
	s, err := consulkv.New(consulkv.Config{Address: c.Addr(), Provider: consulkv.ProviderTxn, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// applyCmd commits c at index to f, as raft would.
func applyCmd(t *testing.T, f *fsm.FSM, index uint64, c command.Command) {
	t.Helper()
	b, err := command.Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	res, ok := f.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: b}).(fsm.Result)
	if !ok || res.Error() != nil {
		t.Fatalf("apply entry %d: %+v", index, res)
	}
}

// populated returns an FSM holding n clusters, all committed at index 1.
func populated(t *testing.T, n int) *fsm.FSM {
	t.Helper()
	f := fsm.New()
	entries := make([]command.Entry, n)
	for i := range entries {
		host := fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)
		entries[i] = command.Entry{Cluster: fmt.Sprintf("c%04d", i), Master: master.Master{Host: host, Port: 3306, IPv4: host}}
	}
	applyCmd(t, f, 1, command.Command{Type: command.Populate, At: 1, Populate: &command.PopulatePayload{Masters: entries}})
	return f
}

func clustersOf(f *fsm.FSM, layout discovery.Layout) []kvstore.Cluster {
	var out []kvstore.Cluster
	for _, r := range f.Records() {
		out = append(out, kvstore.NewCluster(layout, r.Cluster, r.Master, r.Epoch))
	}
	return out
}

// runPublisher runs p until the test ends.
func runPublisher(t *testing.T, p *publish.Publisher) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// consulMatches reports how Consul's keys under prefix differ from the
// committed clusters': every pair present with its value, nothing more.
func consulMatches(c *testserver.Consul, prefix string, clusters []kvstore.Cluster) error {
	client, err := api.NewClient(&api.Config{Address: c.Addr()})
	if err != nil {
		return err
	}
	kvs, _, err := client.KV().List(prefix, nil)
	if err != nil {
		return err
	}
	got := map[string]string{}
	for _, kv := range kvs {
		got[kv.Key] = string(kv.Value)
	}
	var diffs []string
	n := 0
	for _, c := range clusters {
		for _, p := range c.Pairs {
			n++
			if v, ok := got[p.Key]; !ok || v != p.Value {
				diffs = append(diffs, fmt.Sprintf("%s = %q (present %v), want %q", p.Key, v, ok, p.Value))
			}
		}
	}
	if len(got) != n {
		diffs = append(diffs, fmt.Sprintf("%d keys under %s, want %d", len(got), prefix, n))
	}
	if len(diffs) > 0 {
		return fmt.Errorf("%d differences, first: %s", len(diffs), strings.Join(diffs[:min(3, len(diffs))], "; "))
	}
	return nil
}

// TestSweepDeferredDuringBacklog: a bulk submit re-commits 300 clusters
// that Consul already holds, and the publisher writes them in 20 slow
// batches. No pass starts while the backlog is being written although
// several are due; one runs once it is written, finds every cluster
// exact, and Consul holds the new epoch everywhere.
func TestSweepDeferredDuringBacklog(t *testing.T) {
	const (
		n        = 300 // a listing: consulkv surveys by listing from 256 clusters
		batch    = 15
		interval = 250 * time.Millisecond
	)
	consul := testserver.StartConsul(t, testserver.ConsulOptions{})
	layout := discovery.NewLayout("mysql/master", true)
	f := populated(t, n)
	seed := clustersOf(f, layout)
	for _, o := range newConsulTxn(t, consul).Write(context.Background(), seed) {
		if o.Status != kvstore.Written {
			t.Fatalf("seeding %s: %v %v", o.Alias, o.Status, o.Err)
		}
	}
	keys := n * len(seed[0].Pairs)

	store := &timedStore{Store: newConsulTxn(t, consul), delay: 80 * time.Millisecond}
	p := publish.New(store, f, publish.Config{
		Layout: layout, BatchSize: batch, SweepInterval: interval,
		RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond, Logger: quiet,
	})
	runPublisher(t, p)
	// The start pass finds everything exact. (The write path may attempt a
	// batch or two, found unchanged, before the pass settles the rest.)
	eventually(t, 10*time.Second, "start pass", func() error {
		if r := p.Status().LastSweep; r == nil || r.KeysUnchanged != keys {
			return fmt.Errorf("last sweep %+v, want %d keys unchanged", r, keys)
		}
		if st := p.Status(); st.Backlog != 0 {
			return fmt.Errorf("backlog %d", st.Backlog)
		}
		return nil
	})
	w, sv := store.log()
	before := len(w)
	// The start pass is never deferred: it surveys before any Write ends.
	if len(sv) == 0 || (len(w) > 0 && !sv[0].Before(w[0].end)) {
		t.Errorf("start pass surveyed at %v, want before the first write ended", sv)
	}

	applyCmd(t, f, 2, command.Command{Type: command.Submit, At: 2, Submit: &command.SubmitPayload{}})
	wantWrites := (n + batch - 1) / batch
	eventually(t, 20*time.Second, "backlog written and a pass after it", func() error {
		w, _ := store.log()
		w = w[before:]
		if len(w) < wantWrites {
			return fmt.Errorf("%d of %d writes", len(w), wantWrites)
		}
		if r := p.Status().LastSweep; r == nil || !r.At.After(w[len(w)-1].end) {
			return fmt.Errorf("last sweep %+v not after the last write", r)
		}
		return nil
	})

	writes, surveys := store.log()
	writes = writes[before:]
	if len(writes) != wantWrites {
		t.Errorf("%d writes after the submit, want %d", len(writes), wantWrites)
	}
	for i, w := range writes {
		if w.failed || w.clusters != batch {
			t.Errorf("write %d: %d clusters, failed %v; want %d written", i, w.clusters, w.failed, batch)
		}
	}
	firstEnd, lastEnd := writes[0].end, writes[len(writes)-1].end
	if d := lastEnd.Sub(firstEnd); d < 3*interval {
		t.Fatalf("backlog written in %s: too short for passes to fall due (interval %s)", d, interval)
	}
	var after []time.Time
	for _, s := range surveys {
		if s.After(firstEnd) && s.Before(lastEnd) {
			t.Errorf("a survey started %s into the backlog (written in %s)", s.Sub(firstEnd), lastEnd.Sub(firstEnd))
		}
		if s.After(lastEnd) {
			after = append(after, s)
		}
	}
	if len(after) == 0 {
		t.Error("no survey after the backlog was written")
	} else {
		t.Logf("backlog of %d batches written in %s; first pass after it started %s later", len(writes), lastEnd.Sub(firstEnd), after[0].Sub(lastEnd))
	}

	st := p.Status()
	r := st.LastSweep
	if r.Clusters != n || r.KeysRead != keys || r.KeysUnchanged != keys || r.KeysWritten != 0 || r.KeysFailed != 0 || r.Stale != 0 {
		t.Errorf("pass after the backlog = %+v, want %d clusters and %d keys read, all unchanged", r, n, keys)
	}
	if st.Backlog != 0 || st.AppliedEpoch != 2 || st.Failed != 0 {
		t.Errorf("status = %+v, want no backlog, applied epoch 2, no failures", st)
	}
	if err := consulMatches(consul, "mysql/master/", clustersOf(f, layout)); err != nil {
		t.Error(err)
	}
}

// TestSweepNotDeferredWhileWritesFail: while every Write fails (for 1.5 s)
// passes keep running on schedule, each one surveying the store; once
// writes succeed Consul converges and a clean pass is reported.
func TestSweepNotDeferredWhileWritesFail(t *testing.T) {
	const (
		n        = 8 // one batch, so every pass is done once its clusters were attempted
		interval = 250 * time.Millisecond
	)
	consul := testserver.StartConsul(t, testserver.ConsulOptions{})
	layout := discovery.NewLayout("mysql/master", true)
	f := populated(t, n)
	store := &timedStore{Store: newConsulTxn(t, consul), delay: 60 * time.Millisecond, failUntil: time.Now().Add(1500 * time.Millisecond)}
	p := publish.New(store, f, publish.Config{
		Layout: layout, BatchSize: 10, SweepInterval: interval,
		RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond, Logger: quiet,
	})
	runPublisher(t, p)
	keys := n * len(clustersOf(f, layout)[0].Pairs)
	eventually(t, 15*time.Second, "Consul written and a clean pass", func() error {
		if err := consulMatches(consul, "mysql/master/", clustersOf(f, layout)); err != nil {
			return err
		}
		if r := p.Status().LastSweep; r == nil || r.KeysUnchanged != keys {
			return fmt.Errorf("last sweep %+v, want %d keys unchanged", r, keys)
		}
		return nil
	})

	writes, surveys := store.log()
	var firstFailEnd, lastFailEnd time.Time
	failures := 0
	for _, w := range writes {
		if w.failed {
			failures++
			if firstFailEnd.IsZero() {
				firstFailEnd = w.end
			}
			lastFailEnd = w.end
		}
	}
	if failures < 2 {
		t.Fatalf("%d failed writes, want the failing period to span several", failures)
	}
	during := 0
	for _, s := range surveys {
		if s.After(firstFailEnd) && s.Before(lastFailEnd) {
			during++
		}
	}
	t.Logf("%d failed writes over %s; %d surveys in between, %d in all", failures, lastFailEnd.Sub(firstFailEnd), during, len(surveys))
	if during < 2 {
		t.Errorf("%d surveys started while writes were failing, want at least 2", during)
	}
	if st := p.Status(); st.Failed == 0 || st.Backlog != 0 || st.AppliedEpoch != 1 {
		t.Errorf("status = %+v, want failures counted, no backlog, applied epoch 1", st)
	}
}

// TestRequestedSweepRunsWhenBacklogWritten: a pass asked for with Sweep()
// (how the cross-datacenter distribution drives the node's own publisher, which
// has no interval of its own) while a backlog is being written is not
// lost: it starts as soon as the backlog is written, not at the next
// request a minute later.
func TestRequestedSweepRunsWhenBacklogWritten(t *testing.T) {
	const (
		n     = 300
		batch = 15
	)
	consul := testserver.StartConsul(t, testserver.ConsulOptions{})
	layout := discovery.NewLayout("mysql/master", true)
	f := populated(t, n)
	store := &timedStore{Store: newConsulTxn(t, consul), delay: 80 * time.Millisecond}
	p := publish.New(store, f, publish.Config{
		Layout: layout, BatchSize: batch,
		RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond, Logger: quiet,
	})
	runPublisher(t, p)
	eventually(t, 20*time.Second, "first distribution", func() error {
		if st := p.Status(); st.AppliedEpoch != 1 || st.Backlog != 0 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	w, _ := store.log()
	before := len(w)

	applyCmd(t, f, 2, command.Command{Type: command.Submit, At: 2, Submit: &command.SubmitPayload{}})
	eventually(t, 5*time.Second, "the backlog's first write", func() error {
		if w, _ := store.log(); len(w) <= before {
			return fmt.Errorf("no write yet")
		}
		return nil
	})
	p.Sweep()
	wantWrites := (n + batch - 1) / batch
	eventually(t, 20*time.Second, "backlog written", func() error {
		if w, _ := store.log(); len(w)-before < wantWrites {
			return fmt.Errorf("%d of %d writes", len(w)-before, wantWrites)
		}
		return nil
	})
	writes, _ := store.log()
	lastEnd := writes[len(writes)-1].end
	eventually(t, time.Second, "the requested pass, right after the backlog", func() error {
		r := p.Status().LastSweep
		if r == nil || !r.At.After(lastEnd) {
			return fmt.Errorf("last sweep %+v", r)
		}
		if r.KeysUnchanged != n*len(layout.Pairs("x", master.Master{Host: "h", Port: 1}, 1)) {
			return fmt.Errorf("last sweep %+v, want every key unchanged", r)
		}
		return nil
	})
	_, surveys := store.log()
	for _, s := range surveys {
		if s.After(writes[before].end) && s.Before(lastEnd) {
			t.Errorf("a survey started during the backlog, %s before its end", lastEnd.Sub(s))
		}
	}
}
