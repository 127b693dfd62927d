package master_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/hashicorp/consul/api"

	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/internal/testserver"
)

// TestAliasRuleHoldsInEveryStore: every alias the rule
// accepts is a Consul key that a Txn writes and the KV endpoint reads back
// (that endpoint answers 400 to a path with an unassigned or other
// unprintable code point), and a znode name that a real ZooKeeper server
// creates; the code points the rule refuses because of ZooKeeper are
// refused by the server itself when the Go client lets them through
// (U+E000, U+FFFF, and those above U+FFFF, which Java holds as
// surrogates). The sample is every 61st code point and the edges of each
// range, as "a" followed by the code point, and a few whole aliases.
func TestAliasRuleHoldsInEveryStore(t *testing.T) {
	zsrv := testserver.StartZooKeeper(t)
	csrv := testserver.StartConsul(t, testserver.ConsulOptions{})
	conn := zkSession(t, zsrv.Addr())
	cli, err := api.NewClient(&api.Config{Address: csrv.Addr()})
	if err != nil {
		t.Fatalf("consul client: %v", err)
	}

	accepted := []string{"db-1.example.com:3306", ".hidden", "a..b", "集群-1", "kluster-ü", "Ω+db=1~"}
	var refused []string
	edges := []rune{0x20, 0x21, 0x7e, 0x7f, 0x9f, 0xa0, 0xa1, 0xd7ff, 0xe000, 0xf8ff, 0xf900, 0xffef, 0xfff0, 0xfffd, 0xffff, 0x10000, 0x1f600, 0x10ffff}
	for r := rune(0x20); r <= 0x10ffff; r += 61 {
		edges = append(edges, r)
	}
	for _, r := range edges {
		alias := "a" + string(r)
		if master.ValidateAlias(alias) == nil {
			accepted = append(accepted, alias)
		} else {
			refused = append(refused, alias)
		}
	}
	if len(accepted) < 500 {
		t.Fatalf("the rule accepts only %d of the %d sampled aliases; the sample is not what this test expects", len(accepted), len(edges))
	}

	t.Run("consul", func(t *testing.T) {
		for chunk := range slices.Chunk(accepted, 64) { // a Txn holds at most 64 ops
			var ops api.TxnOps
			for _, a := range chunk {
				ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVSet, Key: "mysql/master/" + a, Value: []byte(a)}})
			}
			ok, resp, _, err := cli.Txn().Txn(ops, nil)
			if err != nil || !ok {
				t.Fatalf("consul txn of %q: ok=%v err=%v errors=%+v", chunk, ok, err, resp)
			}
		}
		for _, a := range accepted {
			p, _, err := cli.KV().Get("mysql/master/"+a, nil)
			if err != nil || p == nil || string(p.Value) != a {
				t.Errorf("consul get mysql/master/%q = %+v, %v; want the value written", a, p, err)
			}
		}
	})

	t.Run("zookeeper", func(t *testing.T) {
		const root = "/mysql-master"
		if _, err := conn.Create(root, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatalf("create %s: %v", root, err)
		}
		for _, a := range accepted {
			if _, err := conn.Create(root+"/"+a, []byte(a), 0, zk.WorldACL(zk.PermAll)); err != nil {
				t.Errorf("zookeeper create %s/%q: %v; the rule accepted an alias ZooKeeper cannot hold", root, a, err)
			}
		}
		for _, r := range []rune{0xe000, 0xffff, 0x10000, 0x1f600, 0x10ffff} {
			a := "a" + string(r)
			if !slices.Contains(refused, a) {
				t.Errorf("ValidateAlias(%q) = nil, want it refused", a)
			}
			_, err := conn.Create(root+"/"+a, nil, 0, zk.WorldACL(zk.PermAll))
			if !errors.Is(err, zk.ErrBadArguments) {
				t.Errorf("zookeeper create %s/%q: %v, want the server's refusal %v", root, a, err, zk.ErrBadArguments)
			}
		}
	})
}

// zkSession connects to addr and waits until the session is up.
func zkSession(t *testing.T, addr string) *zk.Conn {
	t.Helper()
	conn, _, err := zk.Connect([]string{addr}, 4*time.Second, zk.WithLogger(nopLogger{}))
	if err != nil {
		t.Fatalf("zookeeper connect: %v", err)
	}
	t.Cleanup(conn.Close)
	deadline := time.Now().Add(15 * time.Second)
	for conn.State() != zk.StateHasSession {
		if time.Now().After(deadline) {
			t.Fatalf("no zookeeper session with %s within 15s (state %v)", addr, conn.State())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return conn
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}
