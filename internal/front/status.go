package front

import (
	"errors"
	"net/http"

	"github.com/masterkv/masterkv/internal/lambdahttp"
	"github.com/masterkv/masterkv/internal/nodeclient"
	"github.com/masterkv/masterkv/internal/webhook"
)

// StatusOf maps every error the HTTP functions answer to its HTTP status.
// It is the only place that does so: the caller's credentials (401), the
// node group's faults (502, 503), then the request's own (lambdahttp).
func StatusOf(err error) int {
	switch {
	case errors.Is(err, webhook.ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, nodeclient.ErrTooLarge), errors.Is(err, nodeclient.ErrNodeAuth):
		return http.StatusBadGateway
	case errors.Is(err, nodeclient.ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return lambdahttp.StatusOf(err)
}

// PublicMessage is what the caller is told of err. The faults of the node
// group or of the function's own configuration are told in brief, without
// node URLs, dial errors or the nodes' answers (those are logged); the
// caller's own faults are told in full, naming the field and the rule.
func PublicMessage(err error) string {
	switch {
	case errors.Is(err, nodeclient.ErrNodeAuth):
		return "the function could not authenticate to the masterkv nodes: a configuration fault of the function, not of your credentials (logged for its operators)"
	case errors.Is(err, nodeclient.ErrUnavailable):
		return "no masterkv node could serve the request now; retry with the same id"
	case errors.Is(err, nodeclient.ErrTooLarge):
		return "a masterkv node answered more than the function relays"
	case StatusOf(err) >= 500:
		return "internal error (logged)"
	}
	return err.Error()
}
