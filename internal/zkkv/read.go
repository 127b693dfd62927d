package zkkv

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/go-zookeeper/zk"

	"github.com/masterkv/masterkv/internal/kvstore"
)

// stored is what ZooKeeper holds for one cluster: layout key -> znode.
// Missing znodes are absent.
type stored map[string]znode

type znode struct {
	data    string
	version int32
	// czxid and cversion identify the znode and its set of children; a
	// plan from the record checks them on the main znode (see
	// lastWrite).
	czxid    int64
	cversion int32
}

func (st stored) observed() kvstore.Observed {
	o := kvstore.Observed{}
	for k, z := range st {
		o[k] = z.data
	}
	return o
}

// readCluster gets the znodes of every key of c, all requests in flight at
// once on the session, the whole read bounded by the op timeout.
func (s *Store) readCluster(ctx context.Context, c kvstore.Cluster) (stored, error) {
	return call(ctx, s.opTimeout, func() (stored, error) {
		type got struct {
			key  string
			data []byte
			stat *zk.Stat
			err  error
		}
		results := make(chan got, len(c.Pairs))
		for _, p := range c.Pairs {
			go func() {
				data, stat, err := s.conn.Get(s.path(p.Key))
				results <- got{p.Key, data, stat, err}
			}()
		}
		st := stored{}
		var firstErr error
		for range c.Pairs {
			g := <-results
			switch {
			case g.err == nil:
				st[g.key] = znode{data: string(g.data), version: g.stat.Version, czxid: g.stat.Czxid, cversion: g.stat.Cversion}
			case errors.Is(g.err, zk.ErrNoNode):
			case firstErr == nil:
				firstErr = fmt.Errorf("get %s: %w", s.path(g.key), g.err)
			}
		}
		return st, firstErr
	})
}

// Read returns what ZooKeeper holds for each cluster, by alias (drift
// detection). It always reads the server; nothing is cached. Reading needs
// no credentials: masterkv's znodes are world-readable.
func (s *Store) Read(ctx context.Context, clusters []kvstore.Cluster) (map[string]kvstore.Observed, error) {
	sts := make([]stored, len(clusters))
	var failed atomic.Pointer[error] // the first error ends the read
	s.parallel(len(clusters), func(i int) {
		c := clusters[i]
		if failed.Load() != nil || len(c.Pairs) == 0 {
			return
		}
		st, err := s.readCluster(ctx, c)
		if err != nil {
			err = fmt.Errorf("zookeeper read for cluster %s: %w", c.Alias, err)
			failed.CompareAndSwap(nil, &err)
			return
		}
		sts[i] = st
	})
	if err := failed.Load(); err != nil {
		return nil, *err
	}
	out := make(map[string]kvstore.Observed, len(clusters))
	for i, c := range clusters {
		out[c.Alias] = sts[i].observed()
	}
	return out, nil
}
