package node

import (
	"errors"
	"strconv"
	"sync"

	"github.com/hashicorp/raft"
)

// catchUp tracks whether a restarted node's store reflects the log it
// started with. hashicorp/raft restores only the latest snapshot at start;
// the entries after it are applied once a leader confirms the commit index,
// so until then the store may hold records older than its own log.
type catchUp struct {
	mu     sync.Mutex
	target entryRef // the last command in the log at start
	done   bool
}

// entryRef names a log entry by index and term, so a replaced entry (a new
// leader truncating an uncommitted tail) can be told from the original.
type entryRef struct {
	index, term uint64
}

// lastCommand finds the last command entry in logs above the latest
// snapshot, at or below upTo (0: the end of the log). Its zero value means
// the snapshot already covers every command.
func lastCommand(logs raft.LogStore, snaps raft.SnapshotStore, upTo uint64) (entryRef, error) {
	last, err := logs.LastIndex()
	if err != nil {
		return entryRef{}, err
	}
	if upTo > 0 && upTo < last {
		last = upTo
	}
	first, err := logs.FirstIndex()
	if err != nil {
		return entryRef{}, err
	}
	if metas, err := snaps.List(); err == nil && len(metas) > 0 && metas[0].Index >= first {
		first = metas[0].Index + 1
	}
	for i := last; i >= first && i > 0; i-- {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) {
				continue
			}
			return entryRef{}, err
		}
		if l.Type == raft.LogCommand {
			return entryRef{index: l.Index, term: l.Term}, nil
		}
	}
	return entryRef{}, nil
}

// CaughtUp reports whether the store has applied every command this node's
// log held when it started, or, if a new leader replaced that uncommitted
// tail, every committed command up to the commit index. Publishers wait for
// it before their first write, and reads refuse until it holds, so a
// restarted node never exposes a master older than its own log.
func (n *Node) CaughtUp() bool {
	n.catchUp.mu.Lock()
	defer n.catchUp.mu.Unlock()
	if n.catchUp.done {
		return true
	}
	applied := n.fsm.AppliedIndex()
	t := n.catchUp.target
	if t.index > 0 && applied < t.index {
		var l raft.Log
		err := n.deps.Logs.GetLog(t.index, &l)
		replaced := errors.Is(err, raft.ErrLogNotFound) || err == nil && (l.Term != t.term || l.Type != raft.LogCommand)
		if !replaced {
			return false
		}
		// The tail was replaced: only what the leader committed counts.
		commit, _ := strconv.ParseUint(n.raft.Stats()["commit_index"], 10, 64)
		if commit == 0 {
			return false
		}
		nt, err := lastCommand(n.deps.Logs, n.snaps, commit)
		if err != nil {
			return false
		}
		n.catchUp.target, t = nt, nt
	}
	if applied >= t.index {
		n.catchUp.done = true
	}
	return n.catchUp.done
}
