// Package discovery builds the master-discovery key layout that masterkv
// publishes: the keys orchestrator writes for a cluster master, plus masterkv's
// epoch key.
//
// For alias A with master H:P and the default prefix the pairs are, in order:
//
//	mysql/master/A           H:P
//	mysql/master/A/hostname  H
//	mysql/master/A/port      P
//	mysql/master/A/ipv4      (empty when unknown)
//	mysql/master/A/ipv6      (empty when unknown)
//	mysql/master/A/epoch     the record's epoch (optional)
//
// The order and values match orchestrator's GetClusterMasterKVPairs so that
// consul-template and ZooKeeper consumers written for orchestrator keep working.
package discovery

import (
	"strconv"
	"strings"

	"github.com/masterkv/masterkv/internal/master"
)

// DefaultPrefix is orchestrator's default KVClusterMasterPrefix.
const DefaultPrefix = "mysql/master"

// Key suffixes below the main key of a cluster.
const (
	SuffixHostname = "hostname"
	SuffixPort     = "port"
	SuffixIPv4     = "ipv4"
	SuffixIPv6     = "ipv6"
	SuffixEpoch    = "epoch"
)

// KVPair is one key and its value. It has no JSON tags on purpose: it
// serialises as {"Key":..,"Value":..}, the shape orchestrator's API returns
// and orchestrator-client parses.
type KVPair struct {
	Key   string
	Value string
}

// NormalizePrefix normalises a key prefix exactly as orchestrator does: "/"
// stays "/"; otherwise trailing slashes are trimmed and one "/" is appended.
// An empty prefix therefore becomes "/".
func NormalizePrefix(prefix string) string {
	if prefix == "/" {
		return prefix
	}
	return strings.TrimRight(prefix, "/") + "/"
}

// Layout builds keys under one normalised prefix.
type Layout struct {
	prefix     string
	writeEpoch bool
}

// NewLayout returns a layout for prefix (normalised here) that writes the
// epoch key when writeEpoch is true.
func NewLayout(prefix string, writeEpoch bool) Layout {
	return Layout{prefix: NormalizePrefix(prefix), writeEpoch: writeEpoch}
}

// Prefix returns the normalised prefix, ending in "/".
func (l Layout) Prefix() string { return l.prefix }

// KeysPerCluster is how many pairs Pairs returns for one cluster: 5, or 6
// with the epoch key.
func (l Layout) KeysPerCluster() int {
	if l.writeEpoch {
		return 6
	}
	return 5
}

// ClusterKey returns the main key of alias, "<prefix><alias>".
func (l Layout) ClusterKey(alias string) string { return l.prefix + alias }

// EpochKey returns "<prefix><alias>/epoch".
func (l Layout) EpochKey(alias string) string { return l.ClusterKey(alias) + "/" + SuffixEpoch }

// Pairs returns the pairs for alias and master at epoch, in orchestrator's
// order with the epoch key last. An empty alias yields no pairs, as in
// orchestrator.
func (l Layout) Pairs(alias string, m master.Master, epoch uint64) []KVPair {
	if alias == "" {
		return nil
	}
	key := l.ClusterKey(alias)
	pairs := make([]KVPair, 0, l.KeysPerCluster())
	pairs = append(pairs,
		KVPair{Key: key, Value: m.HostPort()},
		KVPair{Key: key + "/" + SuffixHostname, Value: m.Host},
		KVPair{Key: key + "/" + SuffixPort, Value: strconv.Itoa(m.Port)},
		KVPair{Key: key + "/" + SuffixIPv4, Value: m.IPv4},
		KVPair{Key: key + "/" + SuffixIPv6, Value: m.IPv6},
	)
	if l.writeEpoch {
		pairs = append(pairs, KVPair{Key: key + "/" + SuffixEpoch, Value: strconv.FormatUint(epoch, 10)})
	}
	return pairs
}

// The layout contract: the pairs of a cluster, as Pairs builds them, start
// with its main key and, when the layout writes the epoch key, end with it.
// Writers index pairs, and the slices they keep aligned with them, by
// MainPair and EpochIndex only, so a change of the layout is made here.

// MainPair is the index of a cluster's main key in its pairs.
const MainPair = 0

// Main returns the main pair of a cluster's pairs.
func Main(pairs []KVPair) KVPair { return pairs[MainPair] }

// EpochIndex returns the index of the epoch pair in a cluster's pairs, and
// false when they hold none (a layout without the epoch key). It does not
// allocate: it is on every write's path.
func EpochIndex(pairs []KVPair) (int, bool) {
	last := len(pairs) - 1
	if last <= MainPair {
		return -1, false
	}
	main, key := pairs[MainPair].Key, pairs[last].Key
	if len(key) == len(main)+1+len(SuffixEpoch) && strings.HasPrefix(key, main) &&
		key[len(main)] == '/' && strings.HasSuffix(key, SuffixEpoch) {
		return last, true
	}
	return -1, false
}

// ZKPath returns key as a ZooKeeper path: the same key with exactly one
// leading "/".
func ZKPath(key string) string {
	return "/" + strings.TrimLeft(key, "/")
}
