package httpapi_test

import (
	"context"
	"fmt"
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
	rec, ok := c.raft.WaitLeader().Store().Record("r399")
	if !ok || rec.Master.Host != "db-399.unresolvable.example" || rec.Master.IPv4 != "" || rec.Master.IPv6 != "" {
		t.Errorf("r399 = %+v, %v; want committed without addresses", rec, ok)
	}
}
