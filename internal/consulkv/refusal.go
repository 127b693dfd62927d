package consulkv

import (
	"errors"
	"strings"

	"github.com/masterkv/masterkv/internal/kvstore"
)

var _ kvstore.Refuser = (*Store)(nil)

// Refused reports whether err is Consul refusing the keys themselves: the
// token's policy denies them (403 "Permission denied", or keys a read
// filtered out). A token Consul does not know ("ACL not found") refuses
// every key alike: that is the store's configuration, fixed by an
// operator, and is retried with backoff like an outage.
func (s *Store) Refused(err error) bool {
	return errors.Is(err, ErrPermissionDenied) && !strings.Contains(err.Error(), "ACL not found")
}
