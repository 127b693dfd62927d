package consulkv

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

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
		st[main.Key] = storedKV{value: string(main.Value), index: main.ModifyIndex, flags: main.Flags}
	}
	below, _, err := s.client.KV().List(clusterPrefix(c), s.queryOpts(ctx))
	if err != nil {
		return nil, fmt.Errorf("consul list %s in %s: %w", clusterPrefix(c), s.Name(), classify(err))
	}
	for _, p := range below {
		st[p.Key] = storedKV{value: string(p.Value), index: p.ModifyIndex, flags: p.Flags}
	}
	return st, nil
}

// writePlain writes each cluster key by key, for Consul agents without
// transactions. A reader can see a cluster half written (see putCluster for
// what it can see); use consul-txn where that matters.
func (s *Store) writePlain(ctx context.Context, clusters []kvstore.Cluster) []kvstore.Outcome {
	out := make([]kvstore.Outcome, len(clusters))
	s.parallel(len(clusters), func(i int) {
		out[i] = s.writePlainOne(ctx, clusters[i])
	})
	return out
}

func (s *Store) writePlainOne(ctx context.Context, c kvstore.Cluster) kvstore.Outcome {
	var err error
	// A round is lost only to a writer that claimed the cluster or wrote
	// one of its keys meanwhile; an older one is stale by the next read.
	for round := 0; round < len(c.Pairs)+2; round++ {
		var st stored
		if st, err = s.readPlainOne(ctx, c); err != nil {
			break
		}
		if round > 0 && st[c.EpochKey()].flags > c.Epoch {
			// A newer epoch's writer holds the claim: let it finish, and
			// the next read finds this write stale. A claim left by a
			// writer that died, or flags set by hand, only delay it.
			if err = giveWay(ctx, round); err != nil {
				break
			}
			if st, err = s.readPlainOne(ctx, c); err != nil {
				break
			}
		}
		// plan decides (stale, kept hand edit, unchanged) and counts the
		// keys that change; the plain writer then writes every key.
		ops, final := plan(c, st)
		if final != nil {
			return *final
		}
		if err = s.putCluster(ctx, c, st); err == nil {
			return kvstore.Outcome{Alias: c.Alias, Epoch: c.Epoch, Status: kvstore.Written, Keys: countSets(ops)}
		}
		if !errors.Is(err, errConflict) {
			break
		}
	}
	return kvstore.Outcome{Alias: c.Alias, Epoch: c.Epoch, Err: err}
}

// putCluster writes every key of c as a check-and-set on the index read in
// st, between two check-and-sets of the epoch key: first a claim that puts
// back the epoch it read with Flags set to this write's epoch, last the
// new epoch with Flags 0, checked against the index the claim left. Every
// writer claims before it writes a key, so:
//
//   - a writer that read before another's claim fails on any key that one
//     has written since (every key is written, also those whose value
//     already matches, so each one's index moves);
//   - a writer that read after another's claim claims again, and that
//     makes the other's final check-and-set fail: it reads again and
//     rewrites.
//
// So when the epoch is set, every key holds this write's value and no older
// writer can still change one: the newest epoch never stays beside an older
// master. Consul leaves the ModifyIndex of a PUT that changes nothing, so
// the keys carry a random token in their Flags (which readers of the values
// never see), the claim the writer's epoch, and the final epoch Flags 0:
// each of those PUTs moves its key's index (but a same-epoch claim over a
// claim of the same epoch, whose writer writes the same values anyway). Two
// writers that keep breaking each other's claim are parted by the epoch in
// the claim: the older one gives way (see writePlainOne).
//
// What a reader can see mid-write is the epoch before this one beside a mix
// of old and new values, never the new epoch beside an old value. A claim
// that moves no index (over a claim of the same epoch) only leaves two
// writers of the same values side by side. A cluster without an
// epoch key (a layout without epochs) has nothing to claim: its keys are
// written one check-and-set each.
func (s *Store) putCluster(ctx context.Context, c kvstore.Cluster, st stored) error {
	epochKey := c.EpochKey()
	token := writeToken()
	if epochKey == "" {
		for _, p := range c.Pairs {
			if err := s.cas(ctx, p.Key, p.Value, token, st[p.Key].index); err != nil {
				return err
			}
		}
		return nil
	}
	read, exists := st[epochKey]
	claim := read.value
	if !exists {
		claim = "0" // a cluster without an epoch yet: the lowest there is
	}
	if err := s.cas(ctx, epochKey, claim, c.Epoch, read.index); err != nil {
		return err
	}
	held, err := s.modifyIndex(ctx, epochKey)
	if err != nil {
		return err
	}
	var epoch string
	for _, p := range c.Pairs {
		if p.Key == epochKey {
			epoch = p.Value
			continue
		}
		if err := s.cas(ctx, p.Key, p.Value, token, st[p.Key].index); err != nil {
			return err
		}
	}
	return s.cas(ctx, epochKey, epoch, 0, held)
}

// giveWay waits before an older writer's next round: longer each round,
// with jitter, at most 200 ms.
func giveWay(ctx context.Context, round int) error {
	d := min(10*time.Millisecond<<round, 200*time.Millisecond)
	d = d/2 + rand.N(d/2)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// writeToken is a plain write's Flags value for its keys: random and never 0, so that
// it differs from what a finished write leaves (0) and, but for a chance of
// 2^-64, from another write's.
func writeToken() uint64 {
	for {
		if t := rand.Uint64(); t != 0 {
			return t
		}
	}
}

// cas puts key=value with flags if the key's ModifyIndex is still index
// (0: the key must not exist); errConflict when it moved.
func (s *Store) cas(ctx context.Context, key, value string, flags, index uint64) error {
	pair := &api.KVPair{Key: key, Value: []byte(value), Flags: flags, ModifyIndex: index}
	ok, _, err := s.client.KV().CAS(pair, s.writeOpts(ctx))
	if err != nil {
		return fmt.Errorf("consul put %s in %s: %w", key, s.Name(), classify(err))
	}
	if !ok {
		return fmt.Errorf("consul put %s in %s: %w: index changed since read", key, s.Name(), errConflict)
	}
	return nil
}

// modifyIndex reads key's ModifyIndex (0 when it does not exist) with a
// consistent read. A write returns no index, so the claim is read back.
func (s *Store) modifyIndex(ctx context.Context, key string) (uint64, error) {
	kv, _, err := s.client.KV().Get(key, s.queryOpts(ctx))
	if err != nil {
		return 0, fmt.Errorf("consul get %s in %s: %w", key, s.Name(), classify(err))
	}
	if kv == nil {
		return 0, nil
	}
	return kv.ModifyIndex, nil
}
