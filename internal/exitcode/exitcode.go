// Package exitcode classifies errors into the process exit codes that xfer
// documents for scripts and cron jobs:
//
//	0 success
//	1 some files failed (the rest were done)
//	2 usage or configuration error
//	3 cannot reach or talk to the peer (connect, handshake, authentication, protocol)
//	4 stopped at --max-duration before the work was done (rerun to resume)
//	5 a safety guard refused the deletions of a sync (--max-delete, an empty source)
//	8 stopped at the --max-transfer limit (rclone's code for it; rerun to continue)
//	130, 143 interrupted by SIGINT (Ctrl-C) or SIGTERM: 128 plus the signal's number
//
// Errors are classified by wrapping them; the innermost classification that
// errors.As finds wins, and an unclassified error counts as a partial failure.
package exitcode

import (
	"errors"
	"fmt"
)

// Codes documented in the README and docs/troubleshooting.md.
const (
	OK      = 0
	Partial = 1
	Usage   = 2
	Peer    = 3
	// Stopped is a run that reached its --max-duration with work left;
	// the next run resumes it.
	Stopped = 4
	// Refused is a sync whose deletions a safety guard refused: more
	// than --max-delete of them, or an empty source and a destination
	// that is not (without --allow-empty-source). Nothing was deleted.
	Refused = 5
	// MaxTransfer is a run that stopped at its --max-transfer limit with
	// work left, as rclone exits 8 then.
	MaxTransfer = 8
	// Interrupted is what a run stopped by SIGINT (Ctrl-C) exits with:
	// 128 plus the signal's number, as a shell reports a process killed
	// by it. SIGTERM gives 143 (see Signal).
	Interrupted = 130
)

// Signal returns the exit code of a run that a signal stopped: 128 plus
// its number (130 for SIGINT, 143 for SIGTERM).
func Signal(sig int) int { return 128 + sig }

// Error carries an exit code with the error that caused it.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// WithCode wraps err so that Code(err) reports code. A nil err stays nil.
func WithCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Err: err}
}

// Usagef is a usage or configuration error (exit 2).
func Usagef(format string, a ...any) error {
	return &Error{Code: Usage, Err: fmt.Errorf(format, a...)}
}

// Peerf is an error reaching or talking to a peer (exit 3).
func Peerf(format string, a ...any) error {
	return &Error{Code: Peer, Err: fmt.Errorf(format, a...)}
}

// Refusedf is a sync's deletions refused by a safety guard (exit 5).
func Refusedf(format string, a ...any) error {
	return &Error{Code: Refused, Err: fmt.Errorf(format, a...)}
}

// Code returns the exit code for err: 0 for nil, the wrapped code if any,
// and Partial otherwise.
func Code(err error) int {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Partial
}
