package serve

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxStateBytes bounds the body of PUT /admin/state.
const maxStateBytes = 1 << 20

// serveAdmin serves the bearer-token guarded admin API:
//
//	GET /admin/state   the routing state in effect
//	PUT /admin/state   replace the routing state (body: State JSON)
//	GET /admin/stats   Stats() as JSON
//
// Without an admin token every /admin/ path answers 404.
func (r *Router) serveAdmin(w http.ResponseWriter, req *http.Request) {
	if r.cfg.AdminToken == "" {
		http.NotFound(w, req)
		return
	}
	tok, ok := bearerToken(req.Header.Get("Authorization"))
	if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(r.cfg.AdminToken)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="slurmtune-router"`)
		writeJSONError(w, http.StatusUnauthorized, "missing or invalid bearer token")
		return
	}
	switch {
	case req.URL.Path == "/admin/state" && req.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, r.State())
	case req.URL.Path == "/admin/state" && req.Method == http.MethodPut:
		r.putState(w, req)
	case req.URL.Path == "/admin/stats" && req.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, r.Stats())
	case req.URL.Path == "/admin/state" || req.URL.Path == "/admin/stats":
		writeJSONError(w, http.StatusMethodNotAllowed, "method not allowed")
	default:
		writeJSONError(w, http.StatusNotFound, "not found")
	}
}

func (r *Router) putState(w http.ResponseWriter, req *http.Request) {
	data, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxStateBytes))
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, fmt.Sprintf("read body: %v", err))
		return
	}
	s, err := ParseState(data)
	if err != nil {
		r.metrics.reloads.WithLabelValues("invalid").Inc()
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	if r.cfg.StatePath != "" {
		if err := WriteState(r.cfg.StatePath, s); err != nil {
			r.log.Error("persist admin state", "path", r.cfg.StatePath, "err", err)
			writeJSONError(w, http.StatusInternalServerError, "persist state failed")
			return
		}
	}
	// Probing new backends must not be cut short by the client going away.
	if err := r.applyCounted(context.WithoutCancel(req.Context()), s, "admin"); err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, r.State())
}

// bearerToken extracts the token of an "Authorization: Bearer <token>"
// header value.
func bearerToken(header string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
