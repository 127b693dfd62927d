package zkkv_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/internal/testserver"
	"github.com/masterkv/masterkv/internal/zkkv"
)

const (
	testUser     = "masterkv"
	testPassword = "pw-Zr8q-s3cret"
	testAuth     = testUser + ":" + testPassword
)

var (
	layout       = discovery.NewLayout(discovery.DefaultPrefix, true)
	strictLayout = discovery.NewLayout(discovery.DefaultPrefix, false)
)

func sampleMaster(host string, port int) master.Master {
	return master.Master{Host: host, Port: port, IPv4: "10.0.0.1"}
}

// newStore connects a store to srv; mutate adjusts the config first.
func newStore(t testing.TB, srv *testserver.ZooKeeper, mutate func(*zkkv.Config)) *zkkv.Store {
	t.Helper()
	cfg := zkkv.Config{
		Servers:        []string{srv.Addr()},
		SessionTimeout: 4 * time.Second,
		OpTimeout:      3 * time.Second,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := zkkv.New(cfg)
	if err != nil {
		t.Fatalf("zkkv.New: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}

// inspect opens a separate, unauthenticated session to check what the
// store wrote, and waits until it has a session.
func inspect(t *testing.T, srv *testserver.ZooKeeper) *zk.Conn {
	t.Helper()
	conn, _, err := zk.Connect([]string{srv.Addr()}, 4*time.Second, zk.WithLogger(nopLogger{}))
	if err != nil {
		t.Fatalf("inspector connect: %v", err)
	}
	t.Cleanup(conn.Close)
	deadline := time.Now().Add(15 * time.Second)
	for conn.State() != zk.StateHasSession {
		if time.Now().After(deadline) {
			t.Fatalf("inspector: no session with %s within 15s (state %v)", srv.Addr(), conn.State())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return conn
}

// get returns a znode's data and stat; the znode must exist.
func get(t *testing.T, conn *zk.Conn, path string) (string, *zk.Stat) {
	t.Helper()
	data, stat, err := conn.Get(path)
	if err != nil {
		t.Fatalf("get %s: %v", path, err)
	}
	return string(data), stat
}

func exists(t *testing.T, conn *zk.Conn, path string) bool {
	t.Helper()
	ok, _, err := conn.Exists(path)
	if err != nil {
		t.Fatalf("exists %s: %v", path, err)
	}
	return ok
}

// wantStored checks that every pair of c is stored under chroot with its
// value.
func wantStored(t *testing.T, conn *zk.Conn, chroot string, c kvstore.Cluster) {
	t.Helper()
	for _, p := range c.Pairs {
		path := chroot + discovery.ZKPath(p.Key)
		if got, _ := get(t, conn, path); got != p.Value {
			t.Errorf("%s = %q, want %q", path, got, p.Value)
		}
	}
}

// versions returns the data version of every znode of c.
func versions(t *testing.T, conn *zk.Conn, c kvstore.Cluster) map[string]int32 {
	t.Helper()
	out := map[string]int32{}
	for _, p := range c.Pairs {
		_, stat := get(t, conn, discovery.ZKPath(p.Key))
		out[p.Key] = stat.Version
	}
	return out
}

// write writes clusters and checks there is one outcome per cluster, in
// order, none revealing the test password.
func write(t *testing.T, s *zkkv.Store, clusters ...kvstore.Cluster) []kvstore.Outcome {
	t.Helper()
	out := s.Write(context.Background(), clusters)
	if len(out) != len(clusters) {
		t.Fatalf("Write returned %d outcomes for %d clusters", len(out), len(clusters))
	}
	for i, o := range out {
		if o.Alias != clusters[i].Alias || o.Epoch != clusters[i].Epoch {
			t.Errorf("outcome %d is for %s@%d, want %s@%d", i, o.Alias, o.Epoch, clusters[i].Alias, clusters[i].Epoch)
		}
		noSecret(t, o.Err)
	}
	return out
}

// writeOne writes c and checks its status and key count.
func writeOne(t *testing.T, s *zkkv.Store, c kvstore.Cluster, want kvstore.Status, wantKeys int) {
	t.Helper()
	o := write(t, s, c)[0]
	if o.Status != want || o.Keys != wantKeys || (o.Err != nil) != (want == kvstore.Failed) {
		t.Fatalf("write %s@%d = %s, %d keys, err %v; want %s, %d keys", c.Alias, c.Epoch, o.Status, o.Keys, o.Err, want, wantKeys)
	}
}

func noSecret(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), testPassword) {
		t.Errorf("error %q reveals the auth password", err)
	}
}

// syncBuffer is a log sink safe for the client's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
