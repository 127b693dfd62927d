package metrics

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/masterkv/masterkv/raftnode/node"
	"github.com/masterkv/masterkv/raftnode/publish"
)

// Node is what the status collector reads of the node at scrape time.
type Node interface {
	Status() node.Status
	LeaderChanges() uint64
}

var _ Node = (*node.Node)(nil)

// StatusCollector turns the node's and its stores' status into gauges.
type StatusCollector struct {
	node   Node
	stores func() []publish.Status
}

// NewStatusCollector reads n and the statuses stores returns (this node's
// stores and, on the leader, the distributor's datacenters).
func NewStatusCollector(n Node, stores func() []publish.Status) *StatusCollector {
	return &StatusCollector{node: n, stores: stores}
}

var (
	descState         = prometheus.NewDesc("masterkv_raft_state", "1 for this node's current raft state.", []string{"state"}, nil)
	descLeaderChanges = prometheus.NewDesc("masterkv_raft_leader_changes_total", "Leader changes this node observed.", nil, nil)
	descIndex         = prometheus.NewDesc("masterkv_raft_index", "Raft indexes: last (log), commit, applied (handed to the FSM), store (applied by the internal store).", []string{"kind"}, nil)
	descCaughtUp      = prometheus.NewDesc("masterkv_caught_up", "1 once a restarted node's store reflects the log it started with.", nil, nil)
	descRestores      = prometheus.NewDesc("masterkv_snapshot_restores_total", "Snapshots restored into the FSM since start (at start, or sent by the leader to a node too far behind).", nil, nil)
	descClusters      = prometheus.NewDesc("masterkv_clusters", "Clusters in the internal store.", nil, nil)
	descBacklog       = prometheus.NewDesc("masterkv_store_backlog", "Clusters committed but not yet confirmed by a store (the apply backlog).", []string{"store"}, nil)
	descAppliedEpoch  = prometheus.NewDesc("masterkv_store_applied_epoch", "Highest epoch a store confirmed.", []string{"store"}, nil)
	descDrift         = prometheus.NewDesc("masterkv_store_drift_clusters", "Clusters whose stored keys differed from committed state at the last drift check.", []string{"store"}, nil)
	descHandEdits     = prometheus.NewDesc("masterkv_store_hand_edited_clusters", "Clusters a store holds at their committed epoch with values edited by hand, left alone because repair is off.", []string{"store"}, nil)
	descRefused       = prometheus.NewDesc("masterkv_store_refused_clusters", "Clusters a store refuses for good at their committed epoch (an ACL that denies their keys, a path it cannot hold), left out until their epoch changes.", []string{"store"}, nil)
	descSweepSeconds  = prometheus.NewDesc("masterkv_sweep_duration_seconds", "Duration of the last full sweep pass into a datacenter.", []string{"store"}, nil)
	descSweepKeys     = prometheus.NewDesc("masterkv_sweep_keys", "Keys of the last full sweep pass by kind (read, written, unchanged, failed).", []string{"store", "kind"}, nil)
)

// Describe implements prometheus.Collector.
func (c *StatusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descLeaderChanges, descIndex, descCaughtUp, descRestores, descClusters,
		descBacklog, descAppliedEpoch, descDrift, descHandEdits, descRefused, descSweepSeconds, descSweepKeys} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *StatusCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.node.Status()
	for _, s := range []string{"leader", "follower", "candidate", "shutdown"} {
		v := 0.0
		if strings.EqualFold(st.State, s) {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, s)
	}
	ch <- prometheus.MustNewConstMetric(descLeaderChanges, prometheus.CounterValue, float64(c.node.LeaderChanges()))
	for kind, v := range map[string]uint64{"last": st.LastIndex, "commit": st.CommitIndex, "applied": st.AppliedIndex, "store": st.StoreIndex} {
		ch <- prometheus.MustNewConstMetric(descIndex, prometheus.GaugeValue, float64(v), kind)
	}
	ch <- prometheus.MustNewConstMetric(descCaughtUp, prometheus.GaugeValue, boolValue(st.CaughtUp))
	ch <- prometheus.MustNewConstMetric(descRestores, prometheus.CounterValue, float64(st.SnapshotRestores))
	ch <- prometheus.MustNewConstMetric(descClusters, prometheus.GaugeValue, float64(st.Clusters))
	for _, s := range c.stores() {
		ch <- prometheus.MustNewConstMetric(descBacklog, prometheus.GaugeValue, float64(s.Backlog), s.Store)
		ch <- prometheus.MustNewConstMetric(descAppliedEpoch, prometheus.GaugeValue, float64(s.AppliedEpoch), s.Store)
		ch <- prometheus.MustNewConstMetric(descDrift, prometheus.GaugeValue, float64(len(s.Drift)), s.Store)
		ch <- prometheus.MustNewConstMetric(descHandEdits, prometheus.GaugeValue, float64(len(s.HandEdits)), s.Store)
		ch <- prometheus.MustNewConstMetric(descRefused, prometheus.GaugeValue, float64(len(s.Refused)), s.Store)
		if r := s.LastSweep; r != nil {
			ch <- prometheus.MustNewConstMetric(descSweepSeconds, prometheus.GaugeValue, r.Duration.Seconds(), s.Store)
			for kind, v := range map[string]int{"read": r.KeysRead, "written": r.KeysWritten, "unchanged": r.KeysUnchanged, "failed": r.KeysFailed} {
				ch <- prometheus.MustNewConstMetric(descSweepKeys, prometheus.GaugeValue, float64(v), s.Store, kind)
			}
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
