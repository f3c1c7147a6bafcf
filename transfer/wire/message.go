package wire

import (
	"encoding/json"

	"github.com/xfer-io/xfer/internal/progress"
)

// Message is a control message: the payload of a hello, welcome, auth,
// abort, request, response or event frame. Control messages are JSON
// objects; only this package encodes and decodes them.
type Message interface {
	// message marks the control message types.
	message()
}

func (Hello) message()    {}
func (Welcome) message()  {}
func (AuthMsg) message()  {}
func (AbortMsg) message() {}
func (Req) message()      {}
func (Resp) message()     {}
func (EventMsg) message() {}

// AbortMsg is the payload of an abort frame: why the sender ends the
// session.
type AbortMsg struct {
	Error string `json:"error"`
}

// EventMsg is the payload of an event frame: a progress event of the
// running job that request ID started.
type EventMsg struct {
	ID    uint64         `json:"id"`
	Event progress.Event `json:"e"`
}

// Encode encodes m as a frame payload.
func Encode(m Message) ([]byte, error) { return json.Marshal(m) }

// Decode decodes the frame payload p into m, which must be a pointer to
// a message type.
func Decode(p []byte, m Message) error { return json.Unmarshal(p, m) }
