package fsm_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/masterkv/masterkv/internal/command"
	"github.com/masterkv/masterkv/raftnode/fsm"
)

// futureEntry is a command of a type this release does not know, as a
// newer leader would write it (the coming forget command).
func futureEntry(ignorable bool) []byte {
	flag := ""
	if ignorable {
		flag = `"ignorable":true,`
	}
	return []byte(`{"type":"forget",` + flag + `"id":"f-1","at":` + fmt.Sprint(t0+1000) + `,"forget":{"cluster":"main"}}`)
}

// TestApplySkipsUnknownIgnorableCommand is the rolling-upgrade rule for an
// old node: an entry of a type it does not know, marked ignorable by the
// newer leader, is skipped (no panic, state unchanged, index advances).
func TestApplySkipsUnknownIgnorableCommand(t *testing.T) {
	f := fsm.New()
	apply(t, f, 1, failover("a", t0, "main", m1, ""))
	before := persist(t, f)

	var resp any
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("Apply of an unknown ignorable command panicked: %v", r)
			}
		}()
		resp = f.Apply(&raft.Log{Index: 2, Term: 1, Type: raft.LogCommand, Data: futureEntry(true)})
	}()
	res, ok := resp.(fsm.Result)
	if !ok {
		t.Fatalf("Apply returned %T %v, want fsm.Result", resp, resp)
	}
	if !res.Skipped || res.Index != 2 || res.Err != nil || len(res.Records) != 0 {
		t.Errorf("result = %+v, want Skipped at index 2 with no records and no error", res)
	}
	if got := f.AppliedIndex(); got != 2 {
		t.Errorf("AppliedIndex() = %d after the skipped entry, want 2", got)
	}
	checkRecords(t, f, []fsm.Record{rec("main", m1, 1, t0, command.Failover, "a")})
	// Everything but the applied index and the clock (see
	// TestSkipMovesTheCommandClock) is as before: records, ids.
	after := persist(t, f)
	after = bytes.Replace(after, []byte(`"index":2`), []byte(`"index":1`), 1)
	after = bytes.Replace(after, []byte(fmt.Sprintf(`"clock":%d`, t0+1000)), []byte(fmt.Sprintf(`"clock":%d`, t0)), 1)
	if got, want := after, before; !bytes.Equal(got, want) {
		t.Errorf("state changed by a skipped entry:\nbefore %s\nafter  %s", before, after)
	}
	// The skipped entry's id is not remembered: it never ran here.
	if _, ok, _ := f.Lookup(command.Command{Type: command.Submit, ID: "f-1", At: t0 + 1000, Submit: &command.SubmitPayload{}}); ok {
		t.Error("the id of a skipped entry is remembered")
	}
}

// TestApplyPanicsOnUnknownRequiredCommand: without the flag a command of an
// unknown type must be understood by every node; going on would let nodes
// diverge, so Apply still panics.
func TestApplyPanicsOnUnknownRequiredCommand(t *testing.T) {
	f := fsm.New()
	defer func() {
		r := recover()
		if r == nil {
			t.Fatal("Apply of an unknown command without the ignorable flag did not panic")
		}
		if msg := fmt.Sprint(r); !strings.Contains(msg, "entry 3") || !strings.Contains(msg, `"forget"`) {
			t.Errorf("panic %q does not name entry 3 and the type \"forget\"", msg)
		}
	}()
	f.Apply(&raft.Log{Index: 3, Term: 1, Type: raft.LogCommand, Data: futureEntry(false)})
}

// TestSkipMovesTheCommandClock: a node that skips an ignorable entry must
// keep the same command clock as a node that applies it, or the two expire
// remembered ids at different times and answer retries differently.
func TestSkipMovesTheCommandClock(t *testing.T) {
	f := fsm.New()
	apply(t, f, 1, failover("a", t0, "main", m1, ""))
	f.Apply(&raft.Log{Index: 2, Term: 1, Type: raft.LogCommand, Data: futureEntry(true)})
	if got, want := persist(t, f), []byte(fmt.Sprintf(`"clock":%d`, t0+1000)); !bytes.Contains(got, want) {
		t.Errorf("state after a skipped entry stamped %d = %s, want it to contain %s (the clock a node that knows the type has)", t0+1000, got, want)
	}
}
