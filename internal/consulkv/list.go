package consulkv

import (
	"context"
	"fmt"
	"strings"

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
	select {
	case s.lists <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("consul list %s in %s: %w", prefix, s.Name(), ctx.Err())
	}
	pairs, _, err := s.client.KV().List(prefix, s.queryOpts(ctx))
	<-s.lists
	if err != nil {
		return nil, fmt.Errorf("consul list %s in %s: %w", prefix, s.Name(), classify(err))
	}
	m := newMatcher(clusters)
	out := make([]stored, len(clusters))
	for i := range out {
		out[i] = stored{}
	}
	for _, p := range pairs {
		if i, ok := m.match(p.Key); ok {
			out[i][p.Key] = storedKV{value: string(p.Value), index: p.ModifyIndex}
		}
	}
	return out, nil
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
