package orchestratorapi_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/masterkv/masterkv/internal/orchestratorapi"
)

// orchestrator serves orchestrator's read endpoints as a real one answers
// them (orchestrator itself needs MySQL and cannot run in tests), and
// records every request: path and basic-auth credentials.
type orchestrator struct {
	*httptest.Server
	mu       sync.Mutex
	requests []string // "path user:password"
}

// instance is an /api/masters or /api/master/{alias} entry.
type instance struct {
	Host             string
	Port             int
	ClusterName      string
	ReplicationDepth int
}

func (in instance) json() string {
	return fmt.Sprintf(`{"Key":{"Hostname":%q,"Port":%d},"ClusterName":%q,"ReplicationDepth":%d,"ReadOnly":false}`, in.Host, in.Port, in.ClusterName, in.ReplicationDepth)
}

// startOrchestrator serves clusters (the /api/clusters-info answer) and the
// writable masters; /api/master/{alias} answers from the same masters, as
// orchestrator would, so a client that asks per cluster also gets answers.
// Every path is served under /api only.
func startOrchestrator(t *testing.T, clusters string, masters []instance) *orchestrator {
	t.Helper()
	o := &orchestrator{}
	var infos []struct{ ClusterName, ClusterAlias string }
	if err := json.Unmarshal([]byte(clusters), &infos); err != nil {
		t.Fatalf("fixture clusters-info: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/clusters-info", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, clusters)
	})
	mux.HandleFunc("GET /api/masters", func(w http.ResponseWriter, _ *http.Request) {
		parts := make([]string, len(masters))
		for i, m := range masters {
			parts[i] = m.json()
		}
		_, _ = io.WriteString(w, "["+strings.Join(parts, ",")+"]")
	})
	mux.HandleFunc("GET /api/master/{alias}", func(w http.ResponseWriter, r *http.Request) {
		for _, ci := range infos {
			if ci.ClusterAlias != r.PathValue("alias") && ci.ClusterName != r.PathValue("alias") {
				continue
			}
			for _, m := range masters {
				if m.ClusterName == ci.ClusterName {
					_, _ = io.WriteString(w, m.json())
					return
				}
			}
		}
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `{"Code":"ERROR","Message":"Unable to determine cluster name"}`)
	})
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		o.mu.Lock()
		o.requests = append(o.requests, r.URL.Path+" "+u+":"+p)
		o.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *orchestrator) seen() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.requests)
}

func TestMasters(t *testing.T) {
	o := startOrchestrator(t,
		`[{"ClusterName":"db-1:3306","ClusterAlias":"orders","CountInstances":3},{"ClusterName":"db-2:3306","ClusterAlias":""},{"ClusterName":"db-3:3306","ClusterAlias":"readonly"},{"ClusterName":"db-4:3306","ClusterAlias":"empty"},{"ClusterName":"db-5:3306","ClusterAlias":"comaster"}]`,
		[]instance{
			{Host: "db-1", Port: 3306, ClusterName: "db-1:3306"},
			{Host: "db-2", Port: 3307, ClusterName: "db-2:3306"},
			// db-3's master is read-only: /api/masters does not list it.
			{Host: "", Port: 0, ClusterName: "db-4:3306"},
			// Co-masters: the one at depth 0 is the master.
			{Host: "db-5b", Port: 3306, ClusterName: "db-5:3306", ReplicationDepth: 1},
			{Host: "db-5a", Port: 3306, ClusterName: "db-5:3306"},
		})
	c, err := orchestratorapi.New(o.URL+"/", orchestratorapi.Options{User: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Masters(t.Context())
	want := []orchestratorapi.Master{
		{Cluster: "orders", Host: "db-1", Port: 3306},
		{Cluster: "db-2:3306", Host: "db-2", Port: 3307},
		{Cluster: "comaster", Host: "db-5a", Port: 3306},
	}
	if !slices.Equal(got, want) {
		t.Errorf("masters = %+v, want %+v", got, want)
	}
	var ce *orchestratorapi.ClusterError
	if !errors.As(err, &ce) || ce.Cluster != "empty" || !strings.Contains(err.Error(), "cluster empty: answer has no Key") {
		t.Errorf("error = %v, want one ClusterError, for empty", err)
	}
	for _, r := range o.seen() {
		if !strings.HasSuffix(r, " u:p") {
			t.Errorf("request %q without the basic auth u:p", r)
		}
	}
}

// TestMastersTwoRequests: however many clusters orchestrator knows,
// populate asks it twice (a request per cluster was 10,001 requests a
// minute for 10,000 clusters against orchestrator's backend).
func TestMastersTwoRequests(t *testing.T) {
	const n = 1000
	var infos []string
	var masters []instance
	for i := range n {
		name := fmt.Sprintf("db-%d:3306", i)
		infos = append(infos, fmt.Sprintf(`{"ClusterName":%q,"ClusterAlias":"c%d"}`, name, i))
		masters = append(masters, instance{Host: fmt.Sprintf("db-%d", i), Port: 3306, ClusterName: name})
	}
	o := startOrchestrator(t, "["+strings.Join(infos, ",")+"]", masters)
	c, err := orchestratorapi.New(o.URL, orchestratorapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Masters(t.Context())
	if err != nil || len(got) != n {
		t.Fatalf("Masters = %d masters, %v; want %d and no error", len(got), err, n)
	}
	if got[n-1] != (orchestratorapi.Master{Cluster: fmt.Sprintf("c%d", n-1), Host: fmt.Sprintf("db-%d", n-1), Port: 3306}) {
		t.Errorf("last master = %+v", got[n-1])
	}
	if seen := o.seen(); len(seen) != 2 {
		t.Errorf("%d requests to orchestrator for %d clusters, want 2 (first: %v)", len(seen), n, seen[:min(3, len(seen))])
	}
}

// TestNewAPIForm: the URL as operators hold it for orchestrator-client,
// ending in /api, names the same API (it was asked /api/api/clusters-info).
func TestNewAPIForm(t *testing.T) {
	o := startOrchestrator(t, `[{"ClusterName":"db-1:3306","ClusterAlias":"orders"}]`, []instance{{Host: "db-1", Port: 3306, ClusterName: "db-1:3306"}})
	for _, base := range []string{o.URL, o.URL + "/", o.URL + "/api", o.URL + "/api/"} {
		c, err := orchestratorapi.New(base, orchestratorapi.Options{})
		if err != nil {
			t.Fatalf("New(%q): %v", base, err)
		}
		got, err := c.Masters(t.Context())
		if err != nil || len(got) != 1 || got[0].Host != "db-1" {
			t.Errorf("New(%q).Masters = %+v, %v; want db-1 of orders", base, got, err)
		}
	}
	for _, r := range o.seen() {
		if strings.HasPrefix(r, "/api/api/") {
			t.Errorf("request to %q", r)
		}
	}
}

func TestMastersErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"not":"a list"}`)
	}))
	t.Cleanup(srv.Close)
	c, _ := orchestratorapi.New(srv.URL, orchestratorapi.Options{})
	if _, err := c.Masters(t.Context()); err == nil || !strings.Contains(err.Error(), "decode answer") {
		t.Errorf("Masters = %v, want a decode error", err)
	}
	for _, bad := range []string{"orchestrator:3000", "ftp://o", "http://u:p@o", "http://o/?x=1"} {
		if _, err := orchestratorapi.New(bad, orchestratorapi.Options{}); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
}

// TestMastersBasicAuth: an orchestrator that requires basic auth
// (orchestrator's AuthenticationMethod "basic") answers populate with the
// configured user and password, and refuses it without them.
func TestMastersBasicAuth(t *testing.T) {
	o := startOrchestrator(t, `[{"ClusterName":"db-1:3306","ClusterAlias":"orders"}]`, []instance{{Host: "db-1", Port: 3306, ClusterName: "db-1:3306"}})
	guarded := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "orc" || p != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="Authorization Required"`)
			http.Error(w, "401 Unauthorized", http.StatusUnauthorized)
			return
		}
		o.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(guarded.Close)

	c, _ := orchestratorapi.New(guarded.URL+"/api", orchestratorapi.Options{User: "orc", Password: "s3cret"})
	if got, err := c.Masters(t.Context()); err != nil || len(got) != 1 || got[0].Cluster != "orders" {
		t.Errorf("with credentials: Masters = %+v, %v; want orders", got, err)
	}
	for _, opts := range []orchestratorapi.Options{{}, {User: "orc", Password: "wrong"}} {
		c, _ := orchestratorapi.New(guarded.URL, opts)
		if got, err := c.Masters(t.Context()); err == nil || !strings.Contains(err.Error(), "status 401") || len(got) != 0 {
			t.Errorf("user %q: Masters = %+v, %v; want a 401 error and nothing", opts.User, got, err)
		}
	}
}
