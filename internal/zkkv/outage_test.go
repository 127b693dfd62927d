package zkkv_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/testserver"
	"github.com/masterkv/masterkv/internal/zkkv"
)

// TestServerDownAndBack stops the server under a connected store: writes
// and reads fail within the op timeout instead of hanging, and once the
// server is back a retry succeeds.
func TestServerDownAndBack(t *testing.T) {
	srv := testserver.StartZooKeeper(t)
	const opTimeout = 2 * time.Second
	var logs syncBuffer
	s := newStore(t, srv, func(c *zkkv.Config) {
		c.Auth = testAuth
		c.OpTimeout = opTimeout
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	writeOne(t, s, kvstore.NewCluster(layout, "a", sampleMaster("db-a1", 3306), 1), kvstore.Written, 6)

	srv.Stop()
	batch := []kvstore.Cluster{
		kvstore.NewCluster(layout, "a", sampleMaster("db-a2", 3306), 2),
		kvstore.NewCluster(layout, "b", sampleMaster("db-b1", 3306), 1),
		kvstore.NewCluster(layout, "c", sampleMaster("db-c1", 3306), 1),
	}
	start := time.Now()
	out := write(t, s, batch...)
	if took := time.Since(start); took > opTimeout+time.Second {
		t.Errorf("Write with the server down took %s, want at most the op timeout %s (+1s)", took, opTimeout)
	}
	for _, o := range out {
		if o.Status != kvstore.Failed || o.Err == nil {
			t.Errorf("outcome %s with the server down = %s, %v; want failed with an error", o.Alias, o.Status, o.Err)
		}
	}
	start = time.Now()
	if _, err := s.Read(context.Background(), batch); err == nil {
		t.Errorf("Read with the server down succeeded")
	} else {
		noSecret(t, err)
	}
	if took := time.Since(start); took > opTimeout+time.Second {
		t.Errorf("Read with the server down took %s, want at most %s (+1s)", took, opTimeout)
	}

	srv.Start()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out = write(t, s, batch...)
		if done := !slices.ContainsFunc(out, func(o kvstore.Outcome) bool { return !o.Done() }); done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes still failing 30s after the server came back: %+v", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	insp := inspect(t, srv)
	for i, o := range out {
		if o.Status != kvstore.Written {
			t.Errorf("retry of %s = %s, want written", o.Alias, o.Status)
		}
		wantStored(t, insp, "", batch[i])
	}
	if log := logs.String(); log == "" {
		t.Errorf("no client log while the server was down; is the logger wired?")
	} else if strings.Contains(log, testPassword) {
		t.Errorf("the client log reveals the auth password:\n%s", log)
	}
}

// TestUnreachableFromStart: New does not wait for a server, and a store
// that never reached one fails its writes (auth first) within the timeout.
func TestUnreachableFromStart(t *testing.T) {
	addr := "127.0.0.1:" + strconv.Itoa(testserver.FreePort(t)) // nothing listens
	const opTimeout = time.Second
	s, err := zkkv.New(zkkv.Config{
		Servers: []string{addr}, Auth: testAuth, OpTimeout: opTimeout,
		Logger: slog.New(slog.NewTextHandler(&syncBuffer{}, nil)),
	})
	if err != nil {
		t.Fatalf("New with an unreachable server: %v", err)
	}
	t.Cleanup(s.Close)
	batch := []kvstore.Cluster{
		kvstore.NewCluster(layout, "a", sampleMaster("db-a", 3306), 1),
		kvstore.NewCluster(layout, "b", sampleMaster("db-b", 3306), 1),
	}
	start := time.Now()
	out := write(t, s, batch...)
	if took := time.Since(start); took > opTimeout+time.Second {
		t.Errorf("Write took %s, want at most %s (+1s)", took, opTimeout)
	}
	for _, o := range out {
		if o.Status != kvstore.Failed || o.Err == nil {
			t.Errorf("outcome %s = %s, %v; want failed", o.Alias, o.Status, o.Err)
		}
	}
	t.Logf("first error: %v", out[0].Err)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, o := range s.Write(ctx, batch) {
		if o.Status != kvstore.Failed || !errors.Is(o.Err, context.Canceled) {
			t.Errorf("outcome %s with a cancelled context = %s, %v; want failed with %v", o.Alias, o.Status, o.Err, context.Canceled)
		}
	}
}

// TestBlackHoleServer: a server that accepts connections and never answers
// cannot hang Write or Read; the op timeout ends them, whether the first
// call waiting is the digest auth or a read.
func TestBlackHoleServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	const opTimeout = time.Second
	newBlackHoleStore := func(auth string) *zkkv.Store {
		s, err := zkkv.New(zkkv.Config{
			Servers: []string{l.Addr().String()}, Auth: auth, OpTimeout: opTimeout,
			Logger: slog.New(slog.NewTextHandler(&syncBuffer{}, nil)),
		})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return s
	}
	withAuth, withoutAuth := newBlackHoleStore(testAuth), newBlackHoleStore("")
	t.Cleanup(func() {
		// Drop the held connections first so the clients' pending
		// handshake reads end and Close returns promptly.
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		withAuth.Close()
		withoutAuth.Close()
	})

	batch := []kvstore.Cluster{
		kvstore.NewCluster(layout, "a", sampleMaster("db-a", 3306), 1),
		kvstore.NewCluster(layout, "b", sampleMaster("db-b", 3306), 1),
	}
	for name, s := range map[string]*zkkv.Store{"with auth": withAuth, "without auth": withoutAuth} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			out := write(t, s, batch...)
			if took := time.Since(start); took > opTimeout+time.Second {
				t.Errorf("Write took %s, want at most %s (+1s)", took, opTimeout)
			}
			for _, o := range out {
				if o.Status != kvstore.Failed || !errors.Is(o.Err, zkkv.ErrTimeout) {
					t.Errorf("outcome %s = %s, %v; want failed with %v", o.Alias, o.Status, o.Err, zkkv.ErrTimeout)
				}
			}
			start = time.Now()
			if _, err := s.Read(context.Background(), batch); !errors.Is(err, zkkv.ErrTimeout) {
				t.Errorf("Read = %v, want %v", err, zkkv.ErrTimeout)
			}
			if took := time.Since(start); took > opTimeout+time.Second {
				t.Errorf("Read took %s, want at most %s (+1s)", took, opTimeout)
			}
		})
	}
}
