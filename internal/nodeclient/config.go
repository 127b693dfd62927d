package nodeclient

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/masterkv/masterkv/internal/tlsfiles"
)

// Config is what every function needs to reach the node group, read from
// the environment. Functions embed it in their own Config.
type Config struct {
	// Nodes are the base URLs of the nodes, tried in order.
	Nodes []string `envconfig:"MASTERKV_NODES"`
	// Token is the bearer token the nodes accept (one of their
	// MASTERKV_API_TOKENS). It is never logged.
	Token string `envconfig:"MASTERKV_NODE_TOKEN"`
	// Timeout bounds one attempt on one node; every attempt is also cut
	// short so that the function answers before its own deadline.
	Timeout time.Duration `envconfig:"MASTERKV_NODE_TIMEOUT" default:"12s"`
	// HedgeDelay is how long one node may leave a request unanswered
	// before it is sent to the next node as well (the first definitive
	// answer wins); 0 turns hedging off. The default is far above a
	// forwarded failover's latency on one network (p99 under 1 ms in
	// BenchmarkDoForwardedFailover) and below a cross-region round trip
	// plus a commit only rarely; a hedged copy costs the group one
	// duplicate lookup, so erring short is cheap.
	HedgeDelay time.Duration `envconfig:"MASTERKV_NODE_HEDGE_DELAY" default:"250ms"`
	// ConnectTimeout bounds the TCP connect to a node, so an unreachable
	// node (dropped packets) costs little before the next one is tried.
	ConnectTimeout time.Duration `envconfig:"MASTERKV_NODE_CONNECT_TIMEOUT" default:"2s"`
	// Attempts is how many requests one call may send in all, going round
	// the nodes; a full round without success waits a short backoff.
	Attempts int `envconfig:"MASTERKV_NODE_ATTEMPTS" default:"6"`
	// CAFile is the CA the nodes' API certificates are verified against
	// (the system roots when empty); with it every node URL is https://.
	CAFile string `envconfig:"MASTERKV_NODE_CA_FILE"`
	// CertFile and KeyFile are the client certificate presented to nodes
	// that require one (MASTERKV_HTTP_TLS_CLIENT_CA_FILE on the nodes).
	CertFile string `envconfig:"MASTERKV_NODE_CERT_FILE"`
	KeyFile  string `envconfig:"MASTERKV_NODE_KEY_FILE"`
}

// maxAttempts bounds Attempts.
const maxAttempts = 100

// Validate checks every setting; the error names the variable.
func (c Config) Validate() error {
	if _, err := parseNodes(c.Nodes); err != nil {
		return err
	}
	if c.Token == "" {
		return fmt.Errorf("config: MASTERKV_NODE_TOKEN must be set (one of the nodes' MASTERKV_API_TOKENS)")
	}
	if strings.ContainsFunc(c.Token, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("config: MASTERKV_NODE_TOKEN must not contain spaces or control characters")
	}
	if c.Timeout < 100*time.Millisecond {
		return fmt.Errorf("config: MASTERKV_NODE_TIMEOUT must be at least 100ms, got %s", c.Timeout)
	}
	if c.ConnectTimeout <= 0 || c.ConnectTimeout > c.Timeout {
		return fmt.Errorf("config: MASTERKV_NODE_CONNECT_TIMEOUT must be above 0 and at most MASTERKV_NODE_TIMEOUT (%s), got %s", c.Timeout, c.ConnectTimeout)
	}
	if c.HedgeDelay < 0 || c.HedgeDelay >= c.Timeout {
		return fmt.Errorf("config: MASTERKV_NODE_HEDGE_DELAY must be from 0 (off) to below MASTERKV_NODE_TIMEOUT (%s), got %s", c.Timeout, c.HedgeDelay)
	}
	if c.Attempts < 1 || c.Attempts > maxAttempts {
		return fmt.Errorf("config: MASTERKV_NODE_ATTEMPTS must be from 1 to %d, got %d", maxAttempts, c.Attempts)
	}
	return c.validateTLS()
}

func (c Config) validateTLS() error {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return fmt.Errorf("config: MASTERKV_NODE_CERT_FILE and MASTERKV_NODE_KEY_FILE must be set together")
	}
	if c.CAFile == "" && c.CertFile == "" {
		return nil
	}
	nodes, _ := parseNodes(c.Nodes) // checked before
	for _, u := range nodes {
		if u.Scheme != "https" {
			return fmt.Errorf("config: MASTERKV_NODES entry %q must be an https:// URL when MASTERKV_NODE_CA_FILE or MASTERKV_NODE_CERT_FILE is set", u.Redacted())
		}
	}
	return nil
}

// loadTLS reads the TLS files; nil when none is set. The error names the
// variable at fault.
func (c Config) loadTLS() (*tlsfiles.Store, error) {
	if c.CAFile == "" && c.CertFile == "" {
		return nil, nil
	}
	s, err := tlsfiles.Load(tlsfiles.Files{Cert: c.CertFile, Key: c.KeyFile, CA: c.CAFile})
	var fe *tlsfiles.Error
	if errors.As(err, &fe) {
		name := map[tlsfiles.Part]string{tlsfiles.PartCert: "MASTERKV_NODE_CERT_FILE", tlsfiles.PartKey: "MASTERKV_NODE_KEY_FILE", tlsfiles.PartCA: "MASTERKV_NODE_CA_FILE"}[fe.Part]
		return nil, fmt.Errorf("config: %s %w", name, fe)
	}
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return s, nil
}

// parseNodes parses the node list: http or https URLs with a host and no
// query, fragment or credentials. Blank entries (a trailing comma) are
// dropped; a trailing slash of a path prefix is trimmed.
func parseNodes(list []string) ([]*url.URL, error) {
	var out []*url.URL
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("config: MASTERKV_NODES entry %q must be an http:// or https:// URL with a host", s)
		}
		if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("config: MASTERKV_NODES entry %q must not carry credentials, a query or a fragment", s)
		}
		u.Path = strings.TrimRight(u.Path, "/")
		u.RawPath = ""
		out = append(out, u)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("config: MASTERKV_NODES must list at least one node URL, comma separated")
	}
	return out, nil
}
