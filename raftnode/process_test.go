//go:build unix

package main_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The plan of TestProcessLeaderKill.
const (
	procWrites    = 200 // failovers posted, one after the other
	procClusters  = 5   // spread over this many clusters
	procKillAfter = 40  // acknowledged writes before the leader is killed
	procAfterKill = 20  // acknowledged writes after the kill before the restart
	procPort      = 3306
)

// TestProcessLeaderKill runs three real raftnode processes, posts failovers
// to a follower without pause, SIGKILLs the leader mid-stream and restarts
// it on the same data dir and ports. It checks that
//   - every write is eventually acknowledged, retried with the same
//     Idempotency-Key through the election;
//   - acknowledged epochs strictly increase in acknowledgement order (the
//     writes are sequential), so none is lost or reordered;
//   - the restarted node comes back, before it hears from any peer, with
//     exactly the state of its last snapshot;
//   - all three nodes converge on the last acknowledged write of every
//     cluster and the same applied index;
//   - every key, posted again to every node, answers its first epoch.
//
// MASTERKV_SNAPSHOT_DELAY is 100ms instead of 10s: hashicorp/raft restores
// only the latest snapshot on start and re-applies later log entries only
// when a leader tells it the commit index, so what a restarted node holds
// on its own is its last snapshot. The test waits for the leader to have
// snapshotted the writes acknowledged so far before killing it.
func TestProcessLeaderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes and an election; skipped with -short")
	}
	c := newProcCluster(t, 3, "MASTERKV_SNAPSHOT_DELAY=100ms")
	for i := range c.members {
		c.start(i, i == 0)
	}
	for i := range c.members {
		c.waitHealthy(i, 10*time.Second)
	}
	first := c.waitLeader(15 * time.Second)

	p := newPoster(c, planWrites(), (first+1)%len(c.members))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	posted := make(chan struct{})
	var postErr error
	go func() {
		defer close(posted)
		postErr = p.run(ctx)
	}()
	defer func() { cancel(); <-posted }()
	waitAcked := func(n int) {
		t.Helper()
		waitFor(t, 15*time.Second, fmt.Sprintf("%d acknowledged writes", n), func() error {
			got, err := p.progress()
			if err != nil || got >= n {
				return err
			}
			return fmt.Errorf("%d acknowledged", got)
		})
	}

	// Kill the leader once it has a snapshot of everything acknowledged so far.
	waitAcked(procKillAfter)
	_, snapped := p.acked()
	victim := -1
	waitFor(t, 10*time.Second, fmt.Sprintf("a leader snapshot at index %d or later", snapped), func() error {
		l, err := c.leaderNow()
		if err != nil {
			return err
		}
		s, err := c.status(l)
		if err != nil {
			return err
		}
		if s.State != "Leader" || s.LastSnapshotIndex < snapped {
			return fmt.Errorf("%s is %s with last snapshot %d", s.NodeID, s.State, s.LastSnapshotIndex)
		}
		victim = l
		return nil
	})
	if p.targetPos() == victim {
		p.setTarget((victim + 1) % len(c.members))
	}
	ackedAtKill, _ := p.acked()
	killAt := time.Now()
	p.markKill()
	c.kill(victim)
	t.Logf("killed leader %s after %d acknowledged writes; posting to %s", c.members[victim].id, ackedAtKill, c.members[p.targetPos()].id)
	next := c.waitLeader(15 * time.Second)
	electedAt := time.Now() // at most a poll after the election
	t.Logf("%s elected %s after the kill", c.members[next].id, time.Since(killAt).Round(time.Millisecond))
	waitAcked(min(ackedAtKill+procAfterKill, procWrites))

	// Restart the victim while the survivors are frozen, so that what it
	// serves is what it kept on disk, not what a leader sent it.
	var survivors []int
	for i := range c.members {
		if i != victim {
			survivors = append(survivors, i)
		}
	}
	var thawOnce sync.Once
	thaw := func() {
		thawOnce.Do(func() {
			for _, i := range survivors {
				c.thaw(i)
			}
		})
	}
	for _, i := range survivors {
		c.freeze(i)
	}
	var (
		restarted        nodeStatus
		restartedMasters map[string]masterView
		err              error
	)
	func() {
		defer thaw() // also when start or the wait fails the test
		c.start(victim, false)
		c.waitHealthy(victim, 10*time.Second)
		if restarted, err = c.status(victim); err != nil {
			return
		}
		if restarted.AppliedIndex < restarted.LastIndex {
			// Not caught up: plain reads must refuse rather than serve
			// records older than the log the node holds.
			if _, rerr := c.masters(victim); rerr == nil || !strings.Contains(rerr.Error(), "503") {
				err = fmt.Errorf("GET /v1/masters while catching up (applied %d < last %d) = %v, want a 503",
					restarted.AppliedIndex, restarted.LastIndex, rerr)
				return
			}
		}
		restartedMasters, err = c.mastersAt(victim, "/v1/masters?stale=true")
	}()
	if err != nil {
		t.Fatalf("read the restarted %s: %v", c.members[victim].id, err)
	}
	t.Logf("restarted %s: applied index %d, last snapshot %d, %d clusters",
		restarted.NodeID, restarted.AppliedIndex, restarted.LastSnapshotIndex, len(restartedMasters))

	select {
	case <-posted:
	case <-time.After(30 * time.Second):
		t.Fatal("the writer did not finish within 30s")
	}
	if postErr != nil {
		t.Fatalf("posting failovers: %v", postErr)
	}
	writes := p.writes
	last := lastPerCluster(writes)

	waitFor(t, 15*time.Second, "all nodes to hold the last acknowledged write of every cluster", func() error {
		var applied []uint64
		for i, m := range c.members {
			s, err := c.status(i)
			if err != nil {
				return err
			}
			got, err := c.masters(i)
			if err != nil {
				return err
			}
			if err := sameAsLast(got, last); err != nil {
				return fmt.Errorf("%s: %w", m.id, err)
			}
			applied = append(applied, s.AppliedIndex)
		}
		for _, a := range applied[1:] {
			if a != applied[0] {
				return fmt.Errorf("applied indexes differ: %v", applied)
			}
		}
		return nil
	})

	t.Run("acknowledged epochs", func(t *testing.T) {
		for i, w := range writes {
			if i > 0 && w.epoch <= writes[i-1].epoch {
				t.Errorf("write %d (%s) got epoch %d, want more than write %d's %d: it was posted after that one was acknowledged",
					i, w.key, w.epoch, i-1, writes[i-1].epoch)
			}
			if final := last[w.cluster].epoch; w.epoch > final {
				t.Errorf("write %d (%s) got epoch %d, above the final epoch %d of %s", i, w.key, w.epoch, final, w.cluster)
			}
		}
		retried, replayed, failures, afterKill := p.stats()
		t.Logf("%d writes, %d retried (%d answered as a replay of an earlier attempt), %d failed attempts (%d after the kill)",
			len(writes), retried, replayed, failures, afterKill)
		// The kill is exercised when a write was outstanding while the
		// group had no leader and was still acknowledged: either an attempt
		// failed and was retried, or the node held it over the election
		// (it commits a write on winning, or re-forwards it to the winner).
		var overElection []int
		for i, w := range writes {
			if w.sent.Before(electedAt) && w.ackedAt.After(killAt) {
				overElection = append(overElection, i)
			}
		}
		t.Logf("writes outstanding over the election and acknowledged: %v", overElection)
		if afterKill == 0 && len(overElection) == 0 {
			t.Errorf("no write was outstanding while the leader was dead; the kill was not exercised")
		}
	})

	t.Run("restarted node kept its state", func(t *testing.T) {
		s := restarted.AppliedIndex
		if restarted.LastSnapshotIndex != s {
			t.Errorf("applied index %d, want its last snapshot index %d: it applied entries a peer sent", s, restarted.LastSnapshotIndex)
		}
		if s < snapped {
			t.Errorf("applied index %d, want at least %d (the leader's snapshot before the kill)", s, snapped)
		}
		want := lastPerCluster(prefix(writes, s))
		if len(want) == 0 {
			t.Fatalf("no acknowledged write at or below index %d", s)
		}
		if err := sameAsLast(restartedMasters, want); err != nil {
			t.Errorf("after restart, before resync: %v", err)
		}
		if n := ackedAtKill - len(prefix(writes, s)); n > 0 {
			t.Logf("%d writes acknowledged before the kill were above the snapshot and came back by resync", n)
		}
	})

	t.Run("idempotent replays", func(t *testing.T) {
		for i, m := range c.members {
			for _, w := range writes {
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				rc, code, body, err := c.failover(ctx, i, w.key, w.cluster, w.host, procPort)
				cancel()
				if err != nil || code != http.StatusOK {
					t.Fatalf("replay %s on %s: status %d, err %v: %s", w.key, m.id, code, err, body)
				}
				if rc.Epoch != w.epoch || !rc.Duplicate || rc.Master != w.master() {
					t.Errorf("replay %s on %s: epoch %d duplicate %t master %s, want epoch %d duplicate true master %s",
						w.key, m.id, rc.Epoch, rc.Duplicate, rc.Master, w.epoch, w.master())
				}
			}
		}
	})
}

// write is one planned failover and, once acknowledged, its epoch.
type write struct {
	seq                int
	key, cluster, host string
	epoch              uint64
	duplicate          bool // the acknowledgement was a replay of an earlier attempt
	attempts           int
	sent, ackedAt      time.Time // first attempt, acknowledgement
}

func (w *write) master() string { return fmt.Sprintf("%s:%d", w.host, procPort) }

// planWrites spreads procWrites failovers over procClusters clusters, each
// to a new IP-literal host.
func planWrites() []*write {
	out := make([]*write, procWrites)
	for i := range out {
		cl := i % procClusters
		out[i] = &write{
			seq: i, key: fmt.Sprintf("proc-write-%03d", i),
			cluster: fmt.Sprintf("proc-c%d", cl), host: fmt.Sprintf("10.0.%d.%d", cl, i/procClusters+1),
		}
	}
	return out
}

// lastPerCluster returns the acknowledged write with the highest epoch of
// each cluster.
func lastPerCluster(writes []*write) map[string]*write {
	out := map[string]*write{}
	for _, w := range writes {
		if cur, ok := out[w.cluster]; !ok || w.epoch > cur.epoch {
			out[w.cluster] = w
		}
	}
	return out
}

// prefix returns the writes acknowledged with an epoch at or below index.
func prefix(writes []*write, index uint64) []*write {
	var out []*write
	for _, w := range writes {
		if w.epoch <= index {
			out = append(out, w)
		}
	}
	return out
}

// sameAsLast checks that got holds exactly the clusters of want, each with
// the master, epoch and request id of want's write.
func sameAsLast(got map[string]masterView, want map[string]*write) error {
	var errs []string
	for cl, w := range want {
		g, ok := got[cl]
		switch {
		case !ok:
			errs = append(errs, fmt.Sprintf("%s missing, want epoch %d", cl, w.epoch))
		case g.Epoch != w.epoch || g.Master != w.master() || g.RequestID != w.key:
			errs = append(errs, fmt.Sprintf("%s is %s epoch %d id %s, want %s epoch %d id %s",
				cl, g.Master, g.Epoch, g.RequestID, w.master(), w.epoch, w.key))
		}
	}
	for cl, g := range got {
		if _, ok := want[cl]; !ok {
			errs = append(errs, fmt.Sprintf("unexpected cluster %s epoch %d", cl, g.Epoch))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d clusters differ: %s", len(errs), len(want), strings.Join(errs, "; "))
	}
	return nil
}

// poster posts the planned writes one after the other to its target node,
// retrying each with the same key until it is acknowledged.
type poster struct {
	c      *procCluster
	writes []*write
	target atomic.Int32
	killed atomic.Bool

	mu        sync.Mutex
	nAcked    int
	maxEpoch  uint64
	failures  int
	afterKill int
	err       error
}

func newPoster(c *procCluster, writes []*write, target int) *poster {
	p := &poster{c: c, writes: writes}
	p.target.Store(int32(target))
	return p
}

func (p *poster) targetPos() int    { return int(p.target.Load()) }
func (p *poster) setTarget(pos int) { p.target.Store(int32(pos)) }
func (p *poster) markKill()         { p.killed.Store(true) }

// acked returns how many writes are acknowledged and the highest epoch.
func (p *poster) acked() (int, uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nAcked, p.maxEpoch
}

// progress returns the acknowledged count, or the error that stopped the
// writer.
func (p *poster) progress() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nAcked, p.err
}

// stats returns the writes that needed more than one attempt, those whose
// acknowledgement was a replay of an earlier attempt, and the failed
// attempts, in all and after the kill. Call it after run returned.
func (p *poster) stats() (retried, replayed, failures, afterKill int) {
	for _, w := range p.writes {
		if w.attempts > 1 {
			retried++
		}
		if w.duplicate {
			replayed++
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return retried, replayed, p.failures, p.afterKill
}

// run posts every write in order and stops at the first that cannot be
// acknowledged.
func (p *poster) run(ctx context.Context) error {
	for _, w := range p.writes {
		if err := p.post(ctx, w); err != nil {
			p.mu.Lock()
			p.err = err
			p.mu.Unlock()
			return err
		}
	}
	return nil
}

// post sends w until a 200. Transport errors and 503 (no leader, outcome
// unknown, leader unreachable) are retried with the same key; any other
// answer is an error.
func (p *poster) post(ctx context.Context, w *write) error {
	deadline := time.Now().Add(20 * time.Second)
	w.sent = time.Now()
	var last string
	for {
		w.attempts++
		pos := p.targetPos()
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		rc, code, body, err := p.c.failover(actx, pos, w.key, w.cluster, w.host, procPort)
		cancel()
		switch {
		case err == nil && code == http.StatusOK:
			if rc.Cluster != w.cluster || rc.Master != w.master() || rc.Epoch == 0 || rc.ID != w.key {
				return fmt.Errorf("write %d (%s): receipt %+v, want cluster %s master %s id %s and an epoch",
					w.seq, w.key, rc, w.cluster, w.master(), w.key)
			}
			w.epoch, w.duplicate, w.ackedAt = rc.Epoch, rc.Duplicate, time.Now()
			p.mu.Lock()
			p.nAcked++
			p.maxEpoch = max(p.maxEpoch, rc.Epoch)
			p.mu.Unlock()
			return nil
		case err != nil:
			last = err.Error()
		case code == http.StatusServiceUnavailable:
			last = fmt.Sprintf("status %d: %s", code, strings.TrimSpace(string(body)))
		default:
			return fmt.Errorf("write %d (%s) to %s: status %d: %s", w.seq, w.key, p.c.members[pos].id, code, body)
		}
		p.mu.Lock()
		p.failures++
		if p.killed.Load() {
			p.afterKill++
		}
		p.mu.Unlock()
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("write %d (%s) not acknowledged after %d attempts; last: %s", w.seq, w.key, w.attempts, last)
		}
		select {
		case <-ctx.Done():
		case <-time.After(25 * time.Millisecond):
		}
	}
}
