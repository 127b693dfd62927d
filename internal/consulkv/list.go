package consulkv

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/masterkv/masterkv/internal/kvstore"
)

// listMin is the number of clusters from which Read lists the whole prefix
// with one recursive GET instead of reading each cluster. A full pass over
// 10,000 clusters is 320 read transactions per datacenter otherwise; one
// listing reads the same keys in about half the time and Consul CPU (see
// docs/BENCHMARKS.md, the sweep's finding 4). Below this a listing could
// read far more keys than asked for.
const listMin = 256

// commonPrefix returns the prefix every cluster's main key is <prefix><alias>
// of, or false when they do not share one (or it is empty, which would list
// the whole KV store).
func commonPrefix(clusters []kvstore.Cluster) (string, bool) {
	first := clusters[0]
	prefix, ok := strings.CutSuffix(first.MainKey(), first.Alias)
	if !ok || strings.Trim(prefix, "/") == "" {
		return "", false
	}
	for _, c := range clusters[1:] {
		if c.MainKey() != prefix+c.Alias {
			return "", false
		}
	}
	return prefix, true
}

// readList reads clusters with one consistent recursive GET of prefix.
// Listings are one at a time per agent connection (s.lists, shared by the
// ForDatacenter copies): a 60,000-key answer is decoded whole, about 20 MB
// while it lasts, and a node's memory budget is 100 MB.
//
// Consul leaves out of a listing the keys the token may not read, without
// an error, so a cluster may look absent here when it is only hidden. Read
// never concludes anything but "differs" from absence; the write path then
// reads that cluster with a transaction, which does report the refusal.
func (s *Store) readList(ctx context.Context, prefix string, clusters []kvstore.Cluster) ([]stored, error) {
	out := make([]stored, len(clusters))
	for i := range out {
		out[i] = stored{}
	}
	err := s.list(ctx, prefix, clusters, func(i int, p *api.KVPair) {
		out[i][p.Key] = storedKV{value: string(p.Value), index: p.ModifyIndex}
	})
	return out, err
}

// list calls each for every listed key that belongs to one of clusters,
// with that cluster's index.
func (s *Store) list(ctx context.Context, prefix string, clusters []kvstore.Cluster, each func(i int, p *api.KVPair)) error {
	select {
	case s.lists <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("consul list %s in %s: %w", prefix, s.Name(), ctx.Err())
	}
	pairs, _, err := s.client.KV().List(prefix, s.queryOpts(ctx))
	<-s.lists
	if err != nil {
		return fmt.Errorf("consul list %s in %s: %w", prefix, s.Name(), classify(err))
	}
	m := newMatcher(clusters)
	for _, p := range pairs {
		if i, ok := m.match(p.Key); ok {
			each(i, p)
		}
	}
	return nil
}

// Survey tells which clusters Consul holds exactly. Many clusters under
// one prefix are compared while the listing is walked, without a map per
// cluster; fewer are Read. Like Read, it remembers the clusters found
// exact for planning their next change.
func (s *Store) Survey(ctx context.Context, clusters []kvstore.Cluster) ([]bool, error) {
	same := make([]bool, len(clusters))
	prefix, ok := "", false
	if len(clusters) >= listMin {
		prefix, ok = commonPrefix(clusters)
	}
	if !ok {
		obs, err := s.Read(ctx, clusters)
		if err != nil {
			return nil, err
		}
		for i, c := range clusters {
			same[i] = len(kvstore.Diff(c, obs[c.Alias])) == 0
		}
		return same, nil
	}
	// Pair j of cluster i is at start[i]+j in equal and indexes.
	start := make([]int, len(clusters)+1)
	for i, c := range clusters {
		start[i+1] = start[i] + len(c.Pairs)
	}
	equal := make([]bool, start[len(clusters)])
	indexes := make([]uint64, start[len(clusters)])
	err := s.list(ctx, prefix, clusters, func(i int, p *api.KVPair) {
		for j, want := range clusters[i].Pairs {
			if want.Key == p.Key {
				equal[start[i]+j] = want.Value == string(p.Value)
				indexes[start[i]+j] = p.ModifyIndex
				return
			}
		}
	})
	if err != nil {
		return nil, err
	}
	for i, c := range clusters {
		same[i] = !slices.Contains(equal[start[i]:start[i+1]], false)
		if same[i] && s.provider == ProviderTxn {
			s.written.rememberAt(c, indexes[start[i]:start[i+1]])
		}
	}
	return same, nil
}

// matcher finds the cluster a returned key belongs to: the cluster whose
// main key is the key or its nearest ancestor, so every reader (a listing,
// get-tree transactions, plain GETs) sees every key below a main key.
type matcher struct {
	clusters []kvstore.Cluster
	byMain   map[string]int
}

func newMatcher(clusters []kvstore.Cluster) matcher {
	m := matcher{clusters: clusters, byMain: make(map[string]int, len(clusters))}
	for i, c := range clusters {
		m.byMain[c.MainKey()] = i
	}
	return m
}

func (m matcher) match(key string) (int, bool) {
	for k := key; ; {
		if i, ok := m.byMain[k]; ok {
			return i, belongs(m.clusters[i], key)
		}
		cut := strings.LastIndexByte(k, '/')
		if cut <= 0 {
			return 0, false
		}
		k = k[:cut]
	}
}
