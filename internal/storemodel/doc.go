// Package storemodel holds the model-based test of masterkv's store
// writers: the no-rollback promise checked against real Consul (both
// providers) and real ZooKeeper.
//
// The test (model_test.go) drives a store through random interleavings of
// writers at different epochs (a lagging node, the current node, the
// sweep), hand edits, deletes and recreations of any key of a cluster, and
// store restarts, and after every step checks what a reader of the store
// sees:
//
//   - no store shows an epoch beside a value older than it (a newer epoch
//     beside an older master);
//   - once the writes finish, a cluster's keys come from one epoch, and for
//     the atomic writers (consul-txn, ZooKeeper multi) at every moment;
//   - the epoch a reader sees never goes down, and never below an epoch a
//     writer reported done.
//
// Every writer runs the same suite; a new store joins it with one line in
// the subjects table (subjects_test.go). `make test` runs a short search;
// RAPID_CHECKS and RAPID_STEPS (or -rapid.checks, -rapid.steps) run a
// longer one, and `make test-model` does that.
package storemodel
