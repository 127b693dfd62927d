package httpapi_test

import (
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
)

// TestHostileInputRefused (issue 10 items 1-4): input that could slip a byte
// into a store, name a key a store cannot hold, point writes at this machine
// or read differently to a filter in front is refused with a 400 naming the
// field, on the leader and on a follower, and nothing is committed.
func TestHostileInputRefused(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	lb := loopbackName(t)
	tests := []struct {
		name  string
		path  string
		body  string
		field string
		want  string
	}{
		// Item 1: an IPv6 zone is not part of a master host.
		{"zone carrying a config line", "/v1/failover",
			`{"cluster":"hp","host":"fe80::1%x\nserver evil 203.0.113.66:3306 check","port":3306}`, "host", "zone"},
		{"plain zone", "/v1/failover", `{"cluster":"hp","host":"fe80::1%eth0","port":3306}`, "host", "zone"},
		{"60 KB zone", "/v1/failover", `{"cluster":"hp","host":"fe80::1%` + strings.Repeat("z", 60<<10) + `","port":3306}`, "host", "zone"},
		{"zone in a form", "/v1/failover", "cluster=hp&host=fe80::1%25x%0Aserver+evil&port=3306", "host", "zone"},
		{"zone in populate", "/v1/populate", `{"masters":[{"cluster":"hp","host":"fe80::1%x","port":3306}]}`, "masters[0].host", "zone"},
		{"zone in expected", "/v1/failover", `{"cluster":"hp","host":"10.0.0.1","port":3306,"expected":"fe80::1%x:3306"}`, "expected", "zone"},
		// Item 2: aliases ZooKeeper cannot hold in a path.
		{"alias U+E000", "/v1/failover", `{"cluster":"a\ue000","host":"10.0.0.1","port":3306}`, "cluster", "U+E000"},
		{"alias U+FFFF", "/v1/failover", `{"cluster":"a\uffff","host":"10.0.0.1","port":3306}`, "cluster", "U+FFFF"},
		{"alias U+FFF0", "/v1/failover", `{"cluster":"a\ufff0","host":"10.0.0.1","port":3306}`, "cluster", "U+FFF0"},
		{"alias U+F8FF", "/v1/failover", `{"cluster":"\uf8ff","host":"10.0.0.1","port":3306}`, "cluster", "U+F8FF"},
		{"alias U+1F600 (UTF-16 surrogates in ZooKeeper)", "/v1/failover", `{"cluster":"a\ud83d\ude00","host":"10.0.0.1","port":3306}`, "cluster", "U+1F600"},
		{"alias zero-width space", "/v1/failover", `{"cluster":"a\u200bb","host":"10.0.0.1","port":3306}`, "cluster", "U+200B"},
		{"alias in populate", "/v1/populate", `{"masters":[{"cluster":"x\ufffe","host":"10.0.0.1","port":3306}]}`, "masters[0].cluster", "U+FFFE"},
		// Item 3: the loopback guard holds whatever else is given, and
		// with resolution off (these nodes have no resolver). lb is a name
		// of a loopback address in this machine's hosts file.
		{"host resolving to loopback", "/v1/failover", `{"cluster":"lb","host":"` + lb + `","port":3306}`, "host", "loopback"},
		{"host resolving to loopback with ipv4", "/v1/failover", `{"cluster":"lb","host":"` + lb + `","port":3306,"ipv4":"10.0.0.9"}`, "host", "loopback"},
		{"host resolving to loopback with ipv6", "/v1/failover", `{"cluster":"lb","host":"` + lb + `","port":3306,"ipv6":"fd00::9"}`, "host", "loopback"},
		{"loopback ipv4 beside a good host", "/v1/failover", `{"cluster":"lb","host":"10.0.0.9","port":3306,"ipv4":"127.0.0.1"}`, "ipv4", "loopback"},
		{"localhost subdomain", "/v1/failover", `{"cluster":"lb","host":"db.localhost","port":3306,"ipv4":"10.0.0.9"}`, "host", "localhost"},
		{"host resolving to loopback in populate", "/v1/populate", `{"masters":[{"cluster":"lb","host":"` + lb + `","port":3306,"ipv4":"10.0.0.9"}]}`, "masters[0].host", "loopback"},
		// Item 4: one reading of a body only.
		{"duplicate key", "/v1/failover", `{"cluster":"a","host":"10.0.0.1","port":3306,"host":"10.0.0.2"}`, "host", "more than once"},
		{"case-variant key", "/v1/failover", `{"cluster":"a","host":"10.0.0.1","port":3306,"CLUSTER":"b"}`, "body", `unknown field "CLUSTER"`},
		{"case-variant key alone", "/v1/failover", `{"Cluster":"a","host":"10.0.0.1","port":3306}`, "body", `unknown field "Cluster"`},
		{"repeated form field", "/v1/failover", "cluster=a&host=10.0.0.1&port=3306&cluster=b", "cluster", "more than once"},
		{"duplicate key in populate", "/v1/populate", `{"masters":[{"cluster":"a","host":"10.0.0.1","port":3306,"port":3307}]}`, "masters[0].port", "more than once"},
		{"case-variant key in populate", "/v1/populate", `{"masters":[{"cluster":"a","HOST":"10.0.0.1","port":3306}]}`, "masters[0]", `unknown field "HOST"`},
		{"duplicate masters list", "/v1/populate", `{"masters":[],"masters":[{"cluster":"a","host":"10.0.0.1","port":3306}]}`, "masters", "more than once"},
		{"case-variant top key in populate", "/v1/populate", `{"Masters":[{"cluster":"a","host":"10.0.0.1","port":3306}]}`, "body", `unknown field "Masters"`},
	}
	id, idx := c.lastIndex(t)
	for _, target := range c.targets(t) {
		for _, tt := range tests {
			t.Run(target.name+"/"+tt.name, func(t *testing.T) {
				r := c.do(t, target.node, http.MethodPost, tt.path, tt.body)
				var want []string
				if tt.want != "" {
					want = append(want, tt.want)
				}
				mustAPIError(t, r, http.StatusBadRequest, tt.field, want...)
			})
		}
	}
	c.assertNoNewEntry(t, id, idx)
}

// TestWellFormedInputAccepted: the rules above refuse no ordinary master.
func TestWellFormedInputAccepted(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	for _, body := range []string{
		`{"cluster":"db-1.example.com:3306","host":"fd00::5","port":3306}`,
		`{"cluster":"kluster-ü","host":"db1.example.com","port":"3306","ipv4":"10.0.0.9"}`,
		"cluster=orders&host=10.0.0.5&port=3306",
	} {
		c.mustFailover(t, c.leader(t), body)
	}
}

// loopbackName returns a name other than localhost that this machine's
// hosts file maps to a loopback address, as Debian maps its host name to
// 127.0.1.1 (orchestrator issue #1106). It fails when there is none: the
// loopback guard for resolved names is then not exercised.
func loopbackName(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/etc/hosts")
	if err != nil {
		t.Fatalf("read the hosts file: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if a, err := netip.ParseAddr(f[0]); err != nil || !a.IsLoopback() {
			continue
		}
		for _, name := range f[1:] {
			if n := strings.ToLower(strings.TrimSuffix(name, ".")); n != "localhost" && !strings.HasSuffix(n, ".localhost") {
				return name
			}
		}
	}
	t.Fatal("/etc/hosts maps no name but localhost to a loopback address; add one (127.0.1.1 with the host name, as Debian does)")
	return ""
}
