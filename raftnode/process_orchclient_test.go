//go:build unix

package main_test

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// orchestratorModule is the orchestrator release whose orchestrator-client
// script the test runs, fetched from the Go module proxy (Apache-2.0; not
// copied into this repository). openark/orchestrator's releases are not
// on the proxy; github/orchestrator v3.1.4 ships the same script.
const orchestratorModule = "github.com/github/orchestrator@v3.1.4+incompatible"

// orchestratorClient returns the path of the real orchestrator-client
// script, downloaded into the module cache on first use, and checks that
// the tools it runs (bash, curl, jq) are installed.
func orchestratorClient(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is needed to run orchestrator-client (make test-deps installs it): %v", tool, err)
			}
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
	out, err := exec.Command("go", "mod", "download", "-json", orchestratorModule).Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v", orchestratorModule, err)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download %s: %s %v", orchestratorModule, mod.Error, err)
	}
	return filepath.Join(mod.Dir, "resources", "bin", "orchestrator-client")
}

// TestOrchestratorClientSubmit is issue 10 item 11: orchestrator-client in
// its production form (every node listed in ORCHESTRATOR_API, basic auth)
// against a real three-node group. It stopped at "Cannot determine
// leader": the nodes knew neither basic auth nor /api/leader-check. The
// script first sends HEAD to the API (401 there means "cannot access"),
// then GET /api/leader-check to each URL until one answers 200, then the
// submit to that one.
func TestOrchestratorClientSubmit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes; skipped with -short")
	}
	script := orchestratorClient(t)
	c := newProcCluster(t, 3)
	for i := range c.members {
		c.start(i, i == 0)
	}
	for i := range c.members {
		c.waitHealthy(i, 10*time.Second)
	}
	leader := c.waitLeader(15 * time.Second)
	for _, fo := range []struct{ key, cluster, host string }{{"oc-1", "orders", "10.0.7.1"}, {"oc-2", "billing", "10.0.7.2"}} {
		if _, code, body, err := c.failover(t.Context(), (leader+1)%3, fo.key, fo.cluster, fo.host, 3306); err != nil || code != http.StatusOK {
			t.Fatalf("failover %s: %d %s %v", fo.cluster, code, body, err)
		}
	}
	var apis []string
	for _, m := range c.members {
		apis = append(apis, "http://"+m.httpAddr+"/api")
	}
	run := func(t *testing.T, user, password string, args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command("bash", append([]string{script}, args...)...)
		cmd.Env = append(os.Environ(), "ORCHESTRATOR_API="+strings.Join(apis, " "),
			"ORCHESTRATOR_AUTH_USER="+user, "ORCHESTRATOR_AUTH_PASSWORD="+password)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	t.Run("leader check", func(t *testing.T) {
		for i := range c.members {
			code, body, err := c.call(t.Context(), i, http.MethodGet, "/api/leader-check", nil, nil)
			want, wantBody := http.StatusNotFound, `"Not leader"`
			if i == leader {
				want, wantBody = http.StatusOK, `"OK"`
			}
			if err != nil || code != want || strings.TrimSpace(string(body)) != wantBody {
				t.Errorf("%s GET /api/leader-check = %d %s %v, want %d %s", c.members[i].id, code, body, err, want, wantBody)
			}
		}
	})
	t.Run("all clusters", func(t *testing.T) {
		out, err := run(t, "operator", c.token, "-c", "submit-masters-to-kv-stores")
		if err != nil {
			t.Fatalf("orchestrator-client: %v\n%s", err, out)
		}
		for _, want := range []string{"mysql/master/orders:10.0.7.1:3306", "mysql/master/billing:10.0.7.2:3306", "mysql/master/orders/port:3306"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("one alias", func(t *testing.T) {
		out, err := run(t, "operator", c.token, "-c", "submit-masters-to-kv-stores", "-alias", "billing")
		if err != nil || !strings.Contains(out, "mysql/master/billing:10.0.7.2:3306") || strings.Contains(out, "orders") {
			t.Errorf("orchestrator-client -alias billing: %v\n%s", err, out)
		}
	})
	for _, tc := range []struct{ name, user, password string }{
		{"no credentials", "", ""},
		{"wrong password", "operator", "not-the-token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, tc.user, tc.password, "-c", "submit-masters-to-kv-stores")
			if err == nil || !strings.Contains(out, "Cannot") {
				t.Errorf("orchestrator-client with %s: %v, want it to fail with a Cannot ... message:\n%s", tc.name, err, out)
			}
			if strings.Contains(out, "mysql/master/") {
				t.Errorf("orchestrator-client with %s got pairs:\n%s", tc.name, out)
			}
		})
	}
}
