package consulkv

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/consul/api"

	"github.com/masterkv/masterkv/internal/kvstore"
)

// conflictRounds bounds re-reads after a transaction lost a race with
// another writer; after that the cluster is reported failed and retried by
// the caller later.
const conflictRounds = 3

// probeClusters is how many clusters a first round reads before deciding
// whether the others of a large batch are new and can be created without
// a read: one read transaction's worth at 64 ops.
const probeClusters = MaxTxnOps / 2

// errConflict marks a write transaction refused by its check-index or cas
// operation: another writer changed the cluster since it was read.
var errConflict = errors.New("concurrent write")

// stored is what Consul holds under one cluster: key -> value and index.
type stored map[string]storedKV

type storedKV struct {
	value string
	index uint64
	flags uint64 // the plain writer's claim: see putCluster
}

func (st stored) observed() kvstore.Observed {
	o := kvstore.Observed{}
	for k, v := range st {
		o[k] = v.value
	}
	return o
}

// opsLimit is the configured transaction size clamped to
// [keys per cluster, MaxTxnOps].
func (s *Store) opsLimit(keysPerCluster int) int {
	n := s.maxOps
	if n < keysPerCluster {
		n = keysPerCluster
	}
	return min(n, MaxTxnOps)
}

// parallel runs fn(i) for i in [0,n) with at most s.concurrency at once.
func (s *Store) parallel(n int, fn func(i int)) { kvstore.Parallel(n, s.concurrency, fn) }

// pack groups item indices so each group's total size stays within limit.
// An item is never split: one cluster's keys are never spread over two
// transactions.
func pack(sizes []int, limit int) [][]int {
	var groups [][]int
	var cur []int
	total := 0
	for i, n := range sizes {
		if n == 0 {
			continue
		}
		if total+n > limit && len(cur) > 0 {
			groups = append(groups, cur)
			cur, total = nil, 0
		}
		cur = append(cur, i)
		total += n
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	return groups
}

// readTxn reads clusters with read transactions of a get on the main key
// and a get-tree below it per cluster. A get of a missing key fails the
// whole transaction; Consul names every failing op, so one more round
// without those gets finishes the read.
func (s *Store) readTxn(ctx context.Context, clusters []kvstore.Cluster) ([]stored, []error) {
	out := make([]stored, len(clusters))
	errs := make([]error, len(clusters))
	sizes := make([]int, len(clusters))
	for i := range sizes {
		sizes[i] = 2
	}
	groups := pack(sizes, max(2, s.opsLimit(len(clusters[0].Pairs))/2*2))
	s.parallel(len(groups), func(g int) {
		idx := groups[g]
		sub := make([]kvstore.Cluster, len(idx))
		for j, i := range idx {
			sub[j] = clusters[i]
		}
		res, err := s.readGroup(ctx, sub)
		for j, i := range idx {
			if err != nil {
				errs[i] = err
			} else {
				out[i] = res[j]
			}
		}
	})
	return out, errs
}

func (s *Store) readGroup(ctx context.Context, clusters []kvstore.Cluster) ([]stored, error) {
	skipMain := make([]bool, len(clusters))
	for round := 0; round < 2; round++ {
		var ops api.TxnOps
		owner := []int{}
		for i, c := range clusters {
			if !skipMain[i] {
				ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVGet, Key: c.MainKey()}})
				owner = append(owner, i)
			}
			ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVGetTree, Key: clusterPrefix(c)}})
			owner = append(owner, -1)
		}
		ok, resp, _, err := s.client.Txn().Txn(ops, s.queryOpts(ctx))
		if err != nil {
			return nil, fmt.Errorf("consul read txn in %s: %w", s.Name(), classify(err))
		}
		if !ok {
			retry := false
			for _, e := range resp.Errors {
				if e.OpIndex < len(owner) && owner[e.OpIndex] >= 0 && strings.Contains(e.What, "doesn't exist") {
					skipMain[owner[e.OpIndex]] = true
					retry = true
					continue
				}
				return nil, classify(fmt.Errorf("consul read txn in %s: op %d: %s", s.Name(), e.OpIndex, e.What))
			}
			if retry {
				continue
			}
			return nil, fmt.Errorf("consul read txn in %s refused without errors", s.Name())
		}
		out := make([]stored, len(clusters))
		for i := range out {
			out[i] = stored{}
		}
		m := newMatcher(clusters)
		for _, r := range resp.Results {
			if r.KV == nil {
				continue
			}
			if i, ok := m.match(r.KV.Key); ok {
				out[i][r.KV.Key] = storedKV{value: string(r.KV.Value), index: r.KV.ModifyIndex, flags: r.KV.Flags}
			}
		}
		// Consul drops results the token may not read, without an error: a
		// get that did not fail yet returned nothing was filtered by ACLs.
		for i, c := range clusters {
			if _, got := out[i][c.MainKey()]; !skipMain[i] && !got {
				return nil, fmt.Errorf("consul read txn in %s: %s filtered out: %w", s.Name(), c.MainKey(), ErrPermissionDenied)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("consul read txn in %s: keys vanished while reading", s.Name())
}

// plan decides what to write for one cluster given what is stored. It
// returns the transaction ops, or a final outcome when nothing is to be
// written (unchanged or stale).
func plan(c kvstore.Cluster, st stored) (api.TxnOps, *kvstore.Outcome) {
	epochKey := c.EpochKey()
	if epochKey != "" {
		if have, err := kvstore.ParseEpoch(st[epochKey].value); err == nil && have > c.Epoch {
			return nil, &kvstore.Outcome{Alias: c.Alias, Epoch: c.Epoch, Status: kvstore.Stale}
		}
	}
	if final := keepHandEdit(c, st); final != nil {
		return nil, final // a hand edit, kept: kvstore.Judge
	}
	var ops api.TxnOps
	epochChanged := false
	for _, p := range c.Pairs {
		cur, exists := st[p.Key]
		if exists && cur.value == p.Value {
			continue
		}
		if p.Key == epochKey {
			epochChanged = true
			continue
		}
		ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVSet, Key: p.Key, Value: []byte(p.Value)}})
	}
	if len(ops) == 0 && !epochChanged {
		return nil, &kvstore.Outcome{Alias: c.Alias, Epoch: c.Epoch, Status: kvstore.Unchanged, Keys: len(c.Pairs)}
	}
	if epochKey != "" {
		// The guard: the epoch key must still be what was read. cas with
		// index 0 means "must not exist yet".
		// epochChanged is false only when the key exists with our value.
		guard := &api.KVTxnOp{Verb: api.KVCheckIndex, Key: epochKey, Index: st[epochKey].index}
		if epochChanged {
			guard = &api.KVTxnOp{Verb: api.KVCAS, Key: epochKey, Value: []byte(c.Pairs[len(c.Pairs)-1].Value), Index: st[epochKey].index}
		}
		ops = append(api.TxnOps{{KV: guard}}, ops...)
	}
	return ops, nil
}

func (s *Store) writeTxn(ctx context.Context, clusters []kvstore.Cluster) []kvstore.Outcome {
	out := make([]kvstore.Outcome, len(clusters))
	pending := make([]int, len(clusters))
	for i := range pending {
		pending[i] = i
	}
	limit := s.opsLimit(len(clusters[0].Pairs))
	// One round more than conflictRounds: a plan from the remembered write
	// that Consul refuses costs a round without being a lost race.
	for round := 0; round <= conflictRounds && len(pending) > 0; round++ {
		ops := make([]api.TxnOps, len(pending))
		sizes := make([]int, len(pending))
		created := make([]bool, len(pending))
		var toRead []int // positions in pending
		for j, i := range pending {
			if round == 0 {
				if o, ok := s.lastWrites.planFromLastWrite(clusters[i]); ok {
					ops[j], sizes[j] = o, len(o)
					continue
				}
				if o, ok := s.lastWrites.planCreate(clusters[i]); ok {
					ops[j], sizes[j], created[j] = o, len(o), true
					continue
				}
			}
			toRead = append(toRead, j)
		}
		// readPlan reads the clusters at positions rd and plans them; it
		// returns how many it found without any key.
		readPlan := func(rd []int) (absent int) {
			sub := make([]kvstore.Cluster, len(rd))
			for k, j := range rd {
				sub[k] = clusters[pending[j]]
			}
			st, readErrs := s.readTxn(ctx, sub)
			for k, j := range rd {
				i := pending[j]
				if readErrs[k] != nil {
					out[i] = kvstore.Outcome{Alias: clusters[i].Alias, Epoch: clusters[i].Epoch, Err: readErrs[k]}
					continue
				}
				if len(st[k]) == 0 {
					absent++
				}
				o, final := plan(clusters[i], st[k])
				if final != nil {
					out[i] = *final
					continue
				}
				ops[j], sizes[j] = o, len(o)
			}
			return absent
		}
		if round == 0 && len(toRead) > probeClusters {
			// Many clusters to read in a first round: read a few first.
			// If they are mostly absent, new clusters are being published
			// (a first distribution) and the rest are created without
			// reading them.
			probe := toRead[:probeClusters]
			toRead = toRead[probeClusters:]
			if absent := readPlan(probe); absent > len(probe)/2 {
				s.lastWrites.createFirst.Store(true)
				var rest []int
				for _, j := range toRead {
					if o, ok := s.lastWrites.planCreate(clusters[pending[j]]); ok {
						ops[j], sizes[j], created[j] = o, len(o), true
						continue
					}
					rest = append(rest, j)
				}
				toRead = rest
			}
		}
		if len(toRead) > 0 {
			if absent := readPlan(toRead); round == 0 && absent > len(toRead)/2 {
				// Mostly new clusters: the ones after them likely are too.
				// Not from a later round, which re-reads what create-only
				// just failed on; and not when only some are absent, or
				// batches mixing absent and existing clusters would keep
				// turning it on and having whole transactions refused.
				s.lastWrites.createFirst.Store(true)
			}
		}
		groups := pack(sizes, limit)
		var mu sync.Mutex
		var again []int
		s.parallel(len(groups), func(g int) {
			var txn api.TxnOps
			for _, j := range groups[g] {
				txn = append(txn, ops[j]...)
			}
			resp, err := s.runWrite(ctx, txn)
			indexes := map[string]uint64{}
			if err == nil {
				for _, r := range resp.Results {
					if r.KV != nil {
						indexes[r.KV.Key] = r.KV.ModifyIndex
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if errors.Is(err, errConflict) && slices.ContainsFunc(groups[g], func(j int) bool { return created[j] }) {
				s.lastWrites.createFirst.Store(false) // this datacenter already holds clusters
			}
			for _, j := range groups[g] {
				i := pending[j]
				c := clusters[i]
				switch {
				case errors.Is(err, errConflict):
					s.lastWrites.forget(c.Alias)
					again = append(again, i)
					out[i] = kvstore.Outcome{Alias: c.Alias, Epoch: c.Epoch, Err: err}
				case err != nil:
					s.lastWrites.forget(c.Alias)
					out[i] = kvstore.Outcome{Alias: c.Alias, Epoch: c.Epoch, Err: err}
				default:
					s.lastWrites.remember(c, indexes)
					out[i] = kvstore.Outcome{Alias: c.Alias, Epoch: c.Epoch, Status: kvstore.Written, Keys: countSets(ops[j])}
				}
			}
		})
		pending = again
	}
	return out
}

func countSets(ops api.TxnOps) int {
	n := 0
	for _, op := range ops {
		if op.KV.Verb == api.KVSet || op.KV.Verb == api.KVCAS {
			n++
		}
	}
	return n
}

// isStaleIndex matches Consul's refusals of a cas or check-index whose key
// moved since it was read: "failed to set key ..., index is stale", "failed
// index check for key ..., current modify index ...", and "failed to check
// index, key ... doesn't exist" (deleted meanwhile).
func isStaleIndex(what string) bool {
	return strings.Contains(what, "index is stale") || strings.Contains(what, "failed index check") ||
		strings.Contains(what, "failed to check index")
}

// runWrite sends one write transaction.
func (s *Store) runWrite(ctx context.Context, txn api.TxnOps) (*api.TxnResponse, error) {
	ok, resp, _, err := s.client.Txn().Txn(txn, s.queryOpts(ctx))
	if err != nil {
		return nil, fmt.Errorf("consul write txn in %s: %w", s.Name(), classify(err))
	}
	if ok {
		return resp, nil
	}
	var whats []string
	conflict := false
	for _, e := range resp.Errors {
		if e.OpIndex < len(txn) {
			conflict = conflict || isStaleIndex(e.What)
			whats = append(whats, fmt.Sprintf("%s %s: %s", txn[e.OpIndex].KV.Verb, txn[e.OpIndex].KV.Key, e.What))
		}
	}
	err = classify(fmt.Errorf("consul write txn in %s refused: %s", s.Name(), strings.Join(whats, "; ")))
	if conflict && !errors.Is(err, ErrPermissionDenied) {
		return nil, fmt.Errorf("%w: %w", errConflict, err)
	}
	return nil, err
}

// readEach reads clusters one by one with the provider's reads.
func (s *Store) readEach(ctx context.Context, clusters []kvstore.Cluster) ([]stored, []error) {
	if s.provider == ProviderPlain {
		return s.readPlain(ctx, clusters)
	}
	return s.readTxn(ctx, clusters)
}

// Read returns what Consul holds for each cluster (drift detection). It
// always reads the server; nothing is cached.
func (s *Store) Read(ctx context.Context, clusters []kvstore.Cluster) (map[string]kvstore.Observed, error) {
	out := map[string]kvstore.Observed{}
	if len(clusters) == 0 {
		return out, nil
	}
	var st []stored
	listed := false
	if prefix, ok := commonPrefix(clusters); ok && len(clusters) >= listMin {
		var err error
		if st, err = s.readList(ctx, prefix, clusters); err == nil {
			listed = true
			if err := s.confirmAbsent(ctx, clusters, st); err != nil {
				return nil, err
			}
		}
		// A failed listing (one large answer, under the client timeout)
		// falls back to reading cluster by cluster.
	}
	if !listed {
		var errs []error
		st, errs = s.readEach(ctx, clusters)
		for _, err := range errs {
			if err != nil {
				return nil, err
			}
		}
	}
	for i, c := range clusters {
		out[c.Alias] = st[i].observed()
		if s.provider == ProviderTxn && len(kvstore.Diff(c, out[c.Alias])) == 0 {
			// What was read is exactly c: plan its next change from it,
			// as from a write of our own (after a restart, this spares
			// the first failover of every cluster a read).
			s.lastWrites.rememberStored(c, st[i])
		}
	}
	return out, nil
}
