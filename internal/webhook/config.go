package webhook

import (
	"fmt"
	"strings"
	"time"
)

// Credentials are what the functions accept from callers, read from the
// environment. Several of each may be set, for rotation.
type Credentials struct {
	// Tokens are accepted as "Authorization: Bearer <token>" (or as the
	// password of basic auth). Never logged.
	Tokens []string `envconfig:"MASTERKV_WEBHOOK_TOKENS"`
	// Secrets are HMAC-SHA256 keys for the X-Masterkv-Signature header.
	// Never logged.
	Secrets []string `envconfig:"MASTERKV_WEBHOOK_SECRETS"`
}

// Validate checks that at least one credential is set and that each is
// long enough; the error names the variable, never the value.
func (c Credentials) Validate() error {
	tokens, secrets := clean(c.Tokens), clean(c.Secrets)
	if len(tokens)+len(secrets) == 0 {
		return fmt.Errorf("config: set MASTERKV_WEBHOOK_TOKENS or MASTERKV_WEBHOOK_SECRETS (or both): callers must authenticate")
	}
	for _, l := range []struct {
		name string
		list []string
	}{{"MASTERKV_WEBHOOK_TOKENS", tokens}, {"MASTERKV_WEBHOOK_SECRETS", secrets}} {
		for i, v := range l.list {
			if len(v) < MinSecretBytes {
				return fmt.Errorf("config: %s entry %d is %d bytes, want at least %d", l.name, i+1, len(v), MinSecretBytes)
			}
			if strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
				return fmt.Errorf("config: %s entry %d contains spaces or control characters", l.name, i+1)
			}
		}
	}
	return nil
}

// Verifier returns the Verifier of c with clock now (nil: time.Now).
func (c Credentials) Verifier(now func() time.Time) *Verifier {
	return NewVerifier(clean(c.Tokens), clean(c.Secrets), now)
}

// clean trims entries and drops blank ones ("a, b," is two entries).
func clean(list []string) []string {
	var out []string
	for _, s := range list {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
