package session

import "testing"

// TestTicketsSpentOnlyByRedeem: looking a ticket up does not use it; it is
// spent once, and not after it expired.
func TestTicketsSpentOnlyByRedeem(t *testing.T) {
	var tt Tickets
	tk, err := tt.Issue("", "dst")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, ok := tt.lookup(tk.ID); !ok {
			t.Fatalf("lookup %d used the ticket up", i)
		}
	}
	ti, _ := tt.lookup(tk.ID)
	if !tt.redeem(tk.ID, ti) {
		t.Fatal("redeem failed")
	}
	if tt.redeem(tk.ID, ti) {
		t.Fatal("a ticket was redeemed twice")
	}
	if _, ok := tt.lookup(tk.ID); ok {
		t.Fatal("a spent ticket is still there")
	}
}

// TestSealedTicket: a ticket sealed for one session opens only there.
func TestSealedTicket(t *testing.T) {
	a := deriveSessionKeys([]byte("key-of-session-a-0123456789abcdef"), true)
	b := deriveSessionKeys([]byte("key-of-session-b-0123456789abcdef"), true)
	var tt Tickets
	tk, _ := tt.Issue("", "")
	st, err := a.sealTicket(tk)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := a.openTicket(st); err != nil || got != tk {
		t.Fatalf("open: %v %v", got, err)
	}
	if _, err := b.openTicket(st); err == nil {
		t.Error("a ticket sealed for another session opened")
	}
	last := "0"
	if st.ID[31] == '0' {
		last = "1"
	}
	st.ID = st.ID[:31] + last
	if _, err := a.openTicket(st); err == nil {
		t.Error("a ticket with another id opened")
	}
}
