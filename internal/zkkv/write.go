package zkkv

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/go-zookeeper/zk"

	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/kvstore"
)

// conflictRounds bounds the re-reads after a multi lost a race with another
// writer. Each lost round means another writer's multi went through, which
// the next read sees, so two racing writers settle within two rounds.
const conflictRounds = 5

// clustersPerMulti is how many clusters planned from this store's own
// last write go into one multi. One multi per cluster costs a round trip
// and a commit each; ten share them (for 10,000 clusters the batched
// ZooKeeper floor is about two thirds of the per-cluster one, see
// docs/BENCHMARKS.md). A cluster's ops are never split across multis.
const clustersPerMulti = 10

// readsInFlight multiplies Config.Concurrency for the main znode reads that
// precede writes planned from the last write.
const readsInFlight = 8

// Write publishes clusters with multi-ops. A cluster this store has written
// before is planned from that record after reading only its main znode's
// stat, and such clusters go ten to a multi (the batched path); the others
// are read in full and written one multi each (the single-cluster path).
// Multis run concurrently (Config.Concurrency). Once one call finds the
// ensemble unreachable (timeout, no server, connection lost), clusters not
// yet started fail at once instead of each waiting for its own timeout.
//
// A call abandoned on timeout may still be applied by the server; the
// cluster is then reported failed, and the caller's retry finds it
// unchanged.
func (s *Store) Write(ctx context.Context, clusters []kvstore.Cluster) []kvstore.Outcome {
	if len(clusters) == 0 {
		return nil
	}
	if err := s.ensureAuth(ctx); err != nil {
		return kvstore.Failures(clusters, err)
	}
	w := &writeCall{s: s, clusters: clusters, out: make([]kvstore.Outcome, len(clusters))}
	batches, single := w.planBatches(ctx)
	jobs := make([]func(), 0, len(batches)+len(single))
	for _, b := range batches {
		jobs = append(jobs, func() { w.writeBatch(ctx, b) })
	}
	for _, i := range single {
		jobs = append(jobs, func() { w.writeSingle(ctx, i) })
	}
	s.parallel(len(jobs), func(k int) { jobs[k]() })
	return w.out
}

// writeCall is one Write: its clusters, their outcomes, and what the call
// learnt about the ensemble (down), shared by its concurrent multis.
type writeCall struct {
	s        *Store
	clusters []kvstore.Cluster
	out      []kvstore.Outcome
	mu       sync.Mutex
	down     error
}

// planned is one cluster of a batch, planned from the last write.
type planned struct {
	i   int // index in the call's clusters
	ops []any
	st  stored
}

func (w *writeCall) isDown() error { w.mu.Lock(); defer w.mu.Unlock(); return w.down }

// noteDown remembers err when it says the ensemble is unreachable.
func (w *writeCall) noteDown(err error) {
	if err != nil && unreachable(err) {
		w.mu.Lock()
		w.down = err
		w.mu.Unlock()
	}
}

// planBatches plans every cluster it can from this store's last write and
// groups those, clustersPerMulti to a batch; single lists the others, to
// be read in full.
func (w *writeCall) planBatches(ctx context.Context) (batches [][]planned, single []int) {
	plans := make([]planned, len(w.clusters))
	ok := make([]bool, len(w.clusters))
	// The stat reads are small and ZooKeeper answers reads without a
	// commit, pipelined on the one session: more in flight than writes.
	kvstore.Parallel(len(w.clusters), readsInFlight*w.s.concurrency, func(i int) {
		if len(w.clusters[i].Pairs) > 0 && w.isDown() == nil {
			ops, st, planOK, err := w.s.planFromWritten(ctx, w.clusters[i])
			plans[i], ok[i] = planned{i, ops, st}, planOK
			w.noteDown(err)
		}
	})
	for i, p := range plans {
		if !ok[i] {
			single = append(single, i)
			continue
		}
		if n := len(batches); n == 0 || len(batches[n-1]) == clustersPerMulti {
			batches = append(batches, nil)
		}
		batches[len(batches)-1] = append(batches[len(batches)-1], p)
	}
	return batches, single
}

// writeSingle reads cluster i in full and writes it in a multi of its own.
func (w *writeCall) writeSingle(ctx context.Context, i int) {
	c := w.clusters[i]
	if err := w.isDown(); err != nil {
		w.out[i] = failed(c, fmt.Errorf("zookeeper unreachable, cluster %s not attempted: %w", c.Alias, err))
		return
	}
	w.out[i] = w.s.writeCluster(ctx, c)
	w.noteDown(w.out[i].Err)
}

// writeBatch writes a batch of clusters planned from the last write in one
// multi. A refused multi says nothing about which cluster moved, so each is
// then read and written on its own.
func (w *writeCall) writeBatch(ctx context.Context, batch []planned) {
	if err := w.isDown(); err != nil {
		for _, p := range batch {
			w.out[p.i] = failed(w.clusters[p.i], fmt.Errorf("zookeeper unreachable, cluster %s not attempted: %w", w.clusters[p.i].Alias, err))
		}
		return
	}
	var ops []any
	for _, p := range batch {
		ops = append(ops, p.ops...)
	}
	s := w.s
	_, err := call(ctx, s.opTimeout, func() ([]zk.MultiResponse, error) { return s.conn.Multi(ops...) })
	if err == nil {
		for _, p := range batch {
			c := w.clusters[p.i]
			s.remember(c, p.st, p.ops, p.st[c.MainKey()])
			w.out[p.i] = kvstore.Outcome{Alias: c.Alias, Epoch: c.Epoch, Status: kvstore.Written, Keys: countWrites(p.ops)}
		}
		return
	}
	for _, p := range batch {
		s.forget(w.clusters[p.i].Alias)
	}
	if unreachable(err) {
		w.noteDown(err)
		for _, p := range batch {
			w.out[p.i] = failed(w.clusters[p.i], fmt.Errorf("zookeeper multi for cluster %s (with %d others): %w", w.clusters[p.i].Alias, len(batch)-1, err))
		}
		return
	}
	// One of them changed since this store wrote it, or was refused for a
	// reason of its own (an ACL): each is read and written on its own, so
	// only that one pays.
	for _, p := range batch {
		w.out[p.i] = s.writeCluster(ctx, w.clusters[p.i])
		w.noteDown(w.out[p.i].Err)
	}
}

func failed(c kvstore.Cluster, err error) kvstore.Outcome {
	return kvstore.Outcome{Alias: c.Alias, Epoch: c.Epoch, Status: kvstore.Failed, Err: err}
}

// parallel runs fn(i) for i in [0,n) with at most s.concurrency at once.
func (s *Store) parallel(n int, fn func(i int)) { kvstore.Parallel(n, s.concurrency, fn) }

// writeCluster reads the cluster's znodes, lets plan decide, and runs the
// multi; a multi refused because another writer got there first is re-read
// and planned again, so the epoch guard has the last word.
func (s *Store) writeCluster(ctx context.Context, c kvstore.Cluster) kvstore.Outcome {
	if len(c.Pairs) == 0 {
		return failed(c, fmt.Errorf("zookeeper write for cluster %q: no pairs", c.Alias))
	}
	var lastErr error
	for round := 0; round < conflictRounds; round++ {
		if round > 0 {
			// The read may have been served by a follower behind the
			// leader that refused the multi: catch up before re-reading.
			// A sync covers the server's whole state, whatever the path.
			if _, err := call(ctx, s.opTimeout, func() (string, error) { return s.conn.Sync("/") }); err != nil {
				return failed(c, fmt.Errorf("zookeeper sync for cluster %s: %w", c.Alias, err))
			}
		}
		st, err := s.readCluster(ctx, c)
		if err != nil {
			return failed(c, fmt.Errorf("zookeeper read for cluster %s: %w", c.Alias, err))
		}
		ops, final := s.plan(c, st)
		if final != nil {
			return *final
		}
		main, exists := st[c.MainKey()]
		if !exists {
			if err := s.ensureParents(ctx, s.path(c.MainKey())); err != nil {
				return failed(c, fmt.Errorf("zookeeper parents for cluster %s: %w", c.Alias, err))
			}
			// The multi creates the main znode, whose Czxid it does not
			// return: a last set at version 0 of the same data returns
			// the main znode's stat after the creates, for the record.
			ops = append(ops, &zk.SetDataRequest{Path: s.path(c.MainKey()), Data: []byte(discovery.Main(c.Pairs).Value), Version: 0})
		}
		res, err := call(ctx, s.opTimeout, func() ([]zk.MultiResponse, error) { return s.conn.Multi(ops...) })
		if err == nil {
			if !exists {
				stat := res[len(res)-1].Stat
				main = znode{czxid: stat.Czxid, cversion: stat.Cversion}
			} else {
				// Every child created moved the main znode's Cversion.
				// A child created or deleted by someone else since the
				// read moved it too, and the next plan from the record
				// then finds it different.
				main.cversion += int32(countCreates(ops))
			}
			s.remember(c, st, ops, main)
			return kvstore.Outcome{Alias: c.Alias, Epoch: c.Epoch, Status: kvstore.Written, Keys: countWrites(ops[:len(c.Pairs)])}
		}
		s.forget(c.Alias)
		if !conflict(err) {
			return failed(c, fmt.Errorf("zookeeper multi for cluster %s: %w", c.Alias, err))
		}
		lastErr = err
	}
	return failed(c, fmt.Errorf("zookeeper multi for cluster %s: still conflicting after %d rounds: %w", c.Alias, conflictRounds, lastErr))
}

// planFromWritten plans c against what this store last wrote for it,
// reading only the main znode's stat. ok is false when there is no such
// record, when the main znode is not the one recorded or has had a child
// created or deleted since, or when the plan would not write (unchanged or
// stale): those outcomes are only ever decided on a full read.
//
// Why the main znode is read: ZooKeeper versions restart at 0 when a
// znode is deleted and created again, so a version check alone cannot tell
// the znode this store wrote from one recreated since, by hand or by
// another writer with a newer epoch, at the same version. The main
// znode's Czxid and Cversion tell (see lastWrite), in every layout,
// the strict one included. That holds down to the moment between this
// read and the multi, which is the window of a full read too: no multi op
// checks a Cversion, so a child recreated in that moment is as if
// recreated just after the write. (Consul's ModifyIndex is global and
// never reused, so consulkv needs no such read.)
//
// err is the read's error, for the caller to notice an unreachable
// ensemble.
func (s *Store) planFromWritten(ctx context.Context, c kvstore.Cluster) (ops []any, st stored, ok bool, err error) {
	s.lastWritesMu.Lock()
	wc, known := s.lastWrites[c.Alias]
	s.lastWritesMu.Unlock()
	if !known || len(wc.data) != len(c.Pairs) {
		return nil, nil, false, nil
	}
	stat, err := call(ctx, s.opTimeout, func() (*zk.Stat, error) {
		ok, st, err := s.conn.Exists(s.path(c.MainKey()))
		if err != nil || !ok {
			return nil, err
		}
		return st, nil
	})
	if err != nil || stat == nil || stat.Czxid != wc.czxid || stat.Cversion != wc.cversion || stat.Version != wc.versions[discovery.MainPair] {
		s.forget(c.Alias) // and read the cluster for real
		return nil, nil, false, err
	}
	st = make(stored, len(c.Pairs))
	for i, p := range c.Pairs {
		st[p.Key] = znode{data: wc.data[i], version: wc.versions[i]}
	}
	st[c.MainKey()] = znode{data: wc.data[discovery.MainPair], version: wc.versions[discovery.MainPair], czxid: wc.czxid, cversion: wc.cversion}
	ops, final := s.plan(c, st)
	if final != nil {
		return nil, nil, false, nil
	}
	return ops, st, true, nil
}

// remember records the znodes as a successful multi of ops left them;
// main carries the main znode's Czxid and Cversion after it.
func (s *Store) remember(c kvstore.Cluster, before stored, ops []any, main znode) {
	after := lastWrite{
		data: make([]string, len(c.Pairs)), versions: make([]int32, len(c.Pairs)),
		czxid: main.czxid, cversion: main.cversion,
	}
	for i, p := range c.Pairs {
		after.data[i] = p.Value
		switch op := ops[i].(type) {
		case *zk.CreateRequest:
			after.versions[i] = 0
		case *zk.SetDataRequest:
			after.versions[i] = op.Version + 1
		case *zk.CheckVersionRequest:
			after.versions[i] = before[p.Key].version
		}
	}
	if len(ops) > len(c.Pairs) {
		// The set that followed the main znode's create (writeCluster).
		after.versions[discovery.MainPair] = 1
	}
	s.lastWritesMu.Lock()
	s.lastWrites[c.Alias] = after
	s.lastWritesMu.Unlock()
}

func (s *Store) forget(alias string) {
	s.lastWritesMu.Lock()
	delete(s.lastWrites, alias)
	s.lastWritesMu.Unlock()
}

// conflict reports a multi refused because the znodes changed since they
// were read: another writer created, changed or deleted one of them.
func conflict(err error) bool {
	return errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNodeExists) || errors.Is(err, zk.ErrNoNode)
}

// plan decides what to write for c given what is stored. It returns the
// multi's ops, or a final outcome when nothing is to be written (stale or
// unchanged).
//
// The ops are, in layout order (main znode before its children): a create
// for each missing znode, a set for each differing one, and a version check
// for each equal one, every set and check at the version read. The multi
// thus validates the whole read: the six reads are not one snapshot, and
// without the checks a writer could skip a znode it read before another
// writer's multi changed it and leave the cluster mixed. With the epoch key
// this is also the epoch guard: the epoch znode is created (must not exist
// yet), set or checked at the version whose value passed the comparison
// above, so a newer epoch written meanwhile refuses the multi. Without the
// epoch key (strict orchestrator mode) there is no epoch comparison: a
// refused multi is re-read and the last writer wins, but still atomically.
func (s *Store) plan(c kvstore.Cluster, st stored) ([]any, *kvstore.Outcome) {
	if epochKey := c.EpochKey(); epochKey != "" {
		// An unreadable stored epoch counts as 0, as in consulkv: it is
		// overwritten rather than blocking the cluster forever.
		if have, err := kvstore.ParseEpoch(st[epochKey].data); err == nil && have > c.Epoch {
			return nil, &kvstore.Outcome{Alias: c.Alias, Epoch: c.Epoch, Status: kvstore.Stale}
		}
	}
	if final := keepHandEdit(c, st); final != nil {
		return nil, final // a hand edit, kept: kvstore.Judge
	}
	var ops []any
	writes := 0
	for _, p := range c.Pairs {
		path := s.path(p.Key)
		cur, exists := st[p.Key]
		switch {
		case !exists:
			ops = append(ops, &zk.CreateRequest{Path: path, Data: []byte(p.Value), Acl: s.acl})
			writes++
		case cur.data == p.Value:
			ops = append(ops, &zk.CheckVersionRequest{Path: path, Version: cur.version})
		default:
			ops = append(ops, &zk.SetDataRequest{Path: path, Data: []byte(p.Value), Version: cur.version})
			writes++
		}
	}
	if writes == 0 {
		return nil, &kvstore.Outcome{Alias: c.Alias, Epoch: c.Epoch, Status: kvstore.Unchanged, Keys: len(c.Pairs)}
	}
	return ops, nil
}

// countWrites counts the creates and sets of a multi.
func countWrites(ops []any) int {
	n := 0
	for _, op := range ops {
		if _, check := op.(*zk.CheckVersionRequest); !check {
			n++
		}
	}
	return n
}

// countCreates counts the creates of a multi.
func countCreates(ops []any) int {
	n := 0
	for _, op := range ops {
		if _, create := op.(*zk.CreateRequest); create {
			n++
		}
	}
	return n
}

// ensureParents creates the missing ancestors of path with empty data and
// the store's ACL. A parent created meanwhile by someone else is fine.
func (s *Store) ensureParents(ctx context.Context, path string) error {
	var parents []string
	for i := 1; i < len(path); i++ {
		if path[i] == '/' {
			parents = append(parents, path[:i])
		}
	}
	if len(parents) == 0 {
		return nil
	}
	if ok, err := s.exists(ctx, parents[len(parents)-1]); err != nil || ok {
		return err
	}
	for _, p := range parents {
		_, err := call(ctx, s.opTimeout, func() (string, error) { return s.conn.Create(p, []byte{}, 0, s.acl) })
		switch {
		case err == nil, errors.Is(err, zk.ErrNodeExists):
			continue
		case errors.Is(err, zk.ErrNoAuth):
			// No create right in p's parent; fine if p is already there.
			if ok, err2 := s.exists(ctx, p); err2 == nil && ok {
				continue
			}
		}
		return fmt.Errorf("create %s: %w", p, err)
	}
	return nil
}

func (s *Store) exists(ctx context.Context, path string) (bool, error) {
	ok, err := call(ctx, s.opTimeout, func() (bool, error) {
		ok, _, err := s.conn.Exists(path)
		return ok, err
	})
	if err != nil {
		return false, fmt.Errorf("exists %s: %w", path, err)
	}
	return ok, nil
}
