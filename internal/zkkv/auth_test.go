package zkkv_test

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/go-zookeeper/zk"

	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/testserver"
	"github.com/masterkv/masterkv/internal/zkkv"
)

func TestDigestAuth(t *testing.T) {
	srv := testserver.StartZooKeeper(t)
	var logs syncBuffer
	s := newStore(t, srv, func(c *zkkv.Config) {
		c.Auth = testAuth
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	insp := inspect(t, srv) // unauthenticated

	c := kvstore.NewCluster(layout, "shop", sampleMaster("db-1", 3306), 1)
	writeOne(t, s, c, kvstore.Written, 6)
	wantStored(t, insp, "", c)

	// ZooKeeper shows a digest ACL's hash only to sessions with admin
	// rights on the znode (others see "user:x"), so check as the user.
	authed := inspect(t, srv)
	if err := authed.AddAuth("digest", []byte(testAuth)); err != nil {
		t.Fatalf("inspector auth: %v", err)
	}
	wantACL := append(zk.WorldACL(zk.PermRead), zk.DigestACL(zk.PermAll, testUser, testPassword)...)
	paths := []string{"/mysql", "/mysql/master"}
	for _, p := range c.Pairs {
		paths = append(paths, "/"+p.Key)
	}
	for _, path := range paths {
		acl, _, err := authed.GetACL(path)
		if err != nil {
			t.Fatalf("get acl %s: %v", path, err)
		}
		if !slices.Equal(acl, wantACL) {
			t.Errorf("acl of %s = %+v, want world read + digest %s all %+v", path, acl, testUser, wantACL)
		}
	}

	t.Run("unauthenticated session reads but cannot write", func(t *testing.T) {
		if _, err := insp.Set("/mysql/master/shop/hostname", []byte("evil"), -1); !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("unauthenticated set = %v, want %v", err, zk.ErrNoAuth)
		}
		if _, err := insp.Create("/mysql/master/shop/extra", nil, 0, zk.WorldACL(zk.PermAll)); !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("unauthenticated create below the main znode = %v, want %v", err, zk.ErrNoAuth)
		}
		wantStored(t, insp, "", c)
	})

	t.Run("another session with the same credentials writes", func(t *testing.T) {
		other := newStore(t, srv, func(cfg *zkkv.Config) { cfg.Auth = testAuth })
		next := kvstore.NewCluster(layout, "shop", sampleMaster("db-2", 3306), 2)
		writeOne(t, other, next, kvstore.Written, 3)
		wantStored(t, insp, "", next)
	})

	t.Run("other credentials are refused", func(t *testing.T) {
		const otherPassword = "other-pw-9x"
		other := newStore(t, srv, func(cfg *zkkv.Config) { cfg.Auth = "intruder:" + otherPassword })
		o := write(t, other, kvstore.NewCluster(layout, "shop", sampleMaster("db-3", 3306), 3))[0]
		if o.Status != kvstore.Failed || !errors.Is(o.Err, zk.ErrNoAuth) {
			t.Fatalf("write with other credentials = %s, %v; want failed with %v", o.Status, o.Err, zk.ErrNoAuth)
		}
		if strings.Contains(o.Err.Error(), otherPassword) {
			t.Errorf("error %q reveals the auth password", o.Err)
		}
		if !strings.Contains(o.Err.Error(), "zookeeper multi for cluster shop") {
			t.Errorf("error %q lacks its context", o.Err)
		}
	})

	if strings.Contains(logs.String(), testPassword) {
		t.Errorf("the client log reveals the auth password:\n%s", logs.String())
	}
}

func TestNoAuthIsWorldAll(t *testing.T) {
	srv := testserver.StartZooKeeper(t)
	s := newStore(t, srv, nil)
	insp := inspect(t, srv)
	c := kvstore.NewCluster(layout, "shop", sampleMaster("db-1", 3306), 1)
	writeOne(t, s, c, kvstore.Written, 6)
	for _, path := range []string{"/mysql", "/mysql/master", "/mysql/master/shop", "/mysql/master/shop/epoch"} {
		acl, _, err := insp.GetACL(path)
		if err != nil {
			t.Fatalf("get acl %s: %v", path, err)
		}
		if want := zk.WorldACL(zk.PermAll); !slices.Equal(acl, want) {
			t.Errorf("acl of %s = %+v, want %+v", path, acl, want)
		}
	}
	// World-writable, as orchestrator's: any session may change it.
	if _, err := insp.Set("/mysql/master/shop/hostname", []byte("db-x"), -1); err != nil {
		t.Errorf("unauthenticated set on a world-all znode: %v", err)
	}
}
