package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/masterkv/masterkv/raftnode/httpapi"
)

// failoverJSON is a valid failover body with one field replaced by a raw
// JSON value, or removed when raw is "".
func failoverJSON(field, raw string) string {
	fields := []struct{ k, v string }{
		{"cluster", `"orders"`}, {"host", `"10.0.0.5"`}, {"port", `3306`},
	}
	var parts []string
	found := false
	for _, f := range fields {
		if f.k == field {
			found = true
			if raw == "" {
				continue
			}
			f.v = raw
		}
		parts = append(parts, fmt.Sprintf("%q:%s", f.k, f.v))
	}
	if !found && raw != "" {
		parts = append(parts, fmt.Sprintf("%q:%s", field, raw))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// padTo pads a JSON body with trailing spaces to exactly n bytes.
func padTo(body string, n int) string {
	return body + strings.Repeat(" ", n-len(body))
}

type badInput struct {
	name   string
	method string // POST when empty
	path   string // /v1/failover when empty
	body   string
	hdr    []string
	status int
	// field is the field the error must name ("field: ..."); "" when the
	// error is not about one field.
	field    string
	contains []string
}

func badInputs() []badInput {
	alias201 := strings.Repeat("a", 201)
	return []badInput{
		// Body shape.
		{name: "malformed json", body: `{"cluster":"orders","host":`, status: 400, field: "body"},
		{name: "two json objects", body: failoverJSON("", "") + failoverJSON("", ""), status: 400, field: "body"},
		{name: "unknown json field", body: failoverJSON("master", `"10.0.0.5:3306"`), status: 400, field: "body", contains: []string{`"master"`}},
		{name: "unknown form field", body: "cluster=orders&host=10.0.0.5&port=3306&force=1", status: 400, field: "force"},
		{name: "json array", body: `[{"cluster":"orders","host":"10.0.0.5","port":3306}]`, status: 400},
		{name: "empty body", body: "", status: 400, field: "port", contains: []string{"required"}},
		{name: "oversize body", body: padTo(failoverJSON("", ""), httpapi.MaxBodyBytes+1), status: 413, contains: []string{"64 KiB"}},

		// Missing fields.
		{name: "missing cluster json", body: failoverJSON("cluster", ""), status: 400, field: "cluster"},
		{name: "missing cluster form", body: "host=10.0.0.5&port=3306", status: 400, field: "cluster"},
		{name: "empty cluster", body: failoverJSON("cluster", `""`), status: 400, field: "cluster"},
		{name: "missing host json", body: failoverJSON("host", ""), status: 400, field: "host"},
		{name: "missing host form", body: "cluster=orders&port=3306", status: 400, field: "host"},
		{name: "missing port json", body: failoverJSON("port", ""), status: 400, field: "port"},
		{name: "missing port form", body: "cluster=orders&host=10.0.0.5", status: 400, field: "port"},
		{name: "null port", body: failoverJSON("port", "null"), status: 400, field: "port"},

		// Alias.
		{name: "alias with slash", body: failoverJSON("cluster", `"orders/eu"`), status: 400, field: "cluster", contains: []string{"/"}},
		{name: "alias dot dot", body: failoverJSON("cluster", `".."`), status: 400, field: "cluster"},
		{name: "alias dot", body: failoverJSON("cluster", `"."`), status: 400, field: "cluster"},
		{name: "alias with space", body: failoverJSON("cluster", `"my orders"`), status: 400, field: "cluster", contains: []string{"whitespace"}},
		{name: "alias with space form", body: "cluster=my+orders&host=10.0.0.5&port=3306", status: 400, field: "cluster", contains: []string{"whitespace"}},
		{name: "alias with tab", body: failoverJSON("cluster", `"orders\t"`), status: 400, field: "cluster", contains: []string{"whitespace"}},
		{name: "alias with newline", body: failoverJSON("cluster", `"orders\n"`), status: 400, field: "cluster", contains: []string{"whitespace"}},
		{name: "alias of 201 bytes", body: failoverJSON("cluster", `"`+alias201+`"`), status: 400, field: "cluster", contains: []string{"200"}},
		{name: "alias not utf-8 form", body: "cluster=orders%ff&host=10.0.0.5&port=3306", status: 400, field: "cluster", contains: []string{"UTF-8"}},
		{name: "alias with control character", body: failoverJSON("cluster", `"orders\u0000"`), status: 400, field: "cluster"},

		// Port.
		{name: "port 0", body: failoverJSON("port", "0"), status: 400, field: "port"},
		{name: "port 70000", body: failoverJSON("port", "70000"), status: 400, field: "port"},
		{name: "port 65536", body: failoverJSON("port", "65536"), status: 400, field: "port"},
		{name: "port negative", body: failoverJSON("port", "-1"), status: 400, field: "port"},
		{name: "port abc json", body: failoverJSON("port", `"abc"`), status: 400, field: "port"},
		{name: "port abc form", body: "cluster=orders&host=10.0.0.5&port=abc", status: 400, field: "port"},
		{name: "port 0 form", body: "cluster=orders&host=10.0.0.5&port=0", status: 400, field: "port"},
		{name: "port fraction", body: failoverJSON("port", "3306.5"), status: 400, field: "port"},
		{name: "port bool", body: failoverJSON("port", "true"), status: 400, field: "port"},

		// Host and addresses.
		{name: "host with space", body: failoverJSON("host", `"db 1"`), status: 400, field: "host"},
		{name: "host label starting with dash", body: failoverJSON("host", `"-db1"`), status: 400, field: "host"},
		{name: "host with empty label", body: failoverJSON("host", `"db..example.com"`), status: 400, field: "host"},
		{name: "host bracketed ipv6", body: failoverJSON("host", `"[fd00::5]"`), status: 400, field: "host"},
		{name: "ipv4 short", body: failoverJSON("ipv4", `"10.0.0"`), status: 400, field: "ipv4"},
		{name: "ipv4 octet 256", body: failoverJSON("ipv4", `"10.0.0.256"`), status: 400, field: "ipv4"},
		{name: "ipv4 holding ipv6", body: failoverJSON("ipv4", `"fd00::5"`), status: 400, field: "ipv4"},
		{name: "ipv4 form", body: "cluster=orders&host=db1&port=3306&ipv4=nope", status: 400, field: "ipv4"},
		{name: "ipv6 garbage", body: failoverJSON("ipv6", `"fd00::zz"`), status: 400, field: "ipv6"},
		{name: "ipv6 holding ipv4", body: failoverJSON("ipv6", `"10.0.0.5"`), status: 400, field: "ipv6"},
		{name: "ipv6 with zone", body: failoverJSON("ipv6", `"fe80::1%eth0"`), status: 400, field: "ipv6"},
		{name: "ipv6 mapped ipv4", body: failoverJSON("ipv6", `"::ffff:10.0.0.5"`), status: 400, field: "ipv6"},
		{name: "expected without port", body: failoverJSON("expected", `"10.0.0.4"`), status: 400, field: "expected"},
		{name: "expected with bad port", body: failoverJSON("expected", `"10.0.0.4:abc"`), status: 400, field: "expected"},
		{name: "expected_epoch 0", body: failoverJSON("expected_epoch", "0"), status: 400, field: "expected_epoch", contains: []string{"positive integer"}},
		{name: "expected_epoch negative", body: failoverJSON("expected_epoch", "-3"), status: 400, field: "expected_epoch", contains: []string{"positive integer"}},
		{name: "expected_epoch fraction", body: failoverJSON("expected_epoch", "7.5"), status: 400, field: "expected_epoch"},
		{name: "expected_epoch abc", body: failoverJSON("expected_epoch", `"abc"`), status: 400, field: "expected_epoch"},
		{name: "expected_epoch bool", body: failoverJSON("expected_epoch", "true"), status: 400, field: "expected_epoch"},
		{name: "expected_epoch past uint64", body: failoverJSON("expected_epoch", "18446744073709551616"), status: 400, field: "expected_epoch"},
		{name: "expected_epoch empty form", body: "cluster=orders&host=10.0.0.5&port=3306&expected_epoch=", status: 400, field: "expected_epoch"},
		{name: "expected_epoch abc form", body: "cluster=orders&host=10.0.0.5&port=3306&expected_epoch=abc", status: 400, field: "expected_epoch"},
		{name: "expected_epoch unexpanded placeholder form", body: "cluster=orders&host=10.0.0.5&port=3306&expected_epoch=%7Bepoch%7D", status: 400, field: "expected_epoch"},

		// Loopback masters.
		{name: "loopback host 127.0.0.1", body: failoverJSON("host", `"127.0.0.1"`), status: 400, field: "host", contains: []string{"loopback"}},
		{name: "loopback host 127.0.1.1", body: failoverJSON("host", `"127.0.1.1"`), status: 400, field: "host", contains: []string{"loopback"}},
		{name: "loopback host localhost", body: failoverJSON("host", `"localhost"`), status: 400, field: "host", contains: []string{"localhost"}},
		{name: "loopback host LOCALHOST", body: failoverJSON("host", `"LOCALHOST"`), status: 400, field: "host", contains: []string{"localhost"}},
		{name: "loopback host localhost form", body: "cluster=orders&host=localhost&port=3306", status: 400, field: "host"},
		{name: "loopback host ::1", body: failoverJSON("host", `"::1"`), status: 400, field: "host"},
		{name: "loopback host mapped", body: failoverJSON("host", `"::ffff:127.0.0.1"`), status: 400, field: "host"},
		{name: "unspecified host", body: failoverJSON("host", `"0.0.0.0"`), status: 400, field: "host"},
		{name: "loopback ipv4", body: `{"cluster":"orders","host":"db1","port":3306,"ipv4":"127.0.0.1"}`, status: 400, field: "ipv4"},
		{name: "loopback ipv6", body: `{"cluster":"orders","host":"db1","port":3306,"ipv6":"::1"}`, status: 400, field: "ipv6"},

		// Tokens.
		{name: "missing token", body: failoverJSON("", ""), hdr: []string{"Authorization", ""}, status: 401, contains: []string{"token"}},
		{name: "wrong token", body: failoverJSON("", ""), hdr: []string{"Authorization", "Bearer t3"}, status: 401, contains: []string{"token"}},
		{name: "token without scheme", body: failoverJSON("", ""), hdr: []string{"Authorization", token}, status: 401},
		{name: "basic scheme", body: failoverJSON("", ""), hdr: []string{"Authorization", "Basic " + token}, status: 401},
		{name: "empty bearer", body: failoverJSON("", ""), hdr: []string{"Authorization", "Bearer "}, status: 401},
		{name: "token prefix", body: failoverJSON("", ""), hdr: []string{"Authorization", "Bearer t"}, status: 401},
		{name: "missing token on a read", method: "GET", path: "/v1/masters", hdr: []string{"Authorization", ""}, status: 401},
		{name: "missing token on status", method: "GET", path: "/v1/status", hdr: []string{"Authorization", ""}, status: 401},
		{name: "missing token on populate", path: "/v1/populate", body: `{"masters":[]}`, hdr: []string{"Authorization", ""}, status: 401},

		// Idempotency keys.
		{name: "id differs from Idempotency-Key", body: failoverJSON("id", `"a-1"`), hdr: []string{"Idempotency-Key", "a-2"}, status: 400, field: "id", contains: []string{"Idempotency-Key"}},
		{name: "id differs from Idempotency-Key form", body: "cluster=orders&host=10.0.0.5&port=3306&id=a-1", hdr: []string{"Idempotency-Key", "a-2"}, status: 400, field: "id"},
		{name: "id with space", body: failoverJSON("id", `"a 1"`), status: 400, field: "id"},
		{name: "id of 201 bytes", body: failoverJSON("", ""), hdr: []string{"Idempotency-Key", strings.Repeat("k", 201)}, status: 400, field: "id"},
		{name: "same id, different payload", body: `{"cluster":"seed","host":"10.0.0.6","port":3306}`, hdr: []string{"Idempotency-Key", "seed-key"}, status: 422, contains: []string{"seed-key"}},
		{name: "same id, different endpoint", path: "/v1/populate", body: `{"masters":[{"cluster":"seed","host":"10.0.0.5","port":3306}]}`, hdr: []string{"Idempotency-Key", "seed-key"}, status: 422},

		// Reads.
		{name: "unknown alias", method: "GET", path: "/v1/masters/nope", status: 404, contains: []string{`"nope"`}},
		{name: "unknown alias with colon", method: "GET", path: "/v1/masters/db-9:3306", status: 404},
	}
}

// TestBadInputCommitsNothing sends each class of bad request to the leader
// and to a follower: each gets its 4xx with {"error": "..."} naming the
// field, is answered by the node it reached, and the leader's raft log
// does not grow.
func TestBadInputCommitsNothing(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	seed := c.mustFailover(t, c.leader(t), `{"cluster":"seed","host":"10.0.0.5","port":3306}`, "Idempotency-Key", "seed-key")
	c.waitRecord(t, "seed", "10.0.0.5:3306", seed.Epoch)

	for _, tg := range c.targets(t) {
		for _, tc := range badInputs() {
			t.Run(tg.name+"/"+tc.name, func(t *testing.T) {
				method, path := tc.method, tc.path
				if method == "" {
					method = http.MethodPost
				}
				if path == "" {
					path = "/v1/failover"
				}
				leaderID, before := c.lastIndex(t)
				r := c.do(t, tg.node, method, path, tc.body, tc.hdr...)
				mustAPIError(t, r, tc.status, tc.field, tc.contains...)
				if tc.status == http.StatusUnauthorized && r.header.Get("WWW-Authenticate") == "" {
					t.Errorf("401 without a WWW-Authenticate header")
				}
				if by := r.header.Get("X-Masterkv-Leader"); by != "" {
					t.Errorf("answered by the leader %s through forwarding; want the receiving node to refuse", by)
				}
				c.assertNoNewEntry(t, leaderID, before)
				for _, n := range c.running() {
					if got := n.FSM().Len(); got != 1 {
						t.Errorf("%s holds %d clusters, want only the seed", n.ID(), got)
					}
				}
			})
		}
	}
	c.assertRecordEverywhere(t, "seed", "10.0.0.5:3306", seed.Epoch)
}

// TestInputBoundariesAccepted checks the accepted edge of each rule the
// table above refuses, so the refusals cannot come from refusing everything.
func TestInputBoundariesAccepted(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	alias200 := strings.Repeat("a", 200)
	tests := []struct {
		name, body, alias, master string
	}{
		{"alias of 200 bytes", `{"cluster":"` + alias200 + `","host":"10.0.0.5","port":3306}`, alias200, "10.0.0.5:3306"},
		{"alias with colon, dot and unicode", `{"cluster":"db-1.eu:3306-ü","host":"10.0.0.5","port":3306}`, "db-1.eu:3306-ü", "10.0.0.5:3306"},
		{"port 1", `{"cluster":"p1","host":"10.0.0.5","port":1}`, "p1", "10.0.0.5:1"},
		{"port 65535 as a string", `{"cluster":"p65535","host":"10.0.0.5","port":"65535"}`, "p65535", "10.0.0.5:65535"},
		{"host name with underscore", "cluster=under&host=db_1.example.com&port=3306", "under", "db_1.example.com:3306"},
		{"body of exactly 64 KiB", padTo(`{"cluster":"big","host":"10.0.0.5","port":3306}`, httpapi.MaxBodyBytes), "big", "10.0.0.5:3306"},
		{"id of 200 bytes", `{"cluster":"longid","host":"10.0.0.5","port":3306,"id":"` + strings.Repeat("k", 200) + `"}`, "longid", "10.0.0.5:3306"},
		{"leading whitespace before json", "\n\t " + `{"cluster":"ws","host":"10.0.0.5","port":3306}`, "ws", "10.0.0.5:3306"},
	}
	for _, tg := range c.targets(t) {
		for _, tc := range tests {
			t.Run(tg.name+"/"+tc.name, func(t *testing.T) {
				hdr := []string{"Content-Type", "application/json"}
				if !strings.Contains(tc.body, "{") {
					hdr = nil
				}
				rc := c.mustFailover(t, tg.node, tc.body, hdr...)
				if rc.Cluster != tc.alias || rc.Master != tc.master {
					t.Errorf("receipt cluster, master = %q, %q; want %q, %q", rc.Cluster, rc.Master, tc.alias, tc.master)
				}
				c.waitRecord(t, tc.alias, tc.master, rc.Epoch)
			})
		}
	}
}

// TestLoopbackGuardCatchesShorthandIPv4 sends hosts that are not IP
// literals to Go but that the C resolver (inet_aton, used by getaddrinfo
// and so by MySQL clients and proxies) reads as 127.0.0.1. Published as a
// master they send writes to the local machine, which is what the guard is
// there to prevent.
func TestLoopbackGuardCatchesShorthandIPv4(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	for _, host := range []string{"127.1", "127.0.1", "2130706433", "0x7f000001", "0177.0.0.1"} {
		t.Run(host, func(t *testing.T) {
			leaderID, before := c.lastIndex(t)
			r := c.do(t, c.follower(t), http.MethodPost, "/v1/failover", failoverJSON("host", `"`+host+`"`))
			mustAPIError(t, r, http.StatusBadRequest, "host")
			c.assertNoNewEntry(t, leaderID, before)
		})
	}
}
