package publish_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/masterkv/masterkv/internal/command"
	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/internal/testserver"
	"github.com/masterkv/masterkv/raftnode/publish"
)

// slowReads is a real store whose reads (drift checks, passes) each take
// delay longer, as 60,000 ZooKeeper znodes do; its writes are the real
// store's. It is no Surveyor, so every check and pass reads through Read.
type slowReads struct {
	publish.Store
	delay   time.Duration
	reading atomic.Int32
	reads   atomic.Int32
}

func (s *slowReads) Read(ctx context.Context, clusters []kvstore.Cluster) (map[string]kvstore.Observed, error) {
	s.reading.Add(1)
	defer s.reading.Add(-1)
	s.reads.Add(1)
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(s.delay):
	}
	return s.Store.Read(ctx, clusters)
}

// TestSlowReadsDelayNoCommit: while a drift check and a pass read a store
// for seconds, a committed failover is still published at once: no read
// runs on the write loop.
func TestSlowReadsDelayNoCommit(t *testing.T) {
	const (
		delay = 3 * time.Second
		bound = time.Second
	)
	consul := testserver.StartConsul(t, testserver.ConsulOptions{})
	layout := discovery.NewLayout("mysql/master", true)
	f := populated(t, 20)
	store := &slowReads{Store: newConsulTxn(t, consul), delay: delay}
	kv := consulKV(t, consul)
	index := uint64(100) // raft indexes of the failovers, above the populate's
	for _, tc := range []struct {
		name string
		cfg  publish.Config
	}{
		{"drift check", publish.Config{DriftInterval: 50 * time.Millisecond}},
		{"pass", publish.Config{SweepInterval: 50 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Layout, cfg.Logger = layout, quiet
			p := publish.New(store, f, cfg)
			runPublisher(t, p)
			eventually(t, 10*time.Second, "the populate written", func() error {
				return holds(kv, clustersOf(f, layout)...)
			})
			for round := 0; round < 3; round++ {
				eventually(t, 2*delay, "a slow read in progress", func() error {
					if store.reading.Load() == 0 {
						return fmt.Errorf("no read in progress")
					}
					return nil
				})
				index++
				host := fmt.Sprintf("10.9.%d.1", round)
				start := time.Now()
				applyCmd(t, f, index, command.Command{
					Type: command.Failover, ID: fmt.Sprintf("f-%d", index), At: int64(index),
					Failover: &command.FailoverPayload{Entry: command.Entry{Cluster: "c0001", Master: master.Master{Host: host, Port: 3306, IPv4: host}}},
				})
				want := kvstore.NewCluster(layout, "c0001", master.Master{Host: host, Port: 3306, IPv4: host}, index)
				eventually(t, 2*delay, "the failover published", func() error {
					return holds(kv, want)
				})
				if took := time.Since(start); took > bound {
					t.Errorf("round %d: failover published %v after its commit, during a %v read; want within %v", round, took.Round(time.Millisecond), delay, bound)
				}
			}
		})
	}
}

// consulKV is one client for the test's polls: a client per poll opens
// connections faster than Consul's per-client limit allows.
func consulKV(t *testing.T, c *testserver.Consul) *api.KV {
	t.Helper()
	client, err := api.NewClient(&api.Config{Address: c.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	return client.KV()
}

// holds reports the first pair of clusters Consul does not hold.
func holds(kv *api.KV, clusters ...kvstore.Cluster) error {
	for _, c := range clusters {
		for _, p := range c.Pairs {
			got, _, err := kv.Get(p.Key, nil)
			if err != nil {
				return err
			}
			if got == nil || string(got.Value) != p.Value {
				return fmt.Errorf("consul %s = %v, want %q", p.Key, value(got), p.Value)
			}
		}
	}
	return nil
}
