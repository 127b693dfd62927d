//go:build unix

package main_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/hashicorp/consul/api"

	"github.com/masterkv/masterkv/internal/consulkv"
	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/internal/testserver"
	"github.com/masterkv/masterkv/internal/zkkv"
)

// oldGeneration is the epoch the lost group left in the stores.
const oldGeneration = 1_000_000

// TestProcessRebuiltGroupPublishes is the disaster-recovery drill of the
// README: real Consul and real ZooKeeper hold cluster "main" at epoch
// 1,000,000, as the group that was lost left them; three raftnode
// processes bootstrap a new group from empty data dirs over them. A
// failover must reach both stores at an epoch above 1,000,000, every node
// must show the raised epoch base in GET /v1/status, and the next failover
// must get a higher epoch still, in its receipt and in both stores.
func TestProcessRebuiltGroupPublishes(t *testing.T) {
	layout := discovery.NewLayout(discovery.DefaultPrefix, true)
	consul := testserver.StartConsul(t, testserver.ConsulOptions{Datacenter: "dc1"})
	zkSrv := testserver.StartZooKeeper(t)
	seedOldGeneration(t, layout, consul, zkSrv)
	read := storeReader(t, layout, consul, zkSrv)

	c := newProcCluster(t, 3,
		"MASTERKV_CONSUL_ADDRESS="+consul.Addr(),
		"MASTERKV_ZK_ADDRESS="+zkSrv.Addr(),
	)
	for i := range c.members {
		c.start(i, i == 0)
	}
	for i := range c.members {
		c.waitHealthy(i, 10*time.Second)
	}
	leader := c.waitLeader(15 * time.Second)
	follower := (leader + 1) % len(c.members)

	first := postFailover(t, c, follower, "rebuild-1", "db-new")
	t.Logf("first failover receipt: epoch %d (the stores hold %d)", first.Epoch, oldGeneration)
	e1 := waitStores(t, read, "db-new:3306", oldGeneration)

	for i := range c.members {
		waitFor(t, 10*time.Second, c.members[i].id+" to show the raised epoch base", func() error {
			var st struct {
				Generation struct {
					Base  uint64 `json:"base"`
					Index uint64 `json:"index"`
				} `json:"generation"`
			}
			if err := c.getJSON(i, "/v1/status", &st); err != nil {
				return err
			}
			if g := st.Generation; g.Index == 0 || g.Base+g.Index <= oldGeneration {
				return fmt.Errorf("generation %+v", g)
			}
			return nil
		})
	}

	second := postFailover(t, c, follower, "rebuild-2", "db-next")
	if second.Epoch <= e1 {
		t.Errorf("second failover receipt: epoch %d, want above the first's published %d", second.Epoch, e1)
	}
	if e2 := waitStores(t, read, "db-next:3306", e1); e2 != second.Epoch {
		t.Errorf("stores hold the second failover at epoch %d, its receipt says %d", e2, second.Epoch)
	}
}

// seedOldGeneration writes cluster "main" (master db-old) at epoch
// 1,000,000 into both stores through the production writers, as the lost
// group left them.
func seedOldGeneration(t *testing.T, layout discovery.Layout, consul *testserver.Consul, zkSrv *testserver.ZooKeeper) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cs, err := consulkv.New(consulkv.Config{Address: consul.Addr(), Provider: consulkv.ProviderPlain, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	zs, err := zkkv.New(zkkv.Config{Servers: []string{zkSrv.Addr()}, OpTimeout: 5 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer zs.Close()
	old := kvstore.NewCluster(layout, "main", master.Master{Host: "db-old", Port: procPort}, oldGeneration)
	for _, s := range []interface {
		Name() string
		Write(context.Context, []kvstore.Cluster) []kvstore.Outcome
	}{cs, zs} {
		if outs := s.Write(t.Context(), []kvstore.Cluster{old}); len(outs) != 1 || outs[0].Status != kvstore.Written {
			t.Fatalf("seed %s: %+v", s.Name(), outs)
		}
	}
}

// storeView is what one store holds of cluster "main".
type storeView struct {
	store, master string
	epoch         uint64
}

// storeReader returns a function that reads cluster "main" from both
// stores with clients of their own, independent of the code under test.
func storeReader(t *testing.T, layout discovery.Layout, consul *testserver.Consul, zkSrv *testserver.ZooKeeper) func() ([]storeView, error) {
	t.Helper()
	cli, err := api.NewClient(&api.Config{Address: consul.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	conn, _, err := zk.Connect([]string{zkSrv.Addr()}, 5*time.Second, zk.WithLogger(quietZK{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	main, epochKey := layout.ClusterKey("main"), layout.EpochKey("main")
	return func() ([]storeView, error) {
		cv := storeView{store: "consul"}
		q := &api.QueryOptions{RequireConsistent: true}
		for key, into := range map[string]func(string) error{
			main:     func(v string) error { cv.master = v; return nil },
			epochKey: func(v string) (err error) { cv.epoch, err = strconv.ParseUint(v, 10, 64); return err },
		} {
			p, _, err := cli.KV().Get(key, q)
			if err != nil {
				return nil, fmt.Errorf("consul get %s: %w", key, err)
			}
			if p == nil {
				return nil, fmt.Errorf("consul has no %s", key)
			}
			if err := into(string(p.Value)); err != nil {
				return nil, err
			}
		}
		zv := storeView{store: "zookeeper"}
		b, _, err := conn.Get("/" + main)
		if err != nil {
			return nil, fmt.Errorf("zookeeper get /%s: %w", main, err)
		}
		zv.master = string(b)
		b, _, err = conn.Get("/" + epochKey)
		if err != nil {
			return nil, fmt.Errorf("zookeeper get /%s: %w", epochKey, err)
		}
		if zv.epoch, err = strconv.ParseUint(string(b), 10, 64); err != nil {
			return nil, err
		}
		return []storeView{cv, zv}, nil
	}
}

type quietZK struct{}

func (quietZK) Printf(string, ...any) {}

// waitStores waits until both stores hold master at one epoch above floor
// and returns it.
func waitStores(t *testing.T, read func() ([]storeView, error), master string, floor uint64) uint64 {
	t.Helper()
	var epoch uint64
	waitFor(t, 20*time.Second, fmt.Sprintf("both stores to hold %s above epoch %d", master, floor), func() error {
		views, err := read()
		if err != nil {
			return err
		}
		epoch = views[0].epoch
		for _, v := range views {
			if v.master != master || v.epoch <= floor || v.epoch != epoch {
				return fmt.Errorf("%+v", views)
			}
		}
		return nil
	})
	t.Logf("both stores hold %s at epoch %d", master, epoch)
	return epoch
}

// postFailover posts a failover of "main" to host through member i,
// retrying with the same Idempotency-Key until it is committed.
func postFailover(t *testing.T, c *procCluster, i int, key, host string) receiptView {
	t.Helper()
	var rc receiptView
	waitFor(t, 20*time.Second, "failover "+key+" to commit", func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		got, code, body, err := c.failover(ctx, i, key, "main", host, procPort)
		if err != nil {
			return err
		}
		if code != 200 {
			return fmt.Errorf("status %d: %s", code, body)
		}
		rc = got
		return nil
	})
	return rc
}
