package consulkv

import (
	"context"
	"fmt"

	"github.com/hashicorp/consul/api"

	"github.com/masterkv/masterkv/internal/kvstore"
)

// Epochs lists every key under prefix in this store's datacenter with one
// consistent recursive GET (streamed, as the listings of list) and returns
// the highest epoch key at or below limit. A rebuilt group reads it once
// to start above its predecessor's epochs. Keys the token may not read
// are left out of a listing by Consul without an error.
func (s *Store) Epochs(ctx context.Context, prefix string, limit uint64) (kvstore.Epochs, error) {
	var e kvstore.Epochs
	select {
	case s.lists <- struct{}{}:
	case <-ctx.Done():
		return e, fmt.Errorf("consul epochs under %s in %s: %w", prefix, s.Name(), ctx.Err())
	}
	defer func() { <-s.lists }()
	visit := func(kv listedKV) {
		if kvstore.IsEpochKey(prefix, kv.Key) {
			e.Add(kv.Key, string(kv.Value), limit)
		}
	}
	var err error
	if s.raw != nil {
		err = s.raw.list(ctx, prefix, s.dc, visit)
	} else {
		var pairs api.KVPairs
		pairs, _, err = s.client.KV().List(prefix, s.queryOpts(ctx))
		for _, p := range pairs {
			visit(listedKV{Key: p.Key, Value: p.Value})
		}
	}
	if err != nil {
		return kvstore.Epochs{}, fmt.Errorf("consul epochs under %s in %s: %w", prefix, s.Name(), classify(err))
	}
	return e, nil
}

// EpochsEverywhere is Epochs over every datacenter the agent knows, for a
// group that distributes to all of them (cross-datacenter distribution).
type EpochsEverywhere struct{ *Store }

// Name names the set of datacenters.
func (e EpochsEverywhere) Name() string { return e.Store.Name() + " (every datacenter)" }

// Epochs reads every datacenter; one that cannot be read fails the whole
// read, so a rebase is never based on part of the stores.
func (e EpochsEverywhere) Epochs(ctx context.Context, prefix string, limit uint64) (kvstore.Epochs, error) {
	dcs, err := e.Datacenters()
	if err != nil {
		return kvstore.Epochs{}, err
	}
	var all kvstore.Epochs
	for _, dc := range dcs {
		got, err := e.ForDatacenter(dc).Epochs(ctx, prefix, limit)
		if err != nil {
			return kvstore.Epochs{}, err
		}
		all.Merge(got)
	}
	return all, nil
}
