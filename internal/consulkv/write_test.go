package consulkv_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/masterkv/masterkv/internal/consulkv"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/internal/testserver"
)

// TestWriteFirstThenUnchanged: a first write creates exactly orchestrator's
// keys plus the epoch key with exact values; writing the same again changes
// nothing in Consul, not even a ModifyIndex.
func TestWriteFirstThenUnchanged(t *testing.T) {
	t.Parallel()
	a := startAgent(t, testserver.ConsulOptions{})
	for _, provider := range providers {
		t.Run(provider, func(t *testing.T) {
			s := newStore(t, a, consulkv.Config{Provider: provider})
			one, two := "first-"+provider, "second-"+provider
			clusters := []kvstore.Cluster{
				cluster(one, master.Master{Host: "db-1.example", Port: 3306, IPv4: "10.0.0.1"}, 7),
				cluster(two, master.Master{Host: "db-2.example", Port: 3307, IPv4: "10.0.0.2"}, 1),
			}
			// Spelled out rather than derived from the layout, so a wrong
			// layout or a wrong writer cannot agree with itself.
			want := map[string]map[string]string{
				one: {
					"mysql/master/" + one:               "db-1.example:3306",
					"mysql/master/" + one + "/hostname": "db-1.example",
					"mysql/master/" + one + "/port":     "3306",
					"mysql/master/" + one + "/ipv4":     "10.0.0.1",
					"mysql/master/" + one + "/ipv6":     "",
					"mysql/master/" + one + "/epoch":    "7",
				},
				two: {
					"mysql/master/" + two:               "db-2.example:3307",
					"mysql/master/" + two + "/hostname": "db-2.example",
					"mysql/master/" + two + "/port":     "3307",
					"mysql/master/" + two + "/ipv4":     "10.0.0.2",
					"mysql/master/" + two + "/ipv6":     "",
					"mysql/master/" + two + "/epoch":    "1",
				},
			}

			out := write(t, s, clusters...)
			for _, o := range out {
				checkOutcome(t, o, kvstore.Written, 6)
			}
			before := map[string]map[string]entry{}
			for _, c := range clusters {
				before[c.Alias] = a.snapshot(t, c.Alias)
				if got := values(before[c.Alias]); !mapsEqual(got, want[c.Alias]) {
					t.Errorf("after first write consul holds for %s:\n got %v\nwant %v", c.Alias, got, want[c.Alias])
				}
			}

			out = write(t, s, clusters...)
			for _, o := range out {
				checkOutcome(t, o, kvstore.Unchanged, 6)
			}
			for _, c := range clusters {
				after := a.snapshot(t, c.Alias)
				for k, e := range before[c.Alias] {
					if after[k] != e {
						t.Errorf("identical write touched %s: before %+v, after %+v", k, e, after[k])
					}
				}
			}
		})
	}
}

// TestWriteOnlyChangedKeys: only the keys whose value differs are written;
// a key deleted by hand is recreated alone, without rewriting the keys
// beside it.
func TestWriteOnlyChangedKeys(t *testing.T) {
	t.Parallel()
	a := startAgent(t, testserver.ConsulOptions{})
	m := master.Master{Host: "db-1.example", Port: 3306, IPv4: "10.0.0.1"}
	port := func(p int) master.Master { n := m; n.Port = p; return n }

	// Steps run in order on one cluster per provider.
	steps := []struct {
		name   string
		hand   func(t *testing.T, alias string) // edit by hand before the write
		master master.Master
		epoch  uint64
		moved  []string // suffixes whose ModifyIndex must move; all others must not
	}{
		{name: "port only, same epoch", master: port(3307), epoch: 7, moved: []string{"", "/port"}},
		{name: "port only, new epoch", master: port(3308), epoch: 8, moved: []string{"", "/port", "/epoch"}},
		{name: "ipv6 deleted by hand", master: port(3308), epoch: 8, moved: []string{"/ipv6"},
			hand: func(t *testing.T, alias string) { a.del(t, layout.ClusterKey(alias)+"/ipv6") }},
		{name: "main key deleted by hand", master: port(3308), epoch: 8, moved: []string{""},
			hand: func(t *testing.T, alias string) { a.del(t, layout.ClusterKey(alias)) }},
		{name: "epoch key deleted by hand", master: port(3308), epoch: 8, moved: []string{"/epoch"},
			hand: func(t *testing.T, alias string) { a.del(t, layout.EpochKey(alias)) }},
		{name: "hostname changed by hand", master: port(3308), epoch: 8, moved: []string{"/hostname"},
			hand: func(t *testing.T, alias string) { a.put(t, layout.ClusterKey(alias)+"/hostname", "intruder") }},
		{name: "two keys deleted by hand", master: port(3308), epoch: 8, moved: []string{"/hostname", "/ipv4"},
			hand: func(t *testing.T, alias string) {
				a.del(t, layout.ClusterKey(alias)+"/hostname")
				a.del(t, layout.ClusterKey(alias)+"/ipv4")
			}},
	}
	for _, provider := range providers {
		t.Run(provider, func(t *testing.T) {
			s := newStore(t, a, consulkv.Config{Provider: provider})
			alias := "changed-" + provider
			write(t, s, cluster(alias, m, 7))
			for _, st := range steps {
				t.Run(st.name, func(t *testing.T) {
					before := a.snapshot(t, alias)
					if st.hand != nil {
						st.hand(t, alias)
					}
					c := cluster(alias, st.master, st.epoch)
					o := write(t, s, c)[0]
					checkOutcome(t, o, kvstore.Written, len(st.moved))
					a.checkHolds(t, c)
					after := a.snapshot(t, alias)
					wantMoved := st.moved
					if provider == consulkv.ProviderPlain {
						// The plain writer puts every key of a cluster it
						// writes, so that a lagging writer's check-and-set
						// on any of them fails (see putCluster).
						wantMoved = suffixes
					}
					for _, suf := range suffixes {
						k := layout.ClusterKey(alias) + suf
						moved := before[k].Index != after[k].Index
						if want := slices.Contains(wantMoved, suf); moved != want {
							t.Errorf("%s: ModifyIndex %d -> %d, moved=%v, want moved=%v", k, before[k].Index, after[k].Index, moved, want)
						}
					}
				})
			}
		})
	}
}

// TestWriteEpochGuard: a stored newer epoch wins and nothing is touched; a
// stored epoch that is not a number does not block a valid write.
func TestWriteEpochGuard(t *testing.T) {
	t.Parallel()
	a := startAgent(t, testserver.ConsulOptions{})
	for _, provider := range providers {
		t.Run(provider, func(t *testing.T) {
			s := newStore(t, a, consulkv.Config{Provider: provider})

			t.Run("older epoch is stale", func(t *testing.T) {
				alias := "guard-" + provider
				newer := cluster(alias, sampleMaster(1), 10)
				write(t, s, newer)
				before := a.snapshot(t, alias)

				o := write(t, s, cluster(alias, sampleMaster(2), 5))[0]
				checkOutcome(t, o, kvstore.Stale, 0)
				if after := a.snapshot(t, alias); !entriesEqual(after, before) {
					t.Errorf("stale write changed consul:\nbefore %v\n after %v", before, after)
				}
				a.checkHolds(t, newer)
			})

			t.Run("equal epoch overwrites", func(t *testing.T) {
				alias := "equal-" + provider
				write(t, s, cluster(alias, sampleMaster(1), 10))
				c := cluster(alias, sampleMaster(2), 10)
				o := write(t, s, c)[0]
				// main, hostname, port and ipv4 differ; the epoch is equal.
				checkOutcome(t, o, kvstore.Written, 4)
				a.checkHolds(t, c)
			})

			t.Run("garbage epoch is overwritten", func(t *testing.T) {
				alias := "garbage-" + provider
				write(t, s, cluster(alias, sampleMaster(1), 10))
				a.put(t, layout.EpochKey(alias), "abc")
				c := cluster(alias, sampleMaster(2), 5)
				o := write(t, s, c)[0]
				checkOutcome(t, o, kvstore.Written, 5)
				a.checkHolds(t, c)
			})
		})
	}
}

func entriesEqual(a, b map[string]entry) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestReadAndDatacenters: Read returns what Consul holds, missing keys
// absent; Datacenters lists the agent's datacenter.
func TestReadAndDatacenters(t *testing.T) {
	t.Parallel()
	a := startAgent(t, testserver.ConsulOptions{})
	for _, provider := range providers {
		t.Run(provider, func(t *testing.T) {
			s := newStore(t, a, consulkv.Config{Provider: provider})
			full := cluster("read-full-"+provider, sampleMaster(1), 3)
			partial := cluster("read-partial-"+provider, sampleMaster(2), 4)
			edited := cluster("read-edited-"+provider, sampleMaster(3), 5)
			absent := cluster("read-absent-"+provider, sampleMaster(4), 6)
			write(t, s, full, partial, edited)
			a.del(t, partial.MainKey())
			a.del(t, partial.MainKey()+"/ipv4")
			a.put(t, edited.MainKey()+"/hostname", "by-hand")

			wantPartial := pairsOf(partial)
			delete(wantPartial, partial.MainKey())
			delete(wantPartial, partial.MainKey()+"/ipv4")
			wantEdited := pairsOf(edited)
			wantEdited[edited.MainKey()+"/hostname"] = "by-hand"
			want := map[string]map[string]string{
				full.Alias:    pairsOf(full),
				partial.Alias: wantPartial,
				edited.Alias:  wantEdited,
				absent.Alias:  {},
			}

			got, err := s.Read(context.Background(), []kvstore.Cluster{full, partial, edited, absent})
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if len(got) != len(want) {
				t.Errorf("Read returned %d clusters, want %d: %v", len(got), len(want), got)
			}
			for alias, w := range want {
				o, ok := got[alias]
				if !ok {
					t.Errorf("Read has no entry for %s", alias)
					continue
				}
				if !mapsEqual(o, w) {
					t.Errorf("Read(%s):\n got %v\nwant %v", alias, o, w)
				}
			}
			if d := kvstore.Diff(edited, got[edited.Alias]); !slices.Equal(d, []string{edited.MainKey() + "/hostname"}) {
				t.Errorf("Diff(edited) = %v, want only the hostname key", d)
			}
		})
	}

	t.Run("datacenters", func(t *testing.T) {
		s := newStore(t, a, consulkv.Config{})
		got, err := s.Datacenters()
		if err != nil {
			t.Fatalf("Datacenters: %v", err)
		}
		if want := []string{"dc1"}; !slices.Equal(got, want) {
			t.Errorf("Datacenters() = %v, want %v", got, want)
		}
	})

	t.Run("read many clusters", func(t *testing.T) {
		// More clusters than fit in one read transaction.
		s := newStore(t, a, consulkv.Config{Provider: consulkv.ProviderTxn, MaxOpsPerTxn: 64})
		var cs []kvstore.Cluster
		for i := range 100 {
			cs = append(cs, cluster(fmt.Sprintf("read-many-%03d", i), sampleMaster(i), 1))
		}
		write(t, s, cs...)
		for _, provider := range providers {
			got, err := newStore(t, a, consulkv.Config{Provider: provider}).Read(context.Background(), cs)
			if err != nil {
				t.Fatalf("%s: Read: %v", provider, err)
			}
			for _, c := range cs {
				if !mapsEqual(got[c.Alias], pairsOf(c)) {
					t.Errorf("%s: Read(%s) = %v, want %v", provider, c.Alias, got[c.Alias], pairsOf(c))
				}
			}
		}
	})
}
