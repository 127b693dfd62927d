package fsm

import "github.com/masterkv/masterkv/internal/command"

// skip applies an entry of a type this release does not know that its
// proposer marked ignorable (command.Decode refuses any other): nothing
// changes but the applied index, so the node keeps up with the log through
// a rolling upgrade. Its ID is not remembered: the command never ran here.
// See DESIGN.md "Upgrade rule".
func (f *FSM) skip(index uint64, c command.Command) Result {
	f.mu.Lock()
	f.index = index
	f.mu.Unlock()
	return Result{Type: command.Unknown, Index: index, Skipped: true, SkippedType: c.TypeName}
}
