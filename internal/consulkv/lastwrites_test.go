package consulkv_test

import (
	"testing"

	"github.com/masterkv/masterkv/internal/consulkv"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/testserver"
)

// TestTxnWriteAfterHandEdits: consul-txn plans a change against what it last
// wrote, without a read transaction. Hand edits made meanwhile (a changed
// value, a deleted key, a newer epoch) refuse that transaction; the store
// then reads for real and ends with exactly the right keys.
func TestTxnWriteAfterHandEdits(t *testing.T) {
	a := startAgent(t, testserver.ConsulOptions{})
	s := newStore(t, a, consulkv.Config{Provider: consulkv.ProviderTxn, MaxOpsPerTxn: 64})
	for _, tc := range []struct {
		name  string
		edit  func(main string)
		want  kvstore.Status
		newer bool
	}{
		{"value changed", func(main string) { a.put(t, main+"/port", "1") }, kvstore.Written, false},
		{"key deleted", func(main string) { a.del(t, main+"/ipv6") }, kvstore.Written, false},
		{"newer epoch written", func(main string) { a.put(t, main+"/epoch", "99") }, kvstore.Stale, true},
		{"nothing", func(string) {}, kvstore.Written, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alias := "edit-" + tc.name[:3]
			first := cluster(alias, sampleMaster(1), 10)
			checkOutcome(t, write(t, s, first)[0], kvstore.Written, 6)
			tc.edit(first.MainKey())
			next := cluster(alias, sampleMaster(2), 11)
			if o := write(t, s, next)[0]; o.Status != tc.want {
				t.Fatalf("write after %s = %+v, want %s", tc.name, o, tc.want)
			}
			if tc.newer {
				if got := a.snapshot(t, alias)[first.MainKey()+"/epoch"].Value; got != "99" {
					t.Fatalf("newer epoch overwritten: %q", got)
				}
				return
			}
			a.checkHolds(t, next)
			// An identical write is confirmed by a real read.
			checkOutcome(t, write(t, s, next)[0], kvstore.Unchanged, 6)
		})
	}
}
