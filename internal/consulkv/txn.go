package consulkv

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/masterkv/masterkv/internal/discovery"
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
			e, _ := discovery.EpochIndex(c.Pairs)
			guard = &api.KVTxnOp{Verb: api.KVCAS, Key: epochKey, Value: []byte(c.Pairs[e].Value), Index: st[epochKey].index}
		}
		ops = append(api.TxnOps{{KV: guard}}, ops...)
	}
	return ops, nil
}

// writeTxn writes clusters with transactions, round after round: plan what
// each pending cluster needs (from the last write, create-only, or from a
// read), pack the plans into transactions, commit them, and settle each
// cluster's outcome. A cluster whose transaction lost a race is pending
// again in the next round.
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
		r := s.planRound(ctx, clusters, pending, round == 0, out)
		groups := pack(r.sizes(), limit)
		results := s.commit(ctx, r, groups)
		pending = s.settle(clusters, r, groups, results, out)
	}
	return out
}

// txnRound is one round of writeTxn: the clusters still pending and, per
// position in pending, the ops planned for it.
type txnRound struct {
	pending []int        // indexes into the batch
	ops     []api.TxnOps // nil when the cluster's outcome was decided without a write
	created []bool       // the ops are a create-only write (planCreate)
}

// sizes returns each planned cluster's op count, for pack.
func (r *txnRound) sizes() []int {
	sizes := make([]int, len(r.ops))
	for j, o := range r.ops {
		sizes[j] = len(o)
	}
	return sizes
}

// planRound plans every pending cluster. A first round plans from the last
// write or create-only where it can, and reads the rest; a later round
// reads every cluster. A cluster decided by its read (stale, unchanged, a
// kept hand edit, a failed read) gets its outcome in out and no ops.
func (s *Store) planRound(ctx context.Context, clusters []kvstore.Cluster, pending []int, first bool, out []kvstore.Outcome) *txnRound {
	r := &txnRound{pending: pending, ops: make([]api.TxnOps, len(pending)), created: make([]bool, len(pending))}
	var toRead []int // positions in pending
	for j, i := range pending {
		if first {
			if r.ops[j], r.created[j] = s.lastWrites.planUnread(clusters[i]); r.ops[j] != nil {
				continue
			}
		}
		toRead = append(toRead, j)
	}
	if first && len(toRead) > probeClusters {
		// Many clusters to read in a first round: read a few first. If
		// they are mostly absent, new clusters are being published (a
		// first distribution) and the rest are created without reading
		// them.
		probe := toRead[:probeClusters]
		toRead = toRead[probeClusters:]
		if absent := s.readPlan(ctx, clusters, r, probe, out); s.lastWrites.createFirst.afterRead(first, len(probe), absent) {
			toRead = s.planCreates(clusters, r, toRead)
		}
	}
	if len(toRead) > 0 {
		absent := s.readPlan(ctx, clusters, r, toRead, out)
		s.lastWrites.createFirst.afterRead(first, len(toRead), absent)
	}
	return r
}

// planCreates plans the clusters at positions js of r create-only, and
// returns the positions of those it could not (they have a record).
func (s *Store) planCreates(clusters []kvstore.Cluster, r *txnRound, js []int) (rest []int) {
	for _, j := range js {
		if o, ok := s.lastWrites.planCreate(clusters[r.pending[j]]); ok {
			r.ops[j], r.created[j] = o, true
			continue
		}
		rest = append(rest, j)
	}
	return rest
}

// readPlan reads the clusters at positions js of r and plans them into r.
// It returns how many it found without any key.
func (s *Store) readPlan(ctx context.Context, clusters []kvstore.Cluster, r *txnRound, js []int, out []kvstore.Outcome) (absent int) {
	sub := make([]kvstore.Cluster, len(js))
	for k, j := range js {
		sub[k] = clusters[r.pending[j]]
	}
	st, readErrs := s.readTxn(ctx, sub)
	for k, j := range js {
		i := r.pending[j]
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
		r.ops[j] = o
	}
	return absent
}

// txnResult is what one write transaction returned: the ModifyIndex of
// each key it holds, or its error.
type txnResult struct {
	indexes map[string]uint64
	err     error
}

// commit runs one write transaction per group of positions in r, at most
// s.concurrency at once.
func (s *Store) commit(ctx context.Context, r *txnRound, groups [][]int) []txnResult {
	results := make([]txnResult, len(groups))
	s.parallel(len(groups), func(g int) {
		var txn api.TxnOps
		for _, j := range groups[g] {
			txn = append(txn, r.ops[j]...)
		}
		resp, err := s.runWrite(ctx, txn)
		indexes := map[string]uint64{}
		if err == nil {
			for _, res := range resp.Results {
				if res.KV != nil {
					indexes[res.KV.Key] = res.KV.ModifyIndex
				}
			}
		}
		results[g] = txnResult{indexes: indexes, err: err}
	})
	return results
}

// settle records each committed cluster's outcome in out and in the last
// writes, and returns the clusters whose transaction lost a race, to be
// planned again.
func (s *Store) settle(clusters []kvstore.Cluster, r *txnRound, groups [][]int, results []txnResult, out []kvstore.Outcome) (again []int) {
	for g, group := range groups {
		err := results[g].err
		conflict := errors.Is(err, errConflict)
		if conflict {
			s.lastWrites.createFirst.afterConflict(slices.ContainsFunc(group, func(j int) bool { return r.created[j] }))
		}
		for _, j := range group {
			i := r.pending[j]
			c := clusters[i]
			if err != nil {
				s.lastWrites.forget(c.Alias)
				out[i] = kvstore.Outcome{Alias: c.Alias, Epoch: c.Epoch, Err: err}
				if conflict {
					again = append(again, i)
				}
				continue
			}
			s.lastWrites.remember(c, results[g].indexes)
			out[i] = kvstore.Outcome{Alias: c.Alias, Epoch: c.Epoch, Status: kvstore.Written, Keys: countSets(r.ops[j])}
		}
	}
	return again
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
