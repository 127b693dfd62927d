package kvstore

// Verdict is what a store's copy of a cluster calls for. Every writer
// follows the same rule (a node's own publisher after a commit or a
// restart, a drift check, a sweep pass):
//
//   - a missing cluster, or an older epoch in the store, is distribution
//     and is always written;
//   - the cluster's own epoch with other values (or keys missing) is a
//     hand edit: reported, and rewritten only when repair is on;
//   - a newer epoch belongs to a newer writer and is never written.
type Verdict int

// The verdicts.
const (
	// Behind: the cluster is missing, or the store holds an older epoch
	// (no epoch key, or a value that is not a number, counts as 0).
	Behind Verdict = iota
	// Same: the store holds every pair of the cluster.
	Same
	// HandEdited: the store holds the cluster's epoch with other values.
	HandEdited
	// Ahead: the store holds a newer epoch.
	Ahead
)

func (v Verdict) String() string {
	switch v {
	case Same:
		return "same"
	case HandEdited:
		return "hand-edited"
	case Ahead:
		return "ahead"
	}
	return "behind"
}

// Judge applies the rule to c and what a store holds, as get returns it
// for each key (ok false: missing).
//
// Without an epoch key (strict orchestrator mode) the store's epoch is
// unknown: a cluster whose main key is missing is Behind and any other
// difference is HandEdited. A publisher then marks an epoch it has not
// confirmed yet for repair (see Cluster.KeepHandEdits), so commits are
// still written.
func Judge(c Cluster, get func(key string) (value string, ok bool)) Verdict {
	epochKey := c.EpochKey()
	var differs, mainMissing bool
	for _, p := range c.Pairs {
		v, ok := get(p.Key)
		if !ok && p.Key == c.MainKey() {
			mainMissing = true
		}
		if !ok || v != p.Value {
			differs = true
		}
	}
	if epochKey == "" {
		switch {
		case !differs:
			return Same
		case mainMissing:
			return Behind
		}
		return HandEdited
	}
	v, _ := get(epochKey)
	have, err := ParseEpoch(v)
	switch {
	case err == nil && have > c.Epoch:
		return Ahead
	case !differs:
		return Same
	case err != nil || have < c.Epoch:
		return Behind
	}
	return HandEdited
}

// JudgeObserved is Judge over what a Reader returned.
func JudgeObserved(c Cluster, o Observed) Verdict {
	return Judge(c, func(key string) (string, bool) { v, ok := o[key]; return v, ok })
}
