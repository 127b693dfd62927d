package node

import "github.com/hashicorp/raft"

// Raft gives this package's tests the raft instance, to apply raw log
// entries and read indexes raft keeps.
func (n *Node) Raft() *raft.Raft { return n.raft }
