package session

import (
	"fmt"
	"testing"
	"time"
)

// TestAuthPenalty: the first failures are free, then each one shuts the
// address out for a penalty that doubles up to the maximum; success and a
// quiet window forgive.
func TestAuthPenalty(t *testing.T) {
	now := time.Unix(1e9, 0)
	a := newAdmission(ServerConfig{MaxHandshakes: 4, MaxHandshakesPerClient: 2, MaxSessions: 2, MaxSessionsPerClient: 1})
	a.now = func() time.Time { return now }
	steps := []struct {
		advance time.Duration
		fail    bool // else: succeed
		penalty time.Duration
		shutOut time.Duration
	}{
		{0, true, 0, 0}, {0, true, 0, 0}, {0, true, 0, 0}, {0, true, 0, 0}, {0, true, 0, 0},
		{0, true, time.Second, time.Second},
		{time.Second, true, 2 * time.Second, 2 * time.Second},
		{2 * time.Second, true, 4 * time.Second, 4 * time.Second},
		{time.Second, true, 8 * time.Second, 8 * time.Second},
		{8 * time.Second, false, 0, 0},
		{0, true, 0, 0},
	}
	for i, st := range steps {
		now = now.Add(st.advance)
		var got time.Duration
		if st.fail {
			got = a.authFailed("h")
		} else {
			a.authSucceeded("h")
		}
		if got != st.penalty || a.shutOut("h") != st.shutOut {
			t.Fatalf("step %d: penalty %s shut out %s, want %s %s", i, got, a.shutOut("h"), st.penalty, st.shutOut)
		}
		if a.shutOut("other") != 0 {
			t.Fatalf("step %d: another address shut out", i)
		}
	}
	for i := range 20 {
		now = now.Add(time.Millisecond)
		a.authFailed("g")
		if i > 15 && a.shutOut("g") > authMaxPenalty {
			t.Fatalf("penalty %s beyond the maximum", a.shutOut("g"))
		}
	}
}

// TestHandshakeVictim: a full budget drops the oldest connection of the
// host holding the most, so a lone client that connected before (or whose
// goroutine got there before) a flood's last connections is not the one
// to go.
func TestHandshakeVictim(t *testing.T) {
	for _, tc := range []struct {
		name  string
		order []string // hosts, in the order they enter; names are host+index
		want  string
	}{
		{"lone client oldest", []string{"x", "f", "f", "f", "f"}, "f1"},
		{"all equal: oldest", []string{"x", "y", "z", "w", "v"}, "x0"},
		{"two floods as big: the older", []string{"g", "f", "f", "g", "f"}, "g0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1e9, 0)
			a := newAdmission(ServerConfig{MaxHandshakes: 4, MaxHandshakesPerClient: 4, MaxSessions: 1, MaxSessionsPerClient: 1})
			a.now = func() time.Time { now = now.Add(time.Millisecond); return now }
			dropped := make(chan string, len(tc.order))
			for i, h := range tc.order {
				name := fmt.Sprintf("%s%d", h, i)
				if _, ok := a.enterHandshake(h, func() { dropped <- name }); !ok {
					t.Fatalf("%s refused", name)
				}
			}
			select {
			case n := <-dropped:
				if n != tc.want {
					t.Fatalf("dropped %s, want %s", n, tc.want)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("nothing dropped")
			}
		})
	}
}

// TestHandshakeBudget: a host over its share is refused; a full budget
// drops its oldest connection for a new one; release frees a slot once.
func TestHandshakeBudget(t *testing.T) {
	now := time.Unix(1e9, 0)
	a := newAdmission(ServerConfig{MaxHandshakes: 3, MaxHandshakesPerClient: 2, MaxSessions: 2, MaxSessionsPerClient: 1})
	a.now = func() time.Time { now = now.Add(time.Millisecond); return now }
	dropped := make(chan string, 4)
	enter := func(host, name string) (func(), bool) {
		return a.enterHandshake(host, func() { dropped <- name })
	}
	r1, ok1 := enter("a", "a1")
	_, ok2 := enter("a", "a2")
	_, ok3 := enter("a", "a3")
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("per-host share: %v %v %v, want true true false", ok1, ok2, ok3)
	}
	if _, ok := enter("b", "b1"); !ok {
		t.Fatal("b refused with room left")
	}
	if _, ok := enter("c", "c1"); !ok {
		t.Fatal("c refused instead of dropping the oldest")
	}
	select {
	case n := <-dropped:
		if n != "a1" {
			t.Fatalf("dropped %s, want the oldest (a1)", n)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("nothing dropped for c")
	}
	r1() // a1 was dropped already: releasing it again changes nothing
	if len(a.waiting) != 3 || a.pendingBy["a"] != 1 {
		t.Fatalf("after drop and release: %d waiting, a has %d", len(a.waiting), a.pendingBy["a"])
	}
	// Sessions: per host, then in all.
	s1, err := a.admitSession("x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.admitSession("x"); err == nil {
		t.Fatal("second session from x admitted over the per-client limit")
	}
	if _, err := a.admitSession("y"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.admitSession("z"); err == nil {
		t.Fatal("third session admitted over the limit")
	}
	s1()
	s1()
	if _, err := a.admitSession("x"); err != nil {
		t.Fatalf("x after its session ended: %v", err)
	}
}
