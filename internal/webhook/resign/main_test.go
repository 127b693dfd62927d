package main

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/masterkv/masterkv/internal/webhook"
)

// TestResignFixture: the signed failover fixture, re-signed now with the
// fixture secret, verifies now as a request to the failover route, and
// only there; the bad fixture stays as it is.
func TestResignFixture(t *testing.T) {
	const secret = "fixture-hmac-secret-0001"
	now := time.Now()
	for _, tc := range []struct {
		file    string
		changed bool
	}{{"failover-signed.json", true}, {"failover-bad-signature.json", false}} {
		raw, err := os.ReadFile("../../../events/" + tc.file)
		if err != nil {
			t.Fatal(err)
		}
		out, err := resign(raw, []string{secret}, now)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		var ev struct {
			Headers map[string]string
			Body    string
		}
		if err := json.Unmarshal(out, &ev); err != nil {
			t.Fatal(err)
		}
		sig := ev.Headers["x-masterkv-signature"]
		v := webhook.NewVerifier(nil, []string{secret}, func() time.Time { return now })
		h := map[string]string{"x-masterkv-signature": sig}
		_, err = v.Verify(h, webhook.Request{Method: "POST", Route: "/v1/failover", Body: []byte(ev.Body)})
		if tc.changed && err != nil {
			t.Errorf("%s re-signed does not verify now: %v", tc.file, err)
		}
		if !tc.changed && string(out) != string(raw) {
			t.Errorf("%s changed; a bad signature must stay bad", tc.file)
		}
		if _, err := v.Verify(h, webhook.Request{Method: "POST", Route: "/api/submit-masters-to-kv-stores", Body: []byte(ev.Body)}); err == nil {
			t.Errorf("%s re-signed verifies at the submit route too", tc.file)
		}
	}
}
