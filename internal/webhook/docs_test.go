package webhook_test

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

	"github.com/masterkv/masterkv/internal/webhook"
)

// TestDocumentedSigner runs the signed orchestrator hook line of
// docs/LAMBDA.md, as orchestrator would (bash -c, placeholders filled in),
// with curl replaced by a function that prints its arguments, and checks
// that the failover function's verifier accepts what it would have sent:
// the documented shell signer and the Go one cannot drift apart.
func TestDocumentedSigner(t *testing.T) {
	for _, tool := range []string{"bash", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is needed (make test-deps installs openssl): %v", tool, err)
			}
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
	doc, err := os.ReadFile("../../docs/LAMBDA.md")
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for _, block := range regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(doc, -1) {
		if !bytes.Contains(block[1], []byte("X-Masterkv-Signature")) {
			continue
		}
		var hooks struct{ PostMasterFailoverProcesses []string }
		if err := json.Unmarshal(append(append([]byte("{"), block[1]...), '}'), &hooks); err != nil || len(hooks.PostMasterFailoverProcesses) != 1 {
			t.Fatalf("signed hook block is not one JSON hook line (%v):\n%s", err, block[1])
		}
		line = hooks.PostMasterFailoverProcesses[0]
	}
	if line == "" {
		t.Fatal("docs/LAMBDA.md has no signed hook line")
	}
	const secret = "documented-secret-0123456789"
	secretFile := filepath.Join(t.TempDir(), "webhook-secret")
	if err := os.WriteFile(secretFile, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line, "/etc/masterkv/webhook-secret") {
		t.Fatalf("hook line does not read /etc/masterkv/webhook-secret: %s", line)
	}
	line = strings.NewReplacer(
		"{failureClusterAlias}", "payments", "{successorHost}", "10.0.2.30", "{successorPort}", "3306",
		"{failedHost}", "10.0.2.29", "{failedPort}", "3306", "{recoveryUID}", "1740830400-recovery-7",
		"/etc/masterkv/webhook-secret", secretFile,
	).Replace(line)
	script := `curl() { for a in "$@"; do printf '%s\0' "$a"; done; }; ` + line
	out, err := exec.Command("bash", "-c", script).Output()
	if err != nil {
		t.Fatalf("hook line failed: %v", err)
	}
	args := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	var sig, body, key string
	for i := 0; i+1 < len(args); i++ {
		switch {
		case args[i] == "-H" && strings.HasPrefix(args[i+1], webhook.SignatureHeader+": "):
			sig = strings.TrimPrefix(args[i+1], webhook.SignatureHeader+": ")
		case args[i] == "-H" && strings.HasPrefix(args[i+1], webhook.KeyHeader+": "):
			key = strings.TrimPrefix(args[i+1], webhook.KeyHeader+": ")
		case args[i] == "--data-binary":
			body = args[i+1]
		}
	}
	if sig == "" || body == "" {
		t.Fatalf("hook line sent no signature or body: %q", args)
	}
	v := webhook.NewVerifier(nil, []string{secret}, time.Now)
	h := map[string]string{"x-masterkv-signature": sig}
	if key != "" {
		h["idempotency-key"] = key
	}
	if _, err := v.Verify(h, webhook.Request{Method: "POST", Route: "/v1/failover", Body: []byte(body)}); err != nil {
		t.Errorf("the function refuses the documented signature %q of %q: %v", sig, body, err)
	}
	at, _ := webhook.SignedAt(sig)
	if want := webhook.Sign(secret, at, webhook.Request{Method: "POST", Route: "/v1/failover", Key: key, Body: []byte(body)}); sig != want {
		t.Errorf("documented signature %q, Go's Sign %q", sig, want)
	}
}
