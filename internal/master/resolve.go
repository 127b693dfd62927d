package master

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/masterkv/masterkv/internal/discovery"
)

// Resolver looks up a host's addresses. *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

var _ Resolver = (*net.Resolver)(nil)

// resolveTimeout bounds the DNS lookup done before proposing, so a slow
// resolver cannot hold a failover webhook for long.
const resolveTimeout = 2 * time.Second

// Complete fills in the ipv4 and ipv6 of m when neither was given. An IP
// literal host supplies its own family; a name is resolved with r (nil means
// no resolution). A name that does not resolve leaves both empty, as
// orchestrator does. The first address of each family wins.
func Complete(ctx context.Context, r Resolver, m discovery.Master) discovery.Master {
	if m.IPv4 != "" || m.IPv6 != "" {
		return m
	}
	if a, err := netip.ParseAddr(m.Host); err == nil {
		setAddr(&m, a)
		return m
	}
	if r == nil {
		return m
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip", m.Host)
	if err != nil {
		return m
	}
	for _, a := range addrs {
		setAddr(&m, a)
	}
	return m
}

func setAddr(m *discovery.Master, a netip.Addr) {
	a = a.Unmap()
	switch {
	case a.Is4() && m.IPv4 == "":
		m.IPv4 = a.String()
	case a.Is6() && m.IPv6 == "":
		m.IPv6 = a.WithZone("").String()
	}
}

// CheckLoopback refuses a master that points at this machine: a loopback or
// unspecified address in host, ipv4 or ipv6, or the name "localhost".
// orchestrator once published 127.0.1.1 from /etc/hosts (issue #1106); a
// proxy routing writes there sends them nowhere.
func CheckLoopback(m discovery.Master) error {
	if strings.EqualFold(strings.TrimSuffix(m.Host, "."), "localhost") {
		return invalid("host", "must not be localhost (set MASTERKV_ALLOW_LOOPBACK=true to allow)")
	}
	for _, f := range []struct{ field, value string }{{"host", m.Host}, {"ipv4", m.IPv4}, {"ipv6", m.IPv6}} {
		a, err := netip.ParseAddr(f.value)
		if err != nil {
			continue
		}
		a = a.Unmap() // ::ffff:0.0.0.0 is unspecified too
		if a.IsLoopback() || a.IsUnspecified() {
			return invalid(f.field, "must not be a loopback or unspecified address, got %s (set MASTERKV_ALLOW_LOOPBACK=true to allow)", a)
		}
	}
	return nil
}
