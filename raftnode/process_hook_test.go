//go:build unix

package main_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readmeHookLine returns the orchestrator hook line of README's "orchestrator
// hook recipe", as orchestrator's configuration holds it.
func readmeHookLine(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(doc, []byte("### orchestrator hook recipe"))
	if i < 0 {
		t.Fatal("README has no orchestrator hook recipe")
	}
	m := regexp.MustCompile("(?s)```json\n(.*?)```").FindSubmatch(doc[i:])
	if m == nil {
		t.Fatal("the hook recipe has no json block")
	}
	var hooks struct{ PostMasterFailoverProcesses []string }
	if err := json.Unmarshal(append(append([]byte("{"), m[1]...), '}'), &hooks); err != nil || len(hooks.PostMasterFailoverProcesses) != 1 {
		t.Fatalf("hook recipe is not one hook line (%v):\n%s", err, m[1])
	}
	return hooks.PostMasterFailoverProcesses[0]
}

// TestReadmeHookRecipe runs README's hook line as orchestrator does (bash
// -c, placeholders filled in) against a real group. It is issue 10 item 12: orchestrator logs every hook's command
// line and serves it from /api/audit-recovery-steps, and the recipe put
// the bearer token on it. The line must carry no secret; the token comes
// from a 0600 file the line names.
func TestReadmeHookRecipe(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes; skipped with -short")
	}
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is needed (make test-deps installs it): %v", tool, err)
			}
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
	line := readmeHookLine(t)
	if strings.Contains(line, "Bearer") || strings.Contains(line, "TOKEN") {
		t.Fatalf("the hook line carries a credential on the command line, which orchestrator logs and serves:\n%s", line)
	}
	c := newProcCluster(t, 3)
	for i := range c.members {
		c.start(i, i == 0)
	}
	for i := range c.members {
		c.waitHealthy(i, 10*time.Second)
	}
	leader := c.waitLeader(15 * time.Second)
	follower := (leader + 1) % 3
	if _, code, body, err := c.failover(t.Context(), follower, "seed", "orders", "10.0.8.1", 3306); err != nil || code != 200 {
		t.Fatalf("seed failover: %d %s %v", code, body, err)
	}

	authFile := filepath.Join(t.TempDir(), "hook-auth")
	if err := os.WriteFile(authFile, []byte("Authorization: Bearer "+c.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const authPath = "/etc/masterkv/hook-auth"
	if !strings.Contains(line, authPath) {
		t.Fatalf("the hook line does not read its credential from %s:\n%s", authPath, line)
	}
	filled := strings.NewReplacer(
		"{failureClusterAlias}", "orders", "{successorHost}", "10.0.8.2", "{successorPort}", "3306",
		"{failedHost}", "10.0.8.1", "{failedPort}", "3306", "{recoveryUID}", "1740830400-recovery-9",
		"http://masterkv:8080", "http://"+c.members[follower].httpAddr, authPath, authFile,
	).Replace(line)
	if strings.Contains(filled, c.token) {
		t.Fatalf("the filled hook line shows the token: %s", filled)
	}
	out, err := exec.Command("bash", "-c", filled).CombinedOutput()
	if err != nil {
		t.Fatalf("hook: %v\n%s", err, out)
	}
	var rc struct {
		Master string `json:"master"`
		Epoch  uint64 `json:"epoch"`
	}
	if err := json.Unmarshal(out, &rc); err != nil || rc.Master != "10.0.8.2:3306" {
		t.Fatalf("hook answered %s (%v), want the new master", out, err)
	}
	// Run again whole, the line reads the newer epoch: the same id with
	// another body is refused and nothing changes (README says so).
	if out, err := exec.Command("bash", "-c", filled).CombinedOutput(); err == nil {
		t.Errorf("the hook run again succeeded (%s); want curl to fail on the 422", out)
	}
	got, err := c.masters(leader)
	if err != nil || got["orders"].Master != "10.0.8.2:3306" || got["orders"].RequestID != "1740830400-recovery-9" || got["orders"].Epoch != rc.Epoch {
		t.Errorf("orders = %+v (%v), want 10.0.8.2:3306 from the recovery's id", got["orders"], err)
	}
}
