package zkkv

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/internal/testserver"
)

// TestRecordMatchesTheServer: after every kind of write (create, a write
// planned from the record, a write after a hand delete, read in full),
// the record holds what the server holds, the main znode's Czxid and
// Cversion included, and the next change is planned from it. A record
// that drifted from the server would not tear a cluster (the next plan
// would fall back to a full read) but would silently lose the fast path.
func TestRecordMatchesTheServer(t *testing.T) {
	srv := testserver.StartZooKeeper(t)
	for _, writeEpoch := range []bool{true, false} {
		l := discovery.NewLayout(discovery.DefaultPrefix, writeEpoch)
		t.Run(fmt.Sprintf("epoch key %v", writeEpoch), func(t *testing.T) {
			s, err := New(Config{
				Servers: []string{srv.Addr()}, Chroot: fmt.Sprintf("/record-%v", writeEpoch), OpTimeout: 3 * time.Second,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			t.Cleanup(s.Close)
			ctx := context.Background()
			at := func(host string, epoch uint64) kvstore.Cluster {
				return kvstore.NewCluster(l, "a", master.Master{Host: host, Port: 3306}, epoch)
			}
			steps := []struct {
				name   string
				before func(c kvstore.Cluster) // a hand edit first
				write  kvstore.Cluster
			}{
				{name: "create", write: at("db-1", 1)},
				{name: "failover", write: at("db-2", 2)},
				{name: "same master, newer epoch", write: at("db-2", 3)},
				{name: "after a hand delete", write: at("db-3", 4), before: func(c kvstore.Cluster) {
					if err := s.conn.Delete(s.path(c.MainKey()+"/port"), -1); err != nil {
						t.Fatalf("hand delete: %v", err)
					}
				}},
				{name: "failover again", write: at("db-1", 5)},
			}
			for _, step := range steps {
				c := step.write
				if step.before != nil {
					step.before(c)
				}
				want := kvstore.Written
				if !writeEpoch && step.name == "same master, newer epoch" {
					want = kvstore.Unchanged // nothing but the epoch to write
				}
				if o := s.Write(ctx, []kvstore.Cluster{c})[0]; o.Status != want {
					t.Fatalf("%s: write = %s, %v; want %s", step.name, o.Status, o.Err, want)
				}
				st, err := s.readCluster(ctx, c)
				if err != nil {
					t.Fatalf("%s: read: %v", step.name, err)
				}
				s.lastWritesMu.Lock()
				wc, ok := s.lastWrites[c.Alias]
				s.lastWritesMu.Unlock()
				if !ok {
					t.Fatalf("%s: no record after a written cluster", step.name)
				}
				main := st[c.MainKey()]
				if wc.czxid != main.czxid || wc.cversion != main.cversion {
					t.Errorf("%s: record czxid %d cversion %d, server %d %d", step.name, wc.czxid, wc.cversion, main.czxid, main.cversion)
				}
				for i, p := range c.Pairs {
					if got := st[p.Key]; wc.data[i] != got.data || wc.versions[i] != got.version {
						t.Errorf("%s: record of %s = %q v%d, server %q v%d", step.name, p.Key, wc.data[i], wc.versions[i], got.data, got.version)
					}
				}
				next := kvstore.NewCluster(l, c.Alias, master.Master{Host: "db-9", Port: 3306}, c.Epoch+1)
				if _, _, ok, err := s.planFromWritten(ctx, next); !ok || err != nil {
					t.Errorf("%s: next change not planned from the record (ok %v, err %v)", step.name, ok, err)
				}
			}
		})
	}
}
