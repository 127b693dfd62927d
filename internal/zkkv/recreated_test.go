package zkkv_test

import (
	"testing"

	"github.com/go-zookeeper/zk"

	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/testserver"
)

// TestWriteAfterHandRecreation: a znode deleted and created again by hand
// restarts at version 0, which is what the store's record of its last
// write expects, so a plan from that record passes every version check.
// The store must notice any child created or deleted under the cluster's
// main znode (and a recreated main znode) before trusting the record: a
// write that reports Written leaves every znode of the cluster holding
// the written values, never a hand-made one beside the new epoch.
//
// Each case writes its cluster together with an untouched one, so the
// remembered plans share a multi as in a submit.
func TestWriteAfterHandRecreation(t *testing.T) {
	srv := testserver.StartZooKeeper(t)
	s := newStore(t, srv, nil)
	conn := inspect(t, srv)
	acl := zk.WorldACL(zk.PermAll)
	create := func(t *testing.T, path, data string) {
		t.Helper()
		if _, err := conn.Create(path, []byte(data), 0, acl); err != nil {
			t.Fatalf("create %s: %v", path, err)
		}
	}
	del := func(t *testing.T, path string) {
		t.Helper()
		if err := conn.Delete(path, -1); err != nil {
			t.Fatalf("delete %s: %v", path, err)
		}
	}
	// The hand-made values differ from both writes, so a znode the
	// store failed to write shows.
	handMade := map[string]string{
		discovery.SuffixHostname: "hand-made", discovery.SuffixPort: "9999",
		discovery.SuffixIPv4: "192.0.2.9", discovery.SuffixIPv6: "2001:db8::9",
	}
	tests := []struct {
		name   string
		layout discovery.Layout
		edit   func(t *testing.T, c kvstore.Cluster)
		want   kvstore.Status // of the failover written after the edit
	}{
		{"port recreated", layout, func(t *testing.T, c kvstore.Cluster) {
			del(t, "/"+c.MainKey()+"/port")
			create(t, "/"+c.MainKey()+"/port", "9999")
		}, kvstore.Written},
		{"port deleted", layout, func(t *testing.T, c kvstore.Cluster) {
			del(t, "/"+c.MainKey()+"/port")
		}, kvstore.Written},
		{"port recreated, no epoch key", strictLayout, func(t *testing.T, c kvstore.Cluster) {
			del(t, "/"+c.MainKey()+"/port")
			create(t, "/"+c.MainKey()+"/port", "9999")
		}, kvstore.Written},
		{"other child created", layout, func(t *testing.T, c kvstore.Cluster) {
			create(t, "/"+c.MainKey()+"/note", "by hand")
		}, kvstore.Written},
		{"whole cluster recreated, same epoch", layout, func(t *testing.T, c kvstore.Cluster) {
			// As an operator restoring a dump: every znode again, with
			// the epoch the store wrote, so only the others differ.
			for i := len(c.Pairs) - 1; i >= 0; i-- {
				del(t, "/"+c.Pairs[i].Key)
			}
			create(t, "/"+c.MainKey(), "hand-made:9999")
			for _, p := range c.Pairs[1:] {
				v, ok := handMade[p.Key[len(c.MainKey())+1:]]
				if !ok {
					v = p.Value // the epoch
				}
				create(t, "/"+p.Key, v)
			}
		}, kvstore.Written},
		{"epoch recreated with a newer one", layout, func(t *testing.T, c kvstore.Cluster) {
			del(t, "/"+c.EpochKey())
			create(t, "/"+c.EpochKey(), "99")
		}, kvstore.Stale},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alias := "recreated-" + string(rune('a'+i))
			first := kvstore.NewCluster(tt.layout, alias, sampleMaster("10.0.0.1", 3306), 10)
			other := kvstore.NewCluster(tt.layout, alias+"-other", sampleMaster("10.0.0.1", 3306), 10)
			for _, o := range write(t, s, first, other) {
				if o.Status != kvstore.Written {
					t.Fatalf("first write of %s = %s, %v; want written", o.Alias, o.Status, o.Err)
				}
			}
			tt.edit(t, first)

			// A failover that keeps the port: the plan from the record
			// only checks the port znode's version.
			next := kvstore.NewCluster(tt.layout, alias, sampleMaster("10.0.0.2", 3306), 11)
			otherNext := kvstore.NewCluster(tt.layout, alias+"-other", sampleMaster("10.0.0.2", 3306), 11)
			out := write(t, s, next, otherNext)
			if o := out[1]; o.Status != kvstore.Written {
				t.Errorf("failover of the untouched cluster = %s, %v; want written", o.Status, o.Err)
			}
			wantStored(t, conn, "", otherNext)
			if o := out[0]; o.Status != tt.want {
				t.Fatalf("failover after %s = %s, %v; want %s", tt.name, o.Status, o.Err, tt.want)
			}
			if tt.want == kvstore.Stale {
				if got, _ := get(t, conn, "/"+next.EpochKey()); got != "99" {
					t.Errorf("epoch = %q after a stale write, want the newer 99", got)
				}
				return
			}
			wantStored(t, conn, "", next)
			// And an identical write is confirmed by a real read.
			writeOne(t, s, next, kvstore.Unchanged, len(next.Pairs))
		})
	}
}
