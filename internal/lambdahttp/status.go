package lambdahttp

import (
	"errors"
	"net/http"
)

// StatusOf maps the errors of this package (a body too large or malformed,
// a bad request, a method not taken) to their HTTP status; any other error
// is a 500. Callers with errors of their own map those first.
func StatusOf(err error) int {
	switch {
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrBadBody), errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, ErrMethod):
		return http.StatusMethodNotAllowed
	}
	return http.StatusInternalServerError
}
