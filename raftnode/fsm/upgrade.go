package fsm

import "github.com/masterkv/masterkv/internal/command"

// skip applies an entry of a type this release does not know that its
// proposer marked ignorable (command.Decode refuses any other): nothing
// changes but the applied index and the command clock, so the node keeps up
// with the log through a rolling upgrade. The clock moves (and ids expire)
// exactly as on a node that knows the type, or the two would answer
// retries differently. Its ID is not remembered: the command never ran
// here. See DESIGN.md "Upgrade rule".
func (f *FSM) skip(index uint64, c command.Command) Result {
	f.mu.Lock()
	f.clock = nextClock(f.clock, c.At)
	f.expireIDs()
	f.index = index
	f.mu.Unlock()
	return Result{Type: command.Unknown, Index: index, Skipped: true, SkippedType: c.TypeName}
}
