package fsm

import (
	"fmt"

	"github.com/masterkv/masterkv/internal/command"
)

// The id table remembers, per idempotency key, what a retry's answer
// needs: the request's fingerprint and a summary of its first result. Its
// retention policy (DESIGN.md "Idempotency"):
//
//   - a key is forgotten IDTTL after it was first seen, on the command clock;
//   - a remembered result keeps its type, index, epoch, counts and error,
//     and its records only when there are at most KeepRecords of them (a
//     failover's one record always; a submit of every cluster never);
//   - the table holds at most MaxIDs keys and MaxIDBytes approximate bytes
//     (see entrySize); a new key that would exceed either makes the oldest
//     keys go first, before their TTL.
//
// Everything here depends only on the log: the sizes are computed from the
// entries' contents, the order is the order of the log, so every node
// forgets the same keys at the same entry. The limits are part of what
// Apply does: changing them changes the replicated state, like IDTTL.
const (
	// KeepRecords is the most records a remembered result keeps.
	KeepRecords = 8
	// MaxIDs is the most keys the table holds: about eight days of a keyed
	// submit, a keyed populate and a few failovers every minute.
	MaxIDs = 25_000
	// MaxIDBytes bounds the table's approximate size (entrySize summed):
	// 25,000 failovers with their record fit; in memory and in the
	// snapshot the table stays within a few times this.
	MaxIDBytes = 4 << 20
)

// idLimits are the table's bounds; New uses MaxIDs and MaxIDBytes.
type idLimits struct {
	entries int
	bytes   int
}

type seenID struct {
	ID          string `json:"id"`
	Fingerprint string `json:"fingerprint"`
	SeenAt      int64  `json:"seen_at"`
	Result      Result `json:"result"`
	size        int    // entrySize, kept to settle idBytes on removal
}

// Sizes entrySize charges for what is not a string of the entry: the
// table's map and queue slots, the result's fixed fields, a record's
// fixed fields. They approximate the JSON of the snapshot, which is the
// larger of the two forms.
const (
	entryOverhead  = 160
	recordOverhead = 160
)

// entrySize is the approximate size of s in bytes: fixed overheads plus
// the lengths of its strings. It depends on s's contents only.
func entrySize(s *seenID) int {
	n := entryOverhead + len(s.ID) + len(s.Fingerprint)
	if e := s.Result.Err; e != nil {
		n += len(e.Kind) + len(e.Message)
	}
	n += len(s.Result.SkippedType)
	for _, r := range s.Result.Records {
		n += recordOverhead + len(r.Cluster) + len(r.Master.Host) + len(r.Master.IPv4) + len(r.Master.IPv6) + len(r.RequestID)
	}
	return n
}

// summary returns what the table keeps of res: all of it but the records
// of a result with more than KeepRecords. Count and Epoch still say how
// many and at which epoch.
func summary(res Result) Result {
	if len(res.Records) > KeepRecords {
		res.Records = nil
	}
	return res
}

// remember adds id's first result, then forgets the oldest keys while the
// table is over a limit. The newest key always stays.
func (f *FSM) remember(id, fp string, res Result) {
	s := &seenID{ID: id, Fingerprint: fp, SeenAt: f.clock, Result: summary(res)}
	s.size = entrySize(s)
	f.ids[id] = s
	f.idOrder = append(f.idOrder, s)
	f.idBytes += s.size
	n := 0
	for len(f.ids) > 1 && (len(f.ids) > f.limits.entries || f.idBytes > f.limits.bytes) {
		f.forget(f.idOrder[n])
		n++
	}
	f.dropOldest(n)
}

// expireIDs forgets keys older than IDTTL on the command clock. The clock
// only moves forward, so idOrder stays sorted.
func (f *FSM) expireIDs() {
	cut := f.clock - IDTTL.Milliseconds()
	n := 0
	for n < len(f.idOrder) && f.idOrder[n].SeenAt <= cut {
		f.forget(f.idOrder[n])
		n++
	}
	f.dropOldest(n)
}

// forget removes s from the id map; the caller drops it from idOrder.
func (f *FSM) forget(s *seenID) {
	if f.ids[s.ID] == s {
		delete(f.ids, s.ID)
		f.idBytes -= s.size
	}
}

// dropOldest removes the first n entries of idOrder, copying the rest so
// the queue does not keep the forgotten entries' memory.
func (f *FSM) dropOldest(n int) {
	if n > 0 {
		f.idOrder = append([]*seenID(nil), f.idOrder[n:]...)
	}
}

// setIDs replaces the table with entries, oldest first, as restored from a
// snapshot: each result becomes its summary (a snapshot of an older
// release holds whole results) and the limits apply as if every entry had
// been remembered in turn, so a restored node keeps the very keys a node
// that applied the log keeps.
func (f *FSM) setIDs(entries []seenID) {
	f.ids = make(map[string]*seenID, len(entries))
	f.idOrder = make([]*seenID, 0, len(entries))
	f.idBytes = 0
	clock := f.clock
	for _, s := range entries {
		if s.Result.Count == 0 { // an older release's: counted here
			s.Result.Count = len(s.Result.Records)
		}
		if s.Result.Epoch == 0 && len(s.Result.Records) > 0 {
			s.Result.Epoch = s.Result.Records[0].Epoch
		}
		f.clock = s.SeenAt
		f.remember(s.ID, s.Fingerprint, s.Result)
	}
	f.clock = clock
}

// IDStats reports the id table's size: keys remembered and their
// approximate bytes (entrySize), for status, tests and benchmarks.
func (f *FSM) IDStats() (entries, bytes int) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.ids), f.idBytes
}

func (f *FSM) lookupLocked(id, fp string) (Result, bool, *Error) {
	s, ok := f.ids[id]
	if !ok {
		return Result{}, false, nil
	}
	if s.Fingerprint != fp {
		return Result{}, false, &Error{Kind: KindIDReused, Message: fmt.Sprintf(
			"id %q was already used for a different request within %s", id, IDTTL)}
	}
	res := s.Result
	res.Duplicate = true
	return res, true, nil
}

// Lookup reports the stored result for a command's ID, so a node can answer
// a retry without committing anything. ok is false when the ID is unknown.
// A result with more than KeepRecords records comes back as its summary:
// Count and Epoch, no Records.
func (f *FSM) Lookup(c command.Command) (res Result, ok bool, err error) {
	if c.ID == "" {
		return Result{}, false, nil
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	// Expiry runs in Apply; a key past its TTL on the clock Apply will use
	// for c is already unknown to it, so it is unknown here too.
	if s, ok := f.ids[c.ID]; ok && s.SeenAt <= nextClock(f.clock, c.At)-IDTTL.Milliseconds() {
		return Result{}, false, nil
	}
	r, ok, e := f.lookupLocked(c.ID, command.Fingerprint(c))
	if e != nil {
		return Result{}, false, e
	}
	return r, ok, nil
}
