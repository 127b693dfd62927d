package fsm

import (
	"errors"

	"github.com/masterkv/masterkv/internal/command"
)

// Application errors returned by Apply as its response. They are part of the
// replicated outcome of a command, not failures of raft.
var (
	// ErrConflict: a failover's expected master is not the current one.
	ErrConflict = errors.New("conflict")
	// ErrUnknownCluster: a submit named a cluster the store does not hold.
	ErrUnknownCluster = errors.New("unknown cluster")
	// ErrIDReused: an idempotency key was reused for a different request.
	ErrIDReused = errors.New("idempotency key reused")
	// ErrEpochRange: a rebase asked for a base above MaxBase.
	ErrEpochRange = errors.New("epoch out of range")
)

// ErrorKind names an application error so that it survives snapshots.
type ErrorKind string

// The kinds, one per sentinel above.
const (
	KindConflict       ErrorKind = "conflict"
	KindUnknownCluster ErrorKind = "unknown_cluster"
	KindIDReused       ErrorKind = "id_reused"
	KindEpochRange     ErrorKind = "epoch_range"
)

// Error is an application error with its message.
type Error struct {
	Kind    ErrorKind `json:"kind"`
	Message string    `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// Is maps a kind to its sentinel for errors.Is.
func (e *Error) Is(target error) bool {
	switch e.Kind {
	case KindConflict:
		return target == ErrConflict
	case KindUnknownCluster:
		return target == ErrUnknownCluster
	case KindIDReused:
		return target == ErrIDReused
	case KindEpochRange:
		return target == ErrEpochRange
	}
	return false
}

// Result is the outcome of one command, identical on every node.
type Result struct {
	Type command.Type `json:"type"`
	// Index is the raft index of the entry that produced this result. For a
	// duplicate it is the index of the first entry with the same ID.
	Index uint64 `json:"index"`
	// Records are the records the command committed: the failover's
	// cluster, the submitted clusters, or the injected ones of a populate.
	// A remembered result (a duplicate's answer) keeps them only up to
	// KeepRecords; Count and Epoch are always there.
	Records []Record `json:"records,omitempty"`
	// Count is the number of records the command committed, and Epoch
	// their epoch (one entry commits all its records at one epoch; for an
	// expected_epoch redelivery, the current record's). Both 0 when none.
	Count int    `json:"count,omitempty"`
	Epoch uint64 `json:"epoch,omitempty"`
	// Checked counts the masters a populate looked at; the ones not in
	// Records were skipped because the store already had their cluster.
	Checked int `json:"checked,omitempty"`
	// Err is the application error, if the command was refused.
	Err *Error `json:"err,omitempty"`
	// Skipped is true when this node does not know the command's type and
	// the proposer marked it ignorable: nothing was applied here.
	// SkippedType is the type's name as written.
	Skipped     bool   `json:"skipped,omitempty"`
	SkippedType string `json:"skipped_type,omitempty"`
	// Duplicate is true when the ID was seen before and nothing new was
	// committed; Index, Count, Epoch and Records (when kept) are those of
	// the first time.
	Duplicate bool `json:"-"`
}

// Error returns Err as an error, or nil.
func (r Result) Error() error {
	if r.Err == nil {
		return nil
	}
	return r.Err
}
