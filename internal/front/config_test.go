package front_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/masterkv/masterkv/internal/front/failover"
	"github.com/masterkv/masterkv/internal/front/populate"
	"github.com/masterkv/masterkv/internal/front/submit"
)

// validator is every function's Config.
type validator interface{ Validate() error }

// loadConfig loads cfg as the mains do, from env alone.
func loadConfig(t *testing.T, env map[string]string, cfg validator) error {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "MASTERKV_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	if err := envconfig.Process("", cfg); err != nil {
		return err
	}
	return cfg.Validate()
}

func TestConfigFromEnvironment(t *testing.T) {
	full := map[string]string{
		"MASTERKV_NODES":            "http://n1:8080, http://n2:8080,",
		"MASTERKV_NODE_TOKEN":       "node-token",
		"MASTERKV_WEBHOOK_TOKENS":   "webhook-token-0123456789,webhook-token-rotated-01",
		"MASTERKV_WEBHOOK_SECRETS":  "webhook-secret-0123456789",
		"MASTERKV_ORCHESTRATOR_URL": "http://orchestrator:3000",
	}
	var fo failover.Config
	if err := loadConfig(t, full, &fo); err != nil {
		t.Fatalf("failover config: %v", err)
	}
	if len(fo.Nodes) != 3 || fo.Token != "node-token" || len(fo.Tokens) != 2 || len(fo.Secrets) != 1 ||
		fo.Timeout != 12*time.Second || fo.ConnectTimeout != 2*time.Second || fo.Attempts != 6 {
		t.Errorf("failover config = %+v, want the variables and the defaults", fo)
	}
	var po populate.Config
	if err := loadConfig(t, full, &po); err != nil || po.OrchestratorURL != "http://orchestrator:3000" || po.OrchestratorTimeout != 5*time.Second {
		t.Errorf("populate config = %+v, %v", po, err)
	}

	tests := []struct {
		name string
		cfg  validator
		env  map[string]string
		want string
	}{
		// Only full names count: a bare name meant for another program
		// must not configure a function (envconfig with a prefix falls
		// back to bare names).
		{"bare names ignored", &failover.Config{}, map[string]string{
			"NODES": "http://n1:8080", "NODE_TOKEN": "t", "WEBHOOK_TOKENS": "webhook-token-0123456789",
		}, "MASTERKV_NODES must list"},
		{"failover without webhook credentials", &failover.Config{}, map[string]string{
			"MASTERKV_NODES": "http://n1:8080", "MASTERKV_NODE_TOKEN": "t",
		}, "set MASTERKV_WEBHOOK_TOKENS or MASTERKV_WEBHOOK_SECRETS"},
		{"submit without webhook credentials", &submit.Config{}, map[string]string{
			"MASTERKV_NODES": "http://n1:8080", "MASTERKV_NODE_TOKEN": "t",
		}, "set MASTERKV_WEBHOOK_TOKENS or MASTERKV_WEBHOOK_SECRETS"},
		{"submit without node token", &submit.Config{}, map[string]string{
			"MASTERKV_NODES": "http://n1:8080", "MASTERKV_WEBHOOK_TOKENS": "webhook-token-0123456789",
		}, "MASTERKV_NODE_TOKEN must be set"},
		{"bad duration", &submit.Config{}, map[string]string{
			"MASTERKV_NODES": "http://n1:8080", "MASTERKV_NODE_TOKEN": "t", "MASTERKV_NODE_TIMEOUT": "soon",
		}, "MASTERKV_NODE_TIMEOUT"},
		{"populate needs no webhook credentials", &populate.Config{}, map[string]string{
			"MASTERKV_NODES": "http://n1:8080", "MASTERKV_NODE_TOKEN": "t",
		}, ""},
		{"populate bad orchestrator URL", &populate.Config{}, map[string]string{
			"MASTERKV_NODES": "http://n1:8080", "MASTERKV_NODE_TOKEN": "t", "MASTERKV_ORCHESTRATOR_URL": "orchestrator:3000",
		}, "MASTERKV_ORCHESTRATOR_URL"},
		{"populate password without user", &populate.Config{}, map[string]string{
			"MASTERKV_NODES": "http://n1:8080", "MASTERKV_NODE_TOKEN": "t", "MASTERKV_ORCHESTRATOR_URL": "http://o:3000",
			"MASTERKV_ORCHESTRATOR_PASSWORD": "pw-value",
		}, "MASTERKV_ORCHESTRATOR_PASSWORD is set without"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := loadConfig(t, tc.env, tc.cfg)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("config error = %v, want %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "pw-value") {
				t.Errorf("error %q shows a secret", err)
			}
		})
	}
}
