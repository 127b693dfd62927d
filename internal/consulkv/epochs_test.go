package consulkv_test

import (
	"slices"
	"testing"
	"time"

	"github.com/masterkv/masterkv/internal/consulkv"
	"github.com/masterkv/masterkv/internal/testserver"
)

// TestEpochs: a store's highest epoch under the prefix, read through the
// streamed listing; keys that are not a cluster's epoch key are ignored and
// hand-set values above the limit or not numbers are refused.
func TestEpochs(t *testing.T) {
	a := startAgent(t, testserver.ConsulOptions{})
	s := newStore(t, a, consulkv.Config{Provider: consulkv.ProviderTxn})
	if got, err := s.Epochs(t.Context(), layout.Prefix(), 1<<52); err != nil || got.Key != "" || got.Keys != 0 {
		t.Fatalf("empty store: %+v, %v; want nothing", got, err)
	}
	write(t, s, cluster("a", sampleMaster(1), 1_000_000), cluster("b", sampleMaster(2), 999_990))
	a.put(t, layout.Prefix()+"c/epoch", "9007199254740993") // above 2^52
	a.put(t, layout.Prefix()+"d/epoch", "x")
	a.put(t, layout.Prefix()+"e/f/epoch", "5000000") // not an alias's key
	a.put(t, "elsewhere/g/epoch", "6000000")         // another prefix

	got, err := s.Epochs(t.Context(), layout.Prefix(), 1<<52)
	if err != nil {
		t.Fatal(err)
	}
	if got.Max != 1_000_000 || got.Key != layout.EpochKey("a") || got.Keys != 4 {
		t.Errorf("got max %d key %q keys %d, want 1000000 %s 4", got.Max, got.Key, got.Keys, layout.EpochKey("a"))
	}
	want := []string{layout.Prefix() + "c/epoch=9007199254740993", layout.Prefix() + "d/epoch=x"}
	if !slices.Equal(got.Refused, want) {
		t.Errorf("Refused = %q, want %q", got.Refused, want)
	}
}

// TestEpochsEverywhere: with cross-datacenter distribution the highest
// epoch of every datacenter counts, and one that cannot be read fails the
// whole read.
func TestEpochsEverywhere(t *testing.T) {
	dc1 := startAgent(t, testserver.ConsulOptions{Datacenter: "dc1"})
	dc2 := startAgent(t, testserver.ConsulOptions{Datacenter: "dc2", JoinWAN: []*testserver.Consul{dc1.Consul}})
	s := newStore(t, dc1, consulkv.Config{Provider: consulkv.ProviderTxn})
	deadline := time.Now().Add(30 * time.Second)
	for {
		dcs, err := s.Datacenters()
		if err == nil && len(dcs) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dc1 does not list two datacenters: %v, %v", dcs, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	write(t, s, cluster("a", sampleMaster(1), 10))
	write(t, newStore(t, dc2, consulkv.Config{Provider: consulkv.ProviderTxn}), cluster("a", sampleMaster(2), 2_000_000))

	every := consulkv.EpochsEverywhere{Store: s}
	got, err := every.Epochs(t.Context(), layout.Prefix(), 1<<52)
	if err != nil {
		t.Fatal(err)
	}
	if got.Max != 2_000_000 || got.Keys != 2 {
		t.Errorf("every datacenter: max %d keys %d, want 2000000 2", got.Max, got.Keys)
	}
	if local, err := s.Epochs(t.Context(), layout.Prefix(), 1<<52); err != nil || local.Max != 10 {
		t.Errorf("local datacenter only: %+v, %v; want max 10", local, err)
	}

	dc2.Stop()
	if got, err := every.Epochs(t.Context(), layout.Prefix(), 1<<52); err == nil {
		t.Errorf("with dc2 down: %+v, nil error; want an error (a rebase must not rest on part of the stores)", got)
	} else {
		t.Logf("with dc2 down: %v", err)
	}
}
