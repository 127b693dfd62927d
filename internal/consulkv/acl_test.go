package consulkv_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/masterkv/masterkv/internal/consulkv"
	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/testserver"
)

// aclFixture is an agent with ACLs on (default deny) and a token limited to
// write (and so read) under the default prefix.
type aclFixture struct {
	*agent
	rec           *recorder
	mgmt, limited string
	wrong         string
	secrets       []string
	tokens        []tokenCase
}

type tokenCase struct {
	name   string
	token  string
	layout discovery.Layout
	ok     bool // the token may read and write the layout's keys
}

func startACL(t *testing.T) *aclFixture {
	t.Helper()
	f := &aclFixture{mgmt: newUUID(t), wrong: newUUID(t)}
	f.agent = startAgent(t, testserver.ConsulOptions{ManagementToken: f.mgmt})
	f.rec = startRecorder(t, f.Addr())
	waitACLBootstrap(t, f.agent)
	policy, _, err := f.api.ACL().PolicyCreate(&api.ACLPolicy{
		Name:  "masterkv-writer",
		Rules: `key_prefix "mysql/master/" { policy = "write" }`,
	}, nil)
	if err != nil {
		t.Fatalf("create policy: %v", err)
	}
	token, _, err := f.api.ACL().TokenCreate(&api.ACLToken{
		Description: "masterkv writer",
		Policies:    []*api.ACLTokenPolicyLink{{ID: policy.ID}},
	}, nil)
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	f.limited = token.SecretID
	f.secrets = []string{f.mgmt, f.limited, f.wrong}
	other := discovery.NewLayout("other/master", true) // outside the limited token's prefix
	f.tokens = []tokenCase{
		{"management token", f.mgmt, layout, true},
		{"management token other prefix", f.mgmt, other, true},
		{"limited token", f.limited, layout, true},
		{"no token", "", layout, false},
		{"wrong token", f.wrong, layout, false},
		{"limited token outside its prefix", f.limited, other, false},
	}
	return f
}

// waitACLBootstrap waits until the management token is usable: the leader
// creates it a moment after StartConsul has seen a leader elected.
func waitACLBootstrap(t *testing.T, a *agent) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, _, err := a.api.ACL().TokenReadSelf(nil)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("management token unusable after 30s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestACLWrite: the store's token is what authorises its writes: the
// management token and a token limited to the master prefix write; no
// token, a wrong token and a write outside the limited prefix fail with a
// permission error that contains no token, leave nothing behind, and are
// not retried as if they were lost races.
func TestACLWrite(t *testing.T) {
	t.Parallel()
	f := startACL(t)
	for _, provider := range providers {
		for _, tt := range f.tokens {
			t.Run(provider+"/"+tt.name, func(t *testing.T) {
				s := newStore(t, f.agent, consulkv.Config{Address: f.rec.addr, Provider: provider, Token: tt.token})
				alias := strings.ReplaceAll("acl-"+provider+"-"+tt.name, " ", "-")
				cs := []kvstore.Cluster{
					kvstore.NewCluster(tt.layout, alias+"-1", sampleMaster(1), 1),
					kvstore.NewCluster(tt.layout, alias+"-2", sampleMaster(2), 1),
				}
				f.rec.take()
				out := write(t, s, cs...)
				for i, o := range out {
					if tt.ok {
						checkOutcome(t, o, kvstore.Written, 6)
						f.checkHolds(t, cs[i])
						continue
					}
					checkPermissionError(t, o.Status, o.Err, f.secrets)
					if p, _, err := f.kv.Get(cs[i].MainKey(), nil); err != nil || p != nil {
						t.Errorf("refused write left %s = %v (err %v)", cs[i].MainKey(), p, err)
					}
				}
				// One cluster per transaction at the default limit: a
				// refused write is sent once per cluster, not retried.
				if w := writesOf(f.rec.take()); len(w) > len(cs) {
					t.Errorf("%d write transactions sent for %d clusters; a permission refusal was retried as a conflict", len(w), len(cs))
				}
			})
		}
	}
}

// TestACLRead: Read with a token that may not read the keys fails; it never
// reports keys that exist as missing, also when it reads by listing the
// prefix (256 clusters and more), which Consul filters silently.
func TestACLRead(t *testing.T) {
	t.Parallel()
	f := startACL(t)
	admin := newStore(t, f.agent, consulkv.Config{Token: f.mgmt})
	for _, provider := range providers {
		for _, tt := range f.tokens {
			for _, n := range []int{1, 300} {
				t.Run(fmt.Sprintf("%s/%s/%d clusters", provider, tt.name, n), func(t *testing.T) {
					aclRead(t, f, admin, provider, tt, n)
				})
			}
		}
	}
}

func aclRead(t *testing.T, f *aclFixture, admin *consulkv.Store, provider string, tt tokenCase, n int) {
	alias := strings.ReplaceAll(fmt.Sprintf("aclread-%s-%s-%d", provider, tt.name, n), " ", "-")
	c := kvstore.NewCluster(tt.layout, alias, sampleMaster(1), 1)
	write(t, admin, c)
	clusters := []kvstore.Cluster{c}
	for i := 1; i < n; i++ { // absent ones beside it, under the same prefix
		clusters = append(clusters, kvstore.NewCluster(tt.layout, fmt.Sprintf("%s-absent-%03d", alias, i), sampleMaster(1), 1))
	}

	s := newStore(t, f.agent, consulkv.Config{Provider: provider, Token: tt.token})
	got, err := s.Read(context.Background(), clusters)
	if tt.ok {
		if err != nil || !mapsEqual(got[c.Alias], pairsOf(c)) {
			t.Errorf("Read = %v, %v; want %v", got[c.Alias], err, pairsOf(c))
		}
		return
	}
	if err == nil {
		t.Errorf("Read without permission = %v, nil; want a permission error (the keys exist)", got[c.Alias])
		return
	}
	checkPermissionError(t, kvstore.Failed, err, f.secrets)
}

// checkPermissionError fails unless the status is Failed with an error that
// says why (403 or permission) and contains none of the secrets.
func checkPermissionError(t *testing.T, status kvstore.Status, err error, secrets []string) {
	t.Helper()
	if status != kvstore.Failed || err == nil {
		t.Errorf("status %v, err %v; want failed with a permission error", status, err)
		return
	}
	msg := err.Error()
	if !strings.Contains(msg, "403") && !strings.Contains(strings.ToLower(msg), "permission") {
		t.Errorf("error %q mentions neither 403 nor permission", msg)
	}
	for _, s := range secrets {
		if strings.Contains(msg, s) {
			t.Errorf("error %q contains a token", msg)
		}
	}
}
