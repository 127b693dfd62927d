package consulkv_test

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/masterkv/masterkv/internal/consulkv"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/testserver"
)

// TestTxnFull64OpWrite: a write transaction of exactly MaxTxnOps operations
// mixing partly changed clusters (check-index + 3 sets, planned from a read)
// and new clusters (create-only: a cas at index 0 on each of their 6 keys,
// no read) is sent as one transaction and accepted by Consul.
func TestTxnFull64OpWrite(t *testing.T) {
	t.Parallel()
	a := startAgent(t, testserver.ConsulOptions{})
	rec := startRecorder(t, a.Addr())
	s := newStore(t, a, consulkv.Config{Address: rec.addr, Provider: consulkv.ProviderTxn, MaxOpsPerTxn: 64})

	var edited, fresh []kvstore.Cluster
	for i := range 4 {
		edited = append(edited, cluster(fmt.Sprintf("full-edited-%d", i), sampleMaster(i), 3))
	}
	for i := range 8 {
		fresh = append(fresh, cluster(fmt.Sprintf("full-new-%d", i), sampleMaster(10+i), 3))
	}
	write(t, s, edited...)
	for _, c := range edited {
		a.put(t, c.MainKey(), "intruder:1")
		a.put(t, c.MainKey()+"/hostname", "intruder")
		a.put(t, c.MainKey()+"/ipv4", "192.0.2.1")
	}
	rec.take()

	out := write(t, s, append(slices.Clone(edited), fresh...)...)
	for i, o := range out {
		keys := 6
		if i < len(edited) {
			keys = 3
		}
		checkOutcome(t, o, kvstore.Written, keys)
	}
	writes := writesOf(rec.take())
	if len(writes) != 1 {
		t.Fatalf("got %d write transactions of sizes %v, want exactly one", len(writes), sizes(writes))
	}
	w := writes[0]
	if len(w.Ops) != consulkv.MaxTxnOps || w.Status != 200 {
		t.Errorf("write transaction: %d ops, status %d; want %d ops, status 200", len(w.Ops), w.Status, consulkv.MaxTxnOps)
	}
	wantVerbs := map[string]int{"check-index": 4, "cas": 8 * 6, "set": 4 * 3}
	if got := verbs(w); !maps.Equal(got, wantVerbs) {
		t.Errorf("write transaction verbs = %v, want %v", got, wantVerbs)
	}
	for _, c := range append(edited, fresh...) {
		a.checkHolds(t, c)
	}
}

// TestTxnGrouping: 1,000 new clusters are written in transactions that
// never exceed the limit, never split a cluster, and leave all 6,000 keys in
// Consul.
func TestTxnGrouping(t *testing.T) {
	t.Parallel()
	const n = 1000
	a := startAgent(t, testserver.ConsulOptions{})
	rec := startRecorder(t, a.Addr())
	tests := []struct {
		name      string
		maxOps    int
		wantLimit int
	}{
		{"max 64", 64, 64},
		{"default", 0, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, a, consulkv.Config{Address: rec.addr, Provider: consulkv.ProviderTxn, MaxOpsPerTxn: tt.maxOps})
			prefix := fmt.Sprintf("group%d-", tt.maxOps)
			var cs []kvstore.Cluster
			for i := range n {
				cs = append(cs, cluster(fmt.Sprintf("%s%04d", prefix, i), sampleMaster(i), 1))
			}
			rec.take()
			for _, o := range write(t, s, cs...) {
				checkOutcome(t, o, kvstore.Written, 6)
			}
			txns := rec.take()
			if got := maxSize(txns); got > tt.wantLimit || got > consulkv.MaxTxnOps {
				t.Errorf("largest transaction has %d ops, want <= %d", got, tt.wantLimit)
			}
			writes := writesOf(txns)
			// Whole clusters of 6 ops each: floor(limit/6) per transaction.
			perTxn := tt.wantLimit / 6
			if want := (n + perTxn - 1) / perTxn; len(writes) != want {
				t.Errorf("got %d write transactions, want %d (%d clusters each)", len(writes), want, perTxn)
			}
			in := map[string][]int{} // alias -> write transactions holding its ops
			ops := map[string]int{}
			for i, w := range writes {
				if w.Status != 200 {
					t.Errorf("write transaction %d (%d ops): status %d", i, len(w.Ops), w.Status)
				}
				for _, op := range w.Ops {
					alias := aliasOf(op.KV.Key)
					ops[alias]++
					if l := in[alias]; len(l) == 0 || l[len(l)-1] != i {
						in[alias] = append(l, i)
					}
				}
			}
			for _, c := range cs {
				if len(in[c.Alias]) != 1 || ops[c.Alias] != 6 {
					t.Errorf("%s: %d ops in write transactions %v, want 6 ops in exactly one", c.Alias, ops[c.Alias], in[c.Alias])
				}
			}
			if len(in) != n {
				t.Errorf("write transactions touch %d clusters, want %d", len(in), n)
			}

			pairs, _, err := a.kv.List(layout.Prefix()+prefix, nil)
			if err != nil {
				t.Fatalf("list: %v", err)
			}
			got := map[string]string{}
			for _, p := range pairs {
				got[p.Key] = string(p.Value)
			}
			want := map[string]string{}
			for _, c := range cs {
				maps.Copy(want, pairsOf(c))
			}
			if len(got) != n*6 || !mapsEqual(got, want) {
				t.Errorf("consul holds %d keys under %s, want the %d written ones", len(got), prefix, len(want))
			}
		})
	}
}

// TestTxnOpsClamp: MaxOpsPerTxn is clamped to [keys per cluster, 64]. Each
// cluster needs 2 ops (check-index + one set), so the largest transaction
// shows the effective limit exactly. Consul 1.14+ accepts 128 ops, so an
// unclamped 1000 would show as one 80-op transaction.
func TestTxnOpsClamp(t *testing.T) {
	t.Parallel()
	a := startAgent(t, testserver.ConsulOptions{})
	rec := startRecorder(t, a.Addr())
	tests := []struct {
		maxOps    int
		wantLimit int
	}{
		{-1, 6},
		{0, 6},
		{3, 6},
		{6, 6},
		{10, 10},
		{64, 64},
		{65, 64},
		{1000, 64},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.maxOps), func(t *testing.T) {
			s := newStore(t, a, consulkv.Config{Address: rec.addr, Provider: consulkv.ProviderTxn, MaxOpsPerTxn: tt.maxOps})
			var cs []kvstore.Cluster
			for i := range 40 {
				cs = append(cs, cluster(fmt.Sprintf("clamp%d-%02d", tt.maxOps, i), sampleMaster(i), 1))
			}
			write(t, s, cs...)
			for _, c := range cs {
				a.put(t, c.MainKey()+"/hostname", "intruder")
			}
			rec.take()
			for _, o := range write(t, s, cs...) {
				checkOutcome(t, o, kvstore.Written, 1)
			}
			txns := rec.take()
			writes := writesOf(txns)
			if got := maxSize(writes); got != tt.wantLimit {
				t.Errorf("largest write transaction: %d ops (sizes %v), want %d", got, sizes(writes), tt.wantLimit)
			}
			if got := maxSize(txns); got > tt.wantLimit {
				t.Errorf("largest transaction: %d ops, want <= %d", got, tt.wantLimit)
			}
			for _, w := range writes {
				if w.Status != 200 {
					t.Errorf("write transaction of %d ops: status %d", len(w.Ops), w.Status)
				}
			}
			for _, c := range cs {
				a.checkHolds(t, c)
			}
		})
	}

	t.Run("plain provider sends no transactions", func(t *testing.T) {
		s := newStore(t, a, consulkv.Config{Address: rec.addr, Provider: consulkv.ProviderPlain, MaxOpsPerTxn: 64})
		c := cluster("clamp-plain", sampleMaster(1), 1)
		rec.take()
		write(t, s, c)
		rec.mu.Lock()
		puts := rec.puts
		rec.mu.Unlock()
		// Six keys and the claim of the epoch key before them.
		if txns := rec.take(); len(txns) != 0 || puts != 7 {
			t.Errorf("plain write: %d transactions, %d key PUTs; want 0 and 7", len(txns), puts)
		}
		a.checkHolds(t, c)
	})
}
