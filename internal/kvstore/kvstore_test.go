package kvstore_test

import (
	"slices"
	"sync/atomic"
	"testing"

	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/master"
)

func TestClusterKeys(t *testing.T) {
	m := master.Master{Host: "10.0.0.5", Port: 3306}
	with := kvstore.NewCluster(discovery.NewLayout("mysql/master", true), "a", m, 7)
	if got, want := with.EpochKey(), "mysql/master/a/epoch"; got != want {
		t.Errorf("EpochKey() = %q, want %q", got, want)
	}
	if got, want := with.MainKey(), "mysql/master/a"; got != want {
		t.Errorf("MainKey() = %q, want %q", got, want)
	}
	strict := kvstore.NewCluster(discovery.NewLayout("mysql/master", false), "a", m, 7)
	if got := strict.EpochKey(); got != "" {
		t.Errorf("EpochKey() without the epoch key = %q, want empty", got)
	}
}

func TestDiff(t *testing.T) {
	c := kvstore.NewCluster(discovery.NewLayout("mysql/master", true), "a", master.Master{Host: "h", Port: 1}, 2)
	all := kvstore.Observed{}
	for _, p := range c.Pairs {
		all[p.Key] = p.Value
	}
	if got := kvstore.Diff(c, all); len(got) != 0 {
		t.Errorf("Diff of an equal store = %v, want none", got)
	}
	delete(all, "mysql/master/a/ipv6")
	all["mysql/master/a/port"] = "2"
	all["mysql/master/a/extra"] = "ignored"
	if got, want := kvstore.Diff(c, all), []string{"mysql/master/a/port", "mysql/master/a/ipv6"}; !slices.Equal(got, want) {
		t.Errorf("Diff = %v, want %v", got, want)
	}
}

func TestParseEpoch(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    uint64
		wantErr bool
	}{{"", 0, false}, {"42", 42, false}, {"abc", 0, true}, {"-1", 0, true}} {
		got, err := kvstore.ParseEpoch(tc.in)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("ParseEpoch(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestParallelBoundsConcurrency(t *testing.T) {
	var running, peak, done atomic.Int32
	kvstore.Parallel(50, 4, func(int) {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		for i := 0; i < 1000; i++ {
			_ = i * i
		}
		running.Add(-1)
		done.Add(1)
	})
	if done.Load() != 50 || peak.Load() > 4 {
		t.Errorf("ran %d calls with peak concurrency %d, want 50 and at most 4", done.Load(), peak.Load())
	}
}

func TestStatusAndDone(t *testing.T) {
	for _, tc := range []struct {
		s    kvstore.Status
		name string
		done bool
	}{{kvstore.Failed, "failed", false}, {kvstore.Written, "written", true}, {kvstore.Unchanged, "unchanged", true}, {kvstore.Stale, "stale", true}, {kvstore.Edited, "edited", true}, {kvstore.Refused, "refused", false}} {
		if got := tc.s.String(); got != tc.name {
			t.Errorf("String() = %q, want %q", got, tc.name)
		}
		if got := (kvstore.Outcome{Status: tc.s}).Done(); got != tc.done {
			t.Errorf("%s Done() = %v, want %v", tc.name, got, tc.done)
		}
	}
}
