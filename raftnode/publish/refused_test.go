package publish_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/hashicorp/consul/api"

	"github.com/masterkv/masterkv/internal/command"
	"github.com/masterkv/masterkv/internal/consulkv"
	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/internal/testserver"
	"github.com/masterkv/masterkv/internal/zkkv"
	"github.com/masterkv/masterkv/raftnode/fsm"
	"github.com/masterkv/masterkv/raftnode/publish"
)

func uuid(t *testing.T) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// refusingStore is a real store that refuses one cluster for good, and a
// way to read what it holds.
type refusingStore struct {
	name  string
	store publish.Store
	holds func(clusters ...kvstore.Cluster) error
}

// refusingStores sets up a real refusal of the cluster named denied in each
// store: a Consul ACL policy that denies its keys to the publisher's token
// (everything else under the prefix may be written), and a ZooKeeper znode
// created by hand with an ACL that gives the publisher's session nothing.
func refusingStores(t *testing.T, layout discovery.Layout, denied string) []refusingStore {
	t.Helper()
	mgmt := uuid(t)
	consul := testserver.StartConsul(t, testserver.ConsulOptions{ManagementToken: mgmt})
	admin, err := api.NewClient(&api.Config{Address: consul.Addr(), Token: mgmt})
	if err != nil {
		t.Fatal(err)
	}
	policy, _, err := admin.ACL().PolicyCreate(&api.ACLPolicy{
		Name: "masterkv-writer",
		Rules: fmt.Sprintf(`key_prefix %q { policy = "write" }
key_prefix %q { policy = "deny" }`, layout.Prefix(), layout.Prefix()+denied),
	}, nil)
	if err != nil {
		t.Fatalf("create policy: %v", err)
	}
	token, _, err := admin.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: policy.ID}}}, nil)
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	var out []refusingStore
	for _, provider := range []string{consulkv.ProviderTxn, consulkv.ProviderPlain} {
		s, err := consulkv.New(consulkv.Config{Address: consul.Addr(), Provider: provider, Token: token.SecretID, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, refusingStore{name: provider, store: s, holds: func(clusters ...kvstore.Cluster) error {
			return holds(admin.KV(), clusters...)
		}})
	}

	zkServer := testserver.StartZooKeeper(t)
	conn, _, err := zk.Connect([]string{zkServer.Addr()}, 5*time.Second, zk.WithLogInfo(false), zk.WithLogger(nopLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	const chroot = "/refused"
	path := ""
	for _, part := range strings.Split(chroot+strings.TrimSuffix(discovery.ZKPath(layout.Prefix()), "/"), "/")[1:] {
		path += "/" + part
		if _, err := conn.Create(path, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && err != zk.ErrNodeExists {
			t.Fatalf("create %s: %v", path, err)
		}
	}
	// Only the user "someone-else" may do anything with the denied znode.
	if _, err := conn.Create(path+"/"+denied, []byte("hand-made"), 0, zk.DigestACL(zk.PermAll, "someone-else", "secret")); err != nil {
		t.Fatalf("create %s/%s: %v", path, denied, err)
	}
	zs, err := zkkv.New(zkkv.Config{Servers: []string{zkServer.Addr()}, Chroot: chroot, OpTimeout: 5 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(zs.Close)
	out = append(out, refusingStore{name: "zookeeper", store: zs, holds: func(clusters ...kvstore.Cluster) error {
		for _, c := range clusters {
			for _, p := range c.Pairs {
				b, _, err := conn.Get(chroot + discovery.ZKPath(p.Key))
				if err != nil || string(b) != p.Value {
					return fmt.Errorf("zookeeper %s = %q (%v), want %q", p.Key, b, err, p.Value)
				}
			}
		}
		return nil
	}})
	return out
}

// TestRefusedClusterHoldsBackNothing: a cluster the store refuses for good
// (an ACL that denies its keys) is reported refused, once, and left out of
// later batches; every other cluster is published promptly, in batch after
// batch, without the publisher backing off.
func TestRefusedClusterHoldsBackNothing(t *testing.T) {
	const (
		n      = 60
		denied = "denied"
	)
	layout := discovery.NewLayout("mysql/master", true)
	for _, rs := range refusingStores(t, layout, denied) {
		t.Run(rs.name, func(t *testing.T) {
			f := fsm.New()
			entries := make([]command.Entry, n)
			for i := range entries {
				host := fmt.Sprintf("10.0.0.%d", i+1)
				entries[i] = command.Entry{Cluster: fmt.Sprintf("c%04d", i), Master: master.Master{Host: host, Port: 3306, IPv4: host}}
			}
			entries = append(entries, command.Entry{Cluster: denied, Master: master.Master{Host: "10.9.9.9", Port: 3306, IPv4: "10.9.9.9"}})
			applyCmd(t, f, 1, command.Command{Type: command.Populate, At: 1, Populate: &command.PopulatePayload{Masters: entries}})
			// The denied cluster fails over last: newest first, it leads every batch.
			applyCmd(t, f, 2, command.Command{Type: command.Failover, ID: "f-denied", At: 2,
				Failover: &command.FailoverPayload{Entry: command.Entry{Cluster: denied, Master: master.Master{Host: "10.9.9.8", Port: 3306, IPv4: "10.9.9.8"}}}})
			var others []kvstore.Cluster
			for _, c := range clustersOf(f, layout) {
				if c.Alias != denied {
					others = append(others, c)
				}
			}
			p := publish.New(rs.store, f, publish.Config{
				Layout: layout, BatchSize: 5, RetryMin: 200 * time.Millisecond, RetryMax: 5 * time.Second, Logger: quiet,
			})
			start := time.Now()
			startPublisher(t, p)
			eventually(t, 30*time.Second, "every other cluster published", func() error { return rs.holds(others...) })
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("%d clusters in batches of 5 published in %v beside a refused one; want within 3s", n, took.Round(time.Millisecond))
			}
			eventually(t, 5*time.Second, "the refusal reported", func() error {
				st := p.Status()
				if !slices.Equal(st.Refused, []string{denied}) || st.Backlog != 0 {
					return fmt.Errorf("status refused %v, backlog %d; want [%s] and 0", st.Refused, st.Backlog, denied)
				}
				return nil
			})
			ctx, cancel := contextWithTimeout(time.Second)
			defer cancel()
			if got := p.Wait(ctx, denied, 2); !strings.HasPrefix(got, "refused: ") {
				t.Errorf("receipt of the denied cluster = %q, want refused: ...", got)
			}
			// Left alone afterwards: not one more attempt until its epoch changes.
			before := p.Status().Refusals
			time.Sleep(time.Second)
			if after := p.Status().Refusals; after != before {
				t.Errorf("refused cluster attempted %d more times in 1s; want none until its epoch changes", after-before)
			}
			applyCmd(t, f, 3, command.Command{Type: command.Failover, ID: "f-denied-2", At: 3,
				Failover: &command.FailoverPayload{Entry: command.Entry{Cluster: denied, Master: master.Master{Host: "10.9.9.7", Port: 3306, IPv4: "10.9.9.7"}}}})
			eventually(t, 5*time.Second, "the new epoch attempted", func() error {
				if after := p.Status().Refusals; after == before {
					return fmt.Errorf("no new attempt of the refused cluster at its new epoch")
				}
				return nil
			})
		})
	}
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
