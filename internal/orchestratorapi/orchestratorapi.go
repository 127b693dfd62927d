// Package orchestratorapi reads the current masters from an orchestrator
// HTTP API in two requests, whatever the number of clusters: every
// writable master from /api/masters (the query orchestrator's own KV
// population uses) joined on the cluster name with the aliases of
// /api/clusters-info.
package orchestratorapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// maxAnswerBytes bounds one answer of the API.
const maxAnswerBytes = 8 << 20

// Master is one cluster's master as orchestrator reports it.
type Master struct {
	Cluster string
	Host    string
	Port    int
}

// ClusterError is a cluster whose master could not be read.
type ClusterError struct {
	Cluster string
	Err     error
}

func (e *ClusterError) Error() string { return fmt.Sprintf("cluster %s: %v", e.Cluster, e.Err) }
func (e *ClusterError) Unwrap() error { return e.Err }

// Options configure a Client.
type Options struct {
	// User and Password are sent as basic auth when User is set.
	User, Password string
	// Timeout bounds each call (0: 5s).
	Timeout time.Duration
	// Transport replaces the default HTTP transport.
	Transport http.RoundTripper
}

// Client reads an orchestrator API.
type Client struct {
	base *url.URL
	opts Options
	http *http.Client
}

// New returns a client of the API at base: "http://orchestrator:3000", or
// the same ending in /api as operators hold it for orchestrator-client
// (ORCHESTRATOR_API); both name the same API.
func New(base string, opts Options) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("orchestrator URL %q must be an http:// or https:// URL with a host, no query or credentials", base)
	}
	u.Path = strings.TrimSuffix(u.Path, "/api")
	u.RawPath = ""
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	return &Client{base: u, opts: opts, http: &http.Client{Transport: opts.Transport}}, nil
}

// clusterInfo is the part of an /api/clusters-info entry used here.
type clusterInfo struct {
	ClusterName  string
	ClusterAlias string
}

// instance is the part of an /api/masters entry used here.
type instance struct {
	Key struct {
		Hostname string
		Port     int
	}
	ClusterName      string
	ReplicationDepth uint
}

// Masters returns the master of every cluster orchestrator has a writable
// master for, keyed by alias (the cluster name when the cluster has no
// alias, as orchestrator does). As in orchestrator's own KV population, a
// cluster whose master is read-only, or has none, gets nothing; of
// co-masters the one nearest the top (then the first listed) is taken.
// Masters without a host or port are left out and reported in the error,
// one *ClusterError each, joined; the others are still returned.
func (c *Client) Masters(ctx context.Context) ([]Master, error) {
	var infos []clusterInfo
	var masters []instance
	var infoErr, mastersErr error
	var wg sync.WaitGroup
	wg.Go(func() { infoErr = c.get(ctx, "/api/clusters-info", &infos) })
	wg.Go(func() { mastersErr = c.get(ctx, "/api/masters", &masters) })
	wg.Wait()
	if err := errors.Join(infoErr, mastersErr); err != nil {
		return nil, err
	}
	alias := make(map[string]string, len(infos))
	for _, ci := range infos {
		alias[ci.ClusterName] = ci.ClusterAlias
	}
	chosen := make(map[string]int, len(masters)) // cluster name -> index in masters
	var order []string
	for i, in := range masters {
		j, seen := chosen[in.ClusterName]
		if !seen {
			order = append(order, in.ClusterName)
		}
		if !seen || in.ReplicationDepth < masters[j].ReplicationDepth {
			chosen[in.ClusterName] = i
		}
	}
	var out []Master
	var errs []error
	for _, name := range order {
		in := masters[chosen[name]]
		a := alias[name]
		if a == "" {
			a = name
		}
		if in.Key.Hostname == "" || in.Key.Port == 0 {
			errs = append(errs, &ClusterError{Cluster: a, Err: errors.New("answer has no Key.Hostname and Key.Port")})
			continue
		}
		out = append(out, Master{Cluster: a, Host: in.Key.Hostname, Port: in.Key.Port})
	}
	return out, errors.Join(errs...)
}

// get decodes the JSON answer of a GET of path.
func (c *Client) get(ctx context.Context, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+path, nil)
	if err != nil {
		return fmt.Errorf("orchestrator GET %s: %w", path, err)
	}
	req.Header.Set("Accept", "application/json")
	if c.opts.User != "" {
		req.SetBasicAuth(c.opts.User, c.opts.Password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("orchestrator GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return fmt.Errorf("orchestrator GET %s: read answer: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("orchestrator GET %s: status %d: %.200s", path, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("orchestrator GET %s: decode answer: %w", path, err)
	}
	return nil
}
