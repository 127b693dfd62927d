package zkkv_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/testserver"
)

// BenchmarkWriteRemembered times the path a failover or a submit takes in
// steady state: clusters this store wrote before, planned from its record
// (one read of each cluster's main znode, then multis of ten clusters).
// One op writes every cluster at a newer epoch with another master.
func BenchmarkWriteRemembered(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(fmt.Sprintf("clusters=%d", n), func(b *testing.B) {
			srv := testserver.StartZooKeeper(b)
			s := newStore(b, srv, nil)
			epoch := uint64(1)
			batch := func() []kvstore.Cluster {
				cs := make([]kvstore.Cluster, n)
				for i := range cs {
					cs[i] = kvstore.NewCluster(layout, fmt.Sprintf("bench-%05d", i), sampleMaster(fmt.Sprintf("db-%d", epoch%2), 3306), epoch)
				}
				epoch++
				return cs
			}
			writeAll := func(b *testing.B) {
				for _, o := range s.Write(context.Background(), batch()) {
					if o.Status != kvstore.Written {
						b.Fatalf("write %s@%d = %s, %v; want written", o.Alias, o.Epoch, o.Status, o.Err)
					}
				}
			}
			writeAll(b) // creates
			writeAll(b) // the first update: its record then comes from a write, not a read
			for b.Loop() {
				writeAll(b)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(n), "µs/cluster")
		})
	}
}
