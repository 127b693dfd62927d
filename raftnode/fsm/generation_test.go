package fsm_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/masterkv/masterkv/internal/command"
	"github.com/masterkv/masterkv/raftnode/fsm"
)

func rebase(at int64, above uint64) command.Command {
	return command.Command{Type: command.Rebase, At: at, Rebase: &command.RebasePayload{Above: above, Reason: "test"}}
}

// TestRebaseOnFreshGroup: the first leader of a rebuilt group commits a
// rebase above the stores' highest epoch; every later record is above it.
func TestRebaseOnFreshGroup(t *testing.T) {
	f := fsm.New()
	res := apply(t, f, 2, rebase(t0, 1_000_000))
	if res.Err != nil || len(res.Records) != 0 {
		t.Fatalf("rebase of an empty store = %+v, want no error and no records", res)
	}
	if got, want := f.Generation(), (fsm.Generation{Base: 999_999, Index: 2}); got != want {
		t.Errorf("Generation() = %+v, want %+v", got, want)
	}
	res = apply(t, f, 3, failover("a", t0+1, "main", m1, ""))
	if got := res.Records[0].Epoch; got != 1_000_002 {
		t.Errorf("failover at index 3 after the rebase: epoch %d, want 1000002", got)
	}
	checkRecords(t, f, []fsm.Record{rec("main", m1, 1_000_002, t0+1, command.Failover, "a")})
}

// TestRebaseRecommitsRecords: a rebase found later (a store that was
// unreachable at bootstrap) re-commits every record above the store's
// epoch, so every store takes the group's masters.
func TestRebaseRecommitsRecords(t *testing.T) {
	f := fsm.New()
	apply(t, f, 1, failover("a", t0, "a", m1, ""))
	apply(t, f, 2, failover("b", t0, "b", m2, ""))
	res := apply(t, f, 3, rebase(t0+5, 500))
	want := []fsm.Record{
		rec("a", m1, 501, t0+5, command.Rebase, ""),
		rec("b", m2, 501, t0+5, command.Rebase, ""),
	}
	if len(res.Records) != 2 || res.Records[0] != want[0] || res.Records[1] != want[1] {
		t.Errorf("rebase result records = %+v, want %+v", res.Records, want)
	}
	checkRecords(t, f, want)
	if got := apply(t, f, 4, submit("s", t0+6, "a")).Records[0].Epoch; got != 502 {
		t.Errorf("submit at index 4: epoch %d, want 502", got)
	}
}

// TestRebaseAlreadyAbove: a rebase whose target the epochs already exceed
// (a second leader's survey, a store that caught up) changes no record.
func TestRebaseAlreadyAbove(t *testing.T) {
	f := fsm.New()
	apply(t, f, 1, rebase(t0, 100))
	apply(t, f, 2, failover("a", t0, "a", m1, ""))
	for _, above := range []uint64{0, 50, 101, 102} {
		before := f.Records()
		res := apply(t, f, 3, rebase(t0, above))
		if res.Err != nil || len(res.Records) != 0 {
			t.Errorf("rebase above %d at index 3 (epoch 103) = %+v, want nothing re-committed", above, res)
		}
		if got := f.Records(); got[0] != before[0] {
			t.Errorf("rebase above %d changed %+v to %+v", above, before[0], got[0])
		}
		if got := f.Generation().Base; got != 100 {
			t.Errorf("rebase above %d: base %d, want 100", above, got)
		}
	}
}

// TestRebaseRefusesAbsurdEpoch: a hand-set epoch near 2^64 would make the
// next epochs overflow; the rebase is refused and nothing changes.
func TestRebaseRefusesAbsurdEpoch(t *testing.T) {
	f := fsm.New()
	apply(t, f, 1, failover("a", t0, "a", m1, ""))
	for _, above := range []uint64{fsm.MaxBase + 1, 1<<64 - 1} {
		res := apply(t, f, 2, rebase(t0, above))
		checkErr(t, res, fsm.KindEpochRange, fsm.ErrEpochRange)
		if got := f.Generation(); got != (fsm.Generation{}) {
			t.Errorf("Generation() = %+v after a refused rebase, want none", got)
		}
	}
	checkRecords(t, f, []fsm.Record{rec("a", m1, 1, t0, command.Failover, "a")})
	if res := apply(t, f, 3, rebase(t0, fsm.MaxBase)); res.Err != nil || f.Generation().Base != fsm.MaxBase-2 {
		t.Errorf("rebase to the limit: %+v, generation %+v; want base %d", res, f.Generation(), fsm.MaxBase-2)
	}
	if !errors.Is(&fsm.Error{Kind: fsm.KindEpochRange}, fsm.ErrEpochRange) {
		t.Error("KindEpochRange does not match ErrEpochRange")
	}
}

// TestGenerationSnapshot: the base survives a snapshot, and a snapshot from
// a release without generations restores with base 0.
func TestGenerationSnapshot(t *testing.T) {
	f := fsm.New()
	apply(t, f, 1, rebase(t0, 1_000_000))
	apply(t, f, 2, failover("a", t0, "a", m1, ""))
	b := persist(t, f)
	g := fsm.New()
	restore(t, g, b)
	if got, want := g.Generation(), f.Generation(); got != want {
		t.Errorf("restored Generation() = %+v, want %+v", got, want)
	}
	if got := apply(t, g, 3, failover("b", t0, "a", m2, "")).Records[0].Epoch; got != 1_000_003 {
		t.Errorf("failover after restore: epoch %d, want 1000003", got)
	}

	old := fsm.New()
	apply(t, old, 1, failover("a", t0, "a", m1, ""))
	ob := persist(t, old)
	if bytes.Contains(ob, []byte("generation")) {
		t.Errorf("a snapshot without a rebase writes a generation: %s", ob)
	}
	h := fsm.New()
	restore(t, h, []byte(strings.Replace(string(persist(t, f)), `"generation":{"base":1000000,"index":1},`, "", 1)))
	if got := h.Generation(); got != (fsm.Generation{}) {
		t.Errorf("Generation() from an old snapshot = %+v, want zero", got)
	}
}
