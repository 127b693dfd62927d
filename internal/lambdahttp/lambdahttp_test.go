package lambdahttp_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/masterkv/masterkv/internal/lambdahttp"
)

func event(body string, b64 bool) events.APIGatewayV2HTTPRequest {
	ev := events.APIGatewayV2HTTPRequest{
		RawPath: "/v1/failover", RawQueryString: "wait=all", Body: body, IsBase64Encoded: b64,
		Headers:        map[string]string{"Content-Type": "application/json", "x-masterkv-signature": "t=1,v1=00"},
		PathParameters: map[string]string{"alias": "a"},
	}
	ev.RequestContext.HTTP.Method = "POST"
	ev.RequestContext.RequestID = "req-1"
	return ev
}

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		ev       events.APIGatewayV2HTTPRequest
		wantBody string
		wantErr  error
	}{
		{"plain", event(`{"cluster":"a"}`, false), `{"cluster":"a"}`, nil},
		{"base64", event(base64.StdEncoding.EncodeToString([]byte("cluster=a&port=1")), true), "cluster=a&port=1", nil},
		{"base64 binary", event(base64.StdEncoding.EncodeToString([]byte{0xff, 0, 1}), true), "\xff\x00\x01", nil},
		{"bad base64", event("not base64!", true), "", lambdahttp.ErrBadBody},
		{"64 KiB", event(strings.Repeat("x", lambdahttp.MaxBodyBytes), false), strings.Repeat("x", lambdahttp.MaxBodyBytes), nil},
		{"over 64 KiB", event(strings.Repeat("x", lambdahttp.MaxBodyBytes+1), false), "", lambdahttp.ErrTooLarge},
		{"over 64 KiB in base64", event(base64.StdEncoding.EncodeToString(make([]byte, lambdahttp.MaxBodyBytes+1)), true), "", lambdahttp.ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := lambdahttp.Parse(tc.ev)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Parse error = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if string(r.Body) != tc.wantBody {
				t.Errorf("body = %.40q, want %.40q", r.Body, tc.wantBody)
			}
			if r.Method != "POST" || r.Path != "/v1/failover" || r.RawQuery != "wait=all" || r.RequestID != "req-1" || r.PathParameters["alias"] != "a" {
				t.Errorf("request = %+v", r)
			}
			if r.Header("content-type") != "application/json" || r.Header("X-Masterkv-Signature") != "t=1,v1=00" {
				t.Errorf("headers = %v, want lower-cased names found in any case", r.Headers)
			}
		})
	}
}

// TestResponseShape: the answer is the payload-2.0 response, with exactly
// the fields Function URLs and HTTP APIs read.
func TestResponseShape(t *testing.T) {
	for name, resp := range map[string]lambdahttp.Response{
		"json":   lambdahttp.JSON(409, map[string]string{"error": "conflict"}, "X-A", "1"),
		"binary": lambdahttp.Raw(200, "application/octet-stream", []byte{0xff, 0xfe}),
	} {
		b, err := json.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		var keys []string
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if want := []string{"body", "cookies", "headers", "isBase64Encoded", "statusCode"}; !slices.Equal(keys, want) {
			t.Errorf("%s: keys %v, want %v", name, keys, want)
		}
		if string(m["cookies"]) != "[]" {
			t.Errorf("%s: cookies = %s, want []", name, m["cookies"])
		}
	}
	j := lambdahttp.JSON(409, map[string]string{"error": "conflict"}, "X-A", "1")
	if j.StatusCode != 409 || j.Headers["Content-Type"] != "application/json" || j.Headers["X-A"] != "1" || j.IsBase64Encoded {
		t.Errorf("JSON response = %+v", j)
	}
	var e map[string]string
	if err := json.Unmarshal([]byte(j.Body), &e); err != nil || e["error"] != "conflict" {
		t.Errorf("JSON body %q: %v", j.Body, err)
	}
	bin := lambdahttp.Raw(200, "application/octet-stream", []byte{0xff, 0xfe})
	if !bin.IsBase64Encoded || bin.Body != base64.StdEncoding.EncodeToString([]byte{0xff, 0xfe}) {
		t.Errorf("binary response = %+v, want base64", bin)
	}
}

func TestStatusOf(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{lambdahttp.ErrTooLarge, 413},
		{lambdahttp.ErrBadBody, 400},
		{fmt.Errorf("id: differs: %w", lambdahttp.ErrBadRequest), 400},
		{fmt.Errorf("%w: GET", lambdahttp.ErrMethod), 405},
		{errors.New("anything else"), 500},
	}
	for _, tc := range tests {
		if got := lambdahttp.StatusOf(tc.err); got != tc.want {
			t.Errorf("StatusOf(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
