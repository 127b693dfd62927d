package fsm_test

import (
	"reflect"
	"testing"

	"github.com/masterkv/masterkv/internal/command"
	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/raftnode/fsm"
)

// failoverAt is a failover that names the epoch its sender saw.
func failoverAt(id string, at int64, cluster string, m master.Master, expected string, epoch uint64) command.Command {
	c := failover(id, at, cluster, m, expected)
	c.Failover.ExpectedEpoch = epoch
	return c
}

// TestExpectedEpochABA: A→B, failback B→A, then a late redelivery of the
// first A→B webhook without an id. With expected_epoch it is refused and A
// stays; with expected alone (by value) it is accepted and rolls the
// cluster back to B, the documented limitation of that form.
func TestExpectedEpochABA(t *testing.T) {
	a, b := m1, m2
	setup := func(t *testing.T) *fsm.FSM {
		f := fsm.New()
		apply(t, f, 1, populate("", t0, command.Entry{Cluster: "main", Master: a}))
		if res := apply(t, f, 2, failoverAt("", t0+1, "main", b, a.HostPort(), 1)); res.Error() != nil {
			t.Fatalf("failover A→B = %+v, want committed", res)
		}
		if res := apply(t, f, 3, failoverAt("", t0+2, "main", a, b.HostPort(), 2)); res.Error() != nil {
			t.Fatalf("failback B→A = %+v, want committed", res)
		}
		return f
	}
	t.Run("expected_epoch is refused", func(t *testing.T) {
		f := setup(t)
		res := apply(t, f, 4, failoverAt("", t0+3, "main", b, a.HostPort(), 1))
		checkErr(t, res, fsm.KindConflict, fsm.ErrConflict)
		if r, _ := f.Record("main"); r.Master != a || r.Epoch != 3 {
			t.Errorf("after the late redelivery main = %s at epoch %d, want %s at epoch 3", r.Master.HostPort(), r.Epoch, a.HostPort())
		}
	})
	t.Run("expected_epoch without expected is refused", func(t *testing.T) {
		f := setup(t)
		res := apply(t, f, 4, failoverAt("", t0+3, "main", b, "", 1))
		checkErr(t, res, fsm.KindConflict, fsm.ErrConflict)
	})
	t.Run("expected alone rolls back (documented limitation)", func(t *testing.T) {
		f := setup(t)
		res := apply(t, f, 4, failover("", t0+3, "main", b, a.HostPort()))
		if res.Error() != nil {
			t.Fatalf("value-only redelivery = %+v; the README says this form is fooled by ABA, update it", res)
		}
		if r, _ := f.Record("main"); r.Master != b {
			t.Errorf("main = %s, want %s: the value-only form accepts the ABA redelivery", r.Master.HostPort(), b.HostPort())
		}
	})
}

// TestExpectedEpoch covers each rule of the expected_epoch form.
func TestExpectedEpoch(t *testing.T) {
	a, b, c := m1, m2, m3
	type step struct {
		cmd       command.Command
		wantErr   bool // a conflict
		wantDup   bool // answered from the current record, nothing committed
		wantEpoch uint64
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "redelivery after the change answers idempotently", steps: []step{
			{cmd: failoverAt("", t0, "main", b, a.HostPort(), 1), wantEpoch: 2},
			{cmd: failoverAt("", t0, "main", b, a.HostPort(), 1), wantDup: true, wantEpoch: 2},
		}},
		{name: "redelivery after a submit re-commit answers idempotently", steps: []step{
			{cmd: failoverAt("", t0, "main", b, a.HostPort(), 1), wantEpoch: 2},
			{cmd: submit("", t0, ""), wantEpoch: 3},
			{cmd: failoverAt("", t0, "main", b, a.HostPort(), 1), wantDup: true, wantEpoch: 3},
		}},
		{name: "an epoch seen after a submit, master unchanged, is accepted", steps: []step{
			{cmd: submit("", t0, ""), wantEpoch: 2},
			{cmd: failoverAt("", t0, "main", b, a.HostPort(), 1), wantEpoch: 3}, // a lagging store still showed 1
		}},
		{name: "an epoch newer than the record is refused", steps: []step{
			{cmd: failoverAt("", t0, "main", b, a.HostPort(), 5), wantErr: true, wantEpoch: 1},
		}},
		{name: "an unknown cluster is refused", steps: []step{
			{cmd: failoverAt("", t0, "other", b, "", 1), wantErr: true},
		}},
		{name: "expected must match the master too", steps: []step{
			{cmd: failoverAt("", t0, "main", b, c.HostPort(), 1), wantErr: true, wantEpoch: 1},
		}},
		{name: "a later failover to another master refuses the redelivery", steps: []step{
			{cmd: failoverAt("", t0, "main", b, a.HostPort(), 1), wantEpoch: 2},
			{cmd: failoverAt("", t0, "main", c, b.HostPort(), 2), wantEpoch: 3},
			{cmd: failoverAt("", t0, "main", b, a.HostPort(), 1), wantErr: true, wantEpoch: 3},
		}},
		{name: "A→B, B→A, A→B again: the first redelivery is not the current change", steps: []step{
			{cmd: failoverAt("", t0, "main", b, a.HostPort(), 1), wantEpoch: 2},
			{cmd: failoverAt("", t0, "main", a, b.HostPort(), 2), wantEpoch: 3},
			{cmd: failoverAt("", t0, "main", b, a.HostPort(), 3), wantEpoch: 4},
			{cmd: failoverAt("", t0, "main", b, a.HostPort(), 1), wantErr: true, wantEpoch: 4},
			{cmd: failoverAt("", t0, "main", b, a.HostPort(), 3), wantDup: true, wantEpoch: 4},
		}},
		{name: "a value-only failover to the same master keeps the change's epoch", steps: []step{
			{cmd: failoverAt("", t0, "main", b, a.HostPort(), 1), wantEpoch: 2},
			{cmd: failover("", t0, "main", b, a.HostPort()), wantEpoch: 3},
			{cmd: failoverAt("", t0, "main", b, a.HostPort(), 1), wantDup: true, wantEpoch: 3},
			{cmd: failoverAt("", t0, "main", c, b.HostPort(), 2), wantEpoch: 5},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fsm.New()
			apply(t, f, 1, populate("", t0, command.Entry{Cluster: "main", Master: a}))
			for i, s := range tt.steps {
				res := apply(t, f, uint64(i+2), s.cmd)
				switch {
				case s.wantErr:
					checkErr(t, res, fsm.KindConflict, fsm.ErrConflict)
				case res.Error() != nil:
					t.Fatalf("step %d: %+v, want accepted", i, res)
				case res.Duplicate != s.wantDup:
					t.Errorf("step %d: duplicate = %v, want %v (%+v)", i, res.Duplicate, s.wantDup, res)
				}
				if r, _ := f.Record("main"); r.Epoch != s.wantEpoch && s.wantEpoch != 0 {
					t.Errorf("step %d: main at epoch %d, want %d", i, r.Epoch, s.wantEpoch)
				}
				if s.wantDup {
					r, _ := f.Record("main")
					if !reflect.DeepEqual(res.Records, []fsm.Record{r}) {
						t.Errorf("step %d: idempotent answer records %+v, want the current record %+v", i, res.Records, r)
					}
				}
			}
		})
	}
}

// TestExpectedEpochSurvivesSnapshot: what expected_epoch needs to know
// about each record (when its master was set, and what it replaced) is in
// the snapshot, so a restored node answers a redelivery the same way.
func TestExpectedEpochSurvivesSnapshot(t *testing.T) {
	src := fsm.New()
	apply(t, src, 1, populate("", t0, command.Entry{Cluster: "main", Master: m1}))
	apply(t, src, 2, failoverAt("", t0, "main", m2, "", 1))
	apply(t, src, 3, failoverAt("", t0, "main", m1, "", 2))
	dst := fsm.New()
	restore(t, dst, persist(t, src))
	for name, f := range map[string]*fsm.FSM{"source": src, "restored": dst} {
		checkErr(t, apply(t, f, 4, failoverAt("", t0, "main", m2, "", 1)), fsm.KindConflict, fsm.ErrConflict)
		if res := apply(t, f, 5, failoverAt("", t0, "main", m1, "", 2)); !res.Duplicate {
			t.Errorf("%s: redelivery of B→A = %+v, want answered idempotently", name, res)
		}
	}
}

// TestExpectedEpochLegacySnapshot: a snapshot from before expected_epoch
// has no record of when each master was set. Only the record's own epoch is
// then accepted, and nothing is taken for a redelivery.
func TestExpectedEpochLegacySnapshot(t *testing.T) {
	legacy := `{"clock":1,"index":7,"records":[{"cluster":"main","master":{"host":"db1.example.com","port":3306},"epoch":7,"updated_at":"2025-03-04T05:06:07.891Z","source":"submit"}],"ids":[]}`
	f := fsm.New()
	restore(t, f, []byte(legacy))
	checkErr(t, apply(t, f, 8, failoverAt("", t0, "main", m2, "", 6)), fsm.KindConflict, fsm.ErrConflict)
	if res := apply(t, f, 9, failoverAt("", t0, "main", m2, "", 7)); res.Error() != nil || res.Duplicate {
		t.Errorf("failover at the record's own epoch = %+v, want committed", res)
	}
}
