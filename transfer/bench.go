package transfer

// `xfer bench` over a session: requests bench.* and data messages
// mBenchFirst..mBenchLast.

import "fmt"

func (h *handler) serveBench(s *Session, r *Req) {
	s.reply(&Resp{ID: r.ID, Err: fmt.Sprintf("unknown request %q", r.Op), Kind: kindUsage})
}

func (l *lane) handleBench(hdr []byte, n int, buf *[]byte) error {
	return fmt.Errorf("unknown data message kind %d", hdr[0])
}
