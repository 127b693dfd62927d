package master_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/masterkv/masterkv/internal/master"
)

// fakeResolver stands for DNS: it answers from a fixed table and records
// the lookups it was asked for.
type fakeResolver struct {
	addrs map[string][]netip.Addr
	err   error
	calls []string
}

var _ master.Resolver = (*fakeResolver)(nil)

func (r *fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r.calls = append(r.calls, network+" "+host)
	if _, ok := ctx.Deadline(); !ok {
		return nil, errors.New("fake resolver: lookup without a deadline")
	}
	if r.err != nil {
		return nil, r.err
	}
	a, ok := r.addrs[host]
	if !ok {
		return nil, fmt.Errorf("fake resolver: no such host %s", host)
	}
	return a, nil
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, 0, len(ss))
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestComplete(t *testing.T) {
	table := map[string][]netip.Addr{
		"db1":       addrs("10.0.0.5", "fd00::5", "10.0.0.6", "fd00::6"),
		"v6first":   addrs("fd00::7", "10.0.0.7"),
		"only4":     addrs("10.0.0.8", "10.0.0.9"),
		"only6":     addrs("fd00::9"),
		"mapped":    addrs("::ffff:10.0.0.10", "10.0.0.11"),
		"zoned":     {netip.MustParseAddr("fe80::1%eth0")},
		"no-answer": {},
	}
	tests := []struct {
		name      string
		resolver  *fakeResolver
		nilRes    bool
		in        master.Master
		want      master.Master
		wantCalls []string
	}{
		{
			// Looked up all the same, for the loopback guard; the given
			// address stays.
			name: "ipv4 given", resolver: &fakeResolver{addrs: table},
			in:        master.Master{Host: "db1", Port: 3306, IPv4: "192.0.2.1"},
			want:      master.Master{Host: "db1", Port: 3306, IPv4: "192.0.2.1"},
			wantCalls: []string{"ip db1"},
		},
		{
			// Looked up all the same, for the loopback guard; the given
			// address stays.
			name: "ipv6 given", resolver: &fakeResolver{addrs: table},
			in:        master.Master{Host: "db1", Port: 3306, IPv6: "2001:db8::1"},
			want:      master.Master{Host: "db1", Port: 3306, IPv6: "2001:db8::1"},
			wantCalls: []string{"ip db1"},
		},
		{
			name: "both given", resolver: &fakeResolver{addrs: table},
			in:   master.Master{Host: "10.0.0.1", Port: 3306, IPv4: "192.0.2.1", IPv6: "2001:db8::1"},
			want: master.Master{Host: "10.0.0.1", Port: 3306, IPv4: "192.0.2.1", IPv6: "2001:db8::1"},
		},
		{
			name: "ipv4 literal host", resolver: &fakeResolver{addrs: table},
			in:   master.Master{Host: "10.0.0.1", Port: 3306},
			want: master.Master{Host: "10.0.0.1", Port: 3306, IPv4: "10.0.0.1"},
		},
		{
			name: "ipv6 literal host", resolver: &fakeResolver{addrs: table},
			in:   master.Master{Host: "fd00::1", Port: 3306},
			want: master.Master{Host: "fd00::1", Port: 3306, IPv6: "fd00::1"},
		},
		{
			name: "ipv4-mapped literal host fills ipv4", resolver: &fakeResolver{addrs: table},
			in:   master.Master{Host: "::ffff:10.0.0.1", Port: 3306},
			want: master.Master{Host: "::ffff:10.0.0.1", Port: 3306, IPv4: "10.0.0.1"},
		},
		{
			name: "literal host with nil resolver", nilRes: true,
			in:   master.Master{Host: "10.0.0.1", Port: 3306},
			want: master.Master{Host: "10.0.0.1", Port: 3306, IPv4: "10.0.0.1"},
		},
		{
			name: "name, first of each family wins", resolver: &fakeResolver{addrs: table},
			in:        master.Master{Host: "db1", Port: 3306},
			want:      master.Master{Host: "db1", Port: 3306, IPv4: "10.0.0.5", IPv6: "fd00::5"},
			wantCalls: []string{"ip db1"},
		},
		{
			name: "name, ipv6 answered first", resolver: &fakeResolver{addrs: table},
			in:        master.Master{Host: "v6first", Port: 3306},
			want:      master.Master{Host: "v6first", Port: 3306, IPv4: "10.0.0.7", IPv6: "fd00::7"},
			wantCalls: []string{"ip v6first"},
		},
		{
			name: "name with only ipv4", resolver: &fakeResolver{addrs: table},
			in:        master.Master{Host: "only4", Port: 3306},
			want:      master.Master{Host: "only4", Port: 3306, IPv4: "10.0.0.8"},
			wantCalls: []string{"ip only4"},
		},
		{
			name: "name with only ipv6", resolver: &fakeResolver{addrs: table},
			in:        master.Master{Host: "only6", Port: 3306},
			want:      master.Master{Host: "only6", Port: 3306, IPv6: "fd00::9"},
			wantCalls: []string{"ip only6"},
		},
		{
			name: "mapped answer counts as ipv4", resolver: &fakeResolver{addrs: table},
			in:        master.Master{Host: "mapped", Port: 3306},
			want:      master.Master{Host: "mapped", Port: 3306, IPv4: "10.0.0.10"},
			wantCalls: []string{"ip mapped"},
		},
		{
			name: "zone dropped", resolver: &fakeResolver{addrs: table},
			in:        master.Master{Host: "zoned", Port: 3306},
			want:      master.Master{Host: "zoned", Port: 3306, IPv6: "fe80::1"},
			wantCalls: []string{"ip zoned"},
		},
		{
			name: "empty answer", resolver: &fakeResolver{addrs: table},
			in:        master.Master{Host: "no-answer", Port: 3306},
			want:      master.Master{Host: "no-answer", Port: 3306},
			wantCalls: []string{"ip no-answer"},
		},
		{
			name: "resolver error leaves both empty", resolver: &fakeResolver{addrs: table, err: errors.New("servfail")},
			in:        master.Master{Host: "db1", Port: 3306},
			want:      master.Master{Host: "db1", Port: 3306},
			wantCalls: []string{"ip db1"},
		},
		{
			name: "unknown name leaves both empty", resolver: &fakeResolver{addrs: table},
			in:        master.Master{Host: "nxdomain", Port: 3306},
			want:      master.Master{Host: "nxdomain", Port: 3306},
			wantCalls: []string{"ip nxdomain"},
		},
		{
			name: "nil resolver leaves both empty", nilRes: true,
			in:   master.Master{Host: "db1", Port: 3306},
			want: master.Master{Host: "db1", Port: 3306},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r master.Resolver
			if !tt.nilRes {
				r = tt.resolver
			}
			got := complete(context.Background(), r, tt.in)
			if got != tt.want {
				t.Errorf("Complete(%+v) = %+v, want %+v", tt.in, got, tt.want)
			}
			if tt.resolver != nil && fmt.Sprint(tt.resolver.calls) != fmt.Sprint(tt.wantCalls) {
				t.Errorf("resolver calls = %q, want %q", tt.resolver.calls, tt.wantCalls)
			}
		})
	}
}

func TestCompleteCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := &ctxResolver{}
	in := master.Master{Host: "db1", Port: 3306}
	if got := complete(ctx, r, in); got != in {
		t.Errorf("Complete(canceled ctx) = %+v, want %+v unchanged", got, in)
	}
	if r.calls != 1 {
		t.Errorf("resolver called %d times, want 1", r.calls)
	}
}

// ctxResolver fails as a real resolver does when its context is done.
type ctxResolver struct{ calls int }

func (r *ctxResolver) LookupNetIP(ctx context.Context, _, _ string) ([]netip.Addr, error) {
	r.calls++
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return addrs("10.0.0.5"), nil
}

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		name      string
		m         master.Master
		wantField string
	}{
		{"name", master.Master{Host: "db1.example.com", IPv4: "10.0.0.5", IPv6: "fd00::5"}, ""},
		{"public ipv4 host", master.Master{Host: "192.0.2.10"}, ""},
		{"ipv6 host", master.Master{Host: "2001:db8::10"}, ""},
		{"name containing localhost", master.Master{Host: "localhost-db.example.com"}, ""},
		{"128.0.0.1 is not loopback", master.Master{Host: "128.0.0.1"}, ""},
		{"localhost", master.Master{Host: "localhost"}, "host"},
		{"localhost uppercase", master.Master{Host: "LocalHost"}, "host"},
		{"localhost with dot", master.Master{Host: "localhost."}, "host"},
		{"127.0.0.1 host", master.Master{Host: "127.0.0.1"}, "host"},
		{"127.0.1.1 host", master.Master{Host: "127.0.1.1"}, "host"},
		{"::1 host", master.Master{Host: "::1"}, "host"},
		{"0.0.0.0 host", master.Master{Host: "0.0.0.0"}, "host"},
		{":: host", master.Master{Host: "::"}, "host"},
		{"mapped loopback host", master.Master{Host: "::ffff:127.0.0.1"}, "host"},
		{"mapped unspecified host", master.Master{Host: "::ffff:0.0.0.0", IPv4: "10.0.0.5"}, "host"},
		{"127.0.0.1 ipv4", master.Master{Host: "db1", IPv4: "127.0.0.1"}, "ipv4"},
		{"127.0.1.1 ipv4", master.Master{Host: "db1", IPv4: "127.0.1.1", IPv6: "fd00::5"}, "ipv4"},
		{"0.0.0.0 ipv4", master.Master{Host: "db1", IPv4: "0.0.0.0"}, "ipv4"},
		{"::1 ipv6", master.Master{Host: "db1", IPv4: "10.0.0.5", IPv6: "::1"}, "ipv6"},
		{":: ipv6", master.Master{Host: "db1", IPv6: "::"}, "ipv6"},
		{"localhost subdomain", master.Master{Host: "db.localhost", IPv4: "10.0.0.5"}, "host"},
		{"localhost subdomain uppercase with dot", master.Master{Host: "DB.LocalHost.", IPv4: "10.0.0.5"}, "host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkField(t, fmt.Sprintf("CheckLoopback(%+v)", tt.m), master.CheckLoopback(tt.m), tt.wantField)
		})
	}
}

// TestCheckLoopbackResolvesHost: the host name is looked
// up and refused when it names this machine, whatever ipv4/ipv6 say.
func TestCheckLoopbackResolvesHost(t *testing.T) {
	r := &fakeResolver{addrs: map[string][]netip.Addr{
		"db1":   addrs("10.0.0.5"),
		"self":  addrs("127.0.1.1"),
		"self6": addrs("fd00::5", "::1"),
		"any":   addrs("0.0.0.0"),
	}}
	tests := []struct {
		name      string
		m         master.Master
		wantField string
		wantCalls []string
	}{
		{"name of a remote address", master.Master{Host: "db1", IPv4: "10.0.0.5"}, "", []string{"ip db1"}},
		{"loopback name alone", master.Master{Host: "self"}, "host", []string{"ip self"}},
		{"loopback name with ipv4", master.Master{Host: "self", IPv4: "10.0.0.9"}, "host", []string{"ip self"}},
		{"loopback name with ipv6", master.Master{Host: "self6", IPv6: "fd00::9"}, "host", []string{"ip self6"}},
		{"unspecified name with both", master.Master{Host: "any", IPv4: "10.0.0.9", IPv6: "fd00::9"}, "host", []string{"ip any"}},
		{"unknown name", master.Master{Host: "nxdomain", IPv4: "10.0.0.9"}, "", []string{"ip nxdomain"}},
		{"ip literal not looked up", master.Master{Host: "10.0.0.9"}, "", nil},
		{"localhost subdomain not looked up", master.Master{Host: "db.localhost", IPv4: "10.0.0.9"}, "host", nil},
		{"loopback ipv4 beside a remote name", master.Master{Host: "db1", IPv4: "127.0.0.1"}, "ipv4", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.calls = nil
			err := master.CheckLoopbackWith(context.Background(), r, tt.m)
			checkField(t, fmt.Sprintf("CheckLoopback(%+v)", tt.m), err, tt.wantField)
			if tt.wantField == "host" && err != nil && tt.wantCalls != nil && !strings.Contains(err.Error(), "resolve to a loopback") {
				t.Errorf("error = %q, want it to say the host resolves to a loopback address", err)
			}
			if fmt.Sprint(r.calls) != fmt.Sprint(tt.wantCalls) {
				t.Errorf("resolver calls = %q, want %q", r.calls, tt.wantCalls)
			}
		})
	}
}

// TestHostsResolver: CheckLoopback's lookups read the hosts file and never
// ask DNS, so a failover does not wait on a name server and a populate does
// not query one per master.
func TestHostsResolver(t *testing.T) {
	r := master.HostsResolver()
	got, err := r.LookupNetIP(t.Context(), "ip", "localhost")
	if err != nil || len(got) == 0 {
		t.Fatalf("LookupNetIP(localhost) = %v, %v; want the hosts file's addresses", got, err)
	}
	for _, a := range got {
		if !a.Unmap().IsLoopback() {
			t.Errorf("localhost resolves to %s, want loopback addresses only", a)
		}
	}
	// Names DNS would answer (a public one, and one no server holds) are not
	// in the hosts file: both fail at once, without a name server's timeout.
	start := time.Now()
	for _, name := range []string{"example.com", "no-such-host.masterkv.invalid"} {
		if got, err := r.LookupNetIP(t.Context(), "ip", name); err == nil {
			t.Errorf("LookupNetIP(%s) = %v, want an error (DNS must not be asked)", name, got)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("two failed lookups took %v, want well under a second", d)
	}
}

// complete is what the node does with a master: look the host up once,
// then fill in the addresses from the answer.
func complete(ctx context.Context, r master.Resolver, m master.Master) master.Master {
	return master.Complete(m, master.Lookup(ctx, r, m.Host))
}
