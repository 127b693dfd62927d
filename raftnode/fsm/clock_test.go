package fsm_test

import (
	"testing"
	"time"

	"github.com/masterkv/masterkv/raftnode/fsm"
)

// TestFastClockDoesNotExpireIDs: a leader whose clock runs three days ahead
// proposes one command. Ids remembered an hour ago must survive it, and a
// retry of one must still be a duplicate, in Lookup as in Apply.
func TestFastClockDoesNotExpireIDs(t *testing.T) {
	f := fsm.New()
	first := apply(t, f, 1, failover("hook-1", t0, "main", m1, ""))
	// An hour of ordinary traffic, a command a minute.
	index := uint64(2)
	for at := t0 + time.Minute.Milliseconds(); at <= t0+time.Hour.Milliseconds(); at += time.Minute.Milliseconds() {
		apply(t, f, index, submit("", at, "main"))
		index++
	}
	fast := t0 + time.Hour.Milliseconds() + 72*time.Hour.Milliseconds()
	apply(t, f, index, failover("", fast, "other", m2, ""))
	index++

	retry := failover("hook-1", t0+time.Hour.Milliseconds()+1000, "main", m1, "")
	if res, ok, err := f.Lookup(retry); !ok || err != nil || res.Index != first.Index {
		t.Errorf("Lookup(retry of hook-1) = %+v, %v, %v; want a duplicate of index %d", res, ok, err, first.Index)
	}
	if res := apply(t, f, index, retry); !res.Duplicate || res.Index != first.Index {
		t.Errorf("retry of hook-1 after a command 3 days ahead = %+v; want a duplicate of index %d", res, first.Index)
	}
}
