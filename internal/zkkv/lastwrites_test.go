package zkkv_test

import (
	"testing"

	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/testserver"
)

// TestWriteAfterHandEdits: the store plans a change against what it last
// wrote, without reading. Hand edits made meanwhile (a changed value, a
// deleted znode) make that multi fail its version checks; the store then
// reads for real and still leaves exactly the new cluster.
func TestWriteAfterHandEdits(t *testing.T) {
	srv := testserver.StartZooKeeper(t)
	s := newStore(t, srv, nil)
	conn := inspect(t, srv)
	for _, edit := range []struct {
		name string
		do   func(c kvstore.Cluster)
	}{
		{"value changed", func(c kvstore.Cluster) {
			if _, err := conn.Set("/"+c.Pairs[2].Key, []byte("1"), -1); err != nil {
				t.Fatal(err)
			}
		}},
		{"znode deleted", func(c kvstore.Cluster) {
			if err := conn.Delete("/"+c.Pairs[4].Key, -1); err != nil {
				t.Fatal(err)
			}
		}},
		{"nothing", func(kvstore.Cluster) {}},
	} {
		t.Run(edit.name, func(t *testing.T) {
			alias := "edit-" + edit.name[:5]
			first := kvstore.NewCluster(layout, alias, sampleMaster("10.0.0.1", 3306), 10)
			writeOne(t, s, first, kvstore.Written, 6)
			edit.do(first)
			next := kvstore.NewCluster(layout, alias, sampleMaster("10.0.0.2", 3306), 11)
			if o := write(t, s, next)[0]; o.Status != kvstore.Written {
				t.Fatalf("write after %s = %+v, want written", edit.name, o)
			}
			wantStored(t, conn, "", next)
			// And an identical write is confirmed by a real read.
			writeOne(t, s, next, kvstore.Unchanged, 6)
		})
	}
}
