// Package metrics exposes a node's Prometheus metrics: raft state and leader
// changes, commits by command type, per-store and per-datacenter writes,
// failures and latency, apply backlog, drift and sweep passes.
//
// Counters and histograms are observed as things happen; gauges are read
// from the node's status at scrape time, so they are never stale.
package metrics

import (
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/masterkv/masterkv/internal/command"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/raftnode/fsm"
	"github.com/masterkv/masterkv/raftnode/node"
)

// Metrics is one node's registry.
type Metrics struct {
	reg          *prometheus.Registry
	commits      *prometheus.CounterVec
	storeWrites  *prometheus.CounterVec
	keysWritten  *prometheus.CounterVec
	writeSeconds *prometheus.HistogramVec
}

// New registers masterkv's metrics, the Go runtime's and the process's.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "masterkv_commits_total",
			Help: "Commands proposed on this node by type and result (ok, duplicate, conflict, unknown_cluster, id_reused, not_leader, error).",
		}, []string{"type", "result"}),
		storeWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "masterkv_store_clusters_total",
			Help: "Clusters written to a store by outcome (written, unchanged, stale, edited, refused, failed); store is zookeeper, consul, or consul:<dc> for the distributor.",
		}, []string{"store", "status"}),
		keysWritten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "masterkv_store_keys_written_total",
			Help: "Keys changed in a store.",
		}, []string{"store"}),
		writeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "masterkv_store_write_seconds",
			Help:    "Duration of one batch write (read, compare, write) to a store.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, []string{"store"}),
	}
	m.reg.MustRegister(m.commits, m.storeWrites, m.keysWritten, m.writeSeconds,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Register adds a collector, such as the status collector.
func (m *Metrics) Register(c prometheus.Collector) { m.reg.MustRegister(c) }

// ObserveCommit counts one proposal's result.
func (m *Metrics) ObserveCommit(t command.Type, res fsm.Result, err error) {
	result := "ok"
	switch {
	case err == nil && res.Duplicate:
		result = "duplicate"
	case errors.Is(err, fsm.ErrConflict):
		result = "conflict"
	case errors.Is(err, fsm.ErrUnknownCluster):
		result = "unknown_cluster"
	case errors.Is(err, fsm.ErrIDReused):
		result = "id_reused"
	case errors.Is(err, node.ErrNotLeader):
		result = "not_leader"
	case err != nil:
		result = "error"
	}
	m.commits.WithLabelValues(t.String(), result).Inc()
}

// ObserveWrite records one batch write to a store; publishers call it.
func (m *Metrics) ObserveWrite(store string, seconds float64, outs []kvstore.Outcome) {
	m.writeSeconds.WithLabelValues(store).Observe(seconds)
	keys := 0
	for _, o := range outs {
		m.storeWrites.WithLabelValues(store, o.Status.String()).Inc()
		if o.Status == kvstore.Written {
			keys += o.Keys
		}
	}
	if keys > 0 {
		m.keysWritten.WithLabelValues(store).Add(float64(keys))
	}
}
