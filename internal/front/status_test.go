package front_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/masterkv/masterkv/internal/front"
	"github.com/masterkv/masterkv/internal/lambdahttp"
	"github.com/masterkv/masterkv/internal/nodeclient"
	"github.com/masterkv/masterkv/internal/webhook"
)

func TestStatusOf(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{webhook.ErrStale, 401},
		{webhook.ErrNoCredentials, 401},
		{fmt.Errorf("x: %w", nodeclient.ErrUnavailable), 503},
		{nodeclient.ErrTooLarge, 502},
		{fmt.Errorf("node refused: %w", nodeclient.ErrNodeAuth), 502},
		// the request's own faults, as lambdahttp maps them
		{fmt.Errorf("%w: GET", lambdahttp.ErrMethod), 405},
		{errors.New("anything else"), 500},
	}
	for _, tc := range tests {
		if got := front.StatusOf(tc.err); got != tc.want {
			t.Errorf("StatusOf(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// TestPublicMessage: the group's faults are told without what the error
// carries (node URLs, dial errors); the caller's own in full.
func TestPublicMessage(t *testing.T) {
	secretish := "dial tcp 10.0.1.10:8080: connection refused"
	for _, err := range []error{
		fmt.Errorf("%s: %w", secretish, nodeclient.ErrUnavailable),
		fmt.Errorf("%s: %w", secretish, nodeclient.ErrNodeAuth),
		fmt.Errorf("%s: %w", secretish, nodeclient.ErrTooLarge),
		errors.New(secretish),
	} {
		if msg := front.PublicMessage(err); strings.Contains(msg, "10.0.1.10") {
			t.Errorf("PublicMessage(%v) = %q, shows the node", err, msg)
		}
	}
	bad := fmt.Errorf("port: must be 1-65535: %w", lambdahttp.ErrBadRequest)
	if msg := front.PublicMessage(bad); msg != bad.Error() {
		t.Errorf("PublicMessage(%v) = %q, want the error in full", bad, msg)
	}
}
