package rest

import (
	"errors"
	"fmt"
	"strings"

	"github.com/slurmtune/slurmtune/slurm"
)

// ErrRedirect: slurmrestd's URL answered with a redirect, which the client
// refuses to follow so that the token never reaches another host.
var ErrRedirect = errors.New("slurmrestd redirect refused")

// apiErr is one entry of slurmrestd's "errors" list, whatever the version.
type apiErr struct {
	Num         int
	Error       string
	Description string
	Source      string
}

func (e apiErr) String() string {
	msg := e.Description
	if msg == "" {
		msg = e.Error
	} else if e.Error != "" && !strings.Contains(msg, e.Error) {
		msg += ": " + e.Error
	}
	if msg == "" {
		msg = fmt.Sprintf("error %d", e.Num)
	}
	return msg
}

// APIError is a request slurmrestd answered with errors.
type APIError struct {
	Op     string
	Status int
	Errors []apiErr
}

func (e *APIError) Error() string {
	parts := make([]string, 0, len(e.Errors))
	for _, x := range e.Errors {
		parts = append(parts, x.String())
	}
	if len(parts) == 0 {
		return fmt.Sprintf("%s: slurmrestd answered HTTP %d", e.Op, e.Status)
	}
	return fmt.Sprintf("%s: %s", e.Op, strings.Join(parts, "; "))
}

// Has reports whether slurmrestd reported Slurm error number n.
func (e *APIError) Has(n int) bool {
	for _, x := range e.Errors {
		if x.Num == n {
			return true
		}
	}
	return false
}

// Slurm error numbers (slurm_errno.h) slurmtune tells apart.
const (
	errUnspecified            = -1
	errCommConnection         = 1001 // SLURM_COMMUNICATIONS_CONNECTION_ERROR
	errCommSend               = 1002
	errCommReceive            = 1003
	errCommShutdown           = 1004
	errProtocolAuth           = 1007 // SLURM_PROTOCOL_AUTHENTICATION_ERROR
	errCtldConnection         = 1800 // SLURMCTLD_COMMUNICATIONS_CONNECTION_ERROR
	errCtldSend               = 1801
	errCtldReceive            = 1802
	errCtldShutdown           = 1803
	errCtldBackoff            = 1810       // SLURMCTLD_COMMUNICATIONS_BACKOFF
	errInvalidJobID           = 2017       // ESLURM_INVALID_JOB_ID
	errAlreadyDone            = 2021       // ESLURM_ALREADY_DONE
	errJobHeld                = 2042       // ESLURM_JOB_HELD (a warning on submit)
	errSocketTimeout          = 5004       // SLURM_PROTOCOL_SOCKET_IMPL_TIMEOUT
	errSocketZeroBytes        = 5005       // SLURM_PROTOCOL_SOCKET_ZERO_BYTES_SENT
	errAuthFirst, errAuthLast = 6000, 6099 // ESLURM_AUTH_* (cred invalid, expired...)
	errDBConnection           = 7000       // ESLURM_DB_CONNECTION
	errDBConnectionInvalid    = 7001
)

// errTransientAPI marks slurmrestd answers worth retrying (slurmctld busy
// or unreachable from slurmrestd).
var errTransientAPI = errors.New("transient")

// classify turns slurmrestd's errors into the errors slurmtune's callers
// test for: slurm.ErrUnavailable when slurmrestd cannot reach slurmctld,
// ErrTokenRejected when slurmctld refused the token.
//
// Slurm 22.05 does not say "authentication" when slurmctld refuses a token:
// a query answers error -1 (Unspecified error), a submit or cancel 5005
// (Zero Bytes were transmitted or received), slurmdbd 1007 (verified
// against the dev cluster with an expired and a wrongly signed token). The
// token's expiry is checked before sending, so these mostly mean a token
// signed with another key; the server's words are kept in the message.
func classify(e *APIError) error {
	auth, down := false, false
	for _, x := range e.Errors {
		switch {
		case x.Num == errProtocolAuth, x.Num >= errAuthFirst && x.Num <= errAuthLast:
			auth = true
		case x.Num == errUnspecified && strings.HasPrefix(x.Source, "slurm_load_"),
			x.Num == errSocketZeroBytes:
			auth = true
		case x.Num >= errCommConnection && x.Num <= errCommShutdown,
			x.Num >= errCtldConnection && x.Num <= errCtldBackoff,
			x.Num == errSocketTimeout:
			down = true
		}
		if strings.Contains(strings.ToLower(x.Error+x.Description), "authentication") {
			auth = true
		}
	}
	switch {
	case auth:
		return fmt.Errorf("%s: %w (slurmrestd: %s)", e.Op, ErrTokenRejected, strings.TrimPrefix(e.Error(), e.Op+": "))
	case down:
		return fmt.Errorf("%w: %w: slurmrestd cannot reach slurmctld: %w", slurm.ErrUnavailable, errTransientAPI, e)
	}
	return e
}

// dbUnavailable reports whether a slurmdb request failed because accounting
// is not there (no slurmdbd, or slurmrestd without the slurmdb plugin).
func dbUnavailable(status int, e *APIError) bool {
	if status == 404 {
		return true
	}
	if e == nil {
		return false
	}
	for _, x := range e.Errors {
		if x.Num == errDBConnection || x.Num == errDBConnectionInvalid {
			return true
		}
		s := strings.ToLower(x.Error + " " + x.Description)
		if strings.Contains(s, "accounting storage is disabled") || strings.Contains(s, "unable to connect to database") ||
			strings.Contains(s, "slurmdbd") && strings.Contains(s, "connect") {
			return true
		}
	}
	return false
}
