package fsm_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/masterkv/masterkv/internal/command"
	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/raftnode/fsm"
)

// t0 is the proposer clock of the first command in most tests.
var t0 = time.Date(2025, 3, 4, 5, 6, 7, 891_000_000, time.UTC).UnixMilli()

var (
	m1 = master.Master{Host: "db1.example.com", Port: 3306, IPv4: "10.0.0.1", IPv6: "fd00::1"}
	m2 = master.Master{Host: "db2.example.com", Port: 3306, IPv4: "10.0.0.2"}
	m3 = master.Master{Host: "db3", Port: 3307}
	m6 = master.Master{Host: "fd00::6", Port: 3306, IPv6: "fd00::6"}
)

func failover(id string, at int64, cluster string, m master.Master, expected string) command.Command {
	return command.Command{Type: command.Failover, ID: id, At: at, Failover: &command.FailoverPayload{
		Entry: command.Entry{Cluster: cluster, Master: m}, Expected: expected,
	}}
}

func submit(id string, at int64, cluster string) command.Command {
	return command.Command{Type: command.Submit, ID: id, At: at, Submit: &command.SubmitPayload{Cluster: cluster}}
}

func populate(id string, at int64, entries ...command.Entry) command.Command {
	return command.Command{Type: command.Populate, ID: id, At: at, Populate: &command.PopulatePayload{Masters: entries}}
}

// apply feeds c to f as the command entry at index and returns its result.
func apply(t testing.TB, f *fsm.FSM, index uint64, c command.Command) fsm.Result {
	t.Helper()
	b, err := command.Encode(c)
	if err != nil {
		t.Fatalf("encode %+v: %v", c, err)
	}
	resp := f.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: b})
	res, ok := resp.(fsm.Result)
	if !ok {
		t.Fatalf("Apply(entry %d) returned %T %v, want fsm.Result", index, resp, resp)
	}
	return res
}

func rec(cluster string, m master.Master, epoch uint64, at int64, src command.Type, id string) fsm.Record {
	return fsm.Record{Cluster: cluster, Master: m, Epoch: epoch, UpdatedAt: time.UnixMilli(at).UTC(), Source: src, RequestID: id}
}

func checkRecords(t *testing.T, f *fsm.FSM, want []fsm.Record) {
	t.Helper()
	got := f.Records()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Records() =\n%+v\nwant\n%+v", got, want)
	}
	if f.Len() != len(want) {
		t.Errorf("Len() = %d, want %d", f.Len(), len(want))
	}
	for _, w := range want {
		if r, ok := f.Record(w.Cluster); !ok || !reflect.DeepEqual(r, w) {
			t.Errorf("Record(%q) = %+v, %v, want %+v, true", w.Cluster, r, ok, w)
		}
	}
}

// checkErr fails unless res carries an application error of kind that
// matches sentinel, and no records.
func checkErr(t *testing.T, res fsm.Result, kind fsm.ErrorKind, sentinel error) {
	t.Helper()
	if res.Err == nil {
		t.Fatalf("result %+v has no error, want kind %q", res, kind)
	}
	if res.Err.Kind != kind {
		t.Errorf("error kind = %q, want %q", res.Err.Kind, kind)
	}
	if !errors.Is(res.Error(), sentinel) {
		t.Errorf("errors.Is(%v, %v) = false, want true", res.Error(), sentinel)
	}
	for _, other := range []error{fsm.ErrConflict, fsm.ErrUnknownCluster, fsm.ErrIDReused} {
		if other != sentinel && errors.Is(res.Error(), other) {
			t.Errorf("errors.Is(%v, %v) = true, want false", res.Error(), other)
		}
	}
	if res.Err.Message == "" {
		t.Errorf("error %+v has no message", res.Err)
	}
	if len(res.Records) != 0 {
		t.Errorf("refused command committed records %+v, want none", res.Records)
	}
}

func TestFailoverSetsRecord(t *testing.T) {
	f := fsm.New()
	res := apply(t, f, 7, failover("req-1", t0, "main", m1, ""))

	want := fsm.Record{
		Cluster: "main", Master: m1, Epoch: 7,
		UpdatedAt: time.Date(2025, 3, 4, 5, 6, 7, 891_000_000, time.UTC),
		Source:    command.Failover, RequestID: "req-1",
	}
	wantRes := fsm.Result{Type: command.Failover, Index: 7, Records: []fsm.Record{want}, Count: 1, Epoch: 7}
	if !reflect.DeepEqual(res, wantRes) {
		t.Errorf("Apply() = %+v, want %+v", res, wantRes)
	}
	if err := res.Error(); err != nil {
		t.Errorf("res.Error() = %v, want nil", err)
	}
	checkRecords(t, f, []fsm.Record{want})
	if _, ok := f.Record("other"); ok {
		t.Errorf("Record(%q) found, want not found", "other")
	}

	// A second failover overwrites the master and takes the new epoch.
	res = apply(t, f, 9, failover("", t0+1000, "main", m2, ""))
	want2 := rec("main", m2, 9, t0+1000, command.Failover, "")
	if !reflect.DeepEqual(res.Records, []fsm.Record{want2}) {
		t.Errorf("second Apply() records = %+v, want %+v", res.Records, want2)
	}
	checkRecords(t, f, []fsm.Record{want2})
}

func TestEpochFollowsLogIndex(t *testing.T) {
	f := fsm.New()
	steps := []struct {
		index uint64
		c     command.Command
		want  map[string]uint64 // epoch per cluster after the step
	}{
		{1, failover("", t0, "a", m1, ""), map[string]uint64{"a": 1}},
		{2, failover("", t0+1, "b", m1, ""), map[string]uint64{"a": 1, "b": 2}},
		{5, failover("", t0+2, "a", m2, ""), map[string]uint64{"a": 5, "b": 2}},
		{6, submit("", t0+3, "b"), map[string]uint64{"a": 5, "b": 6}},
		{9, populate("", t0+4, command.Entry{Cluster: "a", Master: m3}, command.Entry{Cluster: "c", Master: m3}), map[string]uint64{"a": 5, "b": 6, "c": 9}},
		{10, failover("", t0+5, "a", m3, "db9:3306"), map[string]uint64{"a": 5, "b": 6, "c": 9}}, // conflict
		{12, submit("", t0+6, ""), map[string]uint64{"a": 12, "b": 12, "c": 12}},
		{13, failover("", t0+7, "c", m1, ""), map[string]uint64{"a": 12, "b": 12, "c": 13}},
	}
	prev := map[string]uint64{}
	for _, s := range steps {
		apply(t, f, s.index, s.c)
		got := map[string]uint64{}
		for _, r := range f.Records() {
			got[r.Cluster] = r.Epoch
			if r.Epoch < prev[r.Cluster] {
				t.Errorf("after entry %d: cluster %q epoch went from %d to %d", s.index, r.Cluster, prev[r.Cluster], r.Epoch)
			}
		}
		if !reflect.DeepEqual(got, s.want) {
			t.Errorf("after entry %d (%s): epochs = %v, want %v", s.index, s.c.Type, got, s.want)
		}
		prev = got
	}
}

func TestFailoverExpected(t *testing.T) {
	tests := []struct {
		name     string
		current  *master.Master // nil: no record
		expected string
		next     master.Master
		conflict bool
	}{
		{name: "no expected overwrites", current: &m1, next: m2},
		{name: "expected is current", current: &m1, expected: "db1.example.com:3306", next: m2},
		{name: "expected and current are the new master", current: &m2, expected: "db2.example.com:3306", next: m2},
		{name: "current is already the new master", current: &m1, expected: "db0:3306", next: m1},
		{name: "no record", expected: "db0:3306", next: m2},
		{name: "ipv6 current", current: &m6, expected: "fd00::6:3306", next: m2},
		{name: "expected is another host", current: &m1, expected: "db0:3306", next: m2, conflict: true},
		{name: "expected differs in port", current: &m1, expected: "db1.example.com:3307", next: m2, conflict: true},
		{name: "expected is the previous master (late webhook)", current: &m3, expected: "db1.example.com:3306", next: m2, conflict: true},
		// Naming the new master as expected does not bypass the check: the
		// current master m1 is neither, so setting m2 could be a rollback.
		{name: "expected is the new master but current differs", current: &m1, expected: "db2.example.com:3306", next: m2, conflict: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fsm.New()
			var before []fsm.Record
			if tt.current != nil {
				apply(t, f, 3, failover("first", t0, "main", *tt.current, ""))
				before = f.Records()
			}
			res := apply(t, f, 4, failover("second", t0+1000, "main", tt.next, tt.expected))
			if res.Type != command.Failover || res.Index != 4 {
				t.Errorf("result type, index = %s, %d, want failover, 4", res.Type, res.Index)
			}
			if tt.conflict {
				checkErr(t, res, fsm.KindConflict, fsm.ErrConflict)
				checkRecords(t, f, before)
				return
			}
			if res.Error() != nil {
				t.Fatalf("Apply() error = %v, want nil", res.Error())
			}
			want := rec("main", tt.next, 4, t0+1000, command.Failover, "second")
			if !reflect.DeepEqual(res.Records, []fsm.Record{want}) {
				t.Errorf("result records = %+v, want %+v", res.Records, want)
			}
			checkRecords(t, f, []fsm.Record{want})
		})
	}
}

// threeClusters returns a store with clusters a, b and c at epochs 1, 2, 3.
func threeClusters(t *testing.T) *fsm.FSM {
	t.Helper()
	f := fsm.New()
	apply(t, f, 1, failover("fa", t0, "a", m1, ""))
	apply(t, f, 2, failover("fb", t0+1, "b", m2, ""))
	apply(t, f, 3, populate("pc", t0+2, command.Entry{Cluster: "c", Master: m3}))
	return f
}

func TestSubmit(t *testing.T) {
	t1 := t0 + 60_000
	tests := []struct {
		name    string
		cluster string
		want    []fsm.Record // result records; the others keep their state
	}{
		{"all", "", []fsm.Record{
			rec("a", m1, 10, t1, command.Submit, "s"),
			rec("b", m2, 10, t1, command.Submit, "s"),
			rec("c", m3, 10, t1, command.Submit, "s"),
		}},
		{"one", "b", []fsm.Record{rec("b", m2, 10, t1, command.Submit, "s")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := threeClusters(t)
			before := map[string]fsm.Record{}
			for _, r := range f.Records() {
				before[r.Cluster] = r
			}
			res := apply(t, f, 10, submit("s", t1, tt.cluster))
			if res.Error() != nil {
				t.Fatalf("submit error = %v, want nil", res.Error())
			}
			if res.Type != command.Submit || res.Index != 10 {
				t.Errorf("result type, index = %s, %d, want submit, 10", res.Type, res.Index)
			}
			if !reflect.DeepEqual(res.Records, tt.want) {
				t.Errorf("result records =\n%+v\nwant\n%+v", res.Records, tt.want)
			}
			after := map[string]fsm.Record{}
			for k, v := range before {
				after[k] = v
			}
			for _, r := range tt.want {
				after[r.Cluster] = r
			}
			checkRecords(t, f, []fsm.Record{after["a"], after["b"], after["c"]})
		})
	}
}

func TestSubmitUnknownCluster(t *testing.T) {
	f := threeClusters(t)
	before := f.Records()
	res := apply(t, f, 10, submit("s", t0+60_000, "zzz"))
	checkErr(t, res, fsm.KindUnknownCluster, fsm.ErrUnknownCluster)
	if !strings.Contains(res.Err.Message, "zzz") {
		t.Errorf("error message %q does not name the cluster", res.Err.Message)
	}
	checkRecords(t, f, before)
}

func TestSubmitAllEmptyStore(t *testing.T) {
	f := fsm.New()
	res := apply(t, f, 1, submit("", t0, ""))
	if res.Error() != nil || len(res.Records) != 0 {
		t.Errorf("submit on empty store = %+v, want no error and no records", res)
	}
	if f.Len() != 0 {
		t.Errorf("Len() = %d, want 0", f.Len())
	}
}

func TestPopulateInjectsOnlyMissing(t *testing.T) {
	f := fsm.New()
	apply(t, f, 1, failover("fa", t0, "a", m1, ""))
	a := rec("a", m1, 1, t0, command.Failover, "fa")

	res := apply(t, f, 5, populate("p1", t0+10, []command.Entry{
		{Cluster: "a", Master: m2}, // exists: skipped
		{Cluster: "b", Master: m2},
		{Cluster: "c", Master: m3},
		{Cluster: "b", Master: m3}, // second entry for b in the same command: skipped
	}...))
	b := rec("b", m2, 5, t0+10, command.Populate, "p1")
	c := rec("c", m3, 5, t0+10, command.Populate, "p1")
	want := fsm.Result{Type: command.Populate, Index: 5, Checked: 4, Records: []fsm.Record{b, c}, Count: 2, Epoch: 5}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("first populate = %+v, want %+v", res, want)
	}
	checkRecords(t, f, []fsm.Record{a, b, c})

	// Populating again never overwrites: inject once.
	res = apply(t, f, 6, populate("p2", t0+20, command.Entry{Cluster: "b", Master: m1}, command.Entry{Cluster: "c", Master: m1}))
	if res.Error() != nil || res.Checked != 2 || len(res.Records) != 0 {
		t.Errorf("second populate = %+v, want Checked 2 and no records", res)
	}
	checkRecords(t, f, []fsm.Record{a, b, c})
}

func TestIdempotency(t *testing.T) {
	t.Run("same id and payload returns the first result", func(t *testing.T) {
		f := fsm.New()
		first := apply(t, f, 1, failover("x", t0, "main", m1, ""))
		apply(t, f, 2, failover("y", t0+1, "main", m2, ""))
		before := f.Records()

		// A late retry of x, with its own clock, must not roll main back.
		got := apply(t, f, 3, failover("x", t0+5000, "main", m1, ""))
		want := first
		want.Duplicate = true
		if !reflect.DeepEqual(got, want) {
			t.Errorf("retry = %+v, want the first result %+v with Duplicate", got, want)
		}
		if first.Duplicate {
			t.Errorf("first result has Duplicate = true, want false")
		}
		checkRecords(t, f, before)
	})
	t.Run("duplicate keeps the epoch", func(t *testing.T) {
		f := fsm.New()
		apply(t, f, 1, failover("x", t0, "main", m1, ""))
		apply(t, f, 2, failover("x", t0, "main", m1, ""))
		if r, _ := f.Record("main"); r.Epoch != 1 {
			t.Errorf("epoch after duplicate = %d, want 1", r.Epoch)
		}
	})
	t.Run("a refused command is remembered too", func(t *testing.T) {
		f := fsm.New()
		apply(t, f, 1, failover("", t0, "main", m1, ""))
		first := apply(t, f, 2, failover("x", t0, "main", m2, "db0:3306"))
		checkErr(t, first, fsm.KindConflict, fsm.ErrConflict)
		// Even once the expectation would hold, the retry gets the same answer.
		apply(t, f, 3, failover("", t0, "main", master.Master{Host: "db0", Port: 3306}, ""))
		got := apply(t, f, 4, failover("x", t0, "main", m2, "db0:3306"))
		want := first
		want.Duplicate = true
		if !reflect.DeepEqual(got, want) {
			t.Errorf("retry = %+v, want %+v", got, want)
		}
	})
	t.Run("same id different payload", func(t *testing.T) {
		f := fsm.New()
		first := apply(t, f, 1, failover("x", t0, "main", m1, ""))
		before := f.Records()
		got := apply(t, f, 2, failover("x", t0, "main", m2, ""))
		checkErr(t, got, fsm.KindIDReused, fsm.ErrIDReused)
		if got.Duplicate {
			t.Errorf("reused id result has Duplicate = true, want false")
		}
		checkRecords(t, f, before)
		// The id still belongs to the first request.
		again := apply(t, f, 3, failover("x", t0, "main", m1, ""))
		if !again.Duplicate || !reflect.DeepEqual(again.Records, first.Records) {
			t.Errorf("retry of the first request = %+v, want duplicate of %+v", again, first)
		}
	})
	t.Run("same id for another type", func(t *testing.T) {
		f := fsm.New()
		apply(t, f, 1, failover("x", t0, "main", m1, ""))
		before := f.Records()
		got := apply(t, f, 2, submit("x", t0, ""))
		checkErr(t, got, fsm.KindIDReused, fsm.ErrIDReused)
		checkRecords(t, f, before)
	})
	t.Run("no id is never a duplicate", func(t *testing.T) {
		f := fsm.New()
		apply(t, f, 1, failover("", t0, "main", m1, ""))
		got := apply(t, f, 2, failover("", t0, "main", m1, ""))
		if got.Duplicate || got.Index != 2 {
			t.Errorf("second command without id = %+v, want applied at index 2", got)
		}
		if r, _ := f.Record("main"); r.Epoch != 2 {
			t.Errorf("epoch = %d, want 2", r.Epoch)
		}
	})
}

// walkClock applies commands that change nothing but the command clock,
// one MaxClockStep apart from from (the current clock) up to to, starting
// at index. It returns the next free index.
func walkClock(t *testing.T, f *fsm.FSM, index uint64, from, to int64) uint64 {
	t.Helper()
	for at := from; at < to; index++ {
		at = min(at+fsm.MaxClockStep.Milliseconds(), to)
		if res := apply(t, f, index, submit("", at, "tick")); !errors.Is(res.Error(), fsm.ErrUnknownCluster) {
			t.Fatalf("clock tick at index %d = %+v, want an unknown cluster refusal", index, res)
		}
	}
	return index
}

func TestIdempotencyExpiry(t *testing.T) {
	ttl := fsm.IDTTL.Milliseconds()
	tests := []struct {
		name      string
		walk      int64 // command clock reached, a step at a time, before the retry
		jump      int64 // At of one command applied after the walk; 0 for none
		retryAt   int64
		samePay   bool
		wantFresh bool
	}{
		{name: "just inside the ttl", walk: t0 + ttl - 1, retryAt: t0 + ttl - 1, samePay: true},
		{name: "different payload just inside the ttl", walk: t0 + ttl - 1, retryAt: t0 + ttl - 1},
		{name: "at the ttl", walk: t0 + ttl - 1, retryAt: t0 + ttl, samePay: true, wantFresh: true},
		{name: "different payload after the ttl", walk: t0 + ttl, retryAt: t0 + ttl + 1, wantFresh: true},
		{name: "clock moved by other commands", walk: t0 + ttl, retryAt: t0 + 1, samePay: true, wantFresh: true},
		{name: "older command does not move the clock back", walk: t0 + ttl - 1, retryAt: t0, samePay: true},
		// One command may move the clock by MaxClockStep at most.
		{name: "one command a day ahead", walk: t0, jump: t0 + ttl + 1, retryAt: t0 + ttl + 1, samePay: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fsm.New()
			apply(t, f, 1, failover("x", t0, "main", m1, ""))
			index := walkClock(t, f, 2, t0, tt.walk)
			if tt.jump != 0 {
				apply(t, f, index, failover("other", tt.jump, "other", m3, ""))
				index++
			}
			m := m1
			if !tt.samePay {
				m = m2
			}
			res := apply(t, f, index, failover("x", tt.retryAt, "main", m, ""))
			r, _ := f.Record("main")
			switch {
			case tt.wantFresh:
				if res.Error() != nil || res.Duplicate || res.Index != index {
					t.Errorf("retry = %+v, want applied afresh at index %d", res, index)
				}
				if want := rec("main", m, index, tt.retryAt, command.Failover, "x"); !reflect.DeepEqual(r, want) {
					t.Errorf("record = %+v, want %+v", r, want)
				}
			case tt.samePay:
				if !res.Duplicate || res.Index != 1 {
					t.Errorf("retry = %+v, want duplicate of index 1", res)
				}
				if r.Epoch != 1 {
					t.Errorf("epoch = %d, want 1", r.Epoch)
				}
			default:
				checkErr(t, res, fsm.KindIDReused, fsm.ErrIDReused)
				if r.Epoch != 1 || r.Master != m1 {
					t.Errorf("record = %+v, want unchanged at epoch 1", r)
				}
			}
		})
	}
}

// A proposer whose clock lags does not move the command clock back: its key
// is remembered for IDTTL from the command clock when it was applied.
func TestIdempotencyLaggingProposer(t *testing.T) {
	ttl := fsm.IDTTL.Milliseconds()
	f := fsm.New()
	apply(t, f, 1, failover("x", t0, "main", m1, ""))
	index := walkClock(t, f, 2, t0, t0+ttl-1)
	y := index
	lagging := apply(t, f, y, failover("y", t0, "other", m2, ""))
	// updated_at is still the command's own At.
	if want := []fsm.Record{rec("other", m2, y, t0, command.Failover, "y")}; !reflect.DeepEqual(lagging.Records, want) {
		t.Errorf("lagging command records = %+v, want %+v", lagging.Records, want)
	}
	index = walkClock(t, f, y+1, t0+ttl-1, t0+ttl)

	if res := apply(t, f, index, failover("y", t0+ttl, "other", m2, "")); !res.Duplicate || res.Index != y {
		t.Errorf("retry of y = %+v, want duplicate of index %d (y was seen at clock %d)", res, y, t0+ttl-1)
	}
	if res := apply(t, f, index+1, failover("x", t0+ttl, "main", m1, "")); res.Duplicate || res.Index != index+1 {
		t.Errorf("retry of x = %+v, want applied afresh at index %d", res, index+1)
	}
}

func TestLookup(t *testing.T) {
	ttl := fsm.IDTTL.Milliseconds()
	f := fsm.New()
	first := apply(t, f, 1, failover("x", t0, "main", m1, ""))
	dup := first
	dup.Duplicate = true
	next := walkClock(t, f, 2, t0, t0+ttl-1)

	tests := []struct {
		name    string
		c       command.Command
		wantOK  bool
		wantRes fsm.Result
		wantErr error
	}{
		{name: "no id", c: failover("", t0, "main", m1, "")},
		{name: "unknown id", c: failover("y", t0, "main", m1, "")},
		{name: "known id", c: failover("x", t0+1000, "main", m1, ""), wantOK: true, wantRes: dup},
		{name: "known id, other payload", c: failover("x", t0, "main", m2, ""), wantErr: fsm.ErrIDReused},
		// Apply would forget x at this clock, so Lookup must not answer it.
		{name: "known id past the ttl", c: failover("x", t0+ttl, "main", m1, "")},
		{name: "other payload past the ttl", c: failover("x", t0+ttl+1, "main", m2, "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, ok, err := f.Lookup(tt.c)
			if ok != tt.wantOK {
				t.Errorf("Lookup() ok = %v, want %v", ok, tt.wantOK)
			}
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Lookup() error = %v, want %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(res, tt.wantRes) {
				t.Errorf("Lookup() = %+v, want %+v", res, tt.wantRes)
			}
		})
	}

	// Lookup changes nothing.
	checkRecords(t, f, []fsm.Record{rec("main", m1, 1, t0, command.Failover, "x")})
	if got := apply(t, f, next, failover("x", t0+1, "main", m1, "")); !got.Duplicate {
		t.Errorf("Apply after Lookup = %+v, want duplicate", got)
	}
}

// bufferSink is a raft.SnapshotSink that keeps the snapshot in memory.
type bufferSink struct {
	bytes.Buffer
	closed, canceled int
	writeErr         error
}

var _ raft.SnapshotSink = (*bufferSink)(nil)

func (s *bufferSink) ID() string    { return "test" }
func (s *bufferSink) Cancel() error { s.canceled++; return nil }
func (s *bufferSink) Close() error  { s.closed++; return nil }
func (s *bufferSink) Write(p []byte) (int, error) {
	if s.writeErr != nil {
		return 0, s.writeErr
	}
	return s.Buffer.Write(p)
}

// persist snapshots f and returns the persisted bytes.
func persist(t *testing.T, f *fsm.FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot() error = %v", err)
	}
	defer snap.Release()
	sink := &bufferSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist() error = %v", err)
	}
	if sink.closed != 1 || sink.canceled != 0 {
		t.Errorf("Persist closed the sink %d times and canceled it %d times, want 1 and 0", sink.closed, sink.canceled)
	}
	return sink.Bytes()
}

func restore(t *testing.T, f *fsm.FSM, b []byte) {
	t.Helper()
	if err := f.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatalf("Restore() error = %v", err)
	}
}

// populated returns a store with records, remembered ids and a clock.
func populated(t *testing.T) (*fsm.FSM, fsm.Result) {
	t.Helper()
	f := fsm.New()
	first := apply(t, f, 1, failover("x", t0, "a", m1, ""))
	apply(t, f, 2, failover("y", t0+1000, "b", m6, ""))
	apply(t, f, 3, populate("p", t0+2000, command.Entry{Cluster: "c", Master: m3}))
	apply(t, f, 4, submit("", t0+5*3600_000, "b"))
	return f, first
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	src, first := populated(t)
	b := persist(t, src)

	var st struct {
		Clock int64 `json:"clock"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("snapshot is not JSON: %v\n%s", err, b)
	}
	// The submit 5 h ahead moved the clock by one step only.
	if want := t0 + 2000 + fsm.MaxClockStep.Milliseconds(); st.Clock != want {
		t.Errorf("snapshot clock = %d, want %d (one step past the previous At)", st.Clock, want)
	}

	dst := fsm.New()
	restore(t, dst, b)
	if got := dst.Restores(); got != 1 {
		t.Errorf("Restores() = %d, want 1", got)
	}
	checkRecords(t, dst, src.Records())
	if again := persist(t, dst); !bytes.Equal(again, b) {
		t.Errorf("snapshot of the restored store differs:\n got %s\nwant %s", again, b)
	}

	// Remembered ids come back with their results.
	res, ok, err := dst.Lookup(failover("x", t0, "a", m1, ""))
	want := first
	want.Duplicate = true
	if err != nil || !ok || !reflect.DeepEqual(res, want) {
		t.Errorf("Lookup(x) after restore = %+v, %v, %v, want %+v, true, nil", res, ok, err, want)
	}
	got := apply(t, dst, 5, failover("y", t0, "b", m2, ""))
	checkErr(t, got, fsm.KindIDReused, fsm.ErrIDReused)

	// The restored clock drives expiry: x was seen at t0, so once the clock
	// reaches t0+IDTTL the restored store forgets it.
	index := walkClock(t, dst, 6, st.Clock, t0+fsm.IDTTL.Milliseconds())
	got = apply(t, dst, index, failover("x", t0+fsm.IDTTL.Milliseconds(), "a", m1, ""))
	if got.Duplicate || got.Index != index {
		t.Errorf("x after the ttl = %+v, want applied at index %d", got, index)
	}
}

func TestSnapshotIsPointInTime(t *testing.T) {
	f, _ := populated(t)
	want := f.Records()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot() error = %v", err)
	}
	apply(t, f, 10, failover("late", t0+10_000_000, "a", m2, ""))
	apply(t, f, 11, failover("", t0+10_000_001, "d", m2, ""))
	sink := &bufferSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist() error = %v", err)
	}
	dst := fsm.New()
	restore(t, dst, sink.Bytes())
	checkRecords(t, dst, want)
	if _, ok, _ := dst.Lookup(failover("late", t0+10_000_000, "a", m2, "")); ok {
		t.Errorf("id applied after Snapshot() is in the persisted snapshot")
	}
}

func TestRestoreReplaces(t *testing.T) {
	src, _ := populated(t)
	b := persist(t, src)

	dst := fsm.New()
	apply(t, dst, 1, failover("old-id", t0, "old", m2, ""))
	apply(t, dst, 2, failover("", t0, "a", m3, ""))
	restore(t, dst, b)

	checkRecords(t, dst, src.Records())
	if _, ok := dst.Record("old"); ok {
		t.Errorf("Record(old) still present after Restore, want replaced state")
	}
	if _, ok, err := dst.Lookup(failover("old-id", t0, "old", m2, "")); ok || err != nil {
		t.Errorf("Lookup(old-id) after Restore = %v, %v, want not found", ok, err)
	}
	// The id is free again.
	if res := apply(t, dst, 10, failover("old-id", t0, "old", m1, "")); res.Duplicate || res.Error() != nil {
		t.Errorf("old-id after Restore = %+v, want applied afresh", res)
	}
}

func TestRestoreBadSnapshot(t *testing.T) {
	f, _ := populated(t)
	want := f.Records()
	for _, in := range []string{"", "not json", `{"records":"x"}`} {
		t.Run(in, func(t *testing.T) {
			if err := f.Restore(io.NopCloser(strings.NewReader(in))); err == nil {
				t.Errorf("Restore(%q) = nil, want an error", in)
			}
			checkRecords(t, f, want)
			if got := f.Restores(); got != 0 {
				t.Errorf("Restores() = %d after failed restores, want 0", got)
			}
		})
	}
}

func TestPersistWriteError(t *testing.T) {
	f, _ := populated(t)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot() error = %v", err)
	}
	sink := &bufferSink{writeErr: errors.New("disk full")}
	if err := snap.Persist(sink); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Persist() error = %v, want one wrapping %q", err, "disk full")
	}
	if sink.canceled != 1 || sink.closed != 0 {
		t.Errorf("failed Persist canceled the sink %d times and closed it %d times, want 1 and 0", sink.canceled, sink.closed)
	}
}

func TestRaftSnapshotStore(t *testing.T) {
	src, _ := populated(t)
	store := raft.NewInmemSnapshotStore()
	sink, err := store.Create(raft.SnapshotVersionMax, 4, 1, raft.Configuration{}, 0, nil)
	if err != nil {
		t.Fatalf("Create() error = %v", err)
	}
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot() error = %v", err)
	}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist() error = %v", err)
	}
	_, rc, err := store.Open(sink.ID())
	if err != nil {
		t.Fatalf("Open() error = %v", err)
	}
	dst := fsm.New()
	if err := dst.Restore(rc); err != nil {
		t.Fatalf("Restore() error = %v", err)
	}
	checkRecords(t, dst, src.Records())
}

// sampleLog is a sequence of entries that exercises every path of Apply.
func sampleLog() []command.Command {
	ttl := fsm.IDTTL.Milliseconds()
	return []command.Command{
		failover("a1", t0, "a", m1, ""),
		failover("b1", t0+1, "b", m2, ""),
		failover("a2", t0+2, "a", m2, "db9:3306"), // conflict
		failover("a1", t0+3, "a", m1, ""),         // duplicate
		failover("a1", t0+4, "a", m3, ""),         // reused
		populate("p1", t0+5, command.Entry{Cluster: "a", Master: m3}, command.Entry{Cluster: "c", Master: m3}),
		submit("s1", t0+6, ""),
		submit("s2", t0+7, "zzz"), // unknown
		failover("", t0+ttl, "b", m6, "db2.example.com:3306"),
		failover("a1", t0+ttl+1, "a", m3, ""), // a1 expired: fresh
		submit("", t0+10, "c"),                // proposer clock behind
	}
}

func TestApplyIsDeterministic(t *testing.T) {
	f1, f2 := fsm.New(), fsm.New()
	for i, c := range sampleLog() {
		index := uint64(i + 1)
		r1, r2 := apply(t, f1, index, c), apply(t, f2, index, c)
		if !reflect.DeepEqual(r1, r2) {
			t.Errorf("entry %d: results differ:\n%+v\n%+v", index, r1, r2)
		}
	}
	if len(f1.Records()) != 3 {
		t.Errorf("Records() = %+v, want 3 clusters", f1.Records())
	}
	if !reflect.DeepEqual(f1.Records(), f2.Records()) {
		t.Errorf("records differ:\n%+v\n%+v", f1.Records(), f2.Records())
	}
	if s1, s2 := persist(t, f1), persist(t, f2); !bytes.Equal(s1, s2) {
		t.Errorf("snapshots differ:\n%s\n%s", s1, s2)
	}
}

func TestApplyPanicsOnUndecodableEntry(t *testing.T) {
	tests := []struct {
		name string
		data string
	}{
		{"garbage", "garbage"},
		{"empty", ""},
		{"unknown type", `{"type":"rollback","at":1,"submit":{}}`},
		{"type without payload", `{"type":"failover","at":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fsm.New()
			defer func() {
				r := recover()
				if r == nil {
					t.Fatalf("Apply(%q) did not panic", tt.data)
				}
				if msg := fmt.Sprint(r); !strings.Contains(msg, "entry 9") {
					t.Errorf("panic %q does not name entry 9", msg)
				}
				if f.Len() != 0 {
					t.Errorf("Len() = %d after panic, want 0", f.Len())
				}
			}()
			f.Apply(&raft.Log{Index: 9, Term: 1, Type: raft.LogCommand, Data: []byte(tt.data)})
		})
	}
}

func TestApplyIgnoresNonCommandEntries(t *testing.T) {
	data, err := command.Encode(failover("x", t0, "main", m1, ""))
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []raft.LogType{raft.LogNoop, raft.LogBarrier, raft.LogConfiguration, raft.LogAddPeerDeprecated, raft.LogRemovePeerDeprecated} {
		t.Run(typ.String(), func(t *testing.T) {
			f := fsm.New()
			if got := f.Apply(&raft.Log{Index: 1, Term: 1, Type: typ, Data: data}); got != nil {
				t.Errorf("Apply(%s) = %v, want nil", typ, got)
			}
			if f.Len() != 0 {
				t.Errorf("Len() = %d after %s, want 0", f.Len(), typ)
			}
			if _, ok, _ := f.Lookup(failover("x", t0, "main", m1, "")); ok {
				t.Errorf("id remembered after %s, want not", typ)
			}
		})
	}
}

func TestResultError(t *testing.T) {
	if err := (fsm.Result{}).Error(); err != nil {
		t.Errorf("Result{}.Error() = %v, want nil (an untyped nil)", err)
	}
	e := &fsm.Error{Kind: "other", Message: "m"}
	for _, s := range []error{fsm.ErrConflict, fsm.ErrUnknownCluster, fsm.ErrIDReused} {
		if errors.Is(e, s) {
			t.Errorf("errors.Is(kind other, %v) = true, want false", s)
		}
	}
}
