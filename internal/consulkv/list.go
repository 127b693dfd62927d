package consulkv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
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
//
// Consul leaves out of a listing the keys the token may not read, without
// an error, so a cluster may look absent here when it is only hidden. Read
// reads such clusters again one by one (confirmAbsent); Survey concludes
// only "differs" from absence, and the write path's read transaction then
// reports the refusal.
func (s *Store) readList(ctx context.Context, prefix string, clusters []kvstore.Cluster) ([]stored, error) {
	out := make([]stored, len(clusters))
	for i := range out {
		out[i] = stored{}
	}
	err := s.list(ctx, prefix, clusters, func(i int, kv listedKV) {
		out[i][kv.Key] = storedKV{value: string(kv.Value), index: kv.ModifyIndex, flags: kv.Flags}
	})
	return out, err
}

// confirmAbsent reads again, one cluster at a time, the clusters a listing
// found without any key. Consul leaves out of a listing the keys the token
// may not read, silently; the per-cluster reads report that refusal, so
// Read never reports keys that exist as missing. In steady state no
// cluster is absent and this costs nothing.
func (s *Store) confirmAbsent(ctx context.Context, clusters []kvstore.Cluster, st []stored) error {
	var absent []int
	for i := range clusters {
		if len(st[i]) == 0 {
			absent = append(absent, i)
		}
	}
	if len(absent) == 0 {
		return nil
	}
	sub := make([]kvstore.Cluster, len(absent))
	for k, i := range absent {
		sub[k] = clusters[i]
	}
	again, errs := s.readEach(ctx, sub)
	for k, i := range absent {
		if errs[k] != nil {
			return errs[k]
		}
		st[i] = again[k]
	}
	return nil
}

// listedKV is what a listing tells of one key.
type listedKV struct {
	Key         string
	Value       []byte
	ModifyIndex uint64
	Flags       uint64
}

// list calls each for every listed key that belongs to one of clusters,
// with that cluster's index. Listings are one at a time per agent
// connection (s.lists, shared by the ForDatacenter copies), so that
// datacenters listed at the same moment do not add up in memory.
func (s *Store) list(ctx context.Context, prefix string, clusters []kvstore.Cluster, each func(i int, kv listedKV)) error {
	select {
	case s.lists <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("consul list %s in %s: %w", prefix, s.Name(), ctx.Err())
	}
	defer func() { <-s.lists }()
	m := newMatcher(clusters)
	visit := func(kv listedKV) {
		if i, ok := m.match(kv.Key); ok {
			each(i, kv)
		}
	}
	var err error
	if s.raw != nil {
		err = s.raw.list(ctx, prefix, s.dc, visit)
	} else {
		var pairs api.KVPairs
		pairs, _, err = s.client.KV().List(prefix, s.queryOpts(ctx))
		for _, p := range pairs {
			visit(listedKV{Key: p.Key, Value: p.Value, ModifyIndex: p.ModifyIndex})
		}
	}
	if err != nil {
		return fmt.Errorf("consul list %s in %s: %w", prefix, s.Name(), classify(err))
	}
	return nil
}

// rawLister GETs a consistent recursive listing and decodes it one key at a
// time. The api client (KV().List) decodes an answer whole: for 60,000
// keys, about 8 MB of JSON buffered plus 60,000 KVPair values, some 20 MB
// while it lasts, on a node whose budget is 100 MB. This is the one call
// masterkv makes without the api client; it uses the client's HTTP
// transport (TLS included), token header and address.
type rawLister struct {
	http  *http.Client
	base  url.URL
	token string
	query url.Values // namespace and partition, when set
}

// newRawLister takes everything from the api client's config after
// api.NewClient filled it in (CONSUL_HTTP_TOKEN, a path prefix in the
// address, namespace and partition). It returns nil for an address the
// api client reaches by other means (a unix socket): those list through
// the api client.
func newRawLister(cfg *api.Config) *rawLister {
	if cfg.Scheme != "http" && cfg.Scheme != "https" || strings.Contains(cfg.Address, "/") {
		return nil // a unix socket path, dialled by the api client's transport
	}
	r := &rawLister{http: cfg.HttpClient, token: cfg.Token, query: url.Values{},
		base: url.URL{Scheme: cfg.Scheme, Host: cfg.Address, Path: strings.TrimSuffix(cfg.PathPrefix, "/")}}
	if cfg.Namespace != "" {
		r.query.Set("ns", cfg.Namespace)
	}
	if cfg.Partition != "" {
		r.query.Set("partition", cfg.Partition)
	}
	return r
}

func (r *rawLister) list(ctx context.Context, prefix, dc string, each func(listedKV)) error {
	u := r.base
	u.Path += "/v1/kv/" + strings.TrimPrefix(prefix, "/")
	q := url.Values{"recurse": {""}, "consistent": {""}}
	for k, v := range r.query {
		q[k] = v
	}
	if dc != "" {
		q.Set("dc", dc)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	if r.token != "" {
		req.Header.Set("X-Consul-Token", r.token)
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil // no key under the prefix
	default:
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("unexpected response code: %d (%s)", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	dec := json.NewDecoder(resp.Body)
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return fmt.Errorf("listing is not a JSON array (%v, %v)", tok, err)
	}
	for dec.More() {
		var kv listedKV
		if err := dec.Decode(&kv); err != nil {
			return fmt.Errorf("decode listing: %w", err)
		}
		each(kv)
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("decode listing: %w", err)
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
	err := s.list(ctx, prefix, clusters, func(i int, kv listedKV) {
		for j, want := range clusters[i].Pairs {
			if want.Key == kv.Key {
				equal[start[i]+j] = want.Value == string(kv.Value)
				indexes[start[i]+j] = kv.ModifyIndex
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
			s.lastWrites.rememberAt(c, indexes[start[i]:start[i+1]])
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
