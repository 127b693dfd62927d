package consulkv

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/consul/api"

	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/kvstore"
)

// written remembers, per cluster, the keys and ModifyIndexes this store's
// last successful write transaction left in one datacenter. A change is then
// planned without a read transaction: every key of the cluster is in the
// write, as a cas or a check-index at the remembered index, so the
// transaction commits only if Consul still holds exactly what was
// remembered. Anything else (a hand edit, a delete, another writer) refuses
// it and the cluster is read for real. It never decides an outcome alone:
// "unchanged" and "stale" are only ever concluded from a read.
type lastWrites struct {
	mu          sync.Mutex
	m           map[string]lastWrite
	createFirst createFirst
}

// createFirst is the create-first policy, decided here alone: clusters
// this store has no record of are first tried with a create-only write
// (cas at index 0 on every key, planCreate), which needs no read and
// commits only if none of their keys exists. It starts off, is turned on
// when most clusters of a first-round read are absent (new clusters are
// being published), and off again when a transaction holding such a write
// is refused. Starting off matters: a new store (a restart, a new leader's
// sweep) usually faces a datacenter that holds every cluster, where each
// create-only transaction would be refused, a wasted raft write in Consul,
// before the read it was meant to save.
type createFirst struct{ on atomic.Bool }

// enabled reports whether unrecorded clusters are tried create-only.
func (p *createFirst) enabled() bool { return p.on.Load() }

// afterRead takes a read of n clusters, absent of which held no key, and
// reports whether it turned create-first on: only from a first round (a
// later round re-reads what create-only just failed on) and only when most
// are absent, not some (batches mixing absent and existing clusters would
// keep turning it on and having whole transactions refused).
func (p *createFirst) afterRead(firstRound bool, n, absent int) bool {
	if !firstRound || absent <= n/2 {
		return false
	}
	p.on.Store(true)
	return true
}

// afterConflict takes a transaction refused by a conflict: one that held a
// create-only write turns create-first off, as this datacenter already
// holds clusters.
func (p *createFirst) afterConflict(heldCreate bool) {
	if heldCreate {
		p.on.Store(false)
	}
}

// lastWrite is compact (two slices aligned with the cluster's pairs,
// not a map) because it is kept for every cluster: 10,000 clusters must fit
// a node's memory budget.
type lastWrite struct {
	values  []string
	indexes []uint64
}

func newLastWrites() *lastWrites { return &lastWrites{m: map[string]lastWrite{}} }

func (w *lastWrites) forget(alias string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.m, alias)
}

// remember records c as written by a transaction whose results carry the
// ModifyIndex of every key of c; a cluster with a key missing from the
// results is forgotten instead.
func (w *lastWrites) remember(c kvstore.Cluster, results map[string]uint64) {
	wc := lastWrite{values: make([]string, len(c.Pairs)), indexes: make([]uint64, len(c.Pairs))}
	for i, p := range c.Pairs {
		idx, ok := results[p.Key]
		if !ok {
			w.forget(c.Alias)
			return
		}
		wc.values[i], wc.indexes[i] = p.Value, idx
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.m[c.Alias] = wc
}

// rememberStored records c as held by Consul at the indexes read in st,
// which must hold every pair of c with its value.
func (w *lastWrites) rememberStored(c kvstore.Cluster, st stored) {
	idx := make([]uint64, len(c.Pairs))
	for i, p := range c.Pairs {
		idx[i] = st[p.Key].index
	}
	w.rememberAt(c, idx)
}

// rememberAt records c as held by Consul with pair i at indexes[i]. A
// record that already says exactly that is kept as it is: a pass re-reads
// every cluster each interval, and replacing 10,000 equal records would
// only make garbage.
func (w *lastWrites) rememberAt(c kvstore.Cluster, indexes []uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if wc, ok := w.m[c.Alias]; ok && slices.Equal(wc.indexes, indexes) && slices.EqualFunc(wc.values, c.Pairs, func(v string, p discovery.KVPair) bool { return v == p.Value }) {
		return
	}
	wc := lastWrite{values: make([]string, len(c.Pairs)), indexes: slices.Clone(indexes)}
	for i, p := range c.Pairs {
		wc.values[i] = p.Value
	}
	w.m[c.Alias] = wc
}

// planUnread plans c without a read: from its last write, or else
// create-only. ops is nil when c must be read; created reports a
// create-only plan.
func (w *lastWrites) planUnread(c kvstore.Cluster) (ops api.TxnOps, created bool) {
	if o, ok := w.planFromLastWrite(c); ok {
		return o, false
	}
	if o, ok := w.planCreate(c); ok {
		return o, true
	}
	return nil, false
}

// planFromLastWrite plans c against what was last written, or reports false when
// there is no record or nothing would change.
func (w *lastWrites) planFromLastWrite(c kvstore.Cluster) (api.TxnOps, bool) {
	w.mu.Lock()
	wc, ok := w.m[c.Alias]
	w.mu.Unlock()
	if !ok || len(wc.values) != len(c.Pairs) {
		return nil, false
	}
	if e, ok := discovery.EpochIndex(c.Pairs); ok {
		if have, err := kvstore.ParseEpoch(wc.values[e]); err != nil || have > c.Epoch {
			return nil, false
		}
	}
	ops := make(api.TxnOps, 0, len(c.Pairs))
	changes := 0
	for i, p := range c.Pairs {
		if wc.values[i] == p.Value {
			ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVCheckIndex, Key: p.Key, Index: wc.indexes[i]}})
			continue
		}
		changes++
		ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: p.Key, Value: []byte(p.Value), Index: wc.indexes[i]}})
	}
	return ops, changes > 0
}

// planCreate plans c as a create-only write when c has no record and
// creating first is on: a cas at index 0 on every key, so the transaction
// commits only if none of c's keys exists. Success therefore proves the
// store held nothing of c, epoch included, and the outcome is Written; any
// existing key refuses it and c is read for real.
func (w *lastWrites) planCreate(c kvstore.Cluster) (api.TxnOps, bool) {
	if !w.createFirst.enabled() {
		return nil, false
	}
	w.mu.Lock()
	_, known := w.m[c.Alias]
	w.mu.Unlock()
	if known {
		return nil, false
	}
	ops := make(api.TxnOps, len(c.Pairs))
	for i, p := range c.Pairs {
		ops[i] = &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: p.Key, Value: []byte(p.Value), Index: 0}}
	}
	return ops, true
}
