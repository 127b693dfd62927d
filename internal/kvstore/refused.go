package kvstore

// Refuser tells a store's permanent refusals from transient failures. A
// refusal is about one cluster's keys (an ACL that denies them, a path the
// store cannot hold): retrying the same write cannot succeed, so a
// publisher reports the cluster and carries on with the others instead of
// backing off. An unreachable store, a timeout or a lost race is not a
// refusal.
type Refuser interface {
	Refused(err error) bool
}
