package fsm

import (
	"fmt"

	"github.com/masterkv/masterkv/internal/command"
)

// change says when a cluster's current master was set, for expected_epoch:
// Since is the epoch of the entry that set it (a submit re-commit or a
// failover to the same master keeps it), Prev the Since of the master it
// replaced. Zero means unknown: the record came from a snapshot taken
// before these were kept, or had no predecessor.
type change struct {
	Since uint64 `json:"since"`
	Prev  uint64 `json:"prev,omitempty"`
}

// changeEntry is a change in the snapshot, sorted by cluster.
type changeEntry struct {
	Cluster string `json:"cluster"`
	change
}

// since returns the epoch from which r's master is known to be current:
// the epoch it was set at, or, when that is unknown, r's own epoch (the
// master may have changed right then).
func (f *FSM) since(r Record) uint64 {
	if ch, ok := f.changes[r.Cluster]; ok && ch.Since != 0 {
		return ch.Since
	}
	return r.Epoch
}

// trackChange updates the change of r's cluster after r was written over
// old (existed false: the cluster is new).
func (f *FSM) trackChange(old Record, existed bool, r Record) {
	switch {
	case !existed:
		f.changes[r.Cluster] = change{Since: r.Epoch}
	case old.Master == r.Master:
		// Same master: the change it was set by stays the current one.
	default:
		f.changes[r.Cluster] = change{Since: r.Epoch, Prev: f.since(old)}
	}
}

// applyFailoverAtEpoch is a failover that names the epoch E its sender saw
// for the cluster (ExpectedEpoch). Epochs are raft indexes, so "the master
// has not changed since E" is since(cur) <= E <= cur.Epoch:
//
//   - then the change commits (Expected, when given, must also be the
//     current master);
//   - else, when the master was changed after E, the change is a redelivery
//     if and only if the change right after E set the master asked for
//     (E lies in the replaced master's span, Prev <= E < Since): it is
//     answered with the current record, marked Duplicate, and nothing is
//     committed. A later failback that made the same master current again
//     has a Prev above E, so it is refused like any other change;
//   - anything else is a conflict.
func (f *FSM) applyFailoverAtEpoch(index uint64, c command.Command) Result {
	p := c.Failover
	e := p.ExpectedEpoch
	refuse := func(format string, args ...any) Result {
		msg := fmt.Sprintf("cluster %q: ", p.Cluster) + fmt.Sprintf(format, args...) + fmt.Sprintf("; refusing to set %s", p.Master.HostPort())
		return Result{Type: c.Type, Index: index, Err: &Error{Kind: KindConflict, Message: msg}}
	}
	cur, exists := f.records[p.Cluster]
	if !exists {
		return refuse("not in the store, so expected_epoch %d cannot be its epoch", e)
	}
	now, since := cur.Master.HostPort(), f.since(cur)
	switch {
	case e > cur.Epoch:
		return refuse("expected_epoch %d is newer than the record's epoch %d", e, cur.Epoch)
	case e >= since:
		if p.Expected != "" && now != p.Expected {
			return refuse("current master is %s, not the expected %s", now, p.Expected)
		}
		return Result{Type: c.Type, Index: index, Records: []Record{f.record(index, c, p.Entry)}}
	}
	if ch := f.changes[p.Cluster]; cur.Master == p.Master && ch.Prev != 0 && ch.Prev <= e {
		return Result{Type: c.Type, Index: index, Records: []Record{cur}, Duplicate: true}
	}
	return refuse("master is %s since epoch %d, after the expected_epoch %d", now, since, e)
}
