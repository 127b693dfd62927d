// Package kvstore holds what every external store writer shares: the unit of
// publication (one cluster's pairs at an epoch) and the outcome of writing it.
//
// A writer publishes whole clusters, never single keys, and never replaces a
// stored epoch with a lower one: the epoch guard that makes replays, lagging
// nodes and racing sweeps harmless.
package kvstore

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/master"
)

// Cluster is one cluster's pairs at an epoch, as built by discovery.Layout.
type Cluster struct {
	Alias string
	Epoch uint64
	// Pairs are in layout order: see discovery.MainPair and
	// discovery.EpochIndex.
	Pairs []discovery.KVPair
	// KeepHandEdits asks the writer to leave a hand edit alone: a store
	// holding the cluster's own epoch with other values (see Judge). The
	// outcome is then Edited and nothing is written. Distribution (a
	// missing cluster, an older epoch) is written either way. The zero
	// value rewrites hand edits (repair).
	KeepHandEdits bool
}

// NewCluster builds the publication unit of alias from its committed master.
func NewCluster(l discovery.Layout, alias string, m master.Master, epoch uint64) Cluster {
	return Cluster{Alias: alias, Epoch: epoch, Pairs: l.Pairs(alias, m, epoch)}
}

// MainKey returns the cluster's main key.
func (c Cluster) MainKey() string { return discovery.Main(c.Pairs).Key }

// Status is what happened to one cluster in one write.
type Status int

// The statuses.
const (
	// Failed: the write did not happen; Err says why. Retry later.
	Failed Status = iota
	// Written: at least one key was changed.
	Written
	// Unchanged: the store already held every pair.
	Unchanged
	// Stale: the store holds a newer epoch; nothing was written, by design.
	Stale
	// Edited: the store holds the cluster's epoch with other values, a
	// hand edit, and the write asked to keep it (Cluster.KeepHandEdits);
	// nothing was written. Keys counts the keys that differ.
	Edited
	// Refused: the store refused the cluster for good (see Refuser); Err
	// says why. Retry only when the cluster changes.
	Refused
)

func (s Status) String() string {
	switch s {
	case Written:
		return "written"
	case Unchanged:
		return "unchanged"
	case Stale:
		return "stale"
	case Edited:
		return "edited"
	case Refused:
		return "refused"
	}
	return "failed"
}

// Outcome is the result of writing one cluster.
type Outcome struct {
	Alias  string
	Epoch  uint64
	Status Status
	// Keys counts the keys written (Written) or found equal (Unchanged).
	Keys int
	Err  error
}

// Done reports whether the cluster needs no retry: written, already equal,
// superseded by a newer epoch in the store, or a hand edit left alone.
// Failed and Refused are not done.
func (o Outcome) Done() bool { return o.Status != Failed && o.Status != Refused }

// Writer publishes clusters to one store (one Consul datacenter, one
// ZooKeeper ensemble). Write returns one outcome per cluster, in order.
type Writer interface {
	Name() string
	Write(ctx context.Context, clusters []Cluster) []Outcome
}

// Observed is what a store holds for a cluster: its main key and every key
// below it, with their values. Missing keys are absent from the map.
type Observed map[string]string

// Reader reads back what a store holds, for drift detection. It reads the
// store for real every time; no cache.
type Reader interface {
	Read(ctx context.Context, clusters []Cluster) (map[string]Observed, error)
}

// Surveyor is a Reader that can also tell, for many clusters with one
// read, which of them it holds exactly (every pair present with its value)
// without building what it read: a sweep pass over 10,000 clusters then
// costs one read and little memory.
type Surveyor interface {
	Survey(ctx context.Context, clusters []Cluster) (same []bool, err error)
}

// Diff returns the keys of c whose value in o differs or is missing.
func Diff(c Cluster, o Observed) []string {
	var out []string
	for _, p := range c.Pairs {
		if v, ok := o[p.Key]; !ok || v != p.Value {
			out = append(out, p.Key)
		}
	}
	return out
}

// ParseEpoch reads a stored epoch value; an empty or missing value is 0.
func ParseEpoch(v string) (uint64, error) {
	if v == "" {
		return 0, nil
	}
	e, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stored epoch %q is not a number: %w", v, err)
	}
	return e, nil
}

// Failures turns every cluster into a failed outcome with err, for a batch
// that could not be attempted at all.
func Failures(clusters []Cluster, err error) []Outcome {
	out := make([]Outcome, len(clusters))
	for i, c := range clusters {
		out[i] = Outcome{Alias: c.Alias, Epoch: c.Epoch, Status: Failed, Err: err}
	}
	return out
}

// EpochKey returns the cluster's epoch key, or "" when the layout writes
// none (strict orchestrator compatibility: then there is no store-side guard).
func (c Cluster) EpochKey() string {
	if e, ok := discovery.EpochIndex(c.Pairs); ok {
		return c.Pairs[e].Key
	}
	return ""
}

// Parallel runs fn(i) for every i in [0,n) with at most limit calls at
// once, and returns when all are done. Writers use it to bound the requests
// one Write keeps in flight against a store.
func Parallel(n, limit int, fn func(i int)) {
	sem := make(chan struct{}, max(limit, 1))
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		}()
	}
	wg.Wait()
}
