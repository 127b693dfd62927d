package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/raftnode/fsm"
	"github.com/masterkv/masterkv/raftnode/node"
)

// Errors of the HTTP layer itself.
var (
	errUnauthorized = errors.New("missing or invalid bearer token")
	errTooLarge     = errors.New("request body exceeds 64 KiB")
	errNotFound     = errors.New("not found")
	errMethod       = errors.New("method not allowed")
	errCatchingUp   = errors.New("this node is catching up after a restart and may hold stale records; retry, ask another node, or add ?stale=true")
)

// statusFor maps every error the API can return to its HTTP status. It is
// the only place that does so.
func statusFor(err error) int {
	switch {
	case errors.Is(err, master.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, errUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, errNotFound), errors.Is(err, fsm.ErrUnknownCluster):
		return http.StatusNotFound
	case errors.Is(err, errMethod):
		return http.StatusMethodNotAllowed
	case errors.Is(err, fsm.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, fsm.ErrIDReused):
		return http.StatusUnprocessableEntity
	case errors.Is(err, node.ErrNotLeader), errors.Is(err, node.ErrNoLeader),
		errors.Is(err, node.ErrOutcomeUnknown), errors.Is(err, node.ErrShutdown),
		errors.Is(err, errForward), errors.Is(err, errCatchingUp):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// writeError answers {"error": "..."} with the error's status.
func writeError(w http.ResponseWriter, err error) {
	writeJSON(w, statusFor(err), map[string]string{"error": err.Error()})
}
