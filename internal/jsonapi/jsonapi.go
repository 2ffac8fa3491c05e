// Package jsonapi is the JSON-over-HTTP plumbing the LocalAPI and the control page share:
// handlers that return errors, method checks, strict request decoding, replies, and the
// status an error maps to. Errors say what they are through small interfaces, so this
// package knows none of the packages whose errors it reports.
package jsonapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// MaxBody bounds a request body.
const MaxBody = 64 << 10

// Handler handles one request; a returned error becomes the JSON error reply, with the
// status Status gives it.
type Handler func(w http.ResponseWriter, r *http.Request) error

func (h Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := h(w, r); err != nil {
		WriteError(w, Status(err), err.Error())
	}
}

// Only serves h for method and refuses the others with 405.
func Only(method string, h Handler) http.Handler { return Methods(map[string]Handler{method: h}) }

// Methods serves each method with its handler and refuses the others with 405.
func Methods(hs map[string]Handler) http.Handler {
	allowed := slices.Sorted(maps.Keys(hs))
	allow := strings.Join(allowed, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := hs[r.Method]
		if !ok {
			w.Header().Set("Allow", allow)
			WriteError(w, http.StatusMethodNotAllowed, fmt.Sprintf("jsonapi: %s %s: method not allowed (use %s)",
				r.Method, r.URL.Path, strings.Join(allowed, " or ")))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// badInput is implemented by errors that are the caller's fault (control.InputError, and
// BadRequest's wrapper): 400.
type badInput interface{ BadInput() bool }

// unavailable is implemented by errors of a device that cannot serve the request now (a
// resource in use): 503.
type unavailable interface{ Unavailable() bool }

// Status is the HTTP status of an error reply: 400 for bad input, 503 for a busy resource
// or a request that ended before its answer, 500 for anything else (the device failed).
func Status(err error) int {
	var bi badInput
	var un unavailable
	switch {
	case errors.As(err, &bi) && bi.BadInput():
		return http.StatusBadRequest
	case errors.As(err, &un) && un.Unavailable(),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// BadRequest marks err as the client's fault.
func BadRequest(err error) error { return badRequest{err} }

type badRequest struct{ err error }

func (e badRequest) Error() string  { return e.err.Error() }
func (e badRequest) Unwrap() error  { return e.err }
func (e badRequest) BadInput() bool { return true }

// Decode decodes the request's JSON object into v: size-limited, unknown fields refused,
// nothing after the object. An empty body is accepted only if emptyOK.
func Decode(w http.ResponseWriter, r *http.Request, v any, emptyOK bool) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return BadRequest(fmt.Errorf("jsonapi: request body larger than %d bytes", mbe.Limit))
		}
		return BadRequest(fmt.Errorf("jsonapi: read request: %w", err))
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if emptyOK {
			return nil
		}
		return BadRequest(errors.New("jsonapi: empty request body, want a JSON object"))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return BadRequest(fmt.Errorf("jsonapi: bad JSON: %w", err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return BadRequest(errors.New("jsonapi: bad JSON: data after the object"))
	}
	return nil
}

// ErrorReply is the body of an error reply.
type ErrorReply struct {
	Error string `json:"error"`
}

// WriteError replies code with {"error": msg}.
func WriteError(w http.ResponseWriter, code int, msg string) {
	Write(w, code, ErrorReply{Error: msg})
}

// Write replies code with v as JSON.
func Write(w http.ResponseWriter, code int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		data, _ = json.Marshal(ErrorReply{Error: "jsonapi: encode reply: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(data, '\n'))
}
