package storemodel

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/master"
)

// shortChecks is the number of random runs per store in `make test`.
// RAPID_CHECKS or -rapid.checks asks for more.
const shortChecks = 12

func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "rapid.checks" })
	if _, env := os.LookupEnv("RAPID_CHECKS"); !env && !given {
		_ = flag.Set("rapid.checks", strconv.Itoa(shortChecks))
	}
	os.Exit(m.Run())
}

// The simulated writers: separate writer instances, as separate nodes and
// the distributor hold them, each with its own memory of what it wrote.
var writerNames = []string{"current", "lagging", "sweep"}

var (
	aliases = []string{"alpha", "beta"}
	masters = []master.Master{
		{Host: "db-a", Port: 3306, IPv4: "10.0.0.1"},
		{Host: "db-b", Port: 3306, IPv4: "10.0.0.2", IPv6: "fd00::2"},
		{Host: "db-c", Port: 3307, IPv4: "10.0.0.3"},
	}
	// suffixes of a cluster's keys; "" is the main key.
	suffixes = []string{"", discovery.SuffixHostname, discovery.SuffixPort, discovery.SuffixIPv4, discovery.SuffixIPv6, discovery.SuffixEpoch}
)

func TestNoRollback(t *testing.T) {
	for _, s := range subjects {
		t.Run(s.name, func(t *testing.T) {
			st := s.start(t)
			writers := make([]kvstore.Writer, len(writerNames))
			for i := range writers {
				writers[i] = st.newWriter(t)
			}
			restarts := &budget{left: max(2, rapidChecks()/4)}
			run := 0
			rapid.Check(t, func(rt *rapid.T) {
				run++
				m := &model{
					st: st, atomic: s.atomic, writers: writers, restarts: restarts,
					layout:   discovery.NewLayout(fmt.Sprintf("model/%d", run), true),
					versions: map[string][]version{}, clusters: map[string]*cluster{},
				}
				for _, a := range aliases {
					m.clusters[a] = &cluster{}
				}
				rt.Repeat(rapid.StateMachineActions(m))
				m.settle(rt)
			})
		})
	}
}

func rapidChecks() int {
	n, err := strconv.Atoi(flag.Lookup("rapid.checks").Value.String())
	if err != nil {
		return shortChecks
	}
	return n
}

// budget caps store restarts, which take seconds each, across one search.
type budget struct{ left int }

func (b *budget) take() bool {
	if b.left <= 0 {
		return false
	}
	b.left--
	return true
}

// version is one committed master of a cluster.
type version struct {
	epoch  uint64
	master master.Master
}

// cluster is what the model knows about one cluster in the store.
type cluster struct {
	// dirty: a hand edit or delete happened at epoch dirtyEpoch (the epoch
	// the store held then) and no write above that epoch has landed since,
	// so the store may hold anything; nothing is checked but the epoch.
	dirty      bool
	dirtyEpoch uint64
	// torn: a write failed part way (non-atomic writers only) and no
	// complete write has landed since. Keys may come from different
	// epochs, but never from one older than the stored epoch.
	torn bool
	// floor is the highest epoch a writer reported Written or Unchanged:
	// the store must never show less.
	floor uint64
	// seen is the highest epoch a reader saw.
	seen uint64
}

type model struct {
	st       store
	atomic   bool
	writers  []kvstore.Writer
	restarts *budget
	layout   discovery.Layout
	epoch    uint64 // last epoch committed, over every cluster (a raft index)
	versions map[string][]version
	clusters map[string]*cluster
	edits    int
}

// write is one writer publishing one version of one cluster.
type write struct {
	writer  int
	alias   string
	version version
}

func ctxFor(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// --- actions ---

// Commit makes a new master of a cluster the committed one.
func (m *model) Commit(t *rapid.T) {
	m.commit(t, rapid.SampledFrom(aliases).Draw(t, "alias"))
}

func (m *model) commit(t *rapid.T, alias string) {
	m.epoch += uint64(rapid.IntRange(1, 3).Draw(t, "step"))
	mst := rapid.SampledFrom(masters).Draw(t, "master")
	m.versions[alias] = append(m.versions[alias], version{epoch: m.epoch, master: mst})
}

// Write has one writer publish some committed version of one or both
// clusters: the newest (the current node), or an older one (a lagging
// node, a sweep holding an old view).
func (m *model) Write(t *rapid.T) {
	w := rapid.IntRange(0, len(m.writers)-1).Draw(t, "writer")
	var ws []write
	for i, a := range aliases {
		if i == 0 || rapid.Bool().Draw(t, "include "+a) {
			ws = append(ws, write{writer: w, alias: a, version: m.drawVersion(t, a)})
		}
	}
	m.settleOutcomes(m.run([][]write{ws}, nil))
}

// Race has two or three writers publish versions of one cluster at the
// same moment, while a reader watches the cluster.
func (m *model) Race(t *rapid.T) {
	alias := rapid.SampledFrom(aliases).Draw(t, "alias")
	n := rapid.IntRange(2, len(m.writers)).Draw(t, "writers")
	order := rapid.Permutation([]int{0, 1, 2}).Draw(t, "order")
	batches := make([][]write, n)
	for i := range n {
		batches[i] = []write{{writer: order[i], alias: alias, version: m.drawVersion(t, alias)}}
	}
	stop := make(chan struct{})
	watched := make(chan error, 1)
	go func() { watched <- m.watch(alias, stop) }()
	outcomes := m.run(batches, nil)
	close(stop)
	if err := <-watched; err != nil {
		t.Fatalf("reader during race: %v", err)
	}
	m.settleOutcomes(outcomes)
}

// HandEdit sets one key of a cluster to a value no writer writes, as an
// operator would. The epoch key is left alone: a hand-set epoch is the
// rebuilt-group case, not a hand edit.
func (m *model) HandEdit(t *rapid.T) {
	alias := rapid.SampledFrom(aliases).Draw(t, "alias")
	suffix := rapid.SampledFrom(suffixes[:len(suffixes)-1]).Draw(t, "key")
	recreate := rapid.Bool().Draw(t, "recreate")
	key := m.key(alias, suffix)
	m.edits++
	value := fmt.Sprintf("hand-%d", m.edits)
	m.handle(t, alias, func(ctx context.Context) error {
		if recreate {
			if err := m.st.del(ctx, key); err != nil {
				return err
			}
		}
		return m.st.put(ctx, key, value)
	})
}

// HandDelete deletes one key of a cluster, or the whole cluster.
func (m *model) HandDelete(t *rapid.T) {
	alias := rapid.SampledFrom(aliases).Draw(t, "alias")
	whole := rapid.Bool().Draw(t, "whole cluster")
	if whole {
		m.handle(t, alias, func(ctx context.Context) error { return m.st.delCluster(ctx, m.layout, alias) })
		return
	}
	suffix := rapid.SampledFrom(suffixes).Draw(t, "key")
	m.handle(t, alias, func(ctx context.Context) error { return m.st.del(ctx, m.key(alias, suffix)) })
}

// Restart kills the store and starts it again, either quietly or while
// writers are publishing.
func (m *model) Restart(t *rapid.T) {
	during := rapid.Bool().Draw(t, "during writes")
	var batches [][]write
	if during {
		for w := range m.writers {
			alias := rapid.SampledFrom(aliases).Draw(t, "alias")
			batches = append(batches, []write{{writer: w, alias: alias, version: m.drawVersion(t, alias)}})
		}
	}
	delay := time.Duration(rapid.IntRange(0, 30).Draw(t, "delay ms")) * time.Millisecond
	// Past the budget the step still runs its writes, without the restart
	// (a skipped action would end the run early).
	var restart func()
	if m.restarts.take() {
		restart = func() { time.Sleep(delay); m.st.restart() }
	}
	m.settleOutcomes(m.run(batches, restart))
}

// --- the checks ---

// Check runs after every action: what a reader sees now, once the
// writes of the step are finished.
func (m *model) Check(t *rapid.T) {
	for _, a := range aliases {
		obs := m.read(t, a)
		c := m.clusters[a]
		e, err := m.verify(a, obs, c, false)
		if err != nil {
			t.Fatalf("cluster %s: %v\nstore holds %v", a, err, render(obs))
		}
		c.seen = max(c.seen, e)
		if c.dirty && e > c.dirtyEpoch {
			c.dirty = false
		}
	}
}

// verify checks one view of a cluster. midWrite is true for views taken
// while writes are in flight. It returns the stored epoch.
func (m *model) verify(alias string, obs map[string]string, c *cluster, midWrite bool) (uint64, error) {
	e, err := m.storedEpoch(alias, obs)
	if err != nil {
		return 0, err
	}
	if e < c.seen {
		return e, fmt.Errorf("a reader saw epoch %d and now sees %d: the epoch went down", c.seen, e)
	}
	if e < c.floor {
		return e, fmt.Errorf("epoch %d is below %d, which a writer reported done", e, c.floor)
	}
	if c.dirty && e <= c.dirtyEpoch {
		return e, nil // an unrepaired hand edit: anything goes
	}
	if e > 0 {
		if _, ok := m.versionAt(alias, e); !ok {
			return e, fmt.Errorf("epoch %d was never committed for this cluster", e)
		}
	}
	// No key older than the epoch, whatever the writer: a newer epoch
	// beside an older master is the failure that matters most.
	for _, p := range m.layout.Pairs(alias, masters[0], 0) {
		if p.Key == m.layout.EpochKey(alias) {
			continue
		}
		v, ok := obs[p.Key]
		if !ok {
			if e > 0 {
				return e, fmt.Errorf("epoch %d beside no %s", e, p.Key)
			}
			continue
		}
		if !m.fromEpochOrLater(alias, p.Key, v, e) {
			return e, fmt.Errorf("epoch %d beside %s=%q, which no version at or after epoch %d has", e, p.Key, v, e)
		}
	}
	for k := range obs {
		if !m.isClusterKey(alias, k) {
			return e, fmt.Errorf("unexpected key %s", k)
		}
	}
	// Keys from one epoch: always for atomic writers, and once the writes
	// finish (none failed part way) for the others.
	if m.atomic || (!midWrite && !c.torn) {
		want := map[string]string{}
		if e > 0 {
			v, _ := m.versionAt(alias, e)
			for _, p := range m.layout.Pairs(alias, v.master, e) {
				want[p.Key] = p.Value
			}
		}
		if diff := compare(want, obs); diff != "" {
			return e, fmt.Errorf("keys not all from epoch %d: %s", e, diff)
		}
	}
	return e, nil
}

// watch reads the cluster until stop closes, checking every view. It
// returns the first violation.
func (m *model) watch(alias string, stop <-chan struct{}) error {
	c := *m.clusters[alias]
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		ctx, cancel := ctxFor(2 * time.Second)
		obs, err := m.st.read(ctx, m.layout, alias)
		cancel()
		if err != nil {
			continue // a read that failed shows nothing
		}
		e, err := m.verify(alias, obs, &c, true)
		if err != nil {
			return fmt.Errorf("%v\nstore held %v", err, render(obs))
		}
		c.seen = max(c.seen, e)
	}
}

// settle ends a run: every cluster gets a new committed version, the
// current writer publishes it until the store takes it, and then every
// cluster must show exactly that version.
func (m *model) settle(t *rapid.T) {
	var ws []write
	for _, a := range aliases {
		m.epoch++
		v := version{epoch: m.epoch, master: masters[int(m.epoch)%len(masters)]}
		m.versions[a] = append(m.versions[a], v)
		ws = append(ws, write{writer: 0, alias: a, version: v})
	}
	deadline := time.Now().Add(45 * time.Second)
	for len(ws) > 0 {
		var retry []write
		for i, o := range m.run([][]write{ws}, nil)[0] {
			switch o.Status {
			case kvstore.Written, kvstore.Unchanged:
			case kvstore.Failed:
				retry = append(retry, ws[i])
			default:
				t.Fatalf("settle: cluster %s at the newest epoch %d: %s", o.Alias, o.Epoch, o.Status)
			}
		}
		if len(retry) > 0 && time.Now().After(deadline) {
			t.Fatalf("settle: the store did not take %d clusters within 45s", len(retry))
		}
		ws = retry
		if len(ws) > 0 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, a := range aliases {
		c := m.clusters[a]
		c.torn = false
		obs := m.read(t, a)
		e, err := m.verify(a, obs, c, false)
		if err != nil {
			t.Fatalf("settle: cluster %s: %v\nstore holds %v", a, err, render(obs))
		}
		if want := m.versions[a][len(m.versions[a])-1].epoch; e != want || c.dirty && e <= c.dirtyEpoch {
			t.Fatalf("settle: cluster %s shows epoch %d, want %d (every key)\nstore holds %v", a, e, want, render(obs))
		}
	}
}

// --- helpers ---

// run starts every batch on its own writer at once, calls during (if
// any) beside them, and returns each batch's outcomes.
func (m *model) run(batches [][]write, during func()) [][]kvstore.Outcome {
	out := make([][]kvstore.Outcome, len(batches))
	var wg sync.WaitGroup
	for i, b := range batches {
		clusters := make([]kvstore.Cluster, len(b))
		for j, w := range b {
			clusters[j] = kvstore.NewCluster(m.layout, w.alias, w.version.master, w.version.epoch)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := ctxFor(10 * time.Second)
			defer cancel()
			out[i] = m.writers[b[0].writer].Write(ctx, clusters)
		}()
	}
	if during != nil {
		during()
	}
	wg.Wait()
	return out
}

// settleOutcomes folds a step's outcomes into the model.
func (m *model) settleOutcomes(batches [][]kvstore.Outcome) {
	failed := map[string]bool{}
	done := map[string]bool{}
	for _, b := range batches {
		for _, o := range b {
			switch o.Status {
			case kvstore.Written, kvstore.Unchanged:
				c := m.clusters[o.Alias]
				c.floor = max(c.floor, o.Epoch)
				done[o.Alias] = true
			case kvstore.Failed:
				failed[o.Alias] = true
			}
		}
	}
	for _, a := range aliases {
		c := m.clusters[a]
		switch {
		case failed[a] && !m.atomic:
			c.torn = true
		case done[a]:
			c.torn = false
		}
	}
}

// handle runs a hand change of one cluster and records it. A change that
// removed the epoch key lifts the floors: the store then takes any epoch.
func (m *model) handle(t *rapid.T, alias string, change func(context.Context) error) {
	ctx, cancel := ctxFor(20 * time.Second)
	defer cancel()
	for {
		err := change(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("hand change of %s: %v", alias, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	e, err := m.storedEpoch(alias, m.read(t, alias))
	if err != nil {
		t.Fatalf("after hand change of %s: %v", alias, err)
	}
	c := m.clusters[alias]
	c.dirty, c.dirtyEpoch = true, e
	c.floor, c.seen = min(c.floor, e), min(c.seen, e)
}

// read reads a cluster, retrying while the store is not answering (after
// a restart).
func (m *model) read(t *rapid.T, alias string) map[string]string {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := ctxFor(3 * time.Second)
		obs, err := m.st.read(ctx, m.layout, alias)
		cancel()
		if err == nil {
			return obs
		}
		if time.Now().After(deadline) {
			t.Fatalf("read %s: %v", alias, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// drawVersion picks a committed version of alias, committing one first
// when there is none.
func (m *model) drawVersion(t *rapid.T, alias string) version {
	if len(m.versions[alias]) == 0 {
		m.commit(t, alias)
	}
	vs := m.versions[alias]
	if rapid.Bool().Draw(t, "newest") {
		return vs[len(vs)-1]
	}
	return vs[rapid.IntRange(0, len(vs)-1).Draw(t, "version")]
}

func (m *model) key(alias, suffix string) string {
	if suffix == "" {
		return m.layout.ClusterKey(alias)
	}
	return m.layout.ClusterKey(alias) + "/" + suffix
}

func (m *model) isClusterKey(alias, key string) bool {
	for _, s := range suffixes {
		if key == m.key(alias, s) {
			return true
		}
	}
	return false
}

func (m *model) storedEpoch(alias string, obs map[string]string) (uint64, error) {
	v, ok := obs[m.layout.EpochKey(alias)]
	if !ok {
		return 0, nil
	}
	return kvstore.ParseEpoch(v)
}

func (m *model) versionAt(alias string, epoch uint64) (version, bool) {
	for _, v := range m.versions[alias] {
		if v.epoch == epoch {
			return v, true
		}
	}
	return version{}, false
}

// fromEpochOrLater reports whether some version of alias at epoch e or
// later has value at key.
func (m *model) fromEpochOrLater(alias, key, value string, e uint64) bool {
	for _, v := range m.versions[alias] {
		if v.epoch < e {
			continue
		}
		for _, p := range m.layout.Pairs(alias, v.master, v.epoch) {
			if p.Key == key && p.Value == value {
				return true
			}
		}
	}
	return false
}

func compare(want, got map[string]string) string {
	var diffs []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s missing (want %q)", k, w))
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("%s=%q (want %q)", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s=%q (want absent)", k, g))
		}
	}
	sort.Strings(diffs)
	if len(diffs) == 0 {
		return ""
	}
	return fmt.Sprint(diffs)
}

func render(obs map[string]string) string {
	keys := make([]string, 0, len(obs))
	for k := range obs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := ""
	for _, k := range keys {
		s += fmt.Sprintf("\n  %s = %q", k, obs[k])
	}
	return s
}
