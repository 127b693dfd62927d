package node_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/masterkv/masterkv/internal/command"
	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/raftnode/fsm"
	"github.com/masterkv/masterkv/raftnode/node"
	"github.com/masterkv/masterkv/raftnode/nodetest"
)

// epoch0 is the command clock of the first command in every test; commands
// carry their own clock, so tests use fixed times and stay deterministic.
var epoch0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// failover builds a failover of cluster to host:port, with idempotency key
// id, issued at epoch0+at. expected is the failed master ("" for none).
func failover(id, cluster, host string, port int, expected string, at time.Duration) command.Command {
	return command.Command{
		Type: command.Failover, ID: id, At: epoch0.Add(at).UnixMilli(),
		Failover: &command.FailoverPayload{
			Entry:    command.Entry{Cluster: cluster, Master: master.Master{Host: host, Port: port}},
			Expected: expected,
		},
	}
}

// retryable reports whether a proposal failed only because leadership moved.
func retryable(err error) bool {
	return errors.Is(err, node.ErrNotLeader) || errors.Is(err, node.ErrNoLeader) || errors.Is(err, node.ErrOutcomeUnknown)
}

// commit proposes cmd on the current leader and returns the result and the
// application error, as Propose does. A leader change is retried with the
// same command, which is safe because cmd has an idempotency key; the test
// fails when nothing commits within 15 s.
func commit(t *testing.T, c *nodetest.Cluster, cmd command.Command) (fsm.Result, error) {
	t.Helper()
	if cmd.ID == "" {
		t.Fatal("commit: the command needs an id so that a retry is safe")
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		leader := c.WaitLeader()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		res, err := leader.Propose(ctx, cmd)
		cancel()
		if !retryable(err) {
			return res, err
		}
		if time.Now().After(deadline) {
			t.Fatalf("commit %s: %v, still failing after 15s", cmd.ID, err)
		}
		t.Logf("commit %s on %s: %v; retrying", cmd.ID, leader.ID(), err)
		select {
		case <-t.Context().Done():
			t.Fatalf("commit %s: %v", cmd.ID, t.Context().Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// mustCommit is commit for a command that must be accepted.
func mustCommit(t *testing.T, c *nodetest.Cluster, cmd command.Command) fsm.Result {
	t.Helper()
	res, err := commit(t, c, cmd)
	if err != nil {
		t.Fatalf("commit %s: %v", cmd.ID, err)
	}
	if len(res.Records) != 1 || res.Records[0].Epoch != res.Index {
		t.Fatalf("commit %s: records %+v, want one record with epoch %d", cmd.ID, res.Records, res.Index)
	}
	return res
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("waiting for %s: %v", what, t.Context().Err())
		case <-tick.C:
		}
	}
}

// holdsFor polls cond for the whole window and fails the test as soon as it
// does not hold. It checks that something does not happen.
func holdsFor(t *testing.T, window time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(window)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(end) {
		if !cond() {
			t.Fatalf("%s stopped holding within %s", what, window)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("checking %s: %v", what, t.Context().Err())
		case <-tick.C:
		}
	}
}

// model is the records a test expects, built from committed results.
type model map[string]fsm.Record

// add records what res committed.
func (m model) add(res fsm.Result) {
	for _, r := range res.Records {
		m[r.Cluster] = r
	}
}

// list returns the records sorted by cluster, as fsm.FSM.Records does.
func (m model) list() []fsm.Record {
	out := make([]fsm.Record, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Cluster < out[j].Cluster })
	return out
}

// TestReplication commits a sequence of failovers, one of them refused, and
// checks that every node holds the records the sequence implies, with the
// epoch of the entry that last wrote each cluster.
func TestReplication(t *testing.T) {
	c := nodetest.New(t, 3, nodetest.Options{})

	steps := []struct {
		name    string
		cmd     command.Command
		wantErr error
	}{
		{"first master of c1", failover("r1", "c1", "db1", 3306, "", time.Minute), nil},
		{"first master of c2", failover("r2", "c2", "db2", 3306, "", 2*time.Minute), nil},
		{"c1 fails over from the expected master", failover("r3", "c1", "db1b", 3306, "db1:3306", 3*time.Minute), nil},
		{"late webhook for c1 is refused", failover("r4", "c1", "db1c", 3306, "db1:3306", 4*time.Minute), fsm.ErrConflict},
		{"c3 on another port", failover("r5", "c3", "db3", 3307, "", 5*time.Minute), nil},
		{"c2 fails over without expected", failover("r6", "c2", "db2b", 3306, "", 6*time.Minute), nil},
		{"redelivered c2 webhook passes", failover("r7", "c2", "db2b", 3306, "db2:3306", 7*time.Minute), nil},
	}
	want := map[string]fsm.Record{}
	var last uint64
	for _, s := range steps {
		res, err := commit(t, c, s.cmd)
		if !errors.Is(err, s.wantErr) {
			t.Fatalf("%s: err %v, want %v", s.name, err, s.wantErr)
		}
		if res.Index <= last {
			t.Fatalf("%s: index %d, want more than the previous %d", s.name, res.Index, last)
		}
		last = res.Index
		if s.wantErr != nil {
			if len(res.Records) != 0 {
				t.Fatalf("%s: refused command wrote %+v", s.name, res.Records)
			}
			continue
		}
		p := s.cmd.Failover
		w := fsm.Record{
			Cluster: p.Cluster, Master: p.Master, Epoch: res.Index,
			UpdatedAt: time.UnixMilli(s.cmd.At).UTC(), Source: command.Failover, RequestID: s.cmd.ID,
		}
		if len(res.Records) != 1 || !reflect.DeepEqual(res.Records[0], w) {
			t.Fatalf("%s: records %+v, want [%+v]", s.name, res.Records, w)
		}
		if prev, ok := want[p.Cluster]; ok && prev.Epoch >= w.Epoch {
			t.Fatalf("%s: epoch %d does not exceed the previous %d", s.name, w.Epoch, prev.Epoch)
		}
		want[p.Cluster] = w
	}

	c.WaitRecords(model(want).list())
}

// TestProposeOnFollower checks that a follower refuses a proposal with
// ErrNotLeader and commits nothing: the next entry the leader commits takes
// the very next index, and no node holds the follower's cluster.
func TestProposeOnFollower(t *testing.T) {
	c := nodetest.New(t, 3, nodetest.Options{})
	want := model{}
	want.add(mustCommit(t, c, failover("seed", "seed", "db0", 3306, "", 0)))
	c.WaitRecords(want.list())

	leader := c.WaitLeader()
	before := leader.Raft().LastIndex()
	followers := c.Followers()
	if len(followers) != 2 {
		t.Fatalf("%d followers, want 2", len(followers))
	}
	for i, f := range followers {
		t.Run(f.ID(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			cmd := failover(fmt.Sprintf("via-follower-%d", i), "from-"+f.ID(), "db9", 3306, "", time.Minute)
			res, err := f.Propose(ctx, cmd)
			if !errors.Is(err, node.ErrNotLeader) {
				t.Fatalf("Propose on follower: result %+v, err %v, want %v", res, err, node.ErrNotLeader)
			}
			if got := f.Raft().LastIndex(); got != before {
				t.Errorf("follower last index %d, want %d", got, before)
			}
		})
	}
	if got := leader.Raft().LastIndex(); got != before {
		t.Fatalf("leader last index %d after follower proposals, want %d", got, before)
	}

	marker := mustCommit(t, c, failover("marker", "marker", "db1", 3306, "", 2*time.Minute))
	if marker.Index != before+1 {
		t.Fatalf("next committed entry has index %d, want %d: something else was committed", marker.Index, before+1)
	}
	// Every store holds the seed and the marker, and nothing proposed on a
	// follower.
	want.add(marker)
	c.WaitRecords(want.list())
}

// TestLeaderLossAndReelection stops the leader, checks that the other two
// elect a new leader that commits, then restarts the old leader on its kept
// stores: it recovers what it had on its own and catches up with the group.
func TestLeaderLossAndReelection(t *testing.T) {
	cases := []struct {
		name string
		// snapshotDelay > 0 makes the old leader snapshot its failovers, so
		// it restores them from its own snapshot store at restart.
		snapshotDelay time.Duration
		wantRestores  uint64
	}{
		{"from its log", 0, 0},
		{"from its own snapshot", 50 * time.Millisecond, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := nodetest.New(t, 3, nodetest.Options{SnapshotDelay: tc.snapshotDelay})
			want := model{}
			var last fsm.Result
			for k := range 3 {
				last = mustCommit(t, c, failover(fmt.Sprintf("before-%d", k), fmt.Sprintf("c%d", k),
					fmt.Sprintf("db%d", k), 3306, "", time.Duration(k)*time.Minute))
				want.add(last)
			}
			c.WaitRecords(want.list())

			old := c.WaitLeader()
			oi := c.Index(old)
			if tc.wantRestores > 0 {
				waitFor(t, 5*time.Second, "the leader's snapshot after failover", func() bool {
					return old.Status().LastSnapshotIndex >= last.Index
				})
			}
			oldTerm := old.Status().Term
			oldLast := old.Raft().LastIndex()
			oldRecords := want.list()
			c.Stop(oi)

			leader := c.WaitLeader()
			if term := leader.Status().Term; term <= oldTerm {
				t.Errorf("new leader %s has term %d, want more than %d", leader.ID(), term, oldTerm)
			}
			after := mustCommit(t, c, failover("after", "c0", "db0b", 3306, "db0:3306", 10*time.Minute))
			if after.Index <= last.Index {
				t.Fatalf("failover after re-election has index %d, want more than %d", after.Index, last.Index)
			}
			want.add(after)
			c.WaitRecords(want.list())

			back := c.RestartIsolated(oi)
			if got := back.Raft().LastIndex(); got < oldLast {
				t.Errorf("restarted %s has last index %d, want at least %d: its log was not kept", back.ID(), got, oldLast)
			}
			if got := back.Status().SnapshotRestores; got != tc.wantRestores {
				t.Errorf("restarted %s restored %d snapshots, want %d", back.ID(), got, tc.wantRestores)
			}
			if tc.wantRestores > 0 {
				if got := back.FSM().Records(); !reflect.DeepEqual(got, oldRecords) {
					t.Errorf("restarted %s before rejoining holds\n %+v\nwant what it had\n %+v", back.ID(), got, oldRecords)
				}
			} else if back.CaughtUp() {
				t.Errorf("restarted %s reports caught up before it applied its kept log", back.ID())
			}

			c.Rejoin(oi)
			c.WaitRecords(want.list())
			waitFor(t, 5*time.Second, back.ID()+" reporting caught up", back.CaughtUp)
			if r, _ := back.FSM().Record("c0"); r.Epoch != after.Index || r.Master.Host != "db0b" {
				t.Errorf("restarted %s holds c0 = %+v, want db0b with epoch %d", back.ID(), r, after.Index)
			}
		})
	}
}

// TestPartitionedFollowerCatchesUpByLog isolates a follower while the
// majority commits, checks it sees none of it, and that after Rejoin it
// converges by log replication alone (no snapshot is installed).
func TestPartitionedFollowerCatchesUpByLog(t *testing.T) {
	c := nodetest.New(t, 3, nodetest.Options{})
	want := model{}
	want.add(mustCommit(t, c, failover("seed", "seed", "db0", 3306, "", 0)))
	c.WaitRecords(want.list())

	f := c.Followers()[0]
	fi := c.Index(f)
	var others []int
	for i := range c.Nodes {
		if i != fi {
			others = append(others, i)
		}
	}
	c.Isolate(fi)

	var first, last fsm.Result
	for k := range 3 {
		last = mustCommit(t, c, failover(fmt.Sprintf("p%d", k), fmt.Sprintf("p%d", k%2), fmt.Sprintf("db%d", k), 3306, "", time.Duration(k+1)*time.Minute))
		want.add(last)
		if k == 0 {
			first = last
		}
	}
	c.WaitRecords(want.list(), others...)
	holdsFor(t, 300*time.Millisecond, "the isolated follower not receiving the majority's entries", func() bool {
		return f.Raft().LastIndex() < first.Index
	})
	for _, name := range []string{"p0", "p1"} {
		if r, ok := f.FSM().Record(name); ok {
			t.Fatalf("isolated %s holds %+v", f.ID(), r)
		}
	}

	c.Rejoin(fi)
	c.WaitRecords(want.list())
	if got := f.Status().SnapshotRestores; got != 0 {
		t.Errorf("%s restored %d snapshots, want 0: it should catch up from the log", f.ID(), got)
	}
}

// TestPartitionedFollowerCatchesUpBySnapshot isolates a follower, commits on
// the majority and compacts the majority's logs past the follower's last
// entry, so that after Rejoin the follower can only catch up by installing
// a snapshot. Remembered idempotency keys travel with the snapshot.
func TestPartitionedFollowerCatchesUpBySnapshot(t *testing.T) {
	c := nodetest.New(t, 3, nodetest.Options{Tune: func(rc *raft.Config) {
		// Keep only 2 entries behind a snapshot. Snapshots are forced
		// below; raft's own timer (SnapshotInterval, 2 min by default)
		// does not fire during the test.
		rc.TrailingLogs = 2
		rc.SnapshotThreshold = 4
	}})
	want := model{}
	want.add(mustCommit(t, c, failover("seed", "seed", "db0", 3306, "", 0)))
	c.WaitRecords(want.list())

	f := c.Followers()[0]
	fi := c.Index(f)
	var others []int
	for i := range c.Nodes {
		if i != fi {
			others = append(others, i)
		}
	}
	c.Isolate(fi)
	fLast := f.Raft().LastIndex()
	restores := f.Status().SnapshotRestores

	var cmds []command.Command
	var results []fsm.Result
	for k := range 8 {
		cmd := failover(fmt.Sprintf("s%d", k), fmt.Sprintf("s%d", k%3), fmt.Sprintf("db%d", k), 3306, "", time.Duration(k+1)*time.Minute)
		cmds = append(cmds, cmd)
		results = append(results, mustCommit(t, c, cmd))
		want.add(results[k])
	}
	c.WaitRecords(want.list(), others...)
	if got := f.Raft().LastIndex(); got != fLast {
		t.Fatalf("isolated %s last index moved from %d to %d", f.ID(), fLast, got)
	}

	// Snapshot every majority node, so whichever of them leads after Rejoin
	// no longer has the entries the follower needs.
	for _, i := range others {
		n := c.Nodes[i]
		if err := n.Raft().Snapshot().Error(); err != nil {
			t.Fatalf("snapshot %s: %v", n.ID(), err)
		}
		if first := c.FirstIndex(i); first <= fLast+1 {
			t.Fatalf("%s log starts at %d after the snapshot; follower needs %d, so it could replay the log", n.ID(), first, fLast+1)
		}
	}

	c.Rejoin(fi)
	waitFor(t, 15*time.Second, f.ID()+" installing a snapshot", func() bool {
		return f.Status().SnapshotRestores > restores
	})
	c.WaitRecords(want.list())

	// The follower learnt the first key from the snapshot, not the log.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	res, err := f.Propose(ctx, cmds[0])
	if err != nil || !res.Duplicate || res.Index != results[0].Index {
		t.Errorf("retry of %s on %s: result %+v, err %v; want duplicate of index %d", cmds[0].ID, f.ID(), res, err, results[0].Index)
	}
}

// TestSnapshotAfterFailover checks the leader's snapshot after a burst of
// failovers: with SnapshotDelay it covers the last failover well within the
// window; without it no node snapshots in the same window. The window is 20
// times the delay, and raft's own defaults (a 2 min SnapshotInterval, 8192
// entries SnapshotThreshold) would not snapshot in it, so only the node's
// snapshot-after-failover can make the difference.
func TestSnapshotAfterFailover(t *testing.T) {
	const window = 2 * time.Second
	cases := []struct {
		name         string
		delay        time.Duration
		wantSnapshot bool
	}{
		{"delay 100ms snapshots the failovers", 100 * time.Millisecond, true},
		{"delay 0 takes no snapshot", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := nodetest.New(t, 3, nodetest.Options{SnapshotDelay: tc.delay})
			var last fsm.Result
			for k := range 3 {
				last = mustCommit(t, c, failover(fmt.Sprintf("f%d", k), "c1", fmt.Sprintf("db%d", k), 3306, "", time.Duration(k)*time.Minute))
			}
			// snapIndex is node i's last snapshot index. Raft's stats count
			// a snapshot once it is complete; the in-memory store lists one
			// from its creation on, so the check needs both.
			snapIndex := func(i int) (stats, store uint64) {
				metas, err := c.Snaps[i].List()
				if err != nil {
					t.Fatalf("list node%d snapshots: %v", i, err)
				}
				for _, m := range metas {
					store = max(store, m.Index)
				}
				return c.Nodes[i].Status().LastSnapshotIndex, store
			}
			if tc.wantSnapshot {
				// Only the node that proposed the failovers snapshots, and
				// only while it leads.
				snapped := -1
				waitFor(t, window, fmt.Sprintf("a snapshot at index %d or later", last.Index), func() bool {
					for i := range c.Nodes {
						if stats, store := snapIndex(i); stats >= last.Index && store >= last.Index {
							snapped = i
							return true
						}
					}
					return false
				})
				if leader := c.WaitLeader(); c.Nodes[snapped] != leader {
					t.Errorf("%s snapshotted, want the leader %s", c.Nodes[snapped].ID(), leader.ID())
				}
				return
			}
			holdsFor(t, window, "no snapshot", func() bool {
				for i := range c.Nodes {
					if stats, store := snapIndex(i); stats != 0 || store != 0 {
						t.Logf("node%d: snapshot index %d in stats, %d in store", i, stats, store)
						return false
					}
				}
				return true
			})
		})
	}
}

// TestProposeIdempotency checks that a retried request is answered from the
// store without a new entry, that a reused key is refused, and that Apply
// makes the same decisions when two proposals race past the store check.
func TestProposeIdempotency(t *testing.T) {
	c := nodetest.New(t, 3, nodetest.Options{})
	leader := c.WaitLeader()
	follower := c.Followers()[0]

	orig := failover("req-1", "c1", "db1", 3306, "", time.Minute)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	first, err := leader.Propose(ctx, orig)
	if err != nil || first.Duplicate || len(first.Records) != 1 || first.Records[0].Epoch != first.Index {
		t.Fatalf("first proposal: result %+v, err %v", first, err)
	}
	c.WaitRecords(first.Records)

	laterRetry := orig
	laterRetry.At = epoch0.Add(time.Hour).UnixMilli()
	otherMaster := failover("req-1", "c1", "db2", 3306, "", 2*time.Minute)
	otherCluster := failover("req-1", "c2", "db1", 3306, "", 2*time.Minute)
	otherType := command.Command{Type: command.Submit, ID: "req-1", At: epoch0.Add(2 * time.Minute).UnixMilli(), Submit: &command.SubmitPayload{}}

	cases := []struct {
		name    string
		on      *node.Node
		cmd     command.Command
		wantErr error
	}{
		{"same request on the leader", leader, orig, nil},
		{"same request an hour later", leader, laterRetry, nil},
		{"same request on a follower is answered locally", follower, orig, nil},
		{"same id, other master", leader, otherMaster, fsm.ErrIDReused},
		{"same id, other cluster, on a follower", follower, otherCluster, fsm.ErrIDReused},
		{"same id, other command type", leader, otherType, fsm.ErrIDReused},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := make([]uint64, len(c.Nodes))
			for i, n := range c.Nodes {
				before[i] = n.Raft().LastIndex()
			}
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			res, err := tc.on.Propose(ctx, tc.cmd)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil {
				if !res.Duplicate || res.Index != first.Index || !reflect.DeepEqual(res.Records, first.Records) {
					t.Errorf("result %+v, want a duplicate of %+v", res, first)
				}
			}
			for i, n := range c.Nodes {
				if got := n.Raft().LastIndex(); got != before[i] {
					t.Errorf("%s last index moved from %d to %d", n.ID(), before[i], got)
				}
			}
		})
	}

	// Two retries can both miss the store check and both be committed:
	// Apply must then answer the second from the first.
	t.Run("apply dedupes committed entries", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			cmd     command.Command
			wantErr error
		}{
			{"same request", orig, nil},
			{"same id, other master", otherMaster, fsm.ErrIDReused},
		} {
			b, err := command.Encode(tc.cmd)
			if err != nil {
				t.Fatal(err)
			}
			f := leader.Raft().Apply(b, 5*time.Second)
			if err := f.Error(); err != nil {
				t.Fatalf("%s: raft apply: %v", tc.name, err)
			}
			res, ok := f.Response().(fsm.Result)
			if !ok {
				t.Fatalf("%s: response %T, want fsm.Result", tc.name, f.Response())
			}
			if !errors.Is(res.Error(), tc.wantErr) {
				t.Fatalf("%s: err %v, want %v", tc.name, res.Error(), tc.wantErr)
			}
			if tc.wantErr == nil && (!res.Duplicate || res.Index != first.Index) {
				t.Errorf("%s: result %+v, want a duplicate of index %d", tc.name, res, first.Index)
			}
		}
		// Neither entry changed c1 or wrote c2: once a later marker is
		// applied everywhere, the stores hold c1 as first written.
		want := model{}
		want.add(first)
		want.add(mustCommit(t, c, failover("marker", "marker", "db9", 3306, "", 3*time.Minute)))
		c.WaitRecords(want.list())
	})

	// Last, as it moves the command clock a day on: past fsm.IDTTL the key
	// is forgotten, by Propose's store check as by Apply. One command moves
	// the clock by at most fsm.MaxClockStep, so the clock is walked a day
	// on a step at a time, to one step short of the key's expiry; the key is
	// still remembered there, and the reuse's own step takes it past the
	// TTL: with nothing else applied in between, reusing it commits a new
	// entry.
	t.Run("key past its ttl is forgotten", func(t *testing.T) {
		const (
			seenAt  = time.Minute     // req-1's first commit set the clock here
			clockAt = 3 * time.Minute // the marker, the latest stamp so far
		)
		expiry := seenAt + fsm.IDTTL
		var futures []raft.ApplyFuture
		for at := clockAt + fsm.MaxClockStep; at <= expiry-fsm.MaxClockStep; at += fsm.MaxClockStep {
			tick := failover("", "clock", fmt.Sprintf("db-%d", len(futures)%2), 3306, "", at)
			b, err := command.Encode(tick)
			if err != nil {
				t.Fatal(err)
			}
			futures = append(futures, leader.Raft().Apply(b, 10*time.Second))
		}
		for i, f := range futures {
			if err := f.Error(); err != nil {
				t.Fatalf("clock tick %d of %d: %v", i+1, len(futures), err)
			}
			if res, ok := f.Response().(fsm.Result); !ok || res.Err != nil {
				t.Fatalf("clock tick %d of %d: response %+v", i+1, len(futures), f.Response())
			}
		}
		if got, want := len(futures), int((expiry-fsm.MaxClockStep-clockAt)/fsm.MaxClockStep); got != want {
			t.Fatalf("%d clock ticks, want %d", got, want)
		}

		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if res, err := leader.Propose(ctx, orig); err != nil || !res.Duplicate || res.Index != first.Index {
			t.Fatalf("one step before the ttl: result %+v, err %v; want the key still remembered (a duplicate of index %d)", res, err, first.Index)
		}
		reuse := failover("req-1", "c2", "db2", 3306, "", expiry)
		if _, known, err := leader.FSM().Lookup(reuse); known || err != nil {
			t.Fatalf("store check of the reuse: known %v, err %v; want the key forgotten on the clock the reuse moves to", known, err)
		}
		res, err := leader.Propose(ctx, reuse)
		if err != nil || res.Duplicate || res.Index <= first.Index {
			t.Fatalf("reuse after ttl: result %+v, err %v; want a new commit after index %d", res, err, first.Index)
		}
	})
}

// TestStatus checks each node's view: its id and state, the leader with its
// HTTP address from Peers, the three voters, and the applied index.
func TestStatus(t *testing.T) {
	httpAddrs := []string{"10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"}
	c := nodetest.New(t, 3, nodetest.Options{HTTPAddrs: httpAddrs})
	res := mustCommit(t, c, failover("st", "c1", "db1", 3306, "", 0))
	c.WaitRecords(res.Records)

	leader := c.WaitLeader()
	waitFor(t, 5*time.Second, "every node to know the leader", func() bool {
		for _, n := range c.Nodes {
			if n.Status().Leader.ID != leader.ID() {
				return false
			}
		}
		return true
	})
	peer := func(i int) node.Peer {
		id := fmt.Sprintf("node%d", i)
		return node.Peer{ID: id, RaftAddr: id, HTTPAddr: httpAddrs[i]}
	}
	wantLeader := peer(c.Index(leader))
	var wantPeers []node.Member
	for i := range c.Nodes {
		wantPeers = append(wantPeers, node.Member{Peer: peer(i), Suffrage: raft.Voter.String()})
	}
	leaderTerm := leader.Status().Term

	for i, n := range c.Nodes {
		t.Run(n.ID(), func(t *testing.T) {
			s := n.Status()
			wantState := raft.Follower.String()
			if n == leader {
				wantState = raft.Leader.String()
			}
			if s.NodeID != fmt.Sprintf("node%d", i) {
				t.Errorf("NodeID %q, want node%d", s.NodeID, i)
			}
			if s.State != wantState {
				t.Errorf("State %q, want %q", s.State, wantState)
			}
			if s.Leader != wantLeader {
				t.Errorf("Leader %+v, want %+v", s.Leader, wantLeader)
			}
			peers := append([]node.Member(nil), s.Peers...)
			sort.Slice(peers, func(a, b int) bool { return peers[a].ID < peers[b].ID })
			if !reflect.DeepEqual(peers, wantPeers) {
				t.Errorf("Peers %+v, want %+v", s.Peers, wantPeers)
			}
			if s.Term == 0 || s.Term != leaderTerm {
				t.Errorf("Term %d, want the leader's %d", s.Term, leaderTerm)
			}
			if s.AppliedIndex < res.Index || s.AppliedIndex > s.CommitIndex || s.CommitIndex > s.LastIndex {
				t.Errorf("indexes applied %d, commit %d, last %d: want %d <= applied <= commit <= last",
					s.AppliedIndex, s.CommitIndex, s.LastIndex, res.Index)
			}
			if s.Clusters != 1 {
				t.Errorf("Clusters %d, want 1", s.Clusters)
			}
			if s.LastSnapshotIndex != 0 {
				t.Errorf("LastSnapshotIndex %d, want 0 (no snapshot delay)", s.LastSnapshotIndex)
			}

			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			if p, err := n.LeaderPeer(ctx); err != nil || p != wantLeader {
				t.Errorf("LeaderPeer %+v, %v; want %+v", p, err, wantLeader)
			}
		})
	}
}

// TestCaughtUpMeansStoreCaughtUp: a restarted follower reports CaughtUp only
// once its store holds what its log held, never while raft has merely
// handed the entries to the FSM.
func TestCaughtUpMeansStoreCaughtUp(t *testing.T) {
	c := nodetest.New(t, 3, nodetest.Options{})
	want := model{}
	for k := range 300 {
		want.add(mustCommit(t, c, failover(fmt.Sprintf("k%d", k), fmt.Sprintf("c%d", k), "10.0.0.1", 3306, "", time.Duration(k)*time.Second)))
	}
	c.WaitRecords(want.list())
	fi := c.Index(c.Followers()[0])
	c.Stop(fi)
	back := c.RestartIsolated(fi)
	if back.CaughtUp() {
		t.Fatalf("isolated restarted node reports CaughtUp with %d of 300 clusters", back.FSM().Len())
	}
	c.Rejoin(fi)
	deadline := time.Now().Add(10 * time.Second)
	for !back.CaughtUp() {
		if time.Now().After(deadline) {
			t.Fatal("restarted node never caught up")
		}
		time.Sleep(time.Millisecond)
	}
	if got := back.FSM().Records(); !reflect.DeepEqual(got, want.list()) {
		t.Fatalf("CaughtUp true but the store holds %d of 300 clusters", len(got))
	}
}
