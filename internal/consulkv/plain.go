package consulkv

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/consul/api"

	"github.com/masterkv/masterkv/internal/kvstore"
)

// readPlain reads each cluster with a GET of its main key and a recursive
// GET below it, for Consul agents without transactions.
func (s *Store) readPlain(ctx context.Context, clusters []kvstore.Cluster) ([]stored, []error) {
	out := make([]stored, len(clusters))
	errs := make([]error, len(clusters))
	s.parallel(len(clusters), func(i int) {
		out[i], errs[i] = s.readPlainOne(ctx, clusters[i])
	})
	return out, errs
}

func (s *Store) readPlainOne(ctx context.Context, c kvstore.Cluster) (stored, error) {
	st := stored{}
	main, _, err := s.client.KV().Get(c.MainKey(), s.queryOpts(ctx))
	if err != nil {
		return nil, fmt.Errorf("consul get %s in %s: %w", c.MainKey(), s.Name(), classify(err))
	}
	if main != nil { // nil means not found
		st[main.Key] = storedKV{value: string(main.Value), index: main.ModifyIndex}
	}
	below, _, err := s.client.KV().List(clusterPrefix(c), s.queryOpts(ctx))
	if err != nil {
		return nil, fmt.Errorf("consul list %s in %s: %w", clusterPrefix(c), s.Name(), classify(err))
	}
	for _, p := range below {
		st[p.Key] = storedKV{value: string(p.Value), index: p.ModifyIndex}
	}
	return st, nil
}

// writePlain writes each cluster key by key. Every PUT is a check-and-set on
// the index read before, the epoch key first: a concurrent writer makes a
// PUT fail, the cluster is re-read, and the epoch guard decides. Readers may
// see a cluster half written; use consul-txn where that matters.
func (s *Store) writePlain(ctx context.Context, clusters []kvstore.Cluster) []kvstore.Outcome {
	out := make([]kvstore.Outcome, len(clusters))
	s.parallel(len(clusters), func(i int) {
		out[i] = s.writePlainOne(ctx, clusters[i])
	})
	return out
}

func (s *Store) writePlainOne(ctx context.Context, c kvstore.Cluster) kvstore.Outcome {
	var err error
	// An older writer can win at most one PUT per key before the guard
	// stops it, so a newer writer needs more rounds than there are keys.
	for round := 0; round < len(c.Pairs)+2; round++ {
		var st stored
		if st, err = s.readPlainOne(ctx, c); err != nil {
			break
		}
		ops, final := plan(c, st)
		if final != nil {
			return *final
		}
		if err = s.putOps(ctx, ops, st); err == nil {
			return kvstore.Outcome{Alias: c.Alias, Epoch: c.Epoch, Status: kvstore.Written, Keys: countSets(ops)}
		}
		if !errors.Is(err, errConflict) {
			break
		}
	}
	return kvstore.Outcome{Alias: c.Alias, Epoch: c.Epoch, Err: err}
}

// putOps performs a cluster's planned ops as single requests, in order:
// the guard on the epoch key, then the other keys.
func (s *Store) putOps(ctx context.Context, ops api.TxnOps, st stored) error {
	for _, op := range ops {
		kv := op.KV
		switch kv.Verb {
		case api.KVCheckIndex:
			continue // the CAS PUTs below detect a concurrent writer
		case api.KVCAS, api.KVSet:
			pair := &api.KVPair{Key: kv.Key, Value: kv.Value, ModifyIndex: kv.Index}
			if kv.Verb == api.KVSet {
				pair.ModifyIndex = st[kv.Key].index
			}
			ok, _, err := s.client.KV().CAS(pair, s.writeOpts(ctx))
			if err != nil {
				return fmt.Errorf("consul put %s in %s: %w", kv.Key, s.Name(), classify(err))
			}
			if !ok {
				return fmt.Errorf("consul put %s in %s: %w: index changed since read", kv.Key, s.Name(), errConflict)
			}
		}
	}
	return nil
}
