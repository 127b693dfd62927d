package node_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/masterkv/masterkv/internal/consulkv"
	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/internal/testserver"
	"github.com/masterkv/masterkv/internal/zkkv"
	"github.com/masterkv/masterkv/raftnode/fsm"
	"github.com/masterkv/masterkv/raftnode/node"
	"github.com/masterkv/masterkv/raftnode/nodetest"
	"github.com/masterkv/masterkv/raftnode/publish"
)

var (
	genLayout = discovery.NewLayout(discovery.DefaultPrefix, true)
	genQuiet  = slog.New(slog.NewTextHandler(io.Discard, nil))
)

// oldEpoch is what the stores hold from the group that was lost.
const oldEpoch = 1_000_000

// genStore is one real store a rebuilt group publishes to.
type genStore interface {
	publish.Store
	node.EpochSource
}

// realStores starts one real Consul agent and one real ZooKeeper server
// and returns a way to open a client of each (one per node, as in
// production every node has its own connections).
func realStores(t *testing.T) func() []genStore {
	t.Helper()
	consul := testserver.StartConsul(t, testserver.ConsulOptions{Datacenter: "dc1"})
	zkSrv := testserver.StartZooKeeper(t)
	return func() []genStore {
		t.Helper()
		cs, err := consulkv.New(consulkv.Config{Address: consul.Addr(), Provider: consulkv.ProviderTxn, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		zs, err := zkkv.New(zkkv.Config{Servers: []string{zkSrv.Addr()}, OpTimeout: 2 * time.Second, Logger: genQuiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(zs.Close)
		return []genStore{cs, zs}
	}
}

// seed writes cluster's master at epoch into every store, as the old group
// left it.
func seed(t *testing.T, stores []genStore, cluster, host string, epoch uint64) {
	t.Helper()
	c := kvstore.NewCluster(genLayout, cluster, master.Master{Host: host, Port: 3306}, epoch)
	for _, s := range stores {
		outs := s.Write(t.Context(), []kvstore.Cluster{c})
		if len(outs) != 1 || outs[0].Status != kvstore.Written {
			t.Fatalf("seed %s in %s: %+v", cluster, s.Name(), outs)
		}
	}
}

// guardOpts tune publishAll's guards.
type guardOpts struct {
	// votersKnow replaces the upgrade-rule check (nil: every in-process
	// node's command types).
	votersKnow func(context.Context, string) error
	// extra sources every guard surveys besides the stores it publishes to.
	extra []node.EpochSource
}

// publishAll runs, for every node of c, a publisher per store and the
// node's epoch-generation guard, as raftnode's main does. Every survey of
// a store is checked to come from the node that leads at that moment.
func publishAll(t *testing.T, c *nodetest.Cluster, open func() []genStore, o guardOpts) []*node.Generations {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	if o.votersKnow == nil {
		o.votersKnow = votersKnow(c)
	}
	var guards []*node.Generations
	for _, n := range c.Nodes {
		stores := open()
		sources := make([]node.EpochSource, len(stores))
		for i, s := range stores {
			sources[i] = leaderOnly{t: t, n: n, EpochSource: s}
		}
		sources = append(sources, o.extra...)
		gens := node.NewGenerations(n, node.GenerationConfig{
			Prefix: genLayout.Prefix(), Stores: sources, VotersKnow: o.votersKnow,
			Interval: 100 * time.Millisecond, StaleGap: 200 * time.Millisecond, Logger: genQuiet,
		})
		guards = append(guards, gens)
		wg.Add(1)
		go func() { defer wg.Done(); gens.Run(ctx) }()
		for _, s := range stores {
			p := publish.New(s, n.FSM(), publish.Config{
				Layout: genLayout, Ready: n.CaughtUp, RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond,
				Observe: gens.ObserveWrite, Logger: genQuiet,
			})
			wg.Add(1)
			go func() { defer wg.Done(); p.Run(ctx) }()
		}
	}
	return guards
}

// leaderOnly fails the test when a node that is not the leader reads a
// store's epochs: a follower never surveys.
type leaderOnly struct {
	t *testing.T
	n *node.Node
	node.EpochSource
}

func (l leaderOnly) Epochs(ctx context.Context, prefix string, limit uint64) (kvstore.Epochs, error) {
	if !l.n.IsLeader() {
		l.t.Errorf("%s read the epochs of %s while not the leader", l.n.ID(), l.Name())
	}
	return l.EpochSource.Epochs(ctx, prefix, limit)
}

// votersKnow is the upgrade-rule check over the in-process nodes' status.
func votersKnow(c *nodetest.Cluster) func(context.Context, string) error {
	return func(_ context.Context, typ string) error {
		for _, n := range c.Nodes {
			if n == nil {
				continue
			}
			if !contains(n.Status().CommandTypes, typ) {
				return fmt.Errorf("%s does not know %s", n.ID(), typ)
			}
		}
		return nil
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// storesHold waits until every store holds cluster's master host with one
// epoch above floor, and returns it.
func storesHold(t *testing.T, stores []genStore, cluster, host string, floor uint64) uint64 {
	t.Helper()
	probe := kvstore.NewCluster(genLayout, cluster, master.Master{Host: host, Port: 3306}, 0)
	main, epochKey := probe.MainKey(), probe.EpochKey()
	var last string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ok := true
		last = ""
		epochs := map[uint64]bool{}
		for _, s := range stores {
			obs, err := s.Read(t.Context(), []kvstore.Cluster{probe})
			if err != nil {
				ok, last = false, last+fmt.Sprintf("%s: %v; ", s.Name(), err)
				continue
			}
			o := obs[cluster]
			e, _ := strconv.ParseUint(o[epochKey], 10, 64)
			last += fmt.Sprintf("%s holds %s=%q epoch %q; ", s.Name(), main, o[main], o[epochKey])
			epochs[e] = true
			if o[main] != host+":3306" || e <= floor {
				ok = false
			}
		}
		if ok && len(epochs) == 1 {
			t.Logf("stores: %s", last)
			for e := range epochs {
				return e
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("within 20s, want every store to hold %s=%s:3306 at one epoch above %d; %s", main, host, floor, last)
	return 0
}

// TestRebuiltGroupPublishesAboveOldEpochs: a group bootstrapped again from
// empty data directories, over stores that hold epoch 1,000,000 from the
// group it replaces, publishes a failover: every store ends up with the
// new master at an epoch above the old group's, every node shows the
// raised base, and the next failover gets a higher epoch still.
func TestRebuiltGroupPublishesAboveOldEpochs(t *testing.T) {
	open := realStores(t)
	stores := open()
	seed(t, stores, "main", "db-old", oldEpoch)
	seed(t, stores, "other", "db-other", oldEpoch-5)

	c := nodetest.New(t, 3, nodetest.Options{})
	publishAll(t, c, open, guardOpts{})
	if _, err := commit(t, c, failover("rebuilt-1", "main", "db-new", 3306, "", 0)); err != nil {
		t.Fatalf("failover: %v", err)
	}
	first := storesHold(t, stores, "main", "db-new", oldEpoch)
	for _, n := range c.Nodes {
		waitFor(t, 5*time.Second, n.ID()+" shows the raised base", func() bool {
			g := n.Status().Generation
			return g.Index > 0 && g.Base+g.Index > oldEpoch
		})
	}
	leaderGen := c.WaitLeader().Status().Generation
	if leaderGen.StoreMax < oldEpoch || leaderGen.LastSurveyAt.IsZero() || leaderGen.LastError != "" || len(leaderGen.Refused) != 0 {
		t.Errorf("leader's generation status %+v, want store_max at least %d, a survey time, no error, nothing refused", leaderGen, oldEpoch)
	}

	res, err := commit(t, c, failover("rebuilt-2", "main", "db-next", 3306, "", time.Minute))
	if err != nil {
		t.Fatalf("second failover: %v", err)
	}
	if got := res.Records[0].Epoch; got <= first {
		t.Errorf("second failover committed at epoch %d, want above the first's %d", got, first)
	}
	if second := storesHold(t, stores, "main", "db-next", first); second != res.Records[0].Epoch {
		t.Errorf("stores hold epoch %d for the second failover, committed at %d", second, res.Records[0].Epoch)
	}
	// A cluster the new group was never told of is left as the old group
	// left it (populate or submit brings it into the new group).
	storesHold(t, stores, "other", "db-other", oldEpoch-6)
}

// TestRebuiltGroupWaitsForVoters: while a voter does not know the rebase
// command (a rolling upgrade), the leader neither reads the stores nor
// commits a rebase; its failovers only meet "stale" in the stores, which
// keep the old group's master. Once every voter knows it, the group
// publishes.
func TestRebuiltGroupWaitsForVoters(t *testing.T) {
	open := realStores(t)
	stores := open()
	seed(t, stores, "main", "db-old", oldEpoch)

	c := nodetest.New(t, 3, nodetest.Options{})
	var upgraded atomic.Bool
	guards := publishAll(t, c, open, guardOpts{votersKnow: func(ctx context.Context, typ string) error {
		if !upgraded.Load() {
			return errors.New("node2 does not know " + typ)
		}
		return votersKnow(c)(ctx, typ)
	}})
	if _, err := commit(t, c, failover("upgrade-1", "main", "db-new", 3306, "", 0)); err != nil {
		t.Fatalf("failover: %v", err)
	}
	waitFor(t, 5*time.Second, "the leader to report the voter check", func() bool {
		for i, n := range c.Nodes {
			if n.IsLeader() && strings.Contains(guards[i].Status().LastError, "node2 does not know rebase") {
				return true
			}
		}
		return false
	})
	holdsFor(t, time.Second, "the stores keep the old master while no rebase commits", func() bool {
		for _, n := range c.Nodes {
			if n.FSM().Generation().Index != 0 {
				return false
			}
		}
		for _, s := range stores {
			obs, err := s.Read(t.Context(), []kvstore.Cluster{kvstore.NewCluster(genLayout, "main", master.Master{}, 0)})
			if err != nil || obs["main"][genLayout.ClusterKey("main")] != "db-old:3306" {
				return false
			}
		}
		return true
	})
	upgraded.Store(true)
	storesHold(t, stores, "main", "db-new", oldEpoch)
}

// TestRebuiltGroupRefusesHandSetEpochs: a store epoch above fsm.MaxBase is
// not followed (the group would run out of epochs); it is reported in the
// status, and the other clusters are published above the highest sane
// epoch. The refused cluster stays as it is until fixed by hand.
func TestRebuiltGroupRefusesHandSetEpochs(t *testing.T) {
	open := realStores(t)
	stores := open()
	seed(t, stores, "main", "db-old", oldEpoch)
	seed(t, stores, "wild", "db-wild", fsm.MaxBase+7)

	c := nodetest.New(t, 3, nodetest.Options{})
	publishAll(t, c, open, guardOpts{})
	if _, err := commit(t, c, failover("hand-1", "main", "db-new", 3306, "", 0)); err != nil {
		t.Fatalf("failover: %v", err)
	}
	if _, err := commit(t, c, failover("hand-2", "wild", "db-tame", 3306, "", 0)); err != nil {
		t.Fatalf("failover: %v", err)
	}
	got := storesHold(t, stores, "main", "db-new", oldEpoch)
	if got > 2*oldEpoch {
		t.Errorf("main published at epoch %d, want just above %d (the hand-set %d is not followed)", got, oldEpoch, fsm.MaxBase+7)
	}
	want := fmt.Sprintf("%s=%d", genLayout.EpochKey("wild"), fsm.MaxBase+7)
	waitFor(t, 5*time.Second, "the leader's status to list "+want, func() bool {
		st := c.WaitLeader().Status().Generation
		return len(st.Refused) == 2 && st.Refused[0] == want && st.Refused[1] == want
	})
	storesHold(t, stores, "wild", "db-wild", fsm.MaxBase)
}

// TestStaleWriteRaisesBaseAgain: a store that comes to hold an epoch above
// anything the group has issued (a store restored from another group's
// backup, an older generation's lagging writer) is noticed by the leader's
// publisher as a stale write, and a second rebase publishes above it.
func TestStaleWriteRaisesBaseAgain(t *testing.T) {
	open := realStores(t)
	stores := open()
	seed(t, stores, "main", "db-old", oldEpoch)

	c := nodetest.New(t, 3, nodetest.Options{})
	publishAll(t, c, open, guardOpts{})
	if _, err := commit(t, c, failover("again-1", "main", "db-new", 3306, "", 0)); err != nil {
		t.Fatalf("failover: %v", err)
	}
	storesHold(t, stores, "main", "db-new", oldEpoch)
	const later = 5 * oldEpoch
	seed(t, stores[1:], "main", "db-restored", later) // ZooKeeper only

	res, err := commit(t, c, failover("again-2", "main", "db-next", 3306, "", time.Minute))
	if err != nil {
		t.Fatalf("failover: %v", err)
	}
	if res.Records[0].Epoch > later {
		t.Fatalf("the failover committed at %d, already above %d: the test proves nothing", res.Records[0].Epoch, later)
	}
	storesHold(t, stores, "main", "db-next", later)
}

// unreadable is a store whose epochs cannot be read (down, or the token
// may not list): a real server cannot be made to fail only this read.
type unreadable struct{}

func (unreadable) Name() string { return "consul:dc9" }
func (unreadable) Epochs(context.Context, string, uint64) (kvstore.Epochs, error) {
	return kvstore.Epochs{}, errors.New("connection refused")
}

// TestSurveyWithoutAnUnreadableStore: a store that cannot be read is left
// out of the first survey, which rebases above the stores it read and says
// which it could not; with no store readable, no rebase commits.
func TestSurveyWithoutAnUnreadableStore(t *testing.T) {
	open := realStores(t)
	stores := open()
	seed(t, stores, "main", "db-old", oldEpoch)

	c := nodetest.New(t, 3, nodetest.Options{})
	publishAll(t, c, open, guardOpts{extra: []node.EpochSource{unreadable{}}})
	if _, err := commit(t, c, failover("part-1", "main", "db-new", 3306, "", 0)); err != nil {
		t.Fatalf("failover: %v", err)
	}
	storesHold(t, stores, "main", "db-new", oldEpoch)
	st := c.WaitLeader().Status().Generation
	if want := "surveyed without: consul:dc9: connection refused"; st.LastError != want {
		t.Errorf("last_error %q, want %q", st.LastError, want)
	}
}

func TestNoStoreReadableNoRebase(t *testing.T) {
	c := nodetest.New(t, 3, nodetest.Options{})
	guards := publishAll(t, c, func() []genStore { return nil }, guardOpts{extra: []node.EpochSource{unreadable{}}})
	waitFor(t, 5*time.Second, "a failed survey", func() bool {
		for i, n := range c.Nodes {
			if n.IsLeader() && strings.Contains(guards[i].Status().LastError, "connection refused") {
				return true
			}
		}
		return false
	})
	for _, n := range c.Nodes {
		if g := n.FSM().Generation(); g.Index != 0 {
			t.Errorf("%s: generation %+v after a survey that read no store, want none", n.ID(), g)
		}
	}
}
