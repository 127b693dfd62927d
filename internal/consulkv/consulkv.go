// Package consulkv publishes master entries into Consul KV, with either of
// orchestrator's providers:
//
//   - "consul": one PUT per key, skipping keys whose stored value matches;
//   - "consul-txn": one read transaction, compare, one write transaction of
//     only the changed keys, whole clusters per transaction.
//
// Both enforce the epoch guard: a cluster whose stored <prefix>A/epoch is
// newer than the one being written is left alone, and the check is part of
// the write itself (check-index or cas on the epoch key), so a concurrent
// newer writer always wins.
package consulkv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-cleanhttp"

	"github.com/masterkv/masterkv/internal/kvstore"
)

// Providers, as orchestrator's ConsulKVStoreProvider.
const (
	ProviderPlain = "consul"
	ProviderTxn   = "consul-txn"
)

// MaxTxnOps is the largest transaction masterkv sends. Consul accepts 64
// operations per transaction (128 from 1.14); 64 works with every version.
const MaxTxnOps = 64

// ErrPermissionDenied: the ACL token may not read or write the keys (403).
// Retrying does not help until the token or its policy changes.
var ErrPermissionDenied = errors.New("consul refused the ACL token (403 permission denied)")

// classify wraps an error of a Consul call with ErrPermissionDenied when
// Consul refused the token. The api client reports a 403 of a transaction
// only by its body ("Permission denied", "ACL not found").
func classify(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if strings.Contains(msg, "Permission denied") || strings.Contains(msg, "ACL not found") ||
		strings.Contains(msg, "response code: 403") {
		return fmt.Errorf("%w: %w", ErrPermissionDenied, err)
	}
	return err
}

// Config configures one Consul agent connection.
type Config struct {
	Address    string // host:port of the agent
	Scheme     string // http or https
	Token      string // ACL token, sent as X-Consul-Token; never logged
	Datacenter string // empty: the agent's own
	Provider   string // ProviderPlain or ProviderTxn
	// MaxOpsPerTxn bounds a transaction (consul-txn); clamped to
	// [keys per cluster, MaxTxnOps], 0 meaning keys per cluster.
	MaxOpsPerTxn int
	// Concurrency bounds requests in flight for one Write.
	Concurrency int
	// Timeout bounds every HTTP call.
	Timeout time.Duration
	// TLS; certificates are always verified.
	CAFile, CertFile, KeyFile, TLSServerName string
}

// Store writes to one Consul datacenter.
type Store struct {
	client      *api.Client
	dc          string
	provider    string
	maxOps      int
	concurrency int
	timeout     time.Duration
	lastWrites  *lastWrites // consul-txn only; one per datacenter
	// lists admits one recursive listing at a time through this agent
	// connection, across datacenters (see list).
	lists chan struct{}
	raw   *rawLister // nil: list through the api client
}

var (
	_ kvstore.Writer   = (*Store)(nil)
	_ kvstore.Reader   = (*Store)(nil)
	_ kvstore.Surveyor = (*Store)(nil)
)

// New connects to Consul. It does no I/O; errors are configuration errors.
func New(cfg Config) (*Store, error) {
	switch cfg.Provider {
	case "", ProviderPlain:
		cfg.Provider = ProviderPlain
	case ProviderTxn, "consul_txn":
		cfg.Provider = ProviderTxn
	default:
		return nil, fmt.Errorf("consul provider %q: must be %q or %q", cfg.Provider, ProviderPlain, ProviderTxn)
	}
	if cfg.Scheme == "" {
		cfg.Scheme = "http"
	}
	if cfg.Scheme != "http" && cfg.Scheme != "https" {
		return nil, fmt.Errorf("consul scheme %q: must be http or https", cfg.Scheme)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	tlsConf := api.TLSConfig{
		Address: cfg.TLSServerName, CAFile: cfg.CAFile, CertFile: cfg.CertFile, KeyFile: cfg.KeyFile,
	}
	transport := cleanhttp.DefaultPooledTransport()
	// ForDatacenter copies share this transport: the node's own store and
	// the distributor's datacenters, up to 8 of them writing at once, each with
	// Concurrency requests in flight. Idle connections are kept for all of
	// them rather than re-dialled after every burst.
	transport.MaxIdleConnsPerHost = cfg.Concurrency * 9
	transport.ResponseHeaderTimeout = cfg.Timeout
	httpClient, err := api.NewHttpClient(transport, tlsConf)
	if err != nil {
		return nil, fmt.Errorf("consul tls: %w", err)
	}
	httpClient.Timeout = cfg.Timeout
	apiCfg := &api.Config{
		Address: cfg.Address, Scheme: cfg.Scheme, Token: cfg.Token, Datacenter: cfg.Datacenter,
		HttpClient: httpClient,
	}
	client, err := api.NewClient(apiCfg) // normalises apiCfg's Address and Scheme
	if err != nil {
		return nil, fmt.Errorf("consul client: %w", err)
	}
	return &Store{
		client: client, dc: cfg.Datacenter, provider: cfg.Provider,
		maxOps: cfg.MaxOpsPerTxn, concurrency: cfg.Concurrency, timeout: cfg.Timeout,
		lastWrites: newLastWrites(), lists: make(chan struct{}, 1),
		raw: newRawLister(apiCfg),
	}, nil
}

// ForDatacenter returns a store that writes to datacenter dc through the
// same agent connection (?dc=).
func (s *Store) ForDatacenter(dc string) *Store {
	c := *s
	c.dc = dc
	c.lastWrites = newLastWrites()
	return &c
}

// Name identifies the store in receipts, status and metrics.
func (s *Store) Name() string {
	if s.dc == "" {
		return "consul"
	}
	return "consul:" + s.dc
}

// Datacenters lists the datacenters the agent knows
// (/v1/catalog/datacenters), bounded by the client timeout.
func (s *Store) Datacenters() ([]string, error) {
	dcs, err := s.client.Catalog().Datacenters()
	if err != nil {
		return nil, fmt.Errorf("list consul datacenters: %w", err)
	}
	return dcs, nil
}

// Datacenter returns the datacenter this store writes: the configured one,
// or else the agent's own, from /v1/agent/self (which needs agent:read).
func (s *Store) Datacenter() (string, error) {
	if s.dc != "" {
		return s.dc, nil
	}
	self, err := s.client.Agent().Self()
	if err != nil {
		return "", fmt.Errorf("consul agent self: %w", classify(err))
	}
	dc, _ := self["Config"]["Datacenter"].(string)
	if dc == "" {
		return "", errors.New("consul agent self: no Config.Datacenter in the answer")
	}
	return dc, nil
}

// Write publishes clusters with the configured provider.
func (s *Store) Write(ctx context.Context, clusters []kvstore.Cluster) []kvstore.Outcome {
	if len(clusters) == 0 {
		return nil
	}
	if s.provider == ProviderTxn {
		return s.writeTxn(ctx, clusters)
	}
	return s.writePlain(ctx, clusters)
}

// queryOpts and writeOpts bind a call to ctx and the datacenter. Reads are
// consistent: a write that follows is guarded by what was read anyway, but
// "unchanged" and drift are concluded from a read alone, and a stale read
// around a Consul leader change could hide a difference.
func (s *Store) queryOpts(ctx context.Context) *api.QueryOptions {
	return (&api.QueryOptions{Datacenter: s.dc, RequireConsistent: true}).WithContext(ctx)
}

func (s *Store) writeOpts(ctx context.Context) *api.WriteOptions {
	return (&api.WriteOptions{Datacenter: s.dc}).WithContext(ctx)
}

// clusterPrefix is the subtree of a cluster's keys: "<main>/".
func clusterPrefix(c kvstore.Cluster) string { return c.MainKey() + "/" }

// belongs reports whether key is the main key of c or below it.
func belongs(c kvstore.Cluster, key string) bool {
	return key == c.MainKey() || strings.HasPrefix(key, clusterPrefix(c))
}
