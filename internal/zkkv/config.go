package zkkv

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
)

// DefaultPort is the client port assumed for a server given without one,
// as orchestrator's ZkAddress does.
const DefaultPort = 2181

// Defaults for the zero values of Config.
const (
	DefaultSessionTimeout = 10 * time.Second
	DefaultOpTimeout      = 5 * time.Second
	DefaultConcurrency    = 8
)

// Config configures one ZooKeeper ensemble connection.
type Config struct {
	// Servers are host:port pairs; a server without a port gets
	// DefaultPort. ParseServers reads orchestrator's comma list.
	Servers []string
	// Chroot is an optional path prefix under which the key layout lives,
	// e.g. "/masterkv". It is normalised to one leading "/" and no
	// trailing one; "" and "/" mean the root.
	Chroot string
	// Auth is "user:password" for ZooKeeper's digest scheme. With it the
	// znodes masterkv creates are world-readable and writable only by
	// sessions authenticated as the same user. It is never logged and
	// never appears in an error.
	Auth string
	// SessionTimeout is asked of the server, which clamps it to
	// [2, 20] x its tickTime. Default DefaultSessionTimeout.
	SessionTimeout time.Duration
	// OpTimeout bounds every call to the server. Default DefaultOpTimeout.
	OpTimeout time.Duration
	// Concurrency bounds the clusters written at once by one Write.
	// Default DefaultConcurrency.
	Concurrency int
	// Logger receives the ZooKeeper client's own messages (connection
	// failures and the like). nil means slog.Default().
	Logger *slog.Logger
}

// errAuthFormat is returned for a malformed Auth; it never quotes the value.
var errAuthFormat = errors.New("zookeeper auth must be user:password with a non-empty user")

// Validate checks the configuration without contacting any server.
func (c Config) Validate() error {
	if len(c.Servers) == 0 {
		return errors.New("zookeeper: no servers configured")
	}
	for _, s := range c.Servers {
		if _, err := parseServer(s); err != nil {
			return err
		}
	}
	if _, err := NormalizeChroot(c.Chroot); err != nil {
		return err
	}
	if c.Auth != "" {
		if user, _, ok := strings.Cut(c.Auth, ":"); !ok || user == "" {
			return errAuthFormat
		}
	}
	if c.SessionTimeout < 0 || c.OpTimeout < 0 || c.Concurrency < 0 {
		return errors.New("zookeeper: timeouts and concurrency must not be negative")
	}
	return nil
}

// ParseServers reads orchestrator's ZkAddress form: a comma-separated list
// of servers, each host or host:port, DefaultPort when the port is absent.
// "srv-a,srv-b:12181" gives ["srv-a:2181" "srv-b:12181"]. IPv6 literals are
// accepted bare or in brackets and returned in brackets.
func ParseServers(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("zookeeper: empty server list")
	}
	parts := strings.Split(s, ",")
	out := make([]string, 0, len(parts))
	for _, p := range parts {
		srv, err := parseServer(p)
		if err != nil {
			return nil, err
		}
		out = append(out, srv)
	}
	return out, nil
}

// parseServer normalises one server to host:port.
func parseServer(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("zookeeper: empty server in list")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// No port: a host name, or an IPv6 literal bare or in brackets.
		host, port = s, strconv.Itoa(DefaultPort)
		bracketed := strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]")
		if bracketed {
			host = s[1 : len(s)-1]
		}
		isIPv6 := strings.Contains(host, ":") && net.ParseIP(host) != nil
		if strings.ContainsAny(host, "[]") || (strings.Contains(host, ":") || bracketed) && !isIPv6 {
			return "", fmt.Errorf("zookeeper server %q: want host or host:port", s)
		}
	}
	if host == "" {
		return "", fmt.Errorf("zookeeper server %q: empty host", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("zookeeper server %q: port must be 1-65535", s)
	}
	return net.JoinHostPort(host, port), nil
}

// NormalizeChroot returns chroot with exactly one leading "/" and no
// trailing one, or "" for the root. Empty, "." and ".." path elements are
// rejected.
func NormalizeChroot(chroot string) (string, error) {
	trimmed := strings.Trim(chroot, "/")
	if trimmed == "" {
		return "", nil
	}
	for _, elem := range strings.Split(trimmed, "/") {
		if elem == "" || elem == "." || elem == ".." {
			return "", fmt.Errorf("zookeeper chroot %q: empty, . or .. path element", chroot)
		}
	}
	return "/" + trimmed, nil
}
