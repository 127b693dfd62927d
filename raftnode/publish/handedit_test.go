package publish_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/hashicorp/consul/api"

	"github.com/masterkv/masterkv/internal/consulkv"
	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/testserver"
	"github.com/masterkv/masterkv/internal/zkkv"
	"github.com/masterkv/masterkv/raftnode/publish"
)

// handStore is a real store as an operator edits it by hand.
type handStore struct {
	name  string
	store publish.Store
	set   func(key, value string) error
	get   func(key string) (string, bool, error)
	wipe  func(prefix string) error // every key under prefix
}

// handStores starts a real Consul (consul-txn) and a real ZooKeeper.
func handStores(t *testing.T) []handStore {
	t.Helper()
	consul := testserver.StartConsul(t, testserver.ConsulOptions{})
	kv := consulKV(t, consul)
	cs := newConsulTxn(t, consul)
	plain, err := consulkv.New(consulkv.Config{Address: consul.Addr(), Provider: consulkv.ProviderPlain, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	consulStore := func(name string, s publish.Store) handStore {
		return handStore{
			name: name, store: s,
			set: func(key, value string) error {
				_, err := kv.Put(&api.KVPair{Key: key, Value: []byte(value)}, nil)
				return err
			},
			get: func(key string) (string, bool, error) {
				p, _, err := kv.Get(key, nil)
				if err != nil || p == nil {
					return "", false, err
				}
				return string(p.Value), true, nil
			},
			wipe: func(prefix string) error { _, err := kv.DeleteTree(prefix, nil); return err },
		}
	}
	zkServer := testserver.StartZooKeeper(t)
	zs, err := zkkv.New(zkkv.Config{Servers: []string{zkServer.Addr()}, Chroot: "/hand", OpTimeout: 5 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(zs.Close)
	conn, _, err := zk.Connect([]string{zkServer.Addr()}, 5*time.Second, zk.WithLogInfo(false), zk.WithLogger(nopLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	zpath := func(key string) string { return "/hand" + discovery.ZKPath(key) }
	return []handStore{
		consulStore("consul-txn", cs),
		consulStore("consul", plain),
		{
			name: "zookeeper", store: zs,
			set: func(key, value string) error {
				_, err := conn.Set(zpath(key), []byte(value), -1)
				return err
			},
			get: func(key string) (string, bool, error) {
				b, _, err := conn.Get(zpath(key))
				if errors.Is(err, zk.ErrNoNode) {
					return "", false, nil
				}
				return string(b), err == nil, err
			},
			wipe: func(prefix string) error { return zkDeleteTree(conn, strings.TrimSuffix(zpath(prefix), "/")) },
		},
	}
}

// zkDeleteTree deletes path and everything below it.
func zkDeleteTree(c *zk.Conn, path string) error {
	kids, _, err := c.Children(path)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, k := range kids {
		if err := zkDeleteTree(c, path+"/"+k); err != nil {
			return err
		}
	}
	if err := c.Delete(path, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return err
	}
	return nil
}

// holdsAll reports the first pair of clusters hs does not hold.
func (hs handStore) holdsAll(clusters ...kvstore.Cluster) error {
	for _, c := range clusters {
		for _, p := range c.Pairs {
			v, ok, err := hs.get(p.Key)
			if err != nil {
				return err
			}
			if !ok || v != p.Value {
				return fmt.Errorf("%s %s = %q (present %v), want %q", hs.name, p.Key, v, ok, p.Value)
			}
		}
	}
	return nil
}

// startPublisher runs a publisher until the returned stop is called (or
// the test ends).
func startPublisher(t *testing.T, p *publish.Publisher) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

// TestWipedStoreRefilled: a store wiped by hand (every key gone) is
// distribution, not a hand edit: the node's own drift check refills it
// without cross-datacenter distribution and with repair off.
func TestWipedStoreRefilled(t *testing.T) {
	for _, hs := range handStores(t) {
		t.Run(hs.name, func(t *testing.T) {
			layout := discovery.NewLayout("wiped/"+hs.name, true)
			f := populated(t, 5)
			p := publish.New(hs.store, f, publish.Config{Layout: layout, DriftInterval: 100 * time.Millisecond, Logger: quiet})
			startPublisher(t, p)
			clusters := clustersOf(f, layout)
			eventually(t, 10*time.Second, "the populate written", func() error { return hs.holdsAll(clusters...) })
			if err := hs.wipe(layout.Prefix()); err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, "the wiped store refilled", func() error { return hs.holdsAll(clusters...) })
		})
	}
}

// TestHandEditRule: one rule for every writer (a pass, a drift check, a
// restarted node's first writes). A cluster deleted by hand is written
// back whatever the repair setting; a key edited by hand while the
// cluster's epoch stays is reported and rewritten only with repair on.
func TestHandEditRule(t *testing.T) {
	writers := []struct {
		name    string
		cfg     publish.Config
		restart bool // the edit is made while the node is down
	}{
		{"pass", publish.Config{SweepInterval: 100 * time.Millisecond}, false},
		{"drift check", publish.Config{DriftInterval: 100 * time.Millisecond}, false},
		{"restart", publish.Config{}, true},
	}
	for _, hs := range handStores(t) {
		for _, w := range writers {
			for _, repair := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s/repair=%v", hs.name, w.name, repair), func(t *testing.T) {
					layout := discovery.NewLayout(fmt.Sprintf("hand/%s/%s/%v", hs.name, slug(w.name), repair), true)
					f := populated(t, 3)
					clusters := clustersOf(f, layout)
					cfg := w.cfg
					cfg.Layout, cfg.Logger, cfg.DriftRepair = layout, quiet, repair
					p := publish.New(hs.store, f, cfg)
					stop := startPublisher(t, p)
					eventually(t, 10*time.Second, "the populate written", func() error { return hs.holdsAll(clusters...) })
					if w.restart {
						stop()
					}
					edited, deleted := clusters[0], clusters[1]
					portKey := edited.MainKey() + "/" + discovery.SuffixPort
					if err := hs.set(portKey, "3399"); err != nil {
						t.Fatal(err)
					}
					if err := hs.wipe(deleted.MainKey()); err != nil {
						t.Fatal(err)
					}
					if w.restart {
						p = publish.New(hs.store, f, cfg)
						startPublisher(t, p)
					}
					eventually(t, 10*time.Second, "the deleted cluster written back", func() error { return hs.holdsAll(deleted) })
					if repair {
						eventually(t, 10*time.Second, "the hand edit repaired", func() error { return hs.holdsAll(edited) })
						return
					}
					time.Sleep(500 * time.Millisecond) // five intervals of the pass or the check
					if v, _, err := hs.get(portKey); err != nil || v != "3399" {
						t.Errorf("%s = %q (err %v) with repair off; want the hand edit 3399 kept", portKey, v, err)
					}
					eventually(t, 10*time.Second, "the hand edit reported", func() error {
						if got := p.Status().HandEdits; !slices.Contains(got, edited.Alias) {
							return fmt.Errorf("status hand_edits = %v, want %s in it", got, edited.Alias)
						}
						return nil
					})
					if err := hs.holdsAll(clusters[2]); err != nil {
						t.Error(err)
					}
				})
			}
		}
	}
}

func slug(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == ' ' {
			b[i] = '-'
		}
	}
	return string(b)
}
