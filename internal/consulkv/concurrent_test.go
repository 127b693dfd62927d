package consulkv_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/masterkv/masterkv/internal/consulkv"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/internal/testserver"
)

// TestConcurrentWritersNewerEpochWins: two writers (separate stores, as two
// nodes would be) publish the same cluster at once, at epochs e and e+1 with
// different masters. Whatever the interleaving, Consul ends with e+1's
// values in all six keys, the e+1 writer reports Written and the e writer
// Written (it went first) or Stale (it lost), never Failed.
func TestConcurrentWritersNewerEpochWins(t *testing.T) {
	t.Parallel()
	const rounds = 30
	a := startAgent(t, testserver.ConsulOptions{})
	for _, provider := range providers {
		t.Run(provider, func(t *testing.T) {
			older := newStore(t, a, consulkv.Config{Provider: provider})
			newer := newStore(t, a, consulkv.Config{Provider: provider})
			alias := "race-" + provider
			var stale, first int
			for r := range rounds {
				e := uint64(10 + 2*r)
				// Every key but the port differs between the two masters
				// and from the previous round.
				mOld := master.Master{Host: fmt.Sprintf("old-%d.example", r), Port: 3306, IPv4: fmt.Sprintf("10.1.0.%d", r+1), IPv6: fmt.Sprintf("fd00:1::%d", r+1)}
				mNew := master.Master{Host: fmt.Sprintf("new-%d.example", r), Port: 3306, IPv4: fmt.Sprintf("10.2.0.%d", r+1), IPv6: fmt.Sprintf("fd00:2::%d", r+1)}
				cOld, cNew := cluster(alias, mOld, e), cluster(alias, mNew, e+1)

				var oOld, oNew []kvstore.Outcome
				var wg sync.WaitGroup
				start := make(chan struct{})
				wg.Go(func() { <-start; oOld = write(t, older, cOld) })
				wg.Go(func() { <-start; oNew = write(t, newer, cNew) })
				close(start)
				wg.Wait()
				if t.Failed() {
					t.FailNow()
				}

				if oNew[0].Status != kvstore.Written {
					t.Errorf("round %d: epoch %d writer: %v (err %v), want written", r, e+1, oNew[0].Status, oNew[0].Err)
				}
				switch oOld[0].Status {
				case kvstore.Stale:
					stale++
				case kvstore.Written:
					first++
				default:
					t.Errorf("round %d: epoch %d writer: %v (err %v), want written or stale", r, e, oOld[0].Status, oOld[0].Err)
				}
				got, want := values(a.snapshot(t, alias)), pairsOf(cNew)
				if !mapsEqual(got, want) {
					t.Fatalf("round %d: consul holds\n got %v\nwant %v (epoch %d)", r, got, want, e+1)
				}
			}
			t.Logf("%s: older writer stale in %d rounds, written first in %d", provider, stale, first)
		})
	}
}
