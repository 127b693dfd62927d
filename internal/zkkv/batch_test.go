package zkkv_test

import (
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/testserver"
)

// zxid asks the server for its last transaction id ("srvr"). Every
// committed write request, a multi included, takes exactly one; reads and
// pings take none. A server of its own per test keeps the count exact.
func zxid(t *testing.T, srv *testserver.ZooKeeper) int64 {
	t.Helper()
	conn, err := net.DialTimeout("tcp", srv.Addr(), 5*time.Second)
	if err != nil {
		t.Fatalf("srvr: %v", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("srvr")); err != nil {
		t.Fatalf("srvr: %v", err)
	}
	out, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("srvr: %v", err)
	}
	m := regexp.MustCompile(`Zxid: 0x([0-9a-f]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("srvr answered without a zxid: %q", out)
	}
	z, err := strconv.ParseInt(string(m[1]), 16, 64)
	if err != nil {
		t.Fatalf("srvr zxid %q: %v", m[1], err)
	}
	return z
}

// TestWrittenClustersShareMultis: clusters this store wrote before are
// changed ten to a multi (25 clusters: 3 transactions in ZooKeeper, not
// 25), with the right values. When one of them was edited by hand since,
// its multi is refused and each of its clusters is read and written on its
// own: every one ends right, the edited one included.
func TestWrittenClustersShareMultis(t *testing.T) {
	srv := testserver.StartZooKeeper(t)
	s := newStore(t, srv, nil)
	insp := inspect(t, srv)

	gen := func(epoch uint64) []kvstore.Cluster {
		var cs []kvstore.Cluster
		for i := range 25 {
			cs = append(cs, kvstore.NewCluster(layout, fmt.Sprintf("batch-%02d", i), sampleMaster(fmt.Sprintf("db-%d-%d.example", i, epoch), 3306), epoch))
		}
		return cs
	}
	for _, o := range write(t, s, gen(1)...) {
		if o.Status != kvstore.Written {
			t.Fatalf("first write of %s: %v %v", o.Alias, o.Status, o.Err)
		}
	}

	before := zxid(t, srv)
	second := gen(2)
	for _, o := range write(t, s, second...) {
		if o.Status != kvstore.Written || o.Keys != 3 { // main, hostname, epoch
			t.Errorf("%s: %v keys=%d err=%v, want written 3 keys", o.Alias, o.Status, o.Keys, o.Err)
		}
	}
	if got := zxid(t, srv) - before; got != 3 {
		t.Errorf("changing 25 written clusters took %d ZooKeeper transactions, want 3 (ten clusters per multi)", got)
	}
	for _, c := range second {
		wantStored(t, insp, "", c)
	}

	// A hand edit refuses its group's multi; the group falls back to one
	// read and multi per cluster.
	if _, err := insp.Set("/mysql/master/batch-12/hostname", []byte("edited"), -1); err != nil {
		t.Fatalf("hand edit: %v", err)
	}
	third := gen(3)
	before = zxid(t, srv) // after the edit
	for _, o := range write(t, s, third...) {
		if o.Status != kvstore.Written {
			t.Errorf("%s: %v err=%v, want written", o.Alias, o.Status, o.Err)
		}
	}
	// 2 shared multis, the refused one (ZooKeeper logs a refused multi as
	// an error transaction, which takes a zxid too), and 10 single multis
	// for its clusters.
	if got := zxid(t, srv) - before; got != 2+1+10 {
		t.Errorf("third write took %d ZooKeeper transactions, want 13 (2 shared multis, 1 refused, 10 single ones after it)", got)
	}
	for _, c := range third {
		wantStored(t, insp, "", c)
	}
}

// TestRecreatedZnodesKeepTheirNewerEpoch: znodes deleted and created again
// by another writer restart at version 0, the version this store recorded
// for its own create. A write planned from that record would pass every
// version check; the epoch znode's data is read first, so the newer epoch
// written meanwhile wins: Stale, nothing touched.
func TestRecreatedZnodesKeepTheirNewerEpoch(t *testing.T) {
	srv := testserver.StartZooKeeper(t)
	s := newStore(t, srv, nil)
	insp := inspect(t, srv)

	writeOne(t, s, kvstore.NewCluster(layout, "shop", sampleMaster("db-5.example", 3306), 5), kvstore.Written, 6)

	// Another writer (a node ahead of this one, after a hand delete) puts
	// the cluster back at epoch 9, every znode created anew at version 0.
	newer := kvstore.NewCluster(layout, "shop", sampleMaster("db-9.example", 3306), 9)
	for i := len(newer.Pairs) - 1; i >= 0; i-- {
		if err := insp.Delete("/"+newer.Pairs[i].Key, -1); err != nil {
			t.Fatalf("delete %s: %v", newer.Pairs[i].Key, err)
		}
	}
	for _, p := range newer.Pairs {
		if _, err := insp.Create("/"+p.Key, []byte(p.Value), 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatalf("create %s: %v", p.Key, err)
		}
	}

	writeOne(t, s, kvstore.NewCluster(layout, "shop", sampleMaster("db-7.example", 3306), 7), kvstore.Stale, 0)
	wantStored(t, insp, "", newer)
}
