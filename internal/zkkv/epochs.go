package zkkv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/go-zookeeper/zk"

	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/kvstore"
)

// Epochs reads the epoch znode of every cluster under prefix (the children
// of the prefix znode, each read as <child>/epoch) and returns the highest
// at or below limit. A rebuilt group reads it once to start above its
// predecessor's epochs. It costs one read per cluster; aliases containing
// "/" (nested znodes) are not seen.
func (s *Store) Epochs(ctx context.Context, prefix string, limit uint64) (kvstore.Epochs, error) {
	dir := strings.TrimSuffix(s.path(prefix), "/")
	if dir == "" {
		dir = "/"
	}
	children, err := call(ctx, s.opTimeout, func() ([]string, error) {
		c, _, err := s.conn.Children(dir)
		return c, err
	})
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return kvstore.Epochs{}, nil
	case err != nil:
		return kvstore.Epochs{}, fmt.Errorf("zookeeper epochs: children of %s: %w", dir, err)
	}
	var (
		mu    sync.Mutex
		e     kvstore.Epochs
		first error
	)
	s.parallel(len(children), func(i int) {
		key := prefix + children[i] + "/" + discovery.SuffixEpoch
		data, err := call(ctx, s.opTimeout, func() ([]byte, error) {
			b, _, err := s.conn.Get(s.path(key))
			return b, err
		})
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			e.Add(key, string(data), limit)
		case errors.Is(err, zk.ErrNoNode):
		case first == nil:
			first = fmt.Errorf("zookeeper epochs: get %s: %w", s.path(key), err)
		}
	})
	if first != nil {
		return kvstore.Epochs{}, first
	}
	return e, nil
}
