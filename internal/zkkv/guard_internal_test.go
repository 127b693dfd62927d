package zkkv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/internal/testserver"
)

// TestGuardIsPartOfTheMulti plans a write, lets another writer change only
// the epoch znode (or create the cluster) in between, and checks that the
// planned multi is refused as a whole and that Write then reports the
// cluster stale: the epoch guard is enforced by ZooKeeper, not by the read.
func TestGuardIsPartOfTheMulti(t *testing.T) {
	srv := testserver.StartZooKeeper(t)
	s, err := New(Config{
		Servers: []string{srv.Addr()}, OpTimeout: 3 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(s.Close)
	ctx := context.Background()
	l := discovery.NewLayout(discovery.DefaultPrefix, true)
	m := func(host string) master.Master { return master.Master{Host: host, Port: 3306} }

	tests := []struct {
		name      string
		stored    *kvstore.Cluster // written before planning
		tamper    string           // set before planning: "port" drift
		write     kvstore.Cluster  // planned
		wantGuard string           // the guard op planned on the epoch znode
		wantErr   error
	}{
		{
			name:      "epoch changes: versioned set of the epoch",
			stored:    ptr(kvstore.NewCluster(l, "a", m("db-1"), 1)),
			write:     kvstore.NewCluster(l, "a", m("db-2"), 2),
			wantGuard: "set",
			wantErr:   zk.ErrBadVersion,
		},
		{
			name:      "same epoch, drift only: version check of the epoch",
			stored:    ptr(kvstore.NewCluster(l, "b", m("db-1"), 2)),
			tamper:    "port",
			write:     kvstore.NewCluster(l, "b", m("db-1"), 2),
			wantGuard: "check",
			wantErr:   zk.ErrBadVersion,
		},
		{
			name:      "new cluster: create of the epoch",
			write:     kvstore.NewCluster(l, "c", m("db-2"), 2),
			wantGuard: "create",
			wantErr:   zk.ErrNodeExists,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.write
			if tt.stored != nil {
				if o := s.Write(ctx, []kvstore.Cluster{*tt.stored})[0]; o.Status != kvstore.Written {
					t.Fatalf("setup write = %s, %v", o.Status, o.Err)
				}
			}
			if tt.tamper != "" {
				if _, err := s.conn.Set(s.path(c.MainKey()+"/"+tt.tamper), []byte("9999"), -1); err != nil {
					t.Fatalf("tamper: %v", err)
				}
			}
			st, err := s.readCluster(ctx, c)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			ops, final := s.plan(c, st)
			if final != nil {
				t.Fatalf("plan = final %s, want ops", final.Status)
			}
			if got := guardKind(ops, s.path(c.EpochKey())); got != tt.wantGuard {
				t.Fatalf("guard on the epoch znode = %q, want %q", got, tt.wantGuard)
			}

			// Another writer gets there first with a newer epoch.
			newer := kvstore.NewCluster(l, c.Alias, m("db-9"), 9)
			if tt.stored != nil {
				// Touch only the epoch znode, so that the guard alone
				// can refuse the multi.
				if _, err := s.conn.Set(s.path(c.EpochKey()), []byte("9"), -1); err != nil {
					t.Fatalf("newer epoch: %v", err)
				}
			} else if o := s.Write(ctx, []kvstore.Cluster{newer})[0]; o.Status != kvstore.Written {
				t.Fatalf("newer write = %s, %v", o.Status, o.Err)
			}
			before, err := s.readCluster(ctx, c)
			if err != nil {
				t.Fatalf("read: %v", err)
			}

			if _, err := s.conn.Multi(ops...); !errors.Is(err, tt.wantErr) {
				t.Fatalf("planned multi after the newer write = %v, want %v", err, tt.wantErr)
			}
			after, err := s.readCluster(ctx, c)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !equalStored(before, after) {
				t.Errorf("refused multi changed znodes: %v -> %v", before, after)
			}
			if o := s.Write(ctx, []kvstore.Cluster{c})[0]; o.Status != kvstore.Stale {
				t.Errorf("write after the newer epoch = %s (err %v), want stale", o.Status, o.Err)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// guardKind names the op planned on the epoch znode.
func guardKind(ops []any, epochPath string) string {
	for _, op := range ops {
		switch op := op.(type) {
		case *zk.CheckVersionRequest:
			if op.Path == epochPath {
				return "check"
			}
		case *zk.SetDataRequest:
			if op.Path == epochPath && op.Version >= 0 {
				return "set"
			}
		case *zk.CreateRequest:
			if op.Path == epochPath {
				return "create"
			}
		}
	}
	return ""
}

func equalStored(a, b stored) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestMultiValidatesTheWholeRead: a znode the plan leaves alone because it
// was equal when read, changed by another writer before the multi, refuses
// the multi; the retry then writes it. Without the check the cluster would
// end up mixed (one writer's port, the other's host).
func TestMultiValidatesTheWholeRead(t *testing.T) {
	srv := testserver.StartZooKeeper(t)
	for _, writeEpoch := range []bool{true, false} {
		l := discovery.NewLayout(discovery.DefaultPrefix, writeEpoch)
		t.Run(fmt.Sprintf("epoch key %v", writeEpoch), func(t *testing.T) {
			s, err := New(Config{
				Servers: []string{srv.Addr()}, Chroot: fmt.Sprintf("/epoch-%v", writeEpoch), OpTimeout: 3 * time.Second,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			t.Cleanup(s.Close)
			ctx := context.Background()
			first := kvstore.NewCluster(l, "a", master.Master{Host: "db-1", Port: 3306}, 1)
			if o := s.Write(ctx, []kvstore.Cluster{first})[0]; o.Status != kvstore.Written {
				t.Fatalf("setup write = %s, %v", o.Status, o.Err)
			}
			next := kvstore.NewCluster(l, "a", master.Master{Host: "db-2", Port: 3306}, 2)
			st, err := s.readCluster(ctx, next)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			ops, final := s.plan(next, st)
			if final != nil {
				t.Fatalf("plan = final %s, want ops", final.Status)
			}
			portPath := s.path(next.MainKey() + "/port")
			if _, err := s.conn.Set(portPath, []byte("3307"), -1); err != nil {
				t.Fatalf("concurrent port change: %v", err)
			}
			if _, err := s.conn.Multi(ops...); !errors.Is(err, zk.ErrBadVersion) {
				t.Fatalf("multi after a concurrent change of an equal znode = %v, want %v", err, zk.ErrBadVersion)
			}
			if o := s.Write(ctx, []kvstore.Cluster{next})[0]; o.Status != kvstore.Written {
				t.Fatalf("write = %s, %v", o.Status, o.Err)
			}
			if data, _, err := s.conn.Get(portPath); err != nil || string(data) != "3306" {
				t.Errorf("port = %q, %v; want 3306", data, err)
			}
		})
	}
}
