package storemodel

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sort"
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
)

// subjects are the writers under test. A new store joins the suite with
// one line here.
var subjects = []subject{
	{name: "consul", atomic: false, start: startConsul(consulkv.ProviderPlain)},
	{name: "consul-txn", atomic: true, start: startConsul(consulkv.ProviderTxn)},
	{name: "zookeeper", atomic: true, start: startZooKeeper},
}

// subject is one kind of store and its writer.
type subject struct {
	name string
	// atomic: the writer changes a cluster's keys in one transaction, so a
	// reader never sees them from two epochs, not even mid-write.
	atomic bool
	start  func(t *testing.T) store
}

// store is a real server seen three ways: through the writer under test
// (newWriter, one per simulated node, each with its own memory), through a
// reader, and through an operator's hands.
type store interface {
	newWriter(t *testing.T) kvstore.Writer
	// read returns every key of the cluster with its value, as one
	// consistent view of the store (missing keys absent).
	read(ctx context.Context, l discovery.Layout, alias string) (map[string]string, error)
	// put creates or overwrites one key by hand (creating parents as an
	// operator's tool would).
	put(ctx context.Context, key, value string) error
	// del deletes one key by hand; a missing key is not an error. In
	// ZooKeeper, deleting a cluster's main key deletes its children too.
	del(ctx context.Context, key string) error
	// delCluster deletes the main key and every key below it.
	delCluster(ctx context.Context, l discovery.Layout, alias string) error
	// restart kills the server and starts it again on the same data.
	restart()
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// --- Consul ---

type consulStore struct {
	srv      *testserver.Consul
	provider string
	kv       *api.KV
}

func startConsul(provider string) func(t *testing.T) store {
	return func(t *testing.T) store {
		srv := testserver.StartConsul(t, testserver.ConsulOptions{})
		client, err := api.NewClient(&api.Config{Address: srv.Addr()})
		if err != nil {
			t.Fatalf("consul client: %v", err)
		}
		return &consulStore{srv: srv, provider: provider, kv: client.KV()}
	}
}

func (s *consulStore) newWriter(t *testing.T) kvstore.Writer {
	w, err := consulkv.New(consulkv.Config{Address: s.srv.Addr(), Provider: s.provider, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatalf("consulkv.New: %v", err)
	}
	return w
}

// read lists the cluster in one request: Consul answers it from one state
// store snapshot, so the view is consistent.
func (s *consulStore) read(ctx context.Context, l discovery.Layout, alias string) (map[string]string, error) {
	main := l.ClusterKey(alias)
	pairs, _, err := s.kv.List(main, (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, p := range pairs {
		if p.Key == main || strings.HasPrefix(p.Key, main+"/") {
			out[p.Key] = string(p.Value)
		}
	}
	return out, nil
}

func (s *consulStore) put(ctx context.Context, key, value string) error {
	_, err := s.kv.Put(&api.KVPair{Key: key, Value: []byte(value)}, (&api.WriteOptions{}).WithContext(ctx))
	return err
}

func (s *consulStore) del(ctx context.Context, key string) error {
	_, err := s.kv.Delete(key, (&api.WriteOptions{}).WithContext(ctx))
	return err
}

func (s *consulStore) delCluster(ctx context.Context, l discovery.Layout, alias string) error {
	main := l.ClusterKey(alias)
	if _, err := s.kv.DeleteTree(main+"/", (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return err
	}
	return s.del(ctx, main)
}

func (s *consulStore) restart() { s.srv.Stop(); s.srv.Start() }

// --- ZooKeeper ---

type zkStore struct {
	srv  *testserver.ZooKeeper
	conn *zk.Conn
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}

func startZooKeeper(t *testing.T) store {
	srv := testserver.StartZooKeeper(t)
	conn, _, err := zk.Connect([]string{srv.Addr()}, 4*time.Second, zk.WithLogger(nopLogger{}))
	if err != nil {
		t.Fatalf("zookeeper connect: %v", err)
	}
	t.Cleanup(conn.Close)
	return &zkStore{srv: srv, conn: conn}
}

func (s *zkStore) newWriter(t *testing.T) kvstore.Writer {
	w, err := zkkv.New(zkkv.Config{
		Servers: []string{s.srv.Addr()}, SessionTimeout: 4 * time.Second, OpTimeout: 3 * time.Second,
		Logger: quietLogger(),
	})
	if err != nil {
		t.Fatalf("zkkv.New: %v", err)
	}
	t.Cleanup(w.Close)
	return w
}

// read takes the epoch, the other znodes, and the epoch again, and retries
// until both epoch reads agree. The writer changes a cluster in one multi
// that includes its epoch, and a session's reads see the server's state in
// order, so two equal epoch reads bracket a view of one state of the
// cluster. (A same-epoch repair of a hand edit would not move the epoch;
// the model checks no consistency while a hand edit is unrepaired.)
func (s *zkStore) read(ctx context.Context, l discovery.Layout, alias string) (map[string]string, error) {
	epochPath := discovery.ZKPath(l.EpochKey(alias))
	for ctx.Err() == nil {
		before, err := s.get(epochPath)
		if err != nil {
			return nil, err
		}
		out, err := s.readTree(discovery.ZKPath(l.ClusterKey(alias)), l.ClusterKey(alias))
		if err != nil {
			return nil, err
		}
		after, err := s.get(epochPath)
		if err != nil {
			return nil, err
		}
		if before == after {
			return out, nil
		}
	}
	return nil, ctx.Err()
}

// get returns a znode's data, "\x00missing" when it does not exist.
func (s *zkStore) get(path string) (string, error) {
	b, _, err := s.conn.Get(path)
	if errors.Is(err, zk.ErrNoNode) {
		return "\x00missing", nil
	}
	return string(b), err
}

func (s *zkStore) readTree(path, key string) (map[string]string, error) {
	out := map[string]string{}
	b, _, err := s.conn.Get(path)
	if errors.Is(err, zk.ErrNoNode) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	out[key] = string(b)
	children, _, err := s.conn.Children(path)
	if errors.Is(err, zk.ErrNoNode) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	sort.Strings(children)
	for _, c := range children {
		b, _, err := s.conn.Get(path + "/" + c)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[key+"/"+c] = string(b)
	}
	return out, nil
}

func (s *zkStore) put(_ context.Context, key, value string) error {
	path := discovery.ZKPath(key)
	_, err := s.conn.Set(path, []byte(value), -1)
	if !errors.Is(err, zk.ErrNoNode) {
		return err
	}
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i := 1; i < len(parts); i++ {
		_, err := s.conn.Create("/"+strings.Join(parts[:i], "/"), nil, 0, zk.WorldACL(zk.PermAll))
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return err
		}
	}
	_, err = s.conn.Create(path, []byte(value), 0, zk.WorldACL(zk.PermAll))
	return err
}

func (s *zkStore) del(_ context.Context, key string) error {
	path := discovery.ZKPath(key)
	children, _, err := s.conn.Children(path)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, c := range children {
		if err := s.conn.Delete(path+"/"+c, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return err
		}
	}
	if err := s.conn.Delete(path, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return err
	}
	return nil
}

func (s *zkStore) delCluster(ctx context.Context, l discovery.Layout, alias string) error {
	return s.del(ctx, l.ClusterKey(alias))
}

func (s *zkStore) restart() { s.srv.Stop(); s.srv.Start() }
