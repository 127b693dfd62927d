package node

import (
	"strconv"

	"github.com/hashicorp/raft"

	"github.com/masterkv/masterkv/internal/command"
)

// Member is one server of the current raft configuration.
type Member struct {
	Peer
	Suffrage string `json:"suffrage"`
}

// Status is what GET /v1/status shows of the node.
type Status struct {
	NodeID       string   `json:"node_id"`
	State        string   `json:"state"`
	Leader       Peer     `json:"leader"`
	Peers        []Member `json:"peers"`
	Term         uint64   `json:"term"`
	LastIndex    uint64   `json:"last_index"`
	CommitIndex  uint64   `json:"commit_index"`
	AppliedIndex uint64   `json:"applied_index"`
	// StoreIndex is the index of the last command the internal store
	// applied; CaughtUp is false while a restarted node replays.
	StoreIndex        uint64 `json:"store_index"`
	CaughtUp          bool   `json:"caught_up"`
	LastSnapshotIndex uint64 `json:"last_snapshot_index"`
	// SnapshotRestores counts the snapshots restored into the FSM since
	// the process started: at start, and each time the leader sent one
	// because this node was too far behind for the log.
	SnapshotRestores uint64 `json:"snapshot_restores"`
	Clusters         int    `json:"clusters"`
	// RememberedIDs and RememberedIDBytes are the size of the id table
	// (idempotency keys and the summaries of their first results, bounded
	// by fsm.MaxIDs and fsm.MaxIDBytes).
	RememberedIDs     int `json:"remembered_ids"`
	RememberedIDBytes int `json:"remembered_id_bytes"`
	// CommandTypes are the command types this node's release applies.
	CommandTypes []string `json:"command_types"`
	// Generation is the group's epoch base and, on a node that runs the
	// guard, what its last survey of the stores found.
	Generation GenerationStatus `json:"generation"`
}

// Status reports the node's raft view.
func (n *Node) Status() Status {
	stats := n.raft.Stats()
	num := func(k string) uint64 { v, _ := strconv.ParseUint(stats[k], 10, 64); return v }
	s := Status{
		NodeID:            n.cfg.ID,
		State:             n.raft.State().String(),
		Term:              num("term"),
		LastIndex:         n.raft.LastIndex(),
		CommitIndex:       num("commit_index"),
		AppliedIndex:      n.raft.AppliedIndex(),
		StoreIndex:        n.fsm.AppliedIndex(),
		CaughtUp:          n.CaughtUp(),
		LastSnapshotIndex: num("last_snapshot_index"),
		SnapshotRestores:  n.fsm.Restores(),
		Clusters:          n.fsm.Len(),
		CommandTypes:      command.KnownTypes(),
		Generation:        GenerationStatus{Generation: n.fsm.Generation()},
	}
	s.RememberedIDs, s.RememberedIDBytes = n.fsm.IDStats()
	if g := n.gens.Load(); g != nil {
		s.Generation = g.Status()
	}
	addr, id := n.raft.LeaderWithID()
	if id != "" {
		s.Leader = n.peerOf(id, addr)
	}
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			s.Peers = append(s.Peers, Member{Peer: n.peerOf(srv.ID, srv.Address), Suffrage: srv.Suffrage.String()})
		}
	}
	return s
}

func (n *Node) peerOf(id raft.ServerID, addr raft.ServerAddress) Peer {
	p, ok := n.peers[string(id)]
	if !ok {
		p = Peer{ID: string(id)}
	}
	p.RaftAddr = string(addr)
	return p
}
