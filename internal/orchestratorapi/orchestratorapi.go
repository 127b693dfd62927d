// Package orchestratorapi reads the current masters from an orchestrator
// HTTP API: the clusters from /api/clusters-info, then each cluster's
// master from /api/master/{alias}.
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
	// Concurrency bounds the master lookups in flight (0: 8).
	Concurrency int
	// Transport replaces the default HTTP transport.
	Transport http.RoundTripper
}

// Client reads an orchestrator API.
type Client struct {
	base *url.URL
	opts Options
	http *http.Client
}

// New returns a client of the API at base, e.g. "http://orchestrator:3000".
func New(base string, opts Options) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("orchestrator URL %q must be an http:// or https:// URL with a host, no query or credentials", base)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	return &Client{base: u, opts: opts, http: &http.Client{Transport: opts.Transport}}, nil
}

// clusterInfo is the part of an /api/clusters-info entry used here.
type clusterInfo struct {
	ClusterName  string
	ClusterAlias string
}

// instance is the part of an /api/master answer used here.
type instance struct {
	Key struct {
		Hostname string
		Port     int
	}
}

// Masters returns the master of every cluster orchestrator knows, keyed by
// alias (the cluster name when the cluster has no alias, as orchestrator
// does). Masters that could not be read are left out and reported in the
// error, one *ClusterError each, joined; the others are still returned.
func (c *Client) Masters(ctx context.Context) ([]Master, error) {
	var infos []clusterInfo
	if err := c.get(ctx, "/api/clusters-info", &infos); err != nil {
		return nil, err
	}
	out := make([]Master, len(infos))
	errs := make([]error, len(infos))
	sem := make(chan struct{}, c.opts.Concurrency)
	var wg sync.WaitGroup
	for i, ci := range infos {
		alias := ci.ClusterAlias
		if alias == "" {
			alias = ci.ClusterName
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			var in instance
			err := c.get(ctx, "/api/master/"+url.PathEscape(alias), &in)
			if err == nil && (in.Key.Hostname == "" || in.Key.Port == 0) {
				err = errors.New("answer has no Key.Hostname and Key.Port")
			}
			if err != nil {
				errs[i] = &ClusterError{Cluster: alias, Err: err}
				return
			}
			out[i] = Master{Cluster: alias, Host: in.Key.Hostname, Port: in.Key.Port}
		}()
	}
	wg.Wait()
	masters := out[:0]
	for i, m := range out {
		if errs[i] == nil {
			masters = append(masters, m)
		}
	}
	return masters, errors.Join(errs...)
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
