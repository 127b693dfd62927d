package orchestratorapi_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/masterkv/masterkv/internal/orchestratorapi"
)

// fake serves orchestrator's two read endpoints (orchestrator itself needs
// MySQL and cannot run in tests).
func fake(t *testing.T, clusters string, masters map[string]string) (*httptest.Server, *[]string) {
	t.Helper()
	var auth []string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/clusters-info", func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		auth = append(auth, u+":"+p)
		_, _ = io.WriteString(w, clusters)
	})
	mux.HandleFunc("GET /api/master/{alias}", func(w http.ResponseWriter, r *http.Request) {
		m, ok := masters[r.PathValue("alias")]
		if !ok {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"Code":"ERROR","Message":"Unable to determine cluster name"}`)
			return
		}
		_, _ = io.WriteString(w, m)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &auth
}

func TestMasters(t *testing.T) {
	srv, auth := fake(t,
		`[{"ClusterName":"db-1:3306","ClusterAlias":"orders","CountInstances":3},{"ClusterName":"db-2:3306","ClusterAlias":""},{"ClusterName":"db-3:3306","ClusterAlias":"gone"},{"ClusterName":"db-4:3306","ClusterAlias":"empty"}]`,
		map[string]string{
			"orders":    `{"Key":{"Hostname":"db-1","Port":3306},"ReadOnly":false}`,
			"db-2:3306": `{"Key":{"Hostname":"db-2","Port":3307}}`,
			"empty":     `{"Key":{"Hostname":"","Port":0}}`,
		})
	c, err := orchestratorapi.New(srv.URL+"/", orchestratorapi.Options{User: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Masters(t.Context())
	want := []orchestratorapi.Master{{Cluster: "orders", Host: "db-1", Port: 3306}, {Cluster: "db-2:3306", Host: "db-2", Port: 3307}}
	if !slices.Equal(got, want) {
		t.Errorf("masters = %+v, want %+v", got, want)
	}
	var ce *orchestratorapi.ClusterError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "cluster gone") || !strings.Contains(err.Error(), "cluster empty: answer has no Key") {
		t.Errorf("error = %v, want one ClusterError each for gone and empty", err)
	}
	if len(*auth) != 1 || (*auth)[0] != "u:p" {
		t.Errorf("basic auth seen = %v, want u:p", *auth)
	}
}

func TestMastersErrors(t *testing.T) {
	srv, _ := fake(t, `{"not":"a list"}`, nil)
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
