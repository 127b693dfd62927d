package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// silentResolver is a DNS server that never answers: every lookup waits
// for its context to end.
type silentResolver struct{ lookups atomic.Int64 }

func (r *silentResolver) LookupNetIP(ctx context.Context, _, _ string) ([]netip.Addr, error) {
	r.lookups.Add(1)
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestPopulateResolutionIsBounded is issue 10 item 6: 1,400 names that do
// not resolve kept a populate resolving for 88 s, past the HTTP write
// timeout; the client got no answer, yet everything was committed. The
// resolution of one populate has a total budget (httpapi.ResolveBudget):
// names it does not reach in time are committed without addresses, as
// names that do not resolve are, and the answer comes within the budget.
func TestPopulateResolutionIsBounded(t *testing.T) {
	res := &silentResolver{}
	c := newAPICluster(t, clusterOptions{resolver: res})
	const n = 400 // at 8 lookups of 2 s at a time: 100 s without a budget
	var masters []string
	for i := range n {
		masters = append(masters, fmt.Sprintf(`{"cluster":"r%03d","host":"db-%03d.unresolvable.example","port":3306}`, i, i))
	}
	start := time.Now()
	c.mustPopulate(t, c.leader(t), `{"masters":[`+strings.Join(masters, ",")+`]}`, populateAnswer{Checked: n, Submitted: n})
	took := time.Since(start)
	t.Logf("populate of %d unresolvable names answered after %s (%d lookups)", n, took.Round(time.Millisecond), res.lookups.Load())
	rec, ok := c.raft.WaitLeader().FSM().Record("r399")
	if !ok || rec.Master.Host != "db-399.unresolvable.example" || rec.Master.IPv4 != "" || rec.Master.IPv6 != "" {
		t.Errorf("r399 = %+v, %v; want committed without addresses", rec, ok)
	}
}

// mapResolver answers from a fixed table; other names do not resolve.
type mapResolver map[string][]netip.Addr

func (r mapResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("lookup %s: no such host", host)
}

// TestLoopbackByDNSBesideGivenAddresses is the rest of issue 10 item 3: a
// host name that DNS (not the hosts file) maps to this machine was accepted
// when ipv4 or ipv6 was given beside it, since only a missing address made
// the node resolve the name; a proxy connecting by name then reaches
// loopback. With resolution on, the name is looked up whatever was given.
func TestLoopbackByDNSBesideGivenAddresses(t *testing.T) {
	res := mapResolver{
		"sneaky.example": {netip.MustParseAddr("10.0.0.9"), netip.MustParseAddr("127.0.0.1")},
		"fine.example":   {netip.MustParseAddr("10.0.0.10")},
	}
	c := newAPICluster(t, clusterOptions{resolver: res})
	leaderID, before := c.lastIndex(t)
	for _, body := range []string{
		`{"cluster":"s1","host":"sneaky.example","port":3306,"ipv4":"10.0.0.9"}`,
		`{"cluster":"s2","host":"sneaky.example","port":3306,"ipv6":"fd00::9"}`,
		`{"cluster":"s3","host":"sneaky.example","port":3306}`,
	} {
		r := c.do(t, c.follower(t), http.MethodPost, "/v1/failover", body)
		mustStatus(t, r, http.StatusBadRequest)
		if !strings.Contains(string(r.body), "host") || !strings.Contains(string(r.body), "127.0.0.1") {
			t.Errorf("%s: error %s, want it to name host and 127.0.0.1", body, r.body)
		}
	}
	c.assertNoNewEntry(t, leaderID, before)
	r := c.do(t, c.follower(t), http.MethodPost, "/v1/failover", `{"cluster":"f1","host":"fine.example","port":3306,"ipv4":"10.0.0.10"}`)
	mustStatus(t, r, http.StatusOK)
}
