package master

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Resolver looks up a host's addresses. *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

var _ Resolver = (*net.Resolver)(nil)

// resolveTimeout bounds the DNS lookup done before proposing, so a slow
// resolver cannot hold a failover webhook for long.
const resolveTimeout = 2 * time.Second

// Lookup resolves host with r, within resolveTimeout and ctx. It returns
// nil for an IP literal, with r nil (no resolution), or when the name does
// not resolve.
func Lookup(ctx context.Context, r Resolver, host string) []netip.Addr {
	if r == nil || host == "" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil
	}
	return addrs
}

// Complete fills in the ipv4 and ipv6 of m when neither was given: an IP
// literal host supplies its own family; a name gets the first address of
// each family among addrs, what Lookup found for it. A name that did not
// resolve leaves both empty, as orchestrator does.
func Complete(m Master, addrs []netip.Addr) Master {
	if m.IPv4 != "" || m.IPv6 != "" {
		return m
	}
	if a, err := netip.ParseAddr(m.Host); err == nil {
		setAddr(&m, a)
		return m
	}
	for _, a := range addrs {
		setAddr(&m, a)
	}
	return m
}

// CheckResolved refuses a host whose addresses (what Lookup found for it)
// include one of this machine, whatever ipv4/ipv6 the record carries: a
// proxy that connects by name reaches what the name resolves to.
func CheckResolved(host string, addrs []netip.Addr) error {
	for _, a := range addrs {
		if local(a) {
			return invalid("host", "must not resolve to a loopback or unspecified address: %s is %s (set MASTERKV_ALLOW_LOOPBACK=true to allow)", host, a.Unmap())
		}
	}
	return nil
}

func setAddr(m *Master, a netip.Addr) {
	a = a.Unmap()
	switch {
	case a.Is4() && m.IPv4 == "":
		m.IPv4 = a.String()
	case a.Is6() && m.IPv6 == "":
		m.IPv6 = a.WithZone("").String()
	}
}

// CheckLoopback refuses a master that points at this machine: a loopback or
// unspecified address in host, ipv4 or ipv6, the name "localhost" or a name
// under it (RFC 6761), or a host name that this machine's hosts file maps to
// a loopback or unspecified address. orchestrator once published 127.0.1.1
// from /etc/hosts (issue #1106); a proxy routing writes there sends them
// nowhere.
//
// The host name is looked up whatever was given in ipv4/ipv6 and whether or
// not MASTERKV_RESOLVE_IPS completes addresses: a proxy that connects to the
// host by name reaches what the name resolves to, not the ipv4 a caller
// wrote beside it. The lookup reads the hosts file only (see hostsResolver),
// so it costs no network round trip on a failover and none per master on a
// populate; a name that DNS maps to a loopback address is caught through
// the ipv4/ipv6 that Complete fills in from it.
func CheckLoopback(m Master) error {
	return checkLoopback(context.Background(), hostsResolver(), m)
}

func checkLoopback(ctx context.Context, r Resolver, m Master) error {
	name := strings.ToLower(strings.TrimSuffix(m.Host, "."))
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return invalid("host", "must not be localhost (set MASTERKV_ALLOW_LOOPBACK=true to allow)")
	}
	for _, f := range []struct{ field, value string }{{"host", m.Host}, {"ipv4", m.IPv4}, {"ipv6", m.IPv6}} {
		if a, err := netip.ParseAddr(f.value); err == nil && local(a) {
			return invalid(f.field, "must not be a loopback or unspecified address, got %s (set MASTERKV_ALLOW_LOOPBACK=true to allow)", a.Unmap())
		}
	}
	if _, err := netip.ParseAddr(m.Host); err == nil || m.Host == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip", m.Host)
	if err != nil {
		return nil // not a name of this machine's hosts file
	}
	for _, a := range addrs {
		if local(a) {
			return invalid("host", "must not resolve to a loopback or unspecified address: %s is %s here (set MASTERKV_ALLOW_LOOPBACK=true to allow)", m.Host, a.Unmap())
		}
	}
	return nil
}

// errHostsOnly refuses the DNS dials of hostsResolver.
var errHostsOnly = errors.New("hosts file lookup only: no DNS")

// hostsResolver looks names up in this machine's hosts file and nowhere
// else. Go's resolver reads the hosts file before DNS (nsswitch "files dns",
// also its order when it cannot read nsswitch.conf) and every DNS dial is
// refused here, so a lookup never leaves the machine and fails at once for
// a name the file does not hold.
func hostsResolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errHostsOnly
	}}
}

// local reports an address of this machine: loopback or unspecified
// (::ffff:0.0.0.0 is unspecified too).
func local(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsLoopback() || a.IsUnspecified()
}
