package consulkv_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/masterkv/masterkv/internal/consulkv"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/testserver"
)

// BenchmarkWrite times the write a failover (1 cluster) or a submit (1,000
// clusters) makes into one real agent with each provider: every op writes
// every cluster at a newer epoch with another master. The plain provider's
// claim and final epoch check-and-set cost two PUTs and a GET per cluster
// more than writing the changed keys one by one; consul-txn is one read
// and one write transaction per batch of clusters.
func BenchmarkWrite(b *testing.B) {
	for _, provider := range []string{consulkv.ProviderPlain, consulkv.ProviderTxn} {
		for _, n := range []int{1, 1000} {
			b.Run(fmt.Sprintf("provider=%s/clusters=%d", provider, n), func(b *testing.B) {
				agent := testserver.StartConsul(b, testserver.ConsulOptions{Datacenter: "dc1"})
				s, err := consulkv.New(consulkv.Config{
					Address: agent.Addr(), Provider: provider, MaxOpsPerTxn: 64, Concurrency: 8, Timeout: 10 * time.Second,
				})
				if err != nil {
					b.Fatal(err)
				}
				epoch := uint64(1)
				writeAll := func(b *testing.B) {
					cs := make([]kvstore.Cluster, n)
					for i := range cs {
						cs[i] = cluster(fmt.Sprintf("bench-%05d", i), sampleMaster(int(epoch%2)), epoch)
					}
					epoch++
					for _, o := range s.Write(context.Background(), cs) {
						if o.Status != kvstore.Written {
							b.Fatalf("write %s@%d = %s, %v; want written", o.Alias, o.Epoch, o.Status, o.Err)
						}
					}
				}
				writeAll(b) // creates
				writeAll(b) // the first update
				for b.Loop() {
					writeAll(b)
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(n), "µs/cluster")
			})
		}
	}
}
