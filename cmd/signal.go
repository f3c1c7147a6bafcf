package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/xfer-io/xfer/internal/exitcode"
)

// signalError is the cause of a context that a signal cancelled.
type signalError struct{ sig syscall.Signal }

func (e *signalError) Error() string { return "interrupted by " + signalName(e.sig) }

// signalName is "SIGINT", "SIGTERM", ...
func signalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return fmt.Sprintf("signal %d", int(sig))
}

// signalContext returns a context that SIGINT or SIGTERM cancels, with a
// *signalError as its cause, so that a run can say it was interrupted and
// exit 128+signal. A second signal ends the process at once with that
// code: partial files are crash-safe and the next run resumes them. stop
// releases the signals.
func signalContext(parent context.Context, stderr io.Writer) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		var first syscall.Signal
		for {
			select {
			case <-done:
				return
			case s := <-ch:
				sig, _ := s.(syscall.Signal)
				if first != 0 {
					fmt.Fprintf(stderr, "xfer: %s again: exiting now (rerun the same command to resume)\n", signalName(sig))
					os.Exit(exitcode.Signal(int(first)))
				}
				first = sig
				cancel(&signalError{sig: sig})
			}
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel(nil)
	}
}

// interruptedBy returns the signal that cancelled ctx, if one did.
func interruptedBy(ctx context.Context) (*signalError, bool) {
	var se *signalError
	if ctx.Err() != nil && errors.As(context.Cause(ctx), &se) {
		return se, true
	}
	return nil, false
}

// interrupted is the error of a command that a signal (or another
// cancellation of ctx) stopped: its exit code is 128+signal.
func interrupted(ctx context.Context) error {
	if se, ok := interruptedBy(ctx); ok {
		return exitcode.WithCode(exitcode.Signal(int(se.sig)), se)
	}
	return exitcode.WithCode(exitcode.Interrupted, errors.New("interrupted"))
}
