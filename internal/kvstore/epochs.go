package kvstore

import (
	"fmt"
	"strings"

	"github.com/masterkv/masterkv/internal/discovery"
)

// Epochs is what a store holds of epochs under a key prefix: the highest
// sane one, and the epoch keys a rebase must not follow. A rebuilt raft
// group reads it to start its epochs above its predecessor's.
type Epochs struct {
	// Max is the highest epoch at or below the limit asked for, and Key
	// the epoch key holding it ("" when none).
	Max uint64
	Key string
	// Keys counts the epoch keys read.
	Keys int
	// Refused lists, as key=value, the epoch keys above the limit or not a
	// number: hand-set values that no group generation wrote.
	Refused []string
}

// IsEpochKey reports whether key is a cluster's epoch key under prefix:
// "<prefix><alias>/epoch", where an alias holds no "/" (master.ValidateAlias).
func IsEpochKey(prefix, key string) bool {
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return false
	}
	alias, ok := strings.CutSuffix(rest, "/"+discovery.SuffixEpoch)
	return ok && alias != "" && !strings.Contains(alias, "/")
}

// Add takes one epoch key's value into e.
func (e *Epochs) Add(key, value string, limit uint64) {
	e.Keys++
	v, err := ParseEpoch(value)
	if err != nil || v > limit {
		e.Refused = append(e.Refused, fmt.Sprintf("%s=%s", key, value))
		return
	}
	if v > e.Max || e.Key == "" {
		e.Max, e.Key = v, key
	}
}

// Merge takes o, read from another store or datacenter, into e.
func (e *Epochs) Merge(o Epochs) {
	if o.Key != "" && (o.Max > e.Max || e.Key == "") {
		e.Max, e.Key = o.Max, o.Key
	}
	e.Keys += o.Keys
	e.Refused = append(e.Refused, o.Refused...)
}
