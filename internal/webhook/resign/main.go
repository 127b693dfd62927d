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
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/masterkv/masterkv/internal/front/failover"
	"github.com/masterkv/masterkv/internal/front/submit"
	"github.com/masterkv/masterkv/internal/lambdahttp"
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
// The signed route is the one the event's function serves: a submit's
// when the path or the route parameters name one, else a failover's.
func resign(raw []byte, secrets []string, now time.Time) ([]byte, error) {
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(raw, &ev); err != nil {
		return raw, nil // not an HTTP event (a schedule): nothing to sign
	}
	req, err := lambdahttp.Parse(ev)
	if err != nil {
		return nil, err
	}
	sig := req.Header(webhook.SignatureHeader)
	if sig == "" {
		return raw, nil
	}
	route := failover.Route
	if strings.Contains(req.Path, submit.Route) || req.PathParameters["alias"] != "" {
		if route, err = submit.RouteOf(req); err != nil {
			return nil, err
		}
	}
	fresh, ok := webhook.Refresh(sig, webhook.Request{Method: req.Method, Route: route, Key: req.Header(webhook.KeyHeader), Body: req.Body}, secrets, now)
	if !ok {
		return raw, nil
	}
	var full map[string]any
	if err := json.Unmarshal(raw, &full); err != nil {
		return nil, err
	}
	headers := full["headers"].(map[string]any)
	for name := range headers {
		if strings.EqualFold(name, webhook.SignatureHeader) {
			headers[name] = fresh
		}
	}
	return json.MarshalIndent(full, "", "  ")
}
