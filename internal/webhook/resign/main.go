// Command resign prints an HTTP event (a file in events/) with its
// X-Masterkv-Signature re-signed at the current time, when the signature
// is valid under one of MASTERKV_WEBHOOK_SECRETS. Signed fixtures carry a
// fixed timestamp that the real clock refuses as stale; `make invoke`
// passes every event through this command. Other events, and signatures
// that are not valid, come out unchanged.
//
//	go run ./internal/webhook/resign events/failover-signed.json
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/masterkv/masterkv/internal/webhook"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: resign EVENT.json")
		os.Exit(2)
	}
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, err := resign(raw, strings.Split(os.Getenv("MASTERKV_WEBHOOK_SECRETS"), ","), time.Now())
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
	os.Stdout.Write(out)
}

// resign returns raw with a valid signature refreshed, else raw itself.
func resign(raw []byte, secrets []string, now time.Time) ([]byte, error) {
	var ev struct {
		Headers         map[string]string `json:"headers"`
		Body            string            `json:"body"`
		IsBase64Encoded bool              `json:"isBase64Encoded"`
	}
	if err := json.Unmarshal(raw, &ev); err != nil {
		return raw, nil // not an HTTP event (a schedule): nothing to sign
	}
	for name, sig := range ev.Headers {
		if !strings.EqualFold(name, webhook.SignatureHeader) {
			continue
		}
		body := []byte(ev.Body)
		if ev.IsBase64Encoded {
			var err error
			if body, err = base64.StdEncoding.DecodeString(ev.Body); err != nil {
				return nil, fmt.Errorf("body is not base64: %w", err)
			}
		}
		fresh, ok := webhook.Refresh(sig, body, secrets, now)
		if !ok {
			return raw, nil
		}
		var full map[string]any
		if err := json.Unmarshal(raw, &full); err != nil {
			return nil, err
		}
		full["headers"].(map[string]any)[name] = fresh
		return json.MarshalIndent(full, "", "  ")
	}
	return raw, nil
}
