//go:build rdma && cgo

// Thin C layer of the rdma transport over UCX's UCP API. Everything that
// progresses a UCP worker lives here, so a Go call waits for a completion in
// one cgo call rather than one per ucp_worker_progress.
#ifndef XFER_RDMA_UCX_H
#define XFER_RDMA_UCX_H

#include <stddef.h>
#include <stdint.h>
#include <ucp/api/ucp.h>

typedef struct xs_stream xs_stream;

// Creates a UCP context with the tag, RMA and wake-up features, allowed the
// UCX transports tls (UCX_TLS syntax).
ucs_status_t xs_ctx_init(ucp_context_h *out, const char *tls);
void xs_ctx_cleanup(ucp_context_h ctx);

// Creates a worker with its wake-up descriptors and nslots slots of
// sizes[i] bytes, all in one ucp_mem_map registration. *addr (malloc'd;
// release with free) is the worker address to hand to the peer.
ucs_status_t xs_stream_create(ucp_context_h ctx, int nslots,
                              const size_t *sizes, xs_stream **out,
                              void **addr, size_t *addrlen);
void *xs_slot_buf(xs_stream *s, int i);
// Creates the endpoint to the peer's worker and starts the background
// progress thread. peer_errors: UCX's error mode peer (a vanished peer fails
// operations); 0: error mode none, which lets UCX use its shared-memory
// transports, and the caller reports the peer's going with xs_peer_gone.
ucs_status_t xs_stream_connect(xs_stream *s, const void *peer, int peer_errors);
// Closes the endpoint (flushing for up to close_ms; 0 forces), cancels what
// is still posted, destroys the worker and releases the registered memory.
void xs_stream_destroy(xs_stream *s, int close_ms);

// Makes cancelable waits return UCS_ERR_CANCELED (any thread).
void xs_cancel(xs_stream *s);
void xs_uncancel(xs_stream *s);
// First endpoint error reported by UCX or xs_peer_gone (UCS_OK while
// healthy).
ucs_status_t xs_ep_status(xs_stream *s);
// Reports that the peer is gone (its process ended or it closed the
// session): waits fail with UCS_ERR_CONNECTION_RESET (any thread).
void xs_peer_gone(xs_stream *s);
// Writes UCX's description of the endpoint (ucp_ep_print_info: its lanes
// and the transport of each) into buf, NUL-terminated; returns its length.
size_t xs_ep_info(xs_stream *s, char *buf, size_t n);

// Posts a tagged send of the first len bytes of slot i; with sync, a
// synchronous one (ucp_tag_send_sync_nbx), which completes only once the
// peer has matched it with a posted receive.
ucs_status_t xs_slot_send(xs_stream *s, int i, uint64_t tag, size_t len, int sync);
// Posts a tagged receive (exact tag) into slot i.
ucs_status_t xs_slot_recv(xs_stream *s, int i, uint64_t tag);
// Waits (timeout_ms < 0: forever) until slot i has nothing in flight and
// returns the status of its last operation and, for a receive, its length.
ucs_status_t xs_slot_wait(xs_stream *s, int i, int timeout_ms, int cancelable,
                          size_t *len);

// Zero-copy bulk transfer of len bytes of caller memory as consecutive
// tagged messages tag0, tag0+1, ... of at most frag bytes. The memory is
// registered for the duration of the call only, and the call returns only
// once UCX no longer refers to it.
ucs_status_t xs_send_user(xs_stream *s, uint64_t tag0, const void *p,
                          size_t len, size_t frag, int cancelable);
ucs_status_t xs_recv_user(xs_stream *s, uint64_t tag0, void *p, size_t len,
                          size_t frag, int cancelable);

// xs_slot_wait without sleeping: progresses (a bounded spin) until slot i
// has nothing in flight and then returns as xs_slot_wait does; when it
// would have to sleep instead, it arms the worker, marks direction dir as
// sleeping and returns UCS_ERR_NO_PROGRESS, and the caller waits for
// xs_wait_fd(s, dir) to turn readable (the worker has an event, or a
// completion, cancel or endpoint error was signalled) before calling again.
ucs_status_t xs_slot_try(xs_stream *s, int i, int cancelable, size_t *len);
// A descriptor (owned by the stream) that turns readable when a waiter of
// direction dir (0 send, 1 receive) parked by xs_slot_try should retry.
int xs_wait_fd(xs_stream *s, int dir);
// Whether fd is readable now (poll with no timeout).
int xs_fd_ready(int fd);

#endif
