// Package lambdahttp reads the HTTP events of Lambda Function URLs and API
// Gateway HTTP APIs, which share payload format 2.0, into plain requests,
// and builds the buffered 2.0 response both accept.
package lambdahttp

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// MaxBodyBytes is the largest body forwarded: the nodes' own limit.
const MaxBodyBytes = 64 << 10

// Errors of Parse.
var (
	// ErrBadBody is a body marked base64 that does not decode.
	ErrBadBody = errors.New("body is marked base64-encoded but does not decode")
	// ErrTooLarge is a body over MaxBodyBytes.
	ErrTooLarge = errors.New("request body exceeds 64 KiB")
	// ErrMethod is a method the route does not take; handlers wrap it.
	ErrMethod = errors.New("method not allowed")
	// ErrBadRequest is any other bad input a handler finds; handlers wrap it.
	ErrBadRequest = errors.New("bad request")
)

// Request is an HTTP request as a handler needs it.
type Request struct {
	Method   string
	Path     string
	RawQuery string
	// Headers have lower-case names, as both triggers send them; repeated
	// headers arrive joined with commas.
	Headers map[string]string
	// PathParameters are the HTTP API route's parameters (none for a
	// Function URL).
	PathParameters map[string]string
	// Body is decoded from base64 when the event says so.
	Body []byte
	// RequestID is the trigger's id of the request.
	RequestID string
}

// Header returns the value of the named header, any case.
func (r Request) Header(name string) string {
	return r.Headers[strings.ToLower(name)]
}

// Parse reads a payload-2.0 event. A Function URL event decodes into
// events.APIGatewayV2HTTPRequest as it is (its fields are a subset).
func Parse(ev events.APIGatewayV2HTTPRequest) (Request, error) {
	r := Request{
		Method: ev.RequestContext.HTTP.Method, Path: ev.RawPath, RawQuery: ev.RawQueryString,
		Headers: make(map[string]string, len(ev.Headers)), PathParameters: ev.PathParameters,
		RequestID: ev.RequestContext.RequestID,
	}
	if r.Path == "" {
		r.Path = ev.RequestContext.HTTP.Path
	}
	for k, v := range ev.Headers {
		r.Headers[strings.ToLower(k)] = v
	}
	body := []byte(ev.Body)
	if ev.IsBase64Encoded {
		var err error
		if body, err = base64.StdEncoding.DecodeString(ev.Body); err != nil {
			return r, ErrBadBody
		}
	}
	if len(body) > MaxBodyBytes {
		return r, ErrTooLarge
	}
	r.Body = body
	return r, nil
}

// Response is the buffered payload-2.0 response: Function URLs (BUFFERED
// invoke mode) and HTTP APIs both accept exactly this shape.
type Response = events.LambdaFunctionURLResponse

// Raw answers body as it is, base64-encoded when it is not UTF-8.
func Raw(status int, contentType string, body []byte, headers ...string) Response {
	h := map[string]string{}
	if contentType != "" {
		h["Content-Type"] = contentType
	}
	for i := 0; i+1 < len(headers); i += 2 {
		h[headers[i]] = headers[i+1]
	}
	resp := Response{StatusCode: status, Headers: h, Cookies: []string{}}
	if utf8.Valid(body) {
		resp.Body = string(body)
	} else {
		resp.Body, resp.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
	}
	return resp
}

// JSON answers v as indented JSON. headers are extra name/value pairs.
func JSON(status int, v any, headers ...string) Response {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		b = []byte(fmt.Sprintf(`{"error":%q}`, "encode answer: "+err.Error()))
		status = 500
	}
	return Raw(status, "application/json", append(b, '\n'), headers...)
}
