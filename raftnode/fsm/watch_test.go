package fsm

import (
	"testing"

	"github.com/hashicorp/raft"

	"github.com/masterkv/masterkv/internal/command"
	"github.com/masterkv/masterkv/internal/master"
)

func (f *FSM) watcherCount() int {
	f.watchMu.Lock()
	defer f.watchMu.Unlock()
	return len(f.watchers)
}

// TestWatchCancelRemovesWatcher starts and stops 200 watchers, as the distributor
// does when it starts publishers on every leadership gain: none may be left.
func TestWatchCancelRemovesWatcher(t *testing.T) {
	f := New()
	for range 200 {
		_, cancel := f.Watch()
		cancel()
	}
	if n := f.watcherCount(); n != 0 {
		t.Errorf("after 200 start/stop cycles %d watchers are left, want 0", n)
	}
}

// TestWatchCancel checks that a cancelled watcher hears nothing more, a
// live one still does, and a second cancel is harmless.
func TestWatchCancel(t *testing.T) {
	f := New()
	gone, cancelGone := f.Watch()
	live, cancelLive := f.Watch()
	defer cancelLive()
	cancelGone()
	cancelGone()

	b, err := command.Encode(command.Command{Type: command.Failover, At: 1, Failover: &command.FailoverPayload{
		Entry: command.Entry{Cluster: "main", Master: master.Master{Host: "db1", Port: 3306}}}})
	if err != nil {
		t.Fatal(err)
	}
	f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: b})
	select {
	case <-live:
	default:
		t.Errorf("live watcher got no signal after an Apply that changed a record")
	}
	select {
	case <-gone:
		t.Errorf("cancelled watcher got a signal")
	default:
	}
	if n := f.watcherCount(); n != 1 {
		t.Errorf("watchers = %d, want 1", n)
	}
}
