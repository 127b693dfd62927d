package publish_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/masterkv/masterkv/internal/consulkv"
	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/testserver"
	"github.com/masterkv/masterkv/raftnode/nodetest"
	"github.com/masterkv/masterkv/raftnode/publish"
)

// TestDrift deletes and edits keys by hand in a real Consul: the drift check
// reads the store for real and reports the clusters. The deleted cluster is
// distribution and is written back whatever the setting; the key edited at
// the committed epoch is a hand edit, repaired only when repair is on.
func TestDrift(t *testing.T) {
	for _, repair := range []bool{false, true} {
		t.Run(fmt.Sprintf("repair=%v", repair), func(t *testing.T) {
			consul := testserver.StartConsul(t, testserver.ConsulOptions{})
			raft := nodetest.New(t, 1, nodetest.Options{})
			n := raft.Nodes[0]
			layout := discovery.NewLayout("mysql/master", true)
			cs, err := consulkv.New(consulkv.Config{Address: consul.Addr(), Provider: consulkv.ProviderTxn})
			if err != nil {
				t.Fatal(err)
			}
			p := publish.New(cs, n.FSM(), publish.Config{
				Layout: layout, Ready: n.CaughtUp, DriftInterval: 200 * time.Millisecond, DriftRepair: repair, Logger: quiet,
			})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); p.Run(ctx) }()
			t.Cleanup(func() { cancel(); <-done })

			g := &group{t: t, raft: raft, layout: layout, consul: []*testserver.Consul{consul}}
			e1 := g.failover("c1", "10.0.0.1")
			e2 := g.failover("c2", "10.0.0.2")
			e3 := g.failover("c3", "10.0.0.3")
			eventually(t, 10*time.Second, "all three written", func() error {
				for _, w := range [][]discovery.KVPair{g.want("c1", "10.0.0.1", e1), g.want("c2", "10.0.0.2", e2), g.want("c3", "10.0.0.3", e3)} {
					if err := g.consulHolds(0, w); err != nil {
						return err
					}
				}
				return nil
			})
			kv := g.consulClient(0).KV()
			if _, err := kv.DeleteTree("mysql/master/c1", nil); err != nil { // the #1350 case
				t.Fatal(err)
			}
			if _, err := kv.Put(apiPair{"mysql/master/c2/port", "3307"}.pair(), nil); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, "the deleted cluster written back", func() error {
				return g.consulHolds(0, g.want("c1", "10.0.0.1", e1))
			})
			eventually(t, 5*time.Second, "drift reported", func() error {
				if got := p.Status().Drift; !slices.Equal(got, []string{"c2"}) && !repair {
					return fmt.Errorf("drift %v, want [c2]", got)
				}
				if repair {
					// Repaired clusters leave the report once rewritten.
					return g.consulHolds(0, g.want("c2", "10.0.0.2", e2))
				}
				return nil
			})
			if !repair {
				// Without repair the hand edit stays, and is still reported.
				time.Sleep(600 * time.Millisecond) // three drift intervals
				if err := g.consulHolds(0, g.want("c2", "10.0.0.2", e2)); err == nil {
					t.Error("the hand edit was repaired although repair is off")
				}
				if got := p.Status().Drift; !slices.Equal(got, []string{"c2"}) {
					t.Errorf("drift after three checks = %v, want [c2]", got)
				}
				if got := p.Status().HandEdits; !slices.Equal(got, []string{"c2"}) {
					t.Errorf("hand edits after three checks = %v, want [c2]", got)
				}
				if p.Status().DriftCheckedAt.IsZero() {
					t.Error("DriftCheckedAt not set")
				}
			} else {
				eventually(t, 5*time.Second, "drift report cleared after repair", func() error {
					if got := p.Status().Drift; len(got) != 0 {
						return fmt.Errorf("drift %v", got)
					}
					return nil
				})
			}
		})
	}
}
