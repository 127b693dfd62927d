package node

import (
	"errors"
	"fmt"
	"sync"
)

// ErrCatchingUp: the node restarted and has not yet applied the log it
// started with, so its store may hold records older than committed state.
var ErrCatchingUp = errors.New("this node is catching up after a restart")

// Ready reports whether the node can serve every request now: a leader is
// known (so a write commits here or is forwarded without waiting for an
// election) and the store has caught up (so reads are current). The error
// says which is missing; /readyz and `make run` wait for nil.
func (n *Node) Ready() error {
	if _, id := n.raft.LeaderWithID(); id == "" {
		return fmt.Errorf("%s: %w (election in progress or quorum lost)", n.raft.State(), ErrNoLeader)
	}
	if !n.CaughtUp() {
		return ErrCatchingUp
	}
	return nil
}

// broadcast wakes every waiter at once: wait returns a channel that is
// closed at the next notify.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *broadcast) notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}
