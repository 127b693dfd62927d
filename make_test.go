package masterkv_test

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// targets returns every target the Makefile and lambda.mk define, pattern
// and file targets ($(X):) left out.
func targets(t *testing.T) []string {
	t.Helper()
	var out []string
	rule := regexp.MustCompile(`(?m)^([A-Za-z][A-Za-z0-9_-]*):`)
	for _, f := range []string{"Makefile", "lambda.mk"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range rule.FindAllStringSubmatch(string(b), -1) {
			out = append(out, m[1])
		}
	}
	if len(out) < 10 {
		t.Fatalf("found only %d targets: %v", len(out), out)
	}
	return out
}

// TestMakeTargetsAreListed: `make help` and the README name every target,
// so an operator can find each without reading the Makefile.
func TestMakeTargetsAreListed(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	help, err := exec.Command("make", "--no-print-directory", "help").CombinedOutput()
	if err != nil {
		t.Fatalf("make help: %v\n%s", err, help)
	}
	for _, target := range targets(t) {
		if !strings.Contains(string(readme), "`"+target+"`") {
			t.Errorf("README does not name target `%s`", target)
		}
		if !regexp.MustCompile(`(?m)(^|\s)` + regexp.QuoteMeta(target) + `(\s|,|$)`).Match(help) {
			t.Errorf("make help does not list %s; give it a `## %s:` comment", target, target)
		}
	}
}
