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
	req := webhook.Request{Method: "POST", Route: "/v1/failover", Body: body}
	keyed := webhook.Request{Method: "POST", Route: "/v1/failover", Key: "failover-4711", Body: body}
	good := webhook.Sign(secret1, signedAt, req)
	rotated := webhook.Sign(secret2, signedAt, req)
	other := webhook.Sign("another-secret-0123456", signedAt, req)
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	tests := []struct {
		name    string
		headers map[string]string
		req     webhook.Request
		now     time.Time
		method  webhook.Method
		wantErr error
	}{
		{"bearer first token", map[string]string{"authorization": "Bearer " + token1}, req, signedAt, webhook.MethodBearer, nil},
		{"bearer rotated token", map[string]string{"authorization": "Bearer " + token2}, req, signedAt, webhook.MethodBearer, nil},
		{"bearer scheme any case", map[string]string{"authorization": "bEARER " + token1}, req, signedAt, webhook.MethodBearer, nil},
		{"bearer unknown token", map[string]string{"authorization": "Bearer nope-0123456789abcdef"}, req, signedAt, webhook.MethodBearer, webhook.ErrBadToken},
		{"bearer token prefix", map[string]string{"authorization": "Bearer " + token1[:10]}, req, signedAt, webhook.MethodBearer, webhook.ErrBadToken},
		{"bearer empty", map[string]string{"authorization": "Bearer "}, req, signedAt, webhook.MethodBearer, webhook.ErrBadToken},
		{"basic with token password", map[string]string{"authorization": basic("orchestrator", token2)}, req, signedAt, webhook.MethodBasic, nil},
		{"basic wrong password", map[string]string{"authorization": basic("orchestrator", "wrong")}, req, signedAt, webhook.MethodBasic, webhook.ErrBadToken},
		{"basic garbage", map[string]string{"authorization": "Basic !!!"}, req, signedAt, webhook.MethodBasic, webhook.ErrBadToken},
		{"no credentials", map[string]string{}, req, signedAt, "", webhook.ErrNoCredentials},
		{"unknown scheme", map[string]string{"authorization": "Digest x"}, req, signedAt, "", webhook.ErrNoCredentials},
		{"signature", map[string]string{"x-masterkv-signature": good}, req, signedAt, webhook.MethodSignature, nil},
		{"signature rotated secret", map[string]string{"x-masterkv-signature": rotated}, req, signedAt, webhook.MethodSignature, nil},
		{"signature with spaces", map[string]string{"x-masterkv-signature": strings.ReplaceAll(good, ",", ", ")}, req, signedAt, webhook.MethodSignature, nil},
		{"signature one of two v2", map[string]string{"x-masterkv-signature": other + "," + good[strings.Index(good, "v2="):]}, req, signedAt, webhook.MethodSignature, nil},
		{"signature unknown scheme ignored", map[string]string{"x-masterkv-signature": good + ",v0=abc"}, req, signedAt, webhook.MethodSignature, nil},
		{"signature 4m59s old", map[string]string{"x-masterkv-signature": good}, req, signedAt.Add(5*time.Minute - time.Second), webhook.MethodSignature, nil},
		{"signature 5m1s old", map[string]string{"x-masterkv-signature": good}, req, signedAt.Add(5*time.Minute + time.Second), webhook.MethodSignature, webhook.ErrStale},
		{"signature 5m1s ahead", map[string]string{"x-masterkv-signature": good}, req, signedAt.Add(-5*time.Minute - time.Second), webhook.MethodSignature, webhook.ErrStale},
		{"signature unknown secret", map[string]string{"x-masterkv-signature": other}, req, signedAt, webhook.MethodSignature, webhook.ErrBadSignature},
		{"signature over another body", map[string]string{"x-masterkv-signature": good}, webhook.Request{Method: "POST", Route: "/v1/failover", Body: []byte(`{"cluster":"a","host":"10.6.6.6","port":3306}`)}, signedAt, webhook.MethodSignature, webhook.ErrBadSignature},
		{"signature other timestamp", map[string]string{"x-masterkv-signature": strings.Replace(good, "t=1740830400", "t=1740830401", 1)}, req, signedAt, webhook.MethodSignature, webhook.ErrBadSignature},
		{"signature without t", map[string]string{"x-masterkv-signature": good[strings.Index(good, "v2="):]}, req, signedAt, webhook.MethodSignature, webhook.ErrBadSignature},
		{"signature without v2", map[string]string{"x-masterkv-signature": "t=1740830400"}, req, signedAt, webhook.MethodSignature, webhook.ErrBadSignature},
		{"signature t twice", map[string]string{"x-masterkv-signature": "t=1740830400," + good}, req, signedAt, webhook.MethodSignature, webhook.ErrBadSignature},
		{"signature t not a number", map[string]string{"x-masterkv-signature": "t=-5,v2=" + strings.Repeat("0", 64)}, req, signedAt, webhook.MethodSignature, webhook.ErrBadSignature},
		{"signature v2 short", map[string]string{"x-masterkv-signature": "t=1740830400,v2=abcd"}, req, signedAt, webhook.MethodSignature, webhook.ErrBadSignature},
		{"signature empty", map[string]string{"x-masterkv-signature": ""}, req, signedAt, webhook.MethodSignature, webhook.ErrBadSignature},
		// Everything that changes the outcome is signed:
		// a fresh Idempotency-Key, another function, another alias or
		// another method make the signature worthless.
		{"signature with a fresh idempotency key", map[string]string{"x-masterkv-signature": good, "idempotency-key": "replay-1"}, req, signedAt, webhook.MethodSignature, webhook.ErrBadSignature},
		{"signature of a keyed request", map[string]string{"x-masterkv-signature": webhook.Sign(secret1, signedAt, keyed), "idempotency-key": "failover-4711"}, req, signedAt, webhook.MethodSignature, nil},
		{"signature of a keyed request, key dropped", map[string]string{"x-masterkv-signature": webhook.Sign(secret1, signedAt, keyed)}, req, signedAt, webhook.MethodSignature, webhook.ErrBadSignature},
		{"signature at another function", map[string]string{"x-masterkv-signature": good}, webhook.Request{Method: "POST", Route: "/api/submit-masters-to-kv-stores", Body: body}, signedAt, webhook.MethodSignature, webhook.ErrBadSignature},
		{"signature for another alias", map[string]string{"x-masterkv-signature": webhook.Sign(secret1, signedAt, webhook.Request{Method: "POST", Route: "/api/submit-masters-to-kv-stores/a"})}, webhook.Request{Method: "POST", Route: "/api/submit-masters-to-kv-stores/b"}, signedAt, webhook.MethodSignature, webhook.ErrBadSignature},
		{"signature with another method", map[string]string{"x-masterkv-signature": good}, webhook.Request{Method: "GET", Route: "/v1/failover", Body: body}, signedAt, webhook.MethodSignature, webhook.ErrBadSignature},
		{"v1 signature", map[string]string{"x-masterkv-signature": "t=1740830400,v1=3a5c30fc4e094b5b382a57640f75f042d522d5e447b747e6e5e973b8698834a8"}, req, signedAt, webhook.MethodSignature, webhook.ErrV1},
		{"v1 beside v2", map[string]string{"x-masterkv-signature": good + ",v1=3a5c30fc4e094b5b382a57640f75f042d522d5e447b747e6e5e973b8698834a8"}, req, signedAt, webhook.MethodSignature, nil},
		// A request carrying a signature is judged by it, not by a bearer.
		{"bad signature beside good bearer", map[string]string{"x-masterkv-signature": other, "authorization": "Bearer " + token1}, req, signedAt, webhook.MethodSignature, webhook.ErrBadSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := webhook.NewVerifier([]string{token1, token2}, []string{secret1, secret2}, func() time.Time { return tc.now })
			method, err := v.Verify(tc.headers, tc.req)
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
	req := webhook.Request{Method: "POST", Route: "/v1/failover", Body: []byte("x")}
	for name, h := range map[string]map[string]string{
		"bearer":    {"authorization": "Bearer "},
		"signature": {"x-masterkv-signature": webhook.Sign("", signedAt, req)},
	} {
		if _, err := v.Verify(h, req); !errors.Is(err, webhook.ErrUnauthorized) {
			t.Errorf("%s: Verify = %v, want unauthorized", name, err)
		}
	}
}

// TestSignKnownAnswer pins the signature scheme to an independent
// computation (Python's hmac module, and `openssl dgst -sha256 -hmac`
// over printf 'v2\n%s\nPOST\n/v1/failover\n\n%s'), so Sign and Verify
// cannot drift together.
func TestSignKnownAnswer(t *testing.T) {
	got := webhook.Sign("fixture-hmac-secret-0001", signedAt, webhook.Request{
		Method: "POST", Route: "/v1/failover", Body: []byte(`{"cluster": "payments", "host": "10.0.2.30", "port": 3306}`),
	})
	want := "t=1740830400,v2=a8f5a1eea2c741cae94b460d7630150ee0b342b43a5685bf52a30f407fc99f60"
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
	req := webhook.Request{Method: "POST", Route: "/v1/failover", Body: []byte(`{"cluster":"a"}`)}
	old := webhook.Sign(secret2, signedAt, req)
	now := signedAt.Add(48 * time.Hour)
	fresh, ok := webhook.Refresh(old, req, []string{secret1, secret2}, now)
	if !ok || fresh != webhook.Sign(secret2, now, req) {
		t.Errorf("Refresh = %q, %v; want the body signed with secret2 at now", fresh, ok)
	}
	v := webhook.NewVerifier(nil, []string{secret2}, func() time.Time { return now })
	if _, err := v.Verify(map[string]string{"x-masterkv-signature": fresh}, req); err != nil {
		t.Errorf("refreshed signature does not verify: %v", err)
	}
	for name, sig := range map[string]string{
		"unknown secret": webhook.Sign("another-secret-0123456", signedAt, req),
		"malformed":      "t=1",
	} {
		if got, ok := webhook.Refresh(sig, req, []string{secret1, secret2}, now); ok || got != sig {
			t.Errorf("%s: Refresh = %q, %v; want it unchanged", name, got, ok)
		}
	}
	if got, ok := webhook.Refresh(old, webhook.Request{Method: "POST", Route: "/v1/failover", Body: []byte("other body")}, []string{secret2}, now); ok || got != old {
		t.Errorf("signature of another body: Refresh = %q, %v; want it unchanged", got, ok)
	}
}

// TestForgedAndStale: a forged signature is reported as bad whatever its
// age; only a valid one is judged by its timestamp.
func TestForgedAndStale(t *testing.T) {
	body := webhook.Request{Method: "POST", Route: "/v1/failover", Body: []byte("x")}
	v := webhook.NewVerifier(nil, []string{secret1}, func() time.Time { return signedAt.Add(time.Hour) })
	if _, err := v.Verify(map[string]string{"x-masterkv-signature": webhook.Sign("forged-secret-0123456", signedAt, body)}, body); !errors.Is(err, webhook.ErrBadSignature) {
		t.Errorf("old forged signature: %v, want ErrBadSignature", err)
	}
	if _, err := v.Verify(map[string]string{"x-masterkv-signature": webhook.Sign(secret1, signedAt, body)}, body); !errors.Is(err, webhook.ErrStale) {
		t.Errorf("old valid signature: %v, want ErrStale", err)
	}
}
