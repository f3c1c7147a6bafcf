package transfer

// The content-addressed store over a session: requests cas.*, control
// frames fCASFirst..fCASLast and data messages mCASFirst..mCASLast.

import (
	"fmt"
)

func (h *handler) serveCAS(s *Session, r *Req) {
	s.reply(&Resp{ID: r.ID, Err: fmt.Sprintf("unknown request %q", r.Op), Kind: kindUsage})
}

func (s *Session) casFrame(typ byte, p []byte) error {
	return fmt.Errorf("unexpected frame type %d", typ)
}

func (l *lane) handleCAS(hdr []byte, n int, buf *[]byte) error {
	return fmt.Errorf("unknown data message kind %d", hdr[0])
}
