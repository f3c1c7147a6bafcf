package casnet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/xfer-io/xfer/internal/cas"
)

// FindParallel is how many holders Find asks at once by default.
const FindParallel = 8

// HasFunc asks the store at addr whether it holds the object sought: its
// size, or -1 if it does not.
type HasFunc func(ctx context.Context, addr string) (int64, error)

// NoHolderError is Find's error when no store asked holds the object; it
// wraps cas.ErrNotFound.
type NoHolderError struct {
	ID      cas.ID
	Asked   int     // holders asked
	Missing int     // of which answered that they lack it
	Failed  []error // the others' failures, each naming its holder
}

func (e *NoHolderError) Error() string {
	if e.Asked == 0 {
		return fmt.Sprintf("cas: %s: no holder is registered (xfer serve --cas or xfer daemon --listen, with --etcd)", e.ID)
	}
	msg := fmt.Sprintf("cas: %s: no holder has it (asked %d: %d lack it", e.ID, e.Asked, e.Missing)
	if len(e.Failed) > 0 {
		msg += fmt.Sprintf(", %d did not answer: %v", len(e.Failed), e.Failed[0])
	}
	return msg + ")"
}

func (e *NoHolderError) Unwrap() error { return cas.ErrNotFound }

// UnreachableError is Find's error when no holder answered at all.
type UnreachableError struct {
	ID     cas.ID
	Failed []error // each holder's failure
}

func (e *UnreachableError) Error() string {
	parts := make([]string, 0, min(len(e.Failed), 3))
	for _, err := range e.Failed[:min(len(e.Failed), 3)] {
		parts = append(parts, err.Error())
	}
	return fmt.Sprintf("cas: %s: none of the %d registered holders answered (%s)", e.ID, len(e.Failed), strings.Join(parts, "; "))
}

func (e *UnreachableError) Unwrap() []error { return e.Failed }

// IsUnreachable says err is Find's *UnreachableError: no holder answered.
func IsUnreachable(err error) bool {
	var u *UnreachableError
	return errors.As(err, &u)
}

// Lookup asks the peer's store whether it holds id: its size, or -1.
func (s *Client) Lookup(ctx context.Context, id cas.ID) (int64, error) {
	sizes, err := s.Has(ctx, []cas.ID{id})
	if err != nil {
		return 0, err
	}
	return sizes[0], nil
}

// Find asks the stores at addrs, at most parallel at once (FindParallel
// if not positive), whether they hold id, and returns the address of the
// first that answers that it does and the object's size; the questions
// still out are then cancelled. If none holds it, the error is a
// *NoHolderError (some lack it) or an *UnreachableError (none answered).
func Find(ctx context.Context, id cas.ID, addrs []string, parallel int, has HasFunc) (string, int64, error) {
	if len(addrs) == 0 {
		return "", 0, &NoHolderError{ID: id}
	}
	if parallel <= 0 {
		parallel = FindParallel
	}
	type answer struct {
		addr string
		size int64
		err  error
	}
	answers := make(chan answer, len(addrs))
	slots := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: the questions still out end at once
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Add(1) // the dispatcher: held while it adds the questions
	go func() {
		defer wg.Done()
		for _, a := range addrs {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				answers <- answer{addr: a, err: ctx.Err()}
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				n, err := has(ctx, a)
				answers <- answer{a, n, err}
			}()
		}
	}()
	nh := &NoHolderError{ID: id, Asked: len(addrs)}
	for range addrs {
		a := <-answers
		switch {
		case a.err != nil && strings.Contains(a.err.Error(), a.addr):
			nh.Failed = append(nh.Failed, a.err)
		case a.err != nil:
			nh.Failed = append(nh.Failed, fmt.Errorf("%s: %w", a.addr, a.err))
		case a.size >= 0:
			return a.addr, a.size, nil
		default:
			nh.Missing++
		}
	}
	if ctx.Err() != nil {
		return "", 0, ctx.Err()
	}
	if nh.Missing == 0 {
		return "", 0, &UnreachableError{ID: id, Failed: nh.Failed}
	}
	return "", 0, nh
}
