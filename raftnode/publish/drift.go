package publish

import (
	"context"

	"github.com/masterkv/masterkv/internal/kvstore"
)

// checkDrift reads the store for real and compares it with the committed
// records it already confirmed. A cluster still waiting to be written is
// not drift. What differs is judged by the one rule (kvstore.Judge): a
// missing cluster or an older epoch (a wiped store, a restored backup) is
// distribution and is written back; the committed epoch with other values
// is a hand edit, reported, and rewritten only with repair on: an operator
// may have edited the store by hand during an incident.
//
// It runs off the write loop (see Run) and may take seconds; what it marks
// for repair is written once Run hears it finished.
func (p *Publisher) checkDrift(ctx context.Context) {
	recs := p.src.Records()
	var clusters []kvstore.Cluster
	p.mu.Lock()
	for _, r := range recs {
		if p.applied[r.Cluster] >= r.Epoch {
			clusters = append(clusters, kvstore.NewCluster(p.cfg.Layout, r.Cluster, r.Master, r.Epoch))
		}
	}
	p.mu.Unlock()
	if sv, ok := p.store.(kvstore.Surveyor); ok && len(clusters) > 0 {
		// One read (a listing in Consul) tells which clusters are exact;
		// only the others are read in full, to name their keys.
		same, err := sv.Survey(ctx, clusters)
		if err != nil {
			p.log.Warn("drift check could not read the store", "err", err)
			return
		}
		var differ []kvstore.Cluster
		for i, c := range clusters {
			if !same[i] {
				differ = append(differ, c)
			}
		}
		clusters = differ
	}
	var drifted []string
	var found []finding
	for start := 0; start < len(clusters); start += p.cfg.BatchSize {
		chunk := clusters[start:min(start+p.cfg.BatchSize, len(clusters))]
		obs, err := p.store.Read(ctx, chunk)
		if err != nil {
			p.log.Warn("drift check could not read the store", "err", err)
			return
		}
		for _, c := range chunk {
			v := kvstore.JudgeObserved(c, obs[c.Alias])
			if v == kvstore.Same || v == kvstore.Ahead {
				continue // Ahead: a newer writer owns it; not ours to call drift
			}
			drifted = append(drifted, c.Alias)
			found = append(found, finding{c.Alias, c.Epoch, v})
			p.log.Warn("drift: store differs from committed state", "cluster", c.Alias, "keys", kvstore.Diff(c, obs[c.Alias]),
				"verdict", v.String(), "repair", p.cfg.DriftRepair || v == kvstore.Behind)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status.Drift, p.status.DriftCheckedAt = drifted, p.cfg.Now()
	for _, f := range found {
		// Distribution is always written; a hand edit only with repair.
		if f.verdict == kvstore.Behind || p.cfg.DriftRepair {
			p.force[f.alias] = true
			continue
		}
		p.noteEdit(f.alias, f.epoch)
	}
}

// finding is one drifted cluster and what kvstore.Judge made of it.
type finding struct {
	alias   string
	epoch   uint64
	verdict kvstore.Verdict
}
