package zkkv

import (
	"errors"

	"github.com/go-zookeeper/zk"

	"github.com/masterkv/masterkv/internal/kvstore"
)

var _ kvstore.Refuser = (*Store)(nil)

// refusals are ZooKeeper's answers about a path itself: its ACL gives this
// session no right (a znode created by hand with another owner's ACL), it
// is not a valid path, or its parent is ephemeral. A failed digest
// authentication (zk.ErrAuthFailed) concerns the whole session, not one
// cluster, and is retried like an outage.
var refusals = []error{zk.ErrNoAuth, zk.ErrInvalidPath, zk.ErrBadArguments, zk.ErrNoChildrenForEphemerals, zk.ErrInvalidACL}

// Refused reports whether err is ZooKeeper refusing a cluster's znodes for
// good.
func (s *Store) Refused(err error) bool {
	for _, target := range refusals {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}
