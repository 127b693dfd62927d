package kvstore_test

import (
	"testing"

	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/master"
)

// TestJudge: the one rule for hand edits and wiped stores.
func TestJudge(t *testing.T) {
	m := master.Master{Host: "db1", Port: 3306, IPv4: "10.0.0.1"}
	withEpoch := kvstore.NewCluster(discovery.NewLayout("mysql/master", true), "c1", m, 10)
	strict := kvstore.NewCluster(discovery.NewLayout("mysql/master", false), "c1", m, 10)
	holds := func(c kvstore.Cluster, edit func(kvstore.Observed)) kvstore.Observed {
		o := kvstore.Observed{}
		for _, p := range c.Pairs {
			o[p.Key] = p.Value
		}
		if edit != nil {
			edit(o)
		}
		return o
	}
	port := "mysql/master/c1/port"
	epoch := "mysql/master/c1/epoch"
	for _, tc := range []struct {
		name string
		c    kvstore.Cluster
		o    kvstore.Observed
		want kvstore.Verdict
	}{
		{"exact", withEpoch, holds(withEpoch, nil), kvstore.Same},
		{"missing cluster", withEpoch, kvstore.Observed{}, kvstore.Behind},
		{"older epoch", withEpoch, holds(withEpoch, func(o kvstore.Observed) { o[epoch] = "9"; o[port] = "1" }), kvstore.Behind},
		{"epoch key deleted", withEpoch, holds(withEpoch, func(o kvstore.Observed) { delete(o, epoch) }), kvstore.Behind},
		{"epoch not a number", withEpoch, holds(withEpoch, func(o kvstore.Observed) { o[epoch] = "x" }), kvstore.Behind},
		{"same epoch, value edited", withEpoch, holds(withEpoch, func(o kvstore.Observed) { o[port] = "3307" }), kvstore.HandEdited},
		{"same epoch, key deleted", withEpoch, holds(withEpoch, func(o kvstore.Observed) { delete(o, port) }), kvstore.HandEdited},
		{"same epoch, main key deleted", withEpoch, holds(withEpoch, func(o kvstore.Observed) { delete(o, "mysql/master/c1") }), kvstore.HandEdited},
		{"newer epoch", withEpoch, holds(withEpoch, func(o kvstore.Observed) { o[epoch] = "11" }), kvstore.Ahead},
		{"strict exact", strict, holds(strict, nil), kvstore.Same},
		{"strict missing", strict, kvstore.Observed{}, kvstore.Behind},
		{"strict edited", strict, holds(strict, func(o kvstore.Observed) { o[port] = "3307" }), kvstore.HandEdited},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := kvstore.JudgeObserved(tc.c, tc.o); got != tc.want {
				t.Errorf("Judge = %v, want %v", got, tc.want)
			}
		})
	}
}
