// Package command defines the entries masterkv commits through raft: one
// envelope with a typed operation and its payload, encoded as JSON.
//
// A command carries everything Apply needs, including the proposer's clock
// (At), so that applying the same log on any node yields the same state.
package command

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/masterkv/masterkv/internal/master"
)

// Type is the operation of a command. Its zero value is Unknown, so a
// command that lost its type can never be mistaken for a real one.
type Type uint8

// The operations.
const (
	Unknown  Type = iota
	Failover      // set one cluster's master (overwrite)
	Submit        // re-commit current records of all clusters or one
	Populate      // inject masters for clusters the store lacks
	Rebase        // raise the epoch base above what the stores hold
)

var typeNames = [...]string{"unknown", "failover", "submit", "populate", "rebase"}

// KnownTypes returns the names of every type this release applies, for
// status: the leader proposes a new type that is not ignorable only once
// every voter lists it (DESIGN.md "Upgrade rule").
func KnownTypes() []string {
	return append([]string(nil), typeNames[1:]...)
}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// MarshalText encodes the type by name so that logs and snapshots read well.
func (t Type) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText decodes a name; an unknown name decodes to Unknown.
func (t *Type) UnmarshalText(b []byte) error {
	*t = Unknown
	for i, n := range typeNames {
		if n == string(b) {
			*t = Type(i)
		}
	}
	return nil
}

// Entry is one cluster and its master.
type Entry struct {
	Cluster string        `json:"cluster"`
	Master  master.Master `json:"master"`
}

// FailoverPayload sets Cluster's master. When Expected (host:port) is set,
// the change is refused unless the current master is Expected or already
// the new master, so a late webhook cannot roll the cluster back past a
// later, different master; compared by value, it cannot tell A from A
// again after a failback (ABA).
//
// ExpectedEpoch, when set, is an epoch the sender saw for the cluster
// before the failure: the change is refused unless the master has not
// changed since that epoch, or the change right after it already set the
// very master asked for (a redelivery, answered without a new commit).
// It holds across failbacks. See raftnode/DESIGN.md "`expected` and
// reordering".
type FailoverPayload struct {
	Entry
	Expected      string `json:"expected,omitempty"`
	ExpectedEpoch uint64 `json:"expected_epoch,omitempty"`
}

// SubmitPayload re-commits Cluster, or every cluster when Cluster is empty.
type SubmitPayload struct {
	Cluster string `json:"cluster,omitempty"`
}

// PopulatePayload injects each master whose cluster the store lacks.
type PopulatePayload struct {
	Masters []Entry `json:"masters"`
}

// RebasePayload raises the group's epoch base so that every epoch issued
// from this entry on is above Above, the highest epoch found in the stores
// (an older generation of the group wrote it). Apply re-commits every
// record at the new base. A rebase that finds the epochs already above
// Above changes no record. It is never ignorable: a node that skipped it
// would issue other epochs than its peers. See DESIGN.md "Epoch generations".
type RebasePayload struct {
	Above uint64 `json:"above"`
	// Reason says what found Above (the bootstrap survey, a stale write),
	// and which store, for the log and the result.
	Reason string `json:"reason,omitempty"`
}

// Command is the envelope committed to the raft log.
type Command struct {
	Type Type `json:"type"`
	// ID is the idempotency key; empty means none.
	ID string `json:"id,omitempty"`
	// At is the proposer's wall clock in Unix milliseconds. Apply uses it
	// as "now" (updated_at, idempotency expiry) and never reads a clock.
	At int64 `json:"at"`
	// Ignorable marks a command that a node which does not know its Type
	// may skip (the rolling-upgrade rule, as Consul's IgnoreUnknownTypeFlag):
	// only for commands whose effect an older node can go without. A
	// command that changes records is never ignorable; see DESIGN.md
	// "Upgrade rule". A node that knows the type applies it either way.
	Ignorable bool `json:"ignorable,omitempty"`
	// TypeName is the type as written in the entry when this release does
	// not know it (Type is then Unknown). Set by Decode, never encoded.
	TypeName string `json:"-"`
	// Fingerprint, when set, identifies the request as the caller sent it,
	// before the proposer completed it (DNS lookups may answer differently
	// on a retry). Empty means Fingerprint computes it from the payload.
	Fingerprint string `json:"fingerprint,omitempty"`

	Failover *FailoverPayload `json:"failover,omitempty"`
	Submit   *SubmitPayload   `json:"submit,omitempty"`
	Populate *PopulatePayload `json:"populate,omitempty"`
	Rebase   *RebasePayload   `json:"rebase,omitempty"`
}

// Encode returns the log entry bytes of c.
func Encode(c Command) ([]byte, error) {
	return json.Marshal(c)
}

// Decode parses a log entry. It fails on bytes that are not a command, on
// a command whose payload does not match its type, and on a type this
// release does not know unless the entry is marked Ignorable: that one
// decodes with Type Unknown and TypeName set, for Apply to skip.
func Decode(b []byte) (Command, error) {
	var c Command
	if err := json.Unmarshal(b, &c); err != nil {
		return Command{}, fmt.Errorf("decode command: %w", err)
	}
	if c.Type == Unknown {
		return decodeUnknown(b, c)
	}
	ok := false
	switch c.Type {
	case Failover:
		ok = c.Failover != nil
	case Submit:
		ok = c.Submit != nil
	case Populate:
		ok = c.Populate != nil
	case Rebase:
		ok = c.Rebase != nil
	}
	if !ok {
		return Command{}, fmt.Errorf("decode command: type %s without its payload", c.Type)
	}
	return c, nil
}

// decodeUnknown handles an entry whose type this release does not know. A
// newer release's type marked Ignorable decodes (payload left out); any
// other is an error: a missing type, the zero "unknown", or a type every
// node must apply.
func decodeUnknown(b []byte, c Command) (Command, error) {
	var head struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(b, &head) // b decoded into c already: a string or absent
	if head.Type == "" || head.Type == Unknown.String() {
		return Command{}, fmt.Errorf("decode command: type %s without its payload", Unknown)
	}
	if !c.Ignorable {
		return Command{}, fmt.Errorf("decode command: type %q is not known to this release and not marked ignorable; upgrade this node", head.Type)
	}
	return Command{Type: Unknown, TypeName: head.Type, Ignorable: true, ID: c.ID, At: c.At}, nil
}

// Fingerprint identifies what a command asks for, ignoring its ID and
// clock, so a retried request can be told from a different request that
// reuses an idempotency key.
func Fingerprint(c Command) string {
	if c.Fingerprint != "" {
		return c.Fingerprint
	}
	c.ID, c.At = "", 0
	b, _ := json.Marshal(c) // plain structs: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
