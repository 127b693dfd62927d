package crossdc_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/masterkv/masterkv/internal/consulkv"
	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/internal/testserver"
	"github.com/masterkv/masterkv/raftnode/crossdc"
	"github.com/masterkv/masterkv/raftnode/node"
	"github.com/masterkv/masterkv/raftnode/nodetest"
	"github.com/masterkv/masterkv/raftnode/publish"
)

// The agent's datacenter when the crossDC cannot learn it: with a token
// that lacks agent:read, GET /v1/agent/self is refused, and the crossDC
// falls back to writing every listed datacenter itself, the agent's own
// included, beside the node's own publisher (Config.Local), which it then
// never asks for a pass. It says so once, not every interval.
//
// The agents here run with ACLs on (default deny); the tokens are made as
// in internal/consulkv's ACL tests.

// cannotLearn is what the crossDC's warning says when the agent's
// datacenter cannot be learnt.
const cannotLearn = "cannot learn the agent's datacenter"

// kvWriteRules is what the stores need: read and write under the layout's
// prefix. Listing the datacenters (/v1/catalog/datacenters) needs no ACL.
var kvWriteRules = fmt.Sprintf(`key_prefix %q { policy = "write" }`, layout.Prefix())

// agentReadRules adds agent:read on every agent: GET /v1/agent/self.
const agentReadRules = `agent_prefix "" { policy = "read" }`

// aclAgent is a single-server datacenter (dc1) with ACLs on, default deny.
type aclAgent struct {
	*testserver.Consul
	mgmt  string
	admin *api.Client // with the management token
}

func startACLAgent(t *testing.T) *aclAgent {
	t.Helper()
	a := &aclAgent{mgmt: newTokenUUID(t)}
	a.Consul = testserver.StartConsul(t, testserver.ConsulOptions{Datacenter: "dc1", ManagementToken: a.mgmt})
	cl, err := api.NewClient(&api.Config{Address: a.Addr(), Token: a.mgmt})
	if err != nil {
		t.Fatal(err)
	}
	a.admin = cl
	eventually(t, 30*time.Second, "the management token usable", func() error {
		_, _, err := cl.ACL().TokenReadSelf(nil)
		return err
	})
	return a
}

// token creates a policy with rules and a token holding only it; it
// returns the token's secret and the policy (for updates).
func (a *aclAgent) token(t *testing.T, name, rules string) (string, *api.ACLPolicy) {
	t.Helper()
	policy, _, err := a.admin.ACL().PolicyCreate(&api.ACLPolicy{Name: name, Rules: rules}, nil)
	if err != nil {
		t.Fatalf("create policy %s: %v", name, err)
	}
	tok, _, err := a.admin.ACL().TokenCreate(&api.ACLToken{
		Description: name, Policies: []*api.ACLTokenPolicyLink{{ID: policy.ID}},
	}, nil)
	if err != nil {
		t.Fatalf("create token %s: %v", name, err)
	}
	return tok.SecretID, policy
}

// holds checks, with the management token, that dc1 holds cluster's pairs
// for host at epoch.
func (a *aclAgent) holds(cluster, host string, epoch uint64) error {
	kv := a.admin.KV()
	for _, p := range layout.Pairs(cluster, master.Master{Host: host, Port: 3306, IPv4: host}, epoch) {
		got, _, err := kv.Get(p.Key, nil)
		if err != nil {
			return err
		}
		if got == nil || string(got.Value) != p.Value {
			return fmt.Errorf("dc1: %s missing or not %q", p.Key, p.Value)
		}
	}
	return nil
}

func newTokenUUID(t *testing.T) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// tokenStore is a consul-txn store through addr with token, as newStore's.
func tokenStore(t *testing.T, addr, token string) *consulkv.Store {
	t.Helper()
	cs, err := consulkv.New(consulkv.Config{Address: addr, Token: token, Provider: consulkv.ProviderTxn, MaxOpsPerTxn: 64, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// logSink keeps every log record the text handler writes (one Write per
// record).
type logSink struct {
	mu   sync.Mutex
	recs []string
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, string(p))
	return len(p), nil
}

func (s *logSink) records() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.recs)
}

// count is how many records contain sub.
func (s *logSink) count(sub string) int {
	n := 0
	for _, r := range s.records() {
		if strings.Contains(r, sub) {
			n++
		}
	}
	return n
}

func (s *logSink) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// checkNoSecret fails if any record holds one of secrets.
func (s *logSink) checkNoSecret(t *testing.T, secrets ...string) {
	t.Helper()
	for _, r := range s.records() {
		for _, sec := range secrets {
			if strings.Contains(r, sec) {
				t.Errorf("a log record holds a token: %s", strings.TrimSpace(r))
			}
		}
	}
}

// aclSetup is one node's own publisher and its crossDC with Config.Local,
// both with the same token, each through its own tap in front of dc1's
// agent, both logging into logs.
type aclSetup struct {
	local              *publish.Publisher
	crossDC            *crossdc.Distributor
	localTap, sweepTap *kvTap
	logs               *logSink
}

func startACLSweep(t *testing.T, a *aclAgent, nd *node.Node, token string, interval time.Duration) *aclSetup {
	t.Helper()
	s := &aclSetup{localTap: newKVTap(t, a.Addr()), sweepTap: newKVTap(t, a.Addr()), logs: &logSink{}}
	logger := s.logs.logger()
	// The node's own publisher, as raftnode's startPublishers runs it: no
	// SweepInterval of its own.
	s.local = publish.New(tokenStore(t, s.localTap.addr, token), nd.FSM(), publish.Config{
		Layout: layout, Ready: nd.CaughtUp, RetryMax: 200 * time.Millisecond, Logger: logger,
	})
	lctx, lcancel := context.WithCancel(context.Background())
	ldone := make(chan struct{})
	go func() { defer close(ldone); s.local.Run(lctx) }()
	t.Cleanup(func() { lcancel(); <-ldone })

	s.crossDC = crossdc.New(tokenStore(t, s.sweepTap.addr, token), nd.FSM(), nd, crossdc.Config{
		Layout: layout, Interval: interval, LeaderPoll: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		Logger: logger, Local: s.local,
	})
	sctx, scancel := context.WithCancel(context.Background())
	sdone := make(chan struct{})
	go func() { defer close(sdone); s.crossDC.Run(sctx) }()
	t.Cleanup(func() { scancel(); <-sdone })
	return s
}

// dc1 is the crossDC's status entry for dc1.
func (s *aclSetup) dc1() (crossdc.DatacenterStatus, error) {
	st := s.crossDC.Status()
	for _, d := range st.Datacenters {
		if d.Datacenter == "dc1" {
			return d, nil
		}
	}
	return crossdc.DatacenterStatus{}, fmt.Errorf("no dc1 entry in %+v", st)
}

func (s *aclSetup) publisherNames() []string {
	var names []string
	for _, d := range s.crossDC.Status().Datacenters {
		if !d.Local {
			names = append(names, d.Store)
		}
	}
	slices.Sort(names)
	return names
}

// checkNoLocalPass stops the test if the node's own publisher ran a pass:
// it has no interval of its own, so only a crossDC's request starts one.
func (s *aclSetup) checkNoLocalPass(t *testing.T) {
	t.Helper()
	if r := s.local.Status().LastSweep; r != nil {
		t.Fatalf("the node's own publisher ran a pass, asked by a crossDC that writes dc1 itself: %+v", r)
	}
}

// TestSweepWithoutAgentReadWritesOwnDatacenter: with a token that may
// write the keys but lacks agent:read, the crossDC cannot learn the agent's
// datacenter and falls back: it runs its own publisher for dc1 (listed as
// consul:dc1, not as the local entry), which brings a failover to dc1 and
// restores keys deleted by hand at its passes; the node's own publisher is
// never asked for a pass; the warning is logged once over several
// intervals, and no log record holds a token.
func TestSweepWithoutAgentReadWritesOwnDatacenter(t *testing.T) {
	a := startACLAgent(t)
	token, _ := a.token(t, "masterkv-no-agent-read", kvWriteRules)

	// (1) The token is refused /v1/agent/self, and may list datacenters.
	probe := tokenStore(t, a.Addr(), token)
	if dc, err := probe.Datacenter(); err == nil || !errors.Is(err, consulkv.ErrPermissionDenied) {
		t.Fatalf("Datacenter() without agent:read = %q, %v; want a permission error", dc, err)
	} else {
		t.Logf("Datacenter() without agent:read: %v", err)
		if strings.Contains(err.Error(), token) {
			t.Errorf("Datacenter()'s error holds the token: %v", err)
		}
	}
	if dcs, err := probe.Datacenters(); err != nil || !slices.Equal(dcs, []string{"dc1"}) {
		t.Fatalf("Datacenters() = %v, %v; want [dc1]: listing needs no ACL", dcs, err)
	}

	g := nodetest.New(t, 1, nodetest.Options{})
	nd := g.Nodes[0]
	const interval = time.Second
	s := startACLSweep(t, a, nd, token, interval)

	// (2) dc1 is the crossDC's own publisher's, not the local entry.
	eventually(t, 10*time.Second, "the distributor reporting dc1", func() error {
		st := s.crossDC.Status()
		if !st.Leading || len(st.Datacenters) != 1 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	st := s.crossDC.Status()
	if st.ListError != "" {
		t.Errorf("list error %q", st.ListError)
	}
	if d := st.Datacenters[0]; d.Datacenter != "dc1" || d.Local || d.Store != "consul:dc1" {
		t.Errorf("datacenter entry = {%s local=%v store=%s}, want {dc1 local=false store=consul:dc1}: the crossDC's own publisher", d.Datacenter, d.Local, d.Store)
	}
	if names := s.publisherNames(); !slices.Equal(names, []string{"consul:dc1"}) {
		t.Errorf("sweep publishers %v, want [consul:dc1]", names)
	}

	// (3) A failover reaches dc1, and the crossDC's dc1 publisher has it.
	e := failover(t, g, "c1", "10.0.0.1")
	eventually(t, 10*time.Second, "the failover in dc1", func() error { return a.holds("c1", "10.0.0.1", e) })
	eventually(t, 10*time.Second, "the crossDC's dc1 publisher confirming the failover", func() error {
		d, err := s.dc1()
		if err != nil {
			return err
		}
		if d.AppliedEpoch != e {
			return fmt.Errorf("dc1 entry applied epoch %d, want %d (last error %q)", d.AppliedEpoch, e, d.LastError)
		}
		return nil
	})

	// (4) Keys deleted by hand come back at a pass of the crossDC's dc1
	// publisher, written through the crossDC's store (?dc=dc1): the node's
	// own publisher, never asked for a pass, has no pass to do it with.
	if _, err := a.admin.KV().DeleteTree(layout.Prefix(), nil); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	if err := a.holds("c1", "10.0.0.1", e); err == nil {
		t.Fatal("delete did not take")
	}
	sweepBefore := s.sweepTap.snapshot()
	keys := len(layout.Pairs("c1", master.Master{Host: "10.0.0.1", Port: 3306, IPv4: "10.0.0.1"}, e))
	eventually(t, 2*interval+5*time.Second, "keys back in dc1 by a pass of the crossDC's dc1 publisher", func() error {
		s.checkNoLocalPass(t)
		if err := a.holds("c1", "10.0.0.1", e); err != nil {
			return err
		}
		d, err := s.dc1()
		if err != nil {
			return err
		}
		if r := d.LastSweep; r == nil || r.At.Before(deleted) || r.KeysWritten != keys {
			return fmt.Errorf("dc1 entry's last pass %+v", r)
		}
		return nil
	})
	if got := s.sweepTap.since(sweepBefore)["dc1"].txnWrites; got == 0 {
		t.Errorf("the keys came back without a write of the crossDC into ?dc=dc1: %v", s.sweepTap.snapshot())
	}

	// Over three more intervals: the crossDC keeps listing and its dc1
	// publisher keeps passing, and the node's own publisher runs no pass.
	listings := map[time.Time]bool{}
	passes := map[time.Time]bool{}
	for end := time.Now().Add(3*interval + interval/2); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		s.checkNoLocalPass(t)
		listings[s.crossDC.Status().ListedAt] = true
		if d, err := s.dc1(); err != nil {
			t.Fatal(err)
		} else if d.Local {
			t.Fatalf("dc1 became the local entry: %+v", d)
		} else if d.LastSweep != nil {
			passes[d.LastSweep.At] = true
		}
	}
	if len(listings) < 3 {
		t.Errorf("%d datacenter listings over %s, want at least 3", len(listings), 3*interval)
	}
	if len(passes) < 2 {
		t.Errorf("%d distinct passes of the crossDC's dc1 publisher over %s, want at least 2", len(passes), 3*interval)
	}
	for dc := range s.localTap.snapshot() {
		if dc != "" {
			t.Errorf("the node's own publisher sent requests with ?dc=%s", dc)
		}
	}
	t.Logf("crossDC ?dc=dc1: %v; node's own publisher: %v", s.sweepTap.snapshot()["dc1"], s.localTap.snapshot()[""])

	// (5) One warning over all those intervals, and no token in any log.
	if n := s.logs.count(cannotLearn); n != 1 {
		t.Errorf("%d records say %q over %d listings, want exactly 1", n, cannotLearn, len(listings))
	}
	if n := s.logs.count("left to this node's own publisher"); n != 0 {
		t.Errorf("%d records say the datacenter is left to the node's own publisher", n)
	}
	s.logs.checkNoSecret(t, token, a.mgmt)
	for _, r := range s.logs.records() {
		if strings.Contains(r, cannotLearn) {
			t.Logf("warning: %s", strings.TrimSpace(r))
		}
	}
}

// TestSweepWithAgentReadLeavesOwnDatacenterToLocal is the positive
// control: the same setup with a token that also has agent:read leaves dc1
// to the node's own publisher (the local entry, no publisher of the
// crossDC's), asks it for passes, and warns about nothing.
func TestSweepWithAgentReadLeavesOwnDatacenterToLocal(t *testing.T) {
	a := startACLAgent(t)
	token, _ := a.token(t, "masterkv-agent-read", kvWriteRules+"\n"+agentReadRules)
	if dc, err := tokenStore(t, a.Addr(), token).Datacenter(); err != nil || dc != "dc1" {
		t.Fatalf("Datacenter() with agent:read = %q, %v; want dc1", dc, err)
	}

	g := nodetest.New(t, 1, nodetest.Options{})
	const interval = time.Second
	s := startACLSweep(t, a, g.Nodes[0], token, interval)
	eventually(t, 10*time.Second, "dc1 as the local entry", func() error {
		st := s.crossDC.Status()
		if !st.Leading || len(st.Datacenters) != 1 || !st.Datacenters[0].Local {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	if d, _ := s.dc1(); d.Store != s.local.Name() || d.Store != "consul" {
		t.Errorf("local entry's store %q, want the node's own publisher's (consul)", d.Store)
	}
	if names := s.publisherNames(); len(names) != 0 {
		t.Errorf("sweep publishers %v, want none", names)
	}
	e := failover(t, g, "c1", "10.0.0.1")
	eventually(t, 10*time.Second, "the failover in dc1", func() error { return a.holds("c1", "10.0.0.1", e) })
	eventually(t, 2*interval+5*time.Second, "a pass of the node's own publisher", func() error {
		if r := s.local.Status().LastSweep; r == nil {
			return errors.New("no pass")
		}
		return nil
	})
	s.checkSweeperSentNoKV(t)
	if n := s.logs.count(cannotLearn); n != 0 {
		t.Errorf("%d records say %q with agent:read", n, cannotLearn)
	}
	if n := s.logs.count("left to this node's own publisher"); n != 1 {
		t.Errorf("%d records say the datacenter is left to the node's own publisher, want 1", n)
	}
	s.logs.checkNoSecret(t, token, a.mgmt)
}

// checkSweeperSentNoKV fails if the crossDC sent any KV request into dc1
// (?dc=dc1, or none through its own store).
func (s *aclSetup) checkSweeperSentNoKV(t *testing.T) {
	t.Helper()
	sw := s.sweepTap.snapshot()
	for _, dc := range []string{"", "dc1"} {
		if c := sw[dc]; c.kv() != 0 {
			t.Errorf("the crossDC sent KV requests into dc1 (?dc=%q): %v; dc1 is the node's own publisher's", dc, c)
		}
	}
}

// TestSweepLeavesOwnDatacenterOnceAgentReadGranted: agent:read granted
// after the fallback began (the token's policy updated) is noticed at a
// later listing: the crossDC stops its dc1 publisher, dc1 becomes the
// local entry, the node's own publisher gets passes, and the warning was
// still logged only once.
func TestSweepLeavesOwnDatacenterOnceAgentReadGranted(t *testing.T) {
	a := startACLAgent(t)
	token, policy := a.token(t, "masterkv-later-agent-read", kvWriteRules)
	g := nodetest.New(t, 1, nodetest.Options{})
	const interval = time.Second
	s := startACLSweep(t, a, g.Nodes[0], token, interval)
	eventually(t, 10*time.Second, "the fallback: dc1 as the crossDC's own", func() error {
		d, err := s.dc1()
		if err != nil {
			return err
		}
		if d.Local || d.Store != "consul:dc1" {
			return fmt.Errorf("dc1 entry %+v", d)
		}
		return nil
	})
	// Let a few intervals pass: the warning stays single.
	time.Sleep(2*interval + interval/2)
	if n := s.logs.count(cannotLearn); n != 1 {
		t.Errorf("%d records say %q before agent:read is granted, want 1", n, cannotLearn)
	}

	policy.Rules = kvWriteRules + "\n" + agentReadRules
	if _, _, err := a.admin.ACL().PolicyUpdate(policy, nil); err != nil {
		t.Fatal(err)
	}
	granted := time.Now()
	eventually(t, 3*interval+5*time.Second, "dc1 as the local entry after agent:read is granted", func() error {
		st := s.crossDC.Status()
		if len(st.Datacenters) != 1 || !st.Datacenters[0].Local || st.Datacenters[0].Store != "consul" {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	if names := s.publisherNames(); len(names) != 0 {
		t.Errorf("sweep publishers %v after agent:read is granted, want none", names)
	}
	eventually(t, 2*interval+5*time.Second, "a pass of the node's own publisher", func() error {
		if r := s.local.Status().LastSweep; r == nil || r.At.Before(granted) {
			return fmt.Errorf("last pass %+v", r)
		}
		return nil
	})
	// The crossDC now sends dc1 no KV request.
	before := s.sweepTap.snapshot()
	time.Sleep(2 * interval)
	for _, dc := range []string{"", "dc1"} {
		if c := s.sweepTap.since(before)[dc]; c.kv() != 0 {
			t.Errorf("the crossDC still sent KV requests into dc1 (?dc=%q) after leaving it: %v", dc, c)
		}
	}
	if n := s.logs.count(cannotLearn); n != 1 {
		t.Errorf("%d records say %q, want 1", n, cannotLearn)
	}
	if n := s.logs.count("left to this node's own publisher"); n != 1 {
		t.Errorf("%d records say the datacenter is left to the node's own publisher, want 1", n)
	}
	s.logs.checkNoSecret(t, token, a.mgmt)
}
