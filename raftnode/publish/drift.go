package publish

import (
	"context"

	"github.com/masterkv/masterkv/internal/kvstore"
)

// checkDrift reads the store for real and compares it with the committed
// records it already confirmed. A cluster still waiting to be written is
// not drift. Repair is opt-in: an operator may have edited the store by
// hand during an incident.
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
	for start := 0; start < len(clusters); start += p.cfg.BatchSize {
		chunk := clusters[start:min(start+p.cfg.BatchSize, len(clusters))]
		obs, err := p.store.Read(ctx, chunk)
		if err != nil {
			p.log.Warn("drift check could not read the store", "err", err)
			return
		}
		for _, c := range chunk {
			if keys := kvstore.Diff(c, obs[c.Alias]); len(keys) > 0 {
				if epoch, _ := kvstore.ParseEpoch(obs[c.Alias][c.EpochKey()]); c.EpochKey() != "" && epoch > c.Epoch {
					continue // a newer writer owns it; not ours to call drift
				}
				drifted = append(drifted, c.Alias)
				p.log.Warn("drift: store differs from committed state", "cluster", c.Alias, "keys", keys, "repair", p.cfg.DriftRepair)
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status.Drift, p.status.DriftCheckedAt = drifted, p.cfg.Now()
	if p.cfg.DriftRepair {
		for _, a := range drifted {
			p.force[a] = true
		}
	}
}
