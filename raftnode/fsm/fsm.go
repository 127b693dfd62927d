// Package fsm is masterkv's internal master store: the raft finite state
// machine that holds one master record per cluster alias.
//
// Apply is pure and deterministic: it reads no clock (time comes from the
// command) and does no I/O, so every node that applies the same log holds the
// same records. Pushing records to Consul or ZooKeeper happens elsewhere,
// from committed state.
package fsm

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/masterkv/masterkv/internal/command"
	"github.com/masterkv/masterkv/internal/master"
)

// IDTTL is how long an idempotency key is remembered. Webhooks, Lambda
// retries and schedules redeliver within minutes; a day leaves a wide margin.
const IDTTL = 24 * time.Hour

// Record is the committed master of one cluster.
type Record struct {
	Cluster string        `json:"cluster"`
	Master  master.Master `json:"master"`
	// Epoch is the group's epoch base plus the raft index of the entry
	// that last wrote this record (see generation.go). It never decreases,
	// also across group generations, and serves as the fencing number in
	// the stores.
	Epoch     uint64       `json:"epoch"`
	UpdatedAt time.Time    `json:"updated_at"`
	Source    command.Type `json:"source"`
	RequestID string       `json:"request_id,omitempty"`
}

// FSM implements raft.FSM. A read/write lock guards the state so readers
// never see a Restore half done.
type FSM struct {
	mu      sync.RWMutex
	records map[string]Record
	changes map[string]change // when each master was set, for expected_epoch
	ids     map[string]*seenID
	idOrder []*seenID  // by SeenAt, oldest first, for expiry
	idBytes int        // entrySize of every key in ids, summed
	limits  idLimits   // bounds of the id table: see ids.go
	clock   int64      // command clock, Unix ms: see nextClock
	index   uint64     // raft index of the last command applied
	gen     Generation // epoch base, set by rebase commands
	restore uint64     // number of Restore calls, for tests and status

	watchMu  sync.Mutex
	watchers map[chan struct{}]struct{}
}

var _ raft.FSM = (*FSM)(nil)

// New returns an empty store.
func New() *FSM {
	return &FSM{
		records: map[string]Record{}, changes: map[string]change{}, ids: map[string]*seenID{},
		limits: idLimits{entries: MaxIDs, bytes: MaxIDBytes}, watchers: map[chan struct{}]struct{}{},
	}
}

// Apply commits one log entry. It panics on an entry it cannot decode:
// that is a bug or a corrupt log, and going on would let nodes diverge.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	c, err := command.Decode(l.Data)
	if err != nil {
		panic(fmt.Sprintf("fsm: entry %d: %v", l.Index, err))
	}
	if c.Type == command.Unknown { // a newer release's ignorable command
		return f.skip(l.Index, c)
	}
	f.mu.Lock()
	res := f.apply(l.Index, c)
	f.index = l.Index
	f.mu.Unlock()
	if len(res.Records) > 0 && !res.Duplicate {
		f.notify()
	}
	return res
}

// Watch returns a channel that receives a signal after every Apply that
// changed records and after every Restore. Signals coalesce: a watcher
// reads the current state when woken, so it never needs them all.
//
// cancel removes the watcher; the channel then receives nothing more. A
// watcher that stops must call it (publishers start and stop with every
// leadership change), and calling it again does nothing.
func (f *FSM) Watch() (ch <-chan struct{}, cancel func()) {
	c := make(chan struct{}, 1)
	f.watchMu.Lock()
	f.watchers[c] = struct{}{}
	f.watchMu.Unlock()
	return c, func() {
		f.watchMu.Lock()
		delete(f.watchers, c)
		f.watchMu.Unlock()
	}
}

// notify wakes every watcher without blocking Apply.
func (f *FSM) notify() {
	f.watchMu.Lock()
	defer f.watchMu.Unlock()
	for ch := range f.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (f *FSM) apply(index uint64, c command.Command) Result {
	f.clock = nextClock(f.clock, c.At)
	f.expireIDs()
	fp := ""
	if c.ID != "" {
		fp = command.Fingerprint(c)
		if res, ok, err := f.lookupLocked(c.ID, fp); ok {
			return res
		} else if err != nil {
			return Result{Type: c.Type, Index: index, Err: err}
		}
	}
	var res Result
	switch c.Type {
	case command.Failover:
		res = f.applyFailover(index, c)
	case command.Submit:
		res = f.applySubmit(index, c)
	case command.Rebase:
		res = f.applyRebase(index, c)
	case command.Populate:
		res = f.applyPopulate(index, c)
	}
	res.Count = len(res.Records)
	if len(res.Records) > 0 {
		res.Epoch = res.Records[0].Epoch
	}
	if c.ID != "" {
		f.remember(c.ID, fp, res)
	}
	return res
}

func (f *FSM) record(index uint64, c command.Command, e command.Entry) Record {
	r := Record{
		Cluster: e.Cluster, Master: e.Master, Epoch: f.gen.Base + index,
		UpdatedAt: time.UnixMilli(c.At).UTC(), Source: c.Type, RequestID: c.ID,
	}
	old, existed := f.records[e.Cluster]
	f.records[e.Cluster] = r
	f.trackChange(old, existed, r)
	return r
}

func (f *FSM) applyFailover(index uint64, c command.Command) Result {
	p := c.Failover
	if p.ExpectedEpoch != 0 {
		return f.applyFailoverAtEpoch(index, c)
	}
	cur, exists := f.records[p.Cluster]
	if p.Expected != "" && exists {
		now := cur.Master.HostPort()
		if now != p.Expected && now != p.Master.HostPort() {
			return Result{Type: c.Type, Index: index, Err: &Error{Kind: KindConflict, Message: fmt.Sprintf(
				"cluster %q: current master is %s, not the expected %s; refusing to set %s",
				p.Cluster, now, p.Expected, p.Master.HostPort())}}
		}
	}
	return Result{Type: c.Type, Index: index, Records: []Record{f.record(index, c, p.Entry)}}
}

// applySubmit re-commits records with this entry as their epoch, so every
// store sees a newer epoch and rewrites the cluster; no force flag needed.
func (f *FSM) applySubmit(index uint64, c command.Command) Result {
	res := Result{Type: c.Type, Index: index}
	var aliases []string
	if alias := c.Submit.Cluster; alias != "" {
		if _, ok := f.records[alias]; !ok {
			res.Err = &Error{Kind: KindUnknownCluster, Message: fmt.Sprintf("cluster %q is not in the store", alias)}
			return res
		}
		aliases = []string{alias}
	} else {
		aliases = sortedKeys(f.records)
	}
	for _, a := range aliases {
		old := f.records[a]
		res.Records = append(res.Records, f.record(index, c, command.Entry{Cluster: a, Master: old.Master}))
	}
	return res
}

// applyPopulate injects only clusters the store lacks (inject once).
func (f *FSM) applyPopulate(index uint64, c command.Command) Result {
	res := Result{Type: c.Type, Index: index, Checked: len(c.Populate.Masters)}
	for _, e := range c.Populate.Masters {
		if _, ok := f.records[e.Cluster]; ok {
			continue
		}
		res.Records = append(res.Records, f.record(index, c, e))
	}
	return res
}

// Record returns the record of alias.
func (f *FSM) Record(alias string) (Record, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	r, ok := f.records[alias]
	return r, ok
}

// Records returns every record, sorted by cluster.
func (f *FSM) Records() []Record {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Record, 0, len(f.records))
	for _, a := range sortedKeys(f.records) {
		out = append(out, f.records[a])
	}
	return out
}

// AppliedIndex returns the raft index of the last command this store
// applied (restored snapshots included). Unlike raft's AppliedIndex, which
// counts entries handed to the FSM goroutine, it moves only once the
// records reflect the entry.
func (f *FSM) AppliedIndex() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.index
}

// Len returns the number of clusters.
func (f *FSM) Len() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.records)
}

// Restores returns how many times a snapshot was restored into this FSM.
func (f *FSM) Restores() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.restore
}

func sortedKeys(m map[string]Record) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Snapshot captures the state; Persist may run while Apply goes on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	st := state{Clock: f.clock, Index: f.index, Generation: f.gen, Records: make([]Record, 0, len(f.records)), IDs: make([]seenID, 0, len(f.idOrder))}
	for _, a := range sortedKeys(f.records) {
		st.Records = append(st.Records, f.records[a])
		if ch, ok := f.changes[a]; ok {
			st.Changes = append(st.Changes, changeEntry{Cluster: a, change: ch})
		}
	}
	for _, s := range f.idOrder {
		if f.ids[s.ID] == s {
			st.IDs = append(st.IDs, *s)
		}
	}
	return &snapshot{state: st}, nil
}

// Restore replaces the whole state with a snapshot's (never a merge).
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, err := readState(rc)
	if err != nil {
		return err
	}
	records := make(map[string]Record, len(st.Records))
	for _, r := range st.Records {
		records[r.Cluster] = r
	}
	changes := make(map[string]change, len(st.Changes))
	for _, ch := range st.Changes {
		changes[ch.Cluster] = ch.change
	}
	f.mu.Lock()
	f.records, f.changes, f.clock, f.index = records, changes, st.Clock, st.Index
	f.setIDs(st.IDs)
	f.gen = st.Generation
	f.restore++
	f.mu.Unlock()
	f.notify()
	return nil
}
