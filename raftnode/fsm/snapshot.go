package fsm

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/hashicorp/raft"
)

// state is the snapshot format: JSON, records sorted by cluster, remembered
// idempotency keys oldest first.
type state struct {
	Clock int64  `json:"clock"`
	Index uint64 `json:"index"`
	// Generation is absent in snapshots from before epoch generations:
	// base 0, which is what those releases used.
	Generation Generation `json:"generation,omitzero"`
	Records    []Record   `json:"records"`
	// Changes says when each record's master was set (for expected_epoch),
	// sorted by cluster; absent from older snapshots, ignored by older
	// releases.
	Changes []changeEntry `json:"changes,omitempty"`
	IDs     []seenID      `json:"ids"`
}

func readState(r io.Reader) (state, error) {
	var st state
	if err := json.NewDecoder(r).Decode(&st); err != nil {
		return state{}, fmt.Errorf("restore snapshot: %w", err)
	}
	return st, nil
}

type snapshot struct{ state state }

var _ raft.FSMSnapshot = (*snapshot)(nil)

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s.state); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *snapshot) Release() {}
