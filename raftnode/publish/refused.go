package publish

import (
	"context"
	"sync"
	"time"

	"github.com/masterkv/masterkv/internal/kvstore"
)

// refusal is a cluster the store refused for good at an epoch.
type refusal struct {
	epoch uint64
	at    time.Time
}

// refusedSoloLimit bounds the clusters written one by one at once when a
// batch is re-tried cluster by cluster after a refusal.
const refusedSoloLimit = 8

// settleRefusals turns the failures of a batch that the store calls
// permanent (kvstore.Refuser) into Refused outcomes, in place. A store may
// refuse several clusters for one of them (a Consul transaction or read
// holding several clusters fails whole), so when a batch of more than one
// cluster has refusals, each refused cluster is written again on its own:
// only the ones refused alone stay refused.
func (p *Publisher) settleRefusals(ctx context.Context, clusters []kvstore.Cluster, outs []kvstore.Outcome) {
	r, ok := p.store.(kvstore.Refuser)
	if !ok {
		return
	}
	refused := func(o kvstore.Outcome) bool { return o.Status == kvstore.Failed && o.Err != nil && r.Refused(o.Err) }
	var again []int
	for i, o := range outs {
		if refused(o) {
			again = append(again, i)
		}
	}
	if len(again) == 0 {
		return
	}
	if len(clusters) > 1 {
		var mu sync.Mutex
		kvstore.Parallel(len(again), refusedSoloLimit, func(k int) {
			i := again[k]
			o := p.store.Write(ctx, clusters[i:i+1])
			mu.Lock()
			defer mu.Unlock()
			if len(o) == 1 {
				outs[i] = o[0]
			}
		})
	}
	for _, i := range again {
		if refused(outs[i]) {
			outs[i].Status = kvstore.Refused
		}
	}
}

// noteRefusal remembers a refused cluster so that later rounds leave it out
// until its epoch changes or RefusedRetry passes, and logs it once per
// cluster and epoch; p.mu is held.
func (p *Publisher) noteRefusal(o kvstore.Outcome) {
	if ref, ok := p.refused[o.Alias]; !ok || ref.epoch < o.Epoch {
		p.log.Warn("store refuses the cluster for good; left out until its epoch changes", "cluster", o.Alias, "epoch", o.Epoch,
			"err", o.Err.Error(), "retry_after", p.cfg.RefusedRetry)
	}
	p.refused[o.Alias] = refusal{epoch: o.Epoch, at: p.cfg.Now()}
}

// leftOut reports whether a committed record is a refusal to leave out of
// this round: refused at this epoch, less than RefusedRetry ago (a policy
// or an ACL may have been fixed since); p.mu is held.
func (p *Publisher) leftOut(alias string, epoch uint64) bool {
	ref, ok := p.refused[alias]
	return ok && ref.epoch >= epoch && p.cfg.Now().Sub(ref.at) < p.cfg.RefusedRetry
}
