package metrics_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/masterkv/masterkv/internal/command"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/raftnode/fsm"
	"github.com/masterkv/masterkv/raftnode/metrics"
	"github.com/masterkv/masterkv/raftnode/node"
	"github.com/masterkv/masterkv/raftnode/publish"
)

// fakeNode stands in for a node's status: the collector only reads it.
type fakeNode struct{ st node.Status }

func (f fakeNode) Status() node.Status   { return f.st }
func (f fakeNode) LeaderChanges() uint64 { return 3 }

func TestMetrics(t *testing.T) {
	m := metrics.New()
	m.ObserveCommit(command.Failover, fsm.Result{}, nil)
	m.ObserveCommit(command.Failover, fsm.Result{Duplicate: true}, nil)
	m.ObserveCommit(command.Failover, fsm.Result{}, &fsm.Error{Kind: fsm.KindConflict, Message: "x"})
	m.ObserveCommit(command.Submit, fsm.Result{}, node.ErrNotLeader)
	m.ObserveCommit(command.Populate, fsm.Result{}, errors.New("boom"))
	m.ObserveWrite("consul:dc2", 0.01, []kvstore.Outcome{
		{Status: kvstore.Written, Keys: 4}, {Status: kvstore.Unchanged, Keys: 6}, {Status: kvstore.Failed, Err: errors.New("down")},
	})
	m.Register(metrics.NewStatusCollector(fakeNode{node.Status{State: "Leader", LastIndex: 9, StoreIndex: 8, CaughtUp: true, Clusters: 2}},
		func() []publish.Status {
			return []publish.Status{{Store: "consul:dc2", Backlog: 1, AppliedEpoch: 7, Drift: []string{"a"},
				LastSweep: &publish.SweepReport{Duration: 2 * time.Second, KeysRead: 12, KeysUnchanged: 12}}}
		}))
	want := `
# HELP masterkv_commits_total Commands proposed on this node by type and result (ok, duplicate, conflict, unknown_cluster, id_reused, not_leader, error).
# TYPE masterkv_commits_total counter
masterkv_commits_total{result="conflict",type="failover"} 1
masterkv_commits_total{result="duplicate",type="failover"} 1
masterkv_commits_total{result="error",type="populate"} 1
masterkv_commits_total{result="not_leader",type="submit"} 1
masterkv_commits_total{result="ok",type="failover"} 1
# HELP masterkv_store_keys_written_total Keys changed in a store.
# TYPE masterkv_store_keys_written_total counter
masterkv_store_keys_written_total{store="consul:dc2"} 4
# HELP masterkv_raft_state 1 for this node's current raft state.
# TYPE masterkv_raft_state gauge
masterkv_raft_state{state="candidate"} 0
masterkv_raft_state{state="follower"} 0
masterkv_raft_state{state="leader"} 1
masterkv_raft_state{state="shutdown"} 0
# HELP masterkv_store_backlog Clusters committed but not yet confirmed by a store (the apply backlog).
# TYPE masterkv_store_backlog gauge
masterkv_store_backlog{store="consul:dc2"} 1
# HELP masterkv_sweep_duration_seconds Duration of the last full sweep pass into a datacenter.
# TYPE masterkv_sweep_duration_seconds gauge
masterkv_sweep_duration_seconds{store="consul:dc2"} 2
`
	names := []string{"masterkv_commits_total", "masterkv_store_keys_written_total", "masterkv_raft_state", "masterkv_store_backlog", "masterkv_sweep_duration_seconds"}
	if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	for name, want := range map[string]int{
		"masterkv_store_clusters_total": 3, "masterkv_store_write_seconds": 1, "masterkv_raft_leader_changes_total": 1,
		"masterkv_raft_index": 4, "masterkv_caught_up": 1, "masterkv_snapshot_restores_total": 1, "masterkv_clusters": 1, "masterkv_store_applied_epoch": 1,
		"masterkv_store_drift_clusters": 1, "masterkv_store_hand_edited_clusters": 1, "masterkv_store_refused_clusters": 1, "masterkv_sweep_keys": 4,
	} {
		if got, err := testutil.GatherAndCount(m.Gatherer(), name); err != nil || got != want {
			t.Errorf("%s: %d series (%v), want %d", name, got, err, want)
		}
	}
}
