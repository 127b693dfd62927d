package webhook_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/masterkv/masterkv/internal/webhook"
)

const (
	token1  = "token-one-0123456789"
	token2  = "token-two-0123456789"
	secret1 = "secret-one-0123456789"
	secret2 = "secret-two-0123456789"
)

var signedAt = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func TestVerify(t *testing.T) {
	body := []byte(`{"cluster":"a","host":"10.0.0.1","port":3306}`)
	good := webhook.Sign(secret1, signedAt, body)
	rotated := webhook.Sign(secret2, signedAt, body)
	other := webhook.Sign("another-secret-0123456", signedAt, body)
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	tests := []struct {
		name    string
		headers map[string]string
		body    []byte
		now     time.Time
		method  webhook.Method
		wantErr error
	}{
		{"bearer first token", map[string]string{"authorization": "Bearer " + token1}, body, signedAt, webhook.MethodBearer, nil},
		{"bearer rotated token", map[string]string{"authorization": "Bearer " + token2}, body, signedAt, webhook.MethodBearer, nil},
		{"bearer scheme any case", map[string]string{"authorization": "bEARER " + token1}, body, signedAt, webhook.MethodBearer, nil},
		{"bearer unknown token", map[string]string{"authorization": "Bearer nope-0123456789abcdef"}, body, signedAt, webhook.MethodBearer, webhook.ErrBadToken},
		{"bearer token prefix", map[string]string{"authorization": "Bearer " + token1[:10]}, body, signedAt, webhook.MethodBearer, webhook.ErrBadToken},
		{"bearer empty", map[string]string{"authorization": "Bearer "}, body, signedAt, webhook.MethodBearer, webhook.ErrBadToken},
		{"basic with token password", map[string]string{"authorization": basic("orchestrator", token2)}, body, signedAt, webhook.MethodBasic, nil},
		{"basic wrong password", map[string]string{"authorization": basic("orchestrator", "wrong")}, body, signedAt, webhook.MethodBasic, webhook.ErrBadToken},
		{"basic garbage", map[string]string{"authorization": "Basic !!!"}, body, signedAt, webhook.MethodBasic, webhook.ErrBadToken},
		{"no credentials", map[string]string{}, body, signedAt, "", webhook.ErrNoCredentials},
		{"unknown scheme", map[string]string{"authorization": "Digest x"}, body, signedAt, "", webhook.ErrNoCredentials},
		{"signature", map[string]string{"x-masterkv-signature": good}, body, signedAt, webhook.MethodSignature, nil},
		{"signature rotated secret", map[string]string{"x-masterkv-signature": rotated}, body, signedAt, webhook.MethodSignature, nil},
		{"signature with spaces", map[string]string{"x-masterkv-signature": strings.ReplaceAll(good, ",", ", ")}, body, signedAt, webhook.MethodSignature, nil},
		{"signature one of two v1", map[string]string{"x-masterkv-signature": other + "," + good[strings.Index(good, "v1="):]}, body, signedAt, webhook.MethodSignature, nil},
		{"signature unknown scheme ignored", map[string]string{"x-masterkv-signature": good + ",v0=abc"}, body, signedAt, webhook.MethodSignature, nil},
		{"signature 4m59s old", map[string]string{"x-masterkv-signature": good}, body, signedAt.Add(5*time.Minute - time.Second), webhook.MethodSignature, nil},
		{"signature 5m1s old", map[string]string{"x-masterkv-signature": good}, body, signedAt.Add(5*time.Minute + time.Second), webhook.MethodSignature, webhook.ErrStale},
		{"signature 5m1s ahead", map[string]string{"x-masterkv-signature": good}, body, signedAt.Add(-5*time.Minute - time.Second), webhook.MethodSignature, webhook.ErrStale},
		{"signature unknown secret", map[string]string{"x-masterkv-signature": other}, body, signedAt, webhook.MethodSignature, webhook.ErrBadSignature},
		{"signature over another body", map[string]string{"x-masterkv-signature": good}, []byte(`{"cluster":"a","host":"10.6.6.6","port":3306}`), signedAt, webhook.MethodSignature, webhook.ErrBadSignature},
		{"signature other timestamp", map[string]string{"x-masterkv-signature": strings.Replace(good, "t=1740830400", "t=1740830401", 1)}, body, signedAt, webhook.MethodSignature, webhook.ErrBadSignature},
		{"signature without t", map[string]string{"x-masterkv-signature": good[strings.Index(good, "v1="):]}, body, signedAt, webhook.MethodSignature, webhook.ErrBadSignature},
		{"signature without v1", map[string]string{"x-masterkv-signature": "t=1740830400"}, body, signedAt, webhook.MethodSignature, webhook.ErrBadSignature},
		{"signature t twice", map[string]string{"x-masterkv-signature": "t=1740830400," + good}, body, signedAt, webhook.MethodSignature, webhook.ErrBadSignature},
		{"signature t not a number", map[string]string{"x-masterkv-signature": "t=-5,v1=" + strings.Repeat("0", 64)}, body, signedAt, webhook.MethodSignature, webhook.ErrBadSignature},
		{"signature v1 short", map[string]string{"x-masterkv-signature": "t=1740830400,v1=abcd"}, body, signedAt, webhook.MethodSignature, webhook.ErrBadSignature},
		{"signature empty", map[string]string{"x-masterkv-signature": ""}, body, signedAt, webhook.MethodSignature, webhook.ErrBadSignature},
		// A request carrying a signature is judged by it, not by a bearer.
		{"bad signature beside good bearer", map[string]string{"x-masterkv-signature": other, "authorization": "Bearer " + token1}, body, signedAt, webhook.MethodSignature, webhook.ErrBadSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := webhook.NewVerifier([]string{token1, token2}, []string{secret1, secret2}, func() time.Time { return tc.now })
			method, err := v.Verify(tc.headers, tc.body)
			if method != tc.method {
				t.Errorf("method = %q, want %q", method, tc.method)
			}
			if tc.wantErr == nil && err != nil {
				t.Fatalf("Verify: %v, want success", err)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !errors.Is(err, webhook.ErrUnauthorized) {
					t.Fatalf("Verify error = %v, want %v (an ErrUnauthorized)", err, tc.wantErr)
				}
				for _, s := range []string{token1, token2, secret1, secret2} {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error %q reveals a configured credential", err)
					}
				}
			}
		})
	}
}

// TestVerifyNothingConfigured: a verifier without credentials accepts
// nothing (Credentials.Validate refuses that configuration anyway).
func TestVerifyNothingConfigured(t *testing.T) {
	v := webhook.NewVerifier(nil, nil, func() time.Time { return signedAt })
	body := []byte("x")
	for name, h := range map[string]map[string]string{
		"bearer":    {"authorization": "Bearer "},
		"signature": {"x-masterkv-signature": webhook.Sign("", signedAt, body)},
	} {
		if _, err := v.Verify(h, body); !errors.Is(err, webhook.ErrUnauthorized) {
			t.Errorf("%s: Verify = %v, want unauthorized", name, err)
		}
	}
}

// TestSignKnownAnswer pins the signature scheme to an independent
// computation (Python's hmac module), so Sign and Verify cannot drift
// together.
func TestSignKnownAnswer(t *testing.T) {
	got := webhook.Sign("fixture-hmac-secret-0001", signedAt, []byte(`{"cluster": "payments", "host": "10.0.2.30", "port": 3306}`))
	want := "t=1740830400,v1=3a5c30fc4e094b5b382a57640f75f042d522d5e447b747e6e5e973b8698834a8"
	if got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
	at, err := webhook.SignedAt(got)
	if err != nil || !at.Equal(signedAt) {
		t.Errorf("SignedAt = %v, %v; want %v", at, err, signedAt)
	}
}

func TestCredentialsValidate(t *testing.T) {
	tests := []struct {
		name    string
		c       webhook.Credentials
		wantErr string
	}{
		{"tokens only", webhook.Credentials{Tokens: []string{token1}}, ""},
		{"secrets only", webhook.Credentials{Secrets: []string{secret1, " " + secret2 + " ", ""}}, ""},
		{"none", webhook.Credentials{Tokens: []string{" ", ""}}, "set MASTERKV_WEBHOOK_TOKENS or MASTERKV_WEBHOOK_SECRETS"},
		{"short token", webhook.Credentials{Tokens: []string{token1, "short"}}, "MASTERKV_WEBHOOK_TOKENS entry 2 is 5 bytes"},
		{"short secret", webhook.Credentials{Secrets: []string{"tiny"}}, "MASTERKV_WEBHOOK_SECRETS entry 1 is 4 bytes"},
		{"space inside", webhook.Credentials{Tokens: []string{"token with a space inside"}}, "MASTERKV_WEBHOOK_TOKENS entry 1 contains spaces"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Validate = %v, want %q", err, tc.wantErr)
			}
			if err != nil && (strings.Contains(err.Error(), "short") || strings.Contains(err.Error(), "tiny")) {
				t.Errorf("error %q shows the value", err)
			}
		})
	}
}

func TestRefresh(t *testing.T) {
	body := []byte(`{"cluster":"a"}`)
	old := webhook.Sign(secret2, signedAt, body)
	now := signedAt.Add(48 * time.Hour)
	fresh, ok := webhook.Refresh(old, body, []string{secret1, secret2}, now)
	if !ok || fresh != webhook.Sign(secret2, now, body) {
		t.Errorf("Refresh = %q, %v; want the body signed with secret2 at now", fresh, ok)
	}
	v := webhook.NewVerifier(nil, []string{secret2}, func() time.Time { return now })
	if _, err := v.Verify(map[string]string{"x-masterkv-signature": fresh}, body); err != nil {
		t.Errorf("refreshed signature does not verify: %v", err)
	}
	for name, sig := range map[string]string{
		"unknown secret": webhook.Sign("another-secret-0123456", signedAt, body),
		"malformed":      "t=1",
	} {
		if got, ok := webhook.Refresh(sig, body, []string{secret1, secret2}, now); ok || got != sig {
			t.Errorf("%s: Refresh = %q, %v; want it unchanged", name, got, ok)
		}
	}
	if got, ok := webhook.Refresh(old, []byte("other body"), []string{secret2}, now); ok || got != old {
		t.Errorf("signature of another body: Refresh = %q, %v; want it unchanged", got, ok)
	}
}

// TestForgedAndStale: a forged signature is reported as bad whatever its
// age; only a valid one is judged by its timestamp.
func TestForgedAndStale(t *testing.T) {
	body := []byte("x")
	v := webhook.NewVerifier(nil, []string{secret1}, func() time.Time { return signedAt.Add(time.Hour) })
	if _, err := v.Verify(map[string]string{"x-masterkv-signature": webhook.Sign("forged-secret-0123456", signedAt, body)}, body); !errors.Is(err, webhook.ErrBadSignature) {
		t.Errorf("old forged signature: %v, want ErrBadSignature", err)
	}
	if _, err := v.Verify(map[string]string{"x-masterkv-signature": webhook.Sign(secret1, signedAt, body)}, body); !errors.Is(err, webhook.ErrStale) {
		t.Errorf("old valid signature: %v, want ErrStale", err)
	}
}
