package fsm

import (
	"fmt"

	"github.com/masterkv/masterkv/internal/command"
)

// MaxBase is the highest epoch a rebase may move above. A group issues
// one epoch per entry, so 2^52 is out of reach (at 10,000 entries a second,
// 14,000 years), leaves as much room again above it before a uint64 could
// overflow, and stays an integer a JSON double holds exactly. A store
// epoch above it is a hand-set value, not an older generation's: it is
// refused and reported, never followed.
const MaxBase uint64 = 1 << 52

// Generation is the group's epoch base: a record committed by the entry
// at raft index i gets epoch Base+i. A group bootstrapped again from empty
// data directories restarts at index 1 while the stores hold its
// predecessor's epochs; its first leader commits a rebase above the
// highest of them, so epochs stay monotonic across generations. See
// DESIGN.md "Epoch generations".
type Generation struct {
	// Base is added to the raft index to make an epoch; 0 until a rebase
	// raises it.
	Base uint64 `json:"base"`
	// Index is the raft index of the last rebase applied, raised or not;
	// 0 means the group never surveyed its stores.
	Index uint64 `json:"index"`
}

// Generation returns the epoch base and the index of the last rebase.
func (f *FSM) Generation() Generation {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.gen
}

// applyRebase raises the base so that this entry's epoch is Above+1, when
// it is not above Above already, and re-commits every record at it: every
// store then sees an epoch above its own and takes the group's masters.
// Epochs stay monotonic: the last epoch issued, Base+index-1, is below
// Base+index, which is at most Above. A rebase already satisfied changes no
// record (two leaders' surveys may race).
func (f *FSM) applyRebase(index uint64, c command.Command) Result {
	p := c.Rebase
	res := Result{Type: c.Type, Index: index}
	if p.Above > MaxBase {
		res.Err = &Error{Kind: KindEpochRange, Message: fmt.Sprintf(
			"rebase above epoch %d refused: more than the limit %d (a hand-set epoch?)", p.Above, MaxBase)}
		return res
	}
	f.gen.Index = index
	if f.gen.Base+index > p.Above {
		return res
	}
	f.gen.Base = p.Above + 1 - index
	for _, a := range sortedKeys(f.records) {
		res.Records = append(res.Records, f.record(index, c, command.Entry{Cluster: a, Master: f.records[a].Master}))
	}
	return res
}
