// Package zkkv publishes master entries into ZooKeeper with orchestrator's
// layout: the key "mysql/master/A" is the znode /mysql/master/A, holding
// host:port, with children hostname, port, ipv4, ipv6 (and masterkv's
// epoch), optionally below a chroot.
//
// Unlike orchestrator, which opens a session per key, a Store keeps one
// long-lived session (go-zookeeper reconnects it), writes only the znodes
// that differ, and writes a cluster in one atomic multi-op that checks the
// version of every znode it read, the epoch znode included: a cluster is
// never left half written or mixed from two writers, and the epoch guard is
// enforced by ZooKeeper itself, so a concurrent writer of a newer epoch
// always wins. Missing parents get empty data, not zookeepercli's
// "zookeepercli auto-generated".
//
// With Config.Auth the session authenticates with the digest scheme and
// created znodes get world:anyone read plus auth (the same user) all;
// without it they are world:anyone all, as orchestrator creates them.
package zkkv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/kvstore"
)

// ErrTimeout is returned (wrapped) when the server did not answer a call
// within Config.OpTimeout.
var ErrTimeout = errors.New("zookeeper did not answer in time")

// Store writes to one ZooKeeper ensemble through one session.
type Store struct {
	conn        *zk.Conn
	chroot      string
	auth        []byte
	acl         []zk.ACL
	opTimeout   time.Duration
	concurrency int

	authMu sync.Mutex  // serialises AddAuth attempts
	authed atomic.Bool // AddAuth succeeded; go-zookeeper resends it on reconnect

	// written holds, per cluster, the znodes' data and versions after this
	// store's last successful multi, and the main znode's identity. A
	// change is planned against it after reading only the main znode's
	// stat; the multi checks every version, so a stale entry only costs a
	// full read (or a refused multi and then one). It never decides an
	// outcome by itself: an "unchanged" plan is always confirmed by a full
	// read.
	lastWritesMu sync.Mutex
	lastWrites   map[string]lastWrite
}

// lastWrite is compact (slices aligned with the cluster's pairs) since
// one is kept per cluster.
//
// Versions alone cannot vouch for a znode: one deleted and created again
// restarts at version 0, which is what a record of a created znode
// expects. So the record also keeps the main znode's Czxid (zxids are never
// reused: a main znode created again has another) and Cversion (moved by
// every child created or deleted under it). With both unchanged, every
// child is the very znode the last multi left, and the versions checked in
// the next multi cover all that can have happened to it since.
type lastWrite struct {
	data     []string
	versions []int32
	czxid    int64
	cversion int32
}

var (
	_ kvstore.Writer = (*Store)(nil)
	_ kvstore.Reader = (*Store)(nil)
)

// New validates cfg and starts the session. It does not wait for a server:
// an unreachable ensemble shows up as failed writes, which the caller
// retries. Errors are configuration errors (or DNS failures of a server
// name).
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	servers := make([]string, len(cfg.Servers))
	for i, s := range cfg.Servers {
		servers[i], _ = parseServer(s) // checked by Validate
	}
	chroot, _ := NormalizeChroot(cfg.Chroot)
	if cfg.SessionTimeout == 0 {
		cfg.SessionTimeout = DefaultSessionTimeout
	}
	if cfg.OpTimeout == 0 {
		cfg.OpTimeout = DefaultOpTimeout
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	conn, _, err := zk.Connect(servers, cfg.SessionTimeout,
		zk.WithLogger(zkLogger{cfg.Logger.With("component", "zookeeper")}),
		zk.WithLogInfo(false))
	if err != nil {
		return nil, fmt.Errorf("zookeeper connect: %w", err)
	}
	s := &Store{conn: conn, chroot: chroot, opTimeout: cfg.OpTimeout, concurrency: cfg.Concurrency, lastWrites: map[string]lastWrite{}}
	if cfg.Auth != "" {
		s.auth = []byte(cfg.Auth)
		s.acl = append(zk.WorldACL(zk.PermRead), zk.AuthACL(zk.PermAll)...)
	} else {
		s.acl = zk.WorldACL(zk.PermAll)
	}
	return s, nil
}

// Name identifies the store in receipts, status and metrics.
func (s *Store) Name() string { return "zookeeper" }

// Close ends the session.
func (s *Store) Close() { s.conn.Close() }

// path returns the znode of a layout key: the key with one leading "/",
// below the chroot.
func (s *Store) path(key string) string { return s.chroot + discovery.ZKPath(key) }

// ensureAuth adds the digest credentials to the session once. go-zookeeper
// re-sends them after every reconnect, also for a new session.
func (s *Store) ensureAuth(ctx context.Context) error {
	if s.auth == nil || s.authed.Load() {
		return nil
	}
	s.authMu.Lock()
	defer s.authMu.Unlock()
	if s.authed.Load() {
		return nil
	}
	_, err := call(ctx, s.opTimeout, func() (struct{}, error) {
		err := s.conn.AddAuth("digest", s.auth)
		if err == nil {
			s.authed.Store(true) // also when call already gave up waiting
		}
		return struct{}{}, err
	})
	if err != nil {
		return fmt.Errorf("zookeeper digest auth: %w", err)
	}
	return nil
}

// call runs fn, which blocks on the server, and returns its result, or
// ErrTimeout after timeout, or ctx's error. go-zookeeper calls fail on their
// own once the session's receive timeout passes or no server can be
// reached, so an abandoned fn ends soon after; its result is discarded.
func call[T any](ctx context.Context, timeout time.Duration, fn func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	done := make(chan result, 1)
	go func() {
		v, err := fn()
		done <- result{v, err}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.v, r.err
	case <-timer.C:
		return zero, fmt.Errorf("%w (%s)", ErrTimeout, timeout)
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// unreachable reports whether err means the ensemble cannot be reached now,
// so the rest of a batch is not attempted.
func unreachable(err error) bool {
	for _, target := range []error{
		ErrTimeout, zk.ErrNoServer, zk.ErrConnectionClosed, zk.ErrClosing,
		context.Canceled, context.DeadlineExceeded,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// zkLogger sends go-zookeeper's messages to slog. With WithLogInfo(false)
// the library only reports problems (failed connects, lost connections);
// none of its messages carries credentials.
type zkLogger struct{ l *slog.Logger }

func (z zkLogger) Printf(format string, args ...any) {
	z.l.Warn(fmt.Sprintf(format, args...))
}
