package zkkv_test

import (
	"slices"
	"testing"

	"github.com/go-zookeeper/zk"

	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/testserver"
	"github.com/masterkv/masterkv/internal/zkkv"
)

// TestEpochs: the highest epoch znode under the prefix, one read per
// cluster; a cluster without an epoch znode counts for nothing, hand-set
// values above the limit or not numbers are refused, and a chroot is
// honoured.
func TestEpochs(t *testing.T) {
	srv := testserver.StartZooKeeper(t)
	for _, chroot := range []string{"", "/masterkv"} {
		t.Run("chroot="+chroot, func(t *testing.T) {
			s := newStore(t, srv, func(c *zkkv.Config) { c.Chroot = chroot })
			prefix := layout.Prefix()
			if chroot == "" {
				prefix = "epochs/" + prefix // keep the two runs apart
			}
			if got, err := s.Epochs(t.Context(), prefix, 1<<52); err != nil || got.Key != "" || got.Keys != 0 {
				t.Fatalf("nothing under the prefix: %+v, %v; want nothing", got, err)
			}
			l := discovery.NewLayout(prefix, true)
			write(t, s,
				kvstore.NewCluster(l, "a", sampleMaster("db-a", 3306), 1_000_000),
				kvstore.NewCluster(l, "b", sampleMaster("db-b", 3306), 999_999),
				kvstore.NewCluster(l, "c", sampleMaster("db-c", 3306), 5))
			conn := inspect(t, srv)
			set := func(key, value string) {
				t.Helper()
				if _, err := conn.Set(chroot+"/"+key, []byte(value), -1); err != nil {
					t.Fatalf("hand set %s: %v", key, err)
				}
			}
			set(prefix+"b/epoch", "9007199254740993")
			set(prefix+"c/epoch", "x")
			if _, err := conn.Create(chroot+"/"+prefix+"noepoch", []byte("h:1"), 0, zk.WorldACL(zk.PermAll)); err != nil {
				t.Fatal(err)
			}

			got, err := s.Epochs(t.Context(), prefix, 1<<52)
			if err != nil {
				t.Fatal(err)
			}
			if got.Max != 1_000_000 || got.Key != prefix+"a/epoch" || got.Keys != 3 {
				t.Errorf("got max %d key %q keys %d, want 1000000 %sa/epoch 3", got.Max, got.Key, got.Keys, prefix)
			}
			slices.Sort(got.Refused)
			want := []string{prefix + "b/epoch=9007199254740993", prefix + "c/epoch=x"}
			if !slices.Equal(got.Refused, want) {
				t.Errorf("Refused = %q, want %q", got.Refused, want)
			}
		})
	}
}
