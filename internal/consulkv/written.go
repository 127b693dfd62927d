package consulkv

import (
	"sync"

	"github.com/hashicorp/consul/api"

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
type written struct {
	mu sync.Mutex
	m  map[string]stored
}

func newWritten() *written { return &written{m: map[string]stored{}} }

func (w *written) get(alias string) (stored, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	st, ok := w.m[alias]
	return st, ok
}

func (w *written) forget(alias string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.m, alias)
}

// remember records c as written by a transaction whose results carry the
// ModifyIndex of every key of c; a cluster with a key missing from the
// results is forgotten instead.
func (w *written) remember(c kvstore.Cluster, results map[string]uint64) {
	st := make(stored, len(c.Pairs))
	for _, p := range c.Pairs {
		idx, ok := results[p.Key]
		if !ok {
			w.forget(c.Alias)
			return
		}
		st[p.Key] = storedKV{value: p.Value, index: idx}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.m[c.Alias] = st
}

// planWritten plans c against what was last written, or reports false when
// there is no record or nothing would change.
func (w *written) planWritten(c kvstore.Cluster) (api.TxnOps, bool) {
	st, ok := w.get(c.Alias)
	if !ok {
		return nil, false
	}
	if k := c.EpochKey(); k != "" {
		if have, err := kvstore.ParseEpoch(st[k].value); err != nil || have > c.Epoch {
			return nil, false
		}
	}
	ops := make(api.TxnOps, 0, len(c.Pairs))
	changes := 0
	for _, p := range c.Pairs {
		cur, ok := st[p.Key]
		if !ok {
			return nil, false
		}
		if cur.value == p.Value {
			ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVCheckIndex, Key: p.Key, Index: cur.index}})
			continue
		}
		changes++
		ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: p.Key, Value: []byte(p.Value), Index: cur.index}})
	}
	return ops, changes > 0
}
