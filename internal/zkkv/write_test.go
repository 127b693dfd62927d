package zkkv_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/go-zookeeper/zk"

	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/testserver"
	"github.com/masterkv/masterkv/internal/zkkv"
)

func TestWriteCreatesParentsAndZnodes(t *testing.T) {
	srv := testserver.StartZooKeeper(t)
	s := newStore(t, srv, nil)
	insp := inspect(t, srv)

	c := kvstore.NewCluster(layout, "shop", sampleMaster("db-1.example", 3306), 1)
	writeOne(t, s, c, kvstore.Written, 6)

	for _, parent := range []string{"/mysql", "/mysql/master"} {
		if data, _ := get(t, insp, parent); data != "" {
			t.Errorf("parent %s holds %q, want empty data", parent, data)
		}
	}
	want := map[string]string{
		"/mysql/master/shop":          "db-1.example:3306",
		"/mysql/master/shop/hostname": "db-1.example",
		"/mysql/master/shop/port":     "3306",
		"/mysql/master/shop/ipv4":     "10.0.0.1",
		"/mysql/master/shop/ipv6":     "",
		"/mysql/master/shop/epoch":    "1",
	}
	for path, value := range want {
		if got, _ := get(t, insp, path); got != value {
			t.Errorf("%s = %q, want %q", path, got, value)
		}
	}
	children, _, err := insp.Children("/mysql/master/shop")
	if err != nil {
		t.Fatalf("children: %v", err)
	}
	slices.Sort(children)
	if wantChildren := []string{"epoch", "hostname", "ipv4", "ipv6", "port"}; !slices.Equal(children, wantChildren) {
		t.Errorf("children of the main znode = %q, want %q", children, wantChildren)
	}
	for path := range want {
		acl, _, err := insp.GetACL(path)
		if err != nil {
			t.Fatalf("get acl %s: %v", path, err)
		}
		if wantACL := zk.WorldACL(zk.PermAll); !slices.Equal(acl, wantACL) {
			t.Errorf("acl of %s = %+v, want %+v (no auth: world all, as orchestrator)", path, acl, wantACL)
		}
	}
}

func TestWriteUnchangedChangedAndStale(t *testing.T) {
	srv := testserver.StartZooKeeper(t)
	s := newStore(t, srv, nil)
	insp := inspect(t, srv)

	first := kvstore.NewCluster(layout, "shop", sampleMaster("db-1", 3306), 1)
	writeOne(t, s, first, kvstore.Written, 6)
	before := versions(t, insp, first)
	_, mainBefore := get(t, insp, "/mysql/master/shop")

	t.Run("identical write is unchanged", func(t *testing.T) {
		writeOne(t, s, first, kvstore.Unchanged, 6)
		if got := versions(t, insp, first); !maps.Equal(got, before) {
			t.Errorf("versions after an unchanged write = %v, want %v", got, before)
		}
		if _, st := get(t, insp, "/mysql/master/shop"); st.Mzxid != mainBefore.Mzxid {
			t.Errorf("main znode modified (mzxid %d -> %d) by an unchanged write", mainBefore.Mzxid, st.Mzxid)
		}
	})

	// Same port and addresses: main, hostname and epoch change.
	second := kvstore.NewCluster(layout, "shop", sampleMaster("db-2", 3306), 2)
	t.Run("changed master writes only changed znodes", func(t *testing.T) {
		writeOne(t, s, second, kvstore.Written, 3)
		wantStored(t, insp, "", second)
		// Each changed znode set once, the others untouched. (The main
		// znode is at version 1 from the start: the creating multi ends
		// with a set of it, for its stat.)
		got := versions(t, insp, second)
		want := maps.Clone(before)
		for _, suffix := range []string{"", "/hostname", "/epoch"} {
			want["mysql/master/shop"+suffix]++
		}
		if !maps.Equal(got, want) {
			t.Errorf("versions = %v, want %v", got, want)
		}
	})

	t.Run("lower epoch is stale", func(t *testing.T) {
		before := versions(t, insp, second)
		old := kvstore.NewCluster(layout, "shop", sampleMaster("db-old", 3307), 1)
		writeOne(t, s, old, kvstore.Stale, 0)
		wantStored(t, insp, "", second)
		if got := versions(t, insp, second); !maps.Equal(got, before) {
			t.Errorf("versions after a stale write = %v, want %v", got, before)
		}
	})

	t.Run("same epoch repairs drift", func(t *testing.T) {
		if _, err := insp.Set("/mysql/master/shop/hostname", []byte("tampered"), -1); err != nil {
			t.Fatalf("tamper: %v", err)
		}
		obs, err := s.Read(context.Background(), []kvstore.Cluster{second})
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if got, want := kvstore.Diff(second, obs["shop"]), []string{"mysql/master/shop/hostname"}; !slices.Equal(got, want) {
			t.Errorf("Diff after tampering = %q, want %q", got, want)
		}
		writeOne(t, s, second, kvstore.Written, 1)
		wantStored(t, insp, "", second)
	})
}

func TestWriteStatusesInOneBatch(t *testing.T) {
	srv := testserver.StartZooKeeper(t)
	s := newStore(t, srv, nil)
	a := kvstore.NewCluster(layout, "a", sampleMaster("db-a", 3306), 5)
	b := kvstore.NewCluster(layout, "b", sampleMaster("db-b", 3306), 5)
	writeOne(t, s, a, kvstore.Written, 6)
	writeOne(t, s, b, kvstore.Written, 6)

	batch := []kvstore.Cluster{
		a, // unchanged
		kvstore.NewCluster(layout, "b", sampleMaster("db-b2", 3306), 4), // stale
		kvstore.NewCluster(layout, "c", sampleMaster("db-c", 3306), 1),  // new
	}
	out := write(t, s, batch...)
	want := []kvstore.Status{kvstore.Unchanged, kvstore.Stale, kvstore.Written}
	for i, o := range out {
		if o.Status != want[i] || o.Err != nil {
			t.Errorf("outcome %s = %s (err %v), want %s", o.Alias, o.Status, o.Err, want[i])
		}
	}
}

func TestChroot(t *testing.T) {
	srv := testserver.StartZooKeeper(t)
	s := newStore(t, srv, func(c *zkkv.Config) { c.Chroot = "masterkv/" })
	insp := inspect(t, srv)

	c := kvstore.NewCluster(layout, "shop", sampleMaster("db-1", 3306), 1)
	writeOne(t, s, c, kvstore.Written, 6)
	wantStored(t, insp, "/masterkv", c)
	for _, parent := range []string{"/masterkv", "/masterkv/mysql", "/masterkv/mysql/master"} {
		if data, _ := get(t, insp, parent); data != "" {
			t.Errorf("parent %s holds %q, want empty data", parent, data)
		}
	}
	if exists(t, insp, "/mysql") {
		t.Errorf("/mysql exists; everything should be below the chroot")
	}
	obs, err := s.Read(context.Background(), []kvstore.Cluster{c})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if d := kvstore.Diff(c, obs["shop"]); len(d) != 0 {
		t.Errorf("Read through the chroot differs in %q", d)
	}
	writeOne(t, s, c, kvstore.Unchanged, 6)
}

func TestStrictModeWithoutEpochKey(t *testing.T) {
	srv := testserver.StartZooKeeper(t)
	s := newStore(t, srv, nil)
	insp := inspect(t, srv)

	c := kvstore.NewCluster(strictLayout, "shop", sampleMaster("db-1", 3306), 5)
	if c.EpochKey() != "" {
		t.Fatalf("strict layout has epoch key %q", c.EpochKey())
	}
	writeOne(t, s, c, kvstore.Written, 5)
	wantStored(t, insp, "", c)
	if exists(t, insp, "/mysql/master/shop/epoch") {
		t.Errorf("strict mode wrote an epoch znode")
	}
	writeOne(t, s, c, kvstore.Unchanged, 5)

	// No guard: a lower epoch overwrites, as orchestrator would.
	lower := kvstore.NewCluster(strictLayout, "shop", sampleMaster("db-0", 3307), 1)
	writeOne(t, s, lower, kvstore.Written, 3) // main, hostname, port
	wantStored(t, insp, "", lower)
}

func TestRead(t *testing.T) {
	srv := testserver.StartZooKeeper(t)
	s := newStore(t, srv, nil)
	c := kvstore.NewCluster(layout, "shop", sampleMaster("db-1", 3306), 3)
	writeOne(t, s, c, kvstore.Written, 6)
	never := kvstore.NewCluster(layout, "never", sampleMaster("db-9", 3306), 1)

	got, err := s.Read(context.Background(), []kvstore.Cluster{c, never})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	want := kvstore.Observed{}
	for _, p := range c.Pairs {
		want[p.Key] = p.Value
	}
	if !maps.Equal(got["shop"], want) {
		t.Errorf("Read shop = %v, want %v", got["shop"], want)
	}
	if o, ok := got["never"]; !ok || len(o) != 0 {
		t.Errorf("Read never = %v (present %v), want an empty observation", o, ok)
	}
	if len(got) != 2 {
		t.Errorf("Read returned %d clusters, want 2", len(got))
	}
}

// TestConcurrentWriters races two stores (two sessions) writing two epochs
// of the same clusters, over many rounds. With the epoch key the higher
// epoch must always end up stored; in strict mode either may win, but the
// cluster must be one writer's, never a mix.
func TestConcurrentWriters(t *testing.T) {
	srv := testserver.StartZooKeeper(t)
	insp := inspect(t, srv)
	for _, strict := range []bool{false, true} {
		name, l, chroot := "epoch guard", layout, "/guard"
		if strict {
			name, l, chroot = "strict mode", strictLayout, "/strict"
		}
		t.Run(name, func(t *testing.T) {
			chrooted := func(c *zkkv.Config) { c.Chroot = chroot }
			stores := []*zkkv.Store{newStore(t, srv, chrooted), newStore(t, srv, chrooted)}
			const rounds = 60
			var lowWritten, lowStale int
			for r := 1; r <= rounds; r++ {
				lowEpoch, highEpoch := uint64(2*r+1), uint64(2*r+2)
				// "shared" exists from earlier rounds (versioned sets and
				// checks race); the per-round alias does not (creates race).
				// Low and high differ in host and port, not in ipv4/ipv6.
				aliases := []string{"shared", fmt.Sprintf("fresh-%d", r)}
				var low, high []kvstore.Cluster
				for _, a := range aliases {
					low = append(low, kvstore.NewCluster(l, a, sampleMaster(fmt.Sprintf("low-%d", r), 3306), lowEpoch))
					high = append(high, kvstore.NewCluster(l, a, sampleMaster(fmt.Sprintf("high-%d", r), 3307), highEpoch))
				}
				lowStore, highStore := stores[r%2], stores[1-r%2]
				start := make(chan struct{})
				var wg sync.WaitGroup
				var lowOut, highOut []kvstore.Outcome
				wg.Add(2)
				go func() { defer wg.Done(); <-start; lowOut = lowStore.Write(context.Background(), low) }()
				go func() { defer wg.Done(); <-start; highOut = highStore.Write(context.Background(), high) }()
				close(start)
				wg.Wait()

				for i, a := range aliases {
					if o := highOut[i]; o.Status != kvstore.Written {
						t.Errorf("round %d %s: higher epoch %s (err %v), want written", r, a, o.Status, o.Err)
					}
					switch o := lowOut[i]; o.Status {
					case kvstore.Written:
						lowWritten++
					case kvstore.Stale:
						lowStale++
					default:
						t.Errorf("round %d %s: lower epoch %s (err %v), want written or stale", r, a, o.Status, o.Err)
					}
					got := readAll(t, insp, chroot, high[i])
					switch {
					case equalPairs(got, high[i]):
					case strict && equalPairs(got, low[i]):
					default:
						t.Errorf("round %d %s: stored %v, want the higher epoch's pairs %v", r, a, got, high[i].Pairs)
					}
				}
				if t.Failed() {
					t.FailNow()
				}
			}
			t.Logf("lower epoch: %d written, %d stale", lowWritten, lowStale)
		})
	}
}

// readAll returns the stored value of every key of c ("<missing>" if
// absent).
func readAll(t *testing.T, conn *zk.Conn, chroot string, c kvstore.Cluster) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range c.Pairs {
		data, _, err := conn.Get(chroot + discovery.ZKPath(p.Key))
		switch {
		case errors.Is(err, zk.ErrNoNode):
			out[p.Key] = "<missing>"
		case err != nil:
			t.Fatalf("get %s: %v", p.Key, err)
		default:
			out[p.Key] = string(data)
		}
	}
	return out
}

func equalPairs(got map[string]string, c kvstore.Cluster) bool {
	for _, p := range c.Pairs {
		if got[p.Key] != p.Value {
			return false
		}
	}
	return true
}
