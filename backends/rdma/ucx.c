//go:build rdma && cgo

// Thin C layer of the rdma transport: UCP context, one worker and endpoint
// per stream, registered slots, zero-copy bulk transfers of caller memory,
// and the progress/wait loops.
//
// Threading: a stream's worker is created UCS_THREAD_MODE_SERIALIZED and
// every UCP call on it is made under s->lk. The Go side guarantees at most
// one sender and one receiver at a time; either may progress the worker and
// so complete the other's requests, which is why completion callbacks only
// flip an operation's state and wake its owner through the owner's eventfd.
// While neither is waiting, a background thread sleeps on the worker's
// event descriptor and progresses it, so that sends posted by a Send that
// has returned, and receives posted ahead, move on without the caller; it
// takes the worker back only after XS_BG_HANDOFF_NS without a waiter.
// Recv waits outside C (xs_slot_try, then the Go poller on wfd[1]), so the
// goroutine that acts on a message runs on the same thread instead of being
// handed to another one.

#include "ucx.h"

#include <ucs/debug/log_def.h>

#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define XS_IDLE 0   // nothing in flight
#define XS_POSTED 1 // request in flight
#define XS_DONE 2   // request completed, not yet reaped

#define XS_DIR_SEND 0
#define XS_DIR_RECV 1

// A waiter busy-polls this long without progress before it sleeps on the
// worker's event descriptor. Short, by measurement on a shared 2-core host
// over UCX tcp (docs/benchmarks.md): 200 µs and 20 µs spins took the core
// the peer needed (1 MiB: 5.5 and 11 Gbit/s, 64 B round trip p50 250-350
// and 80-100 µs) where 2 µs gives 14 Gbit/s and 58 µs; a spin that adapts
// to the waits (up to 64 µs while waits end within that) cost the 64 B
// round trip 75-80 µs p50 against 47-62 µs for 2 µs on the loaded host. Poll timeouts are
// only safety nets: worker events and our eventfds wake sleepers.
#define XS_SPIN_NS 2000L
#define XS_POLL_MS 20
#define XS_BG_POLL_MS 100
// The background thread takes the worker back only once no caller has
// waited for this long: a caller alternating Send and Recv (a ping-pong)
// would otherwise hand the worker to the thread and back twice per message,
// two thread wake-ups and a lock fight each time.
#define XS_BG_HANDOFF_NS 2000000L
// Fragments of one zero-copy transfer in flight at once.
#define XS_USER_WINDOW 16

typedef struct xs_op {
	xs_stream *s;
	int dir;
	void *buf;
	size_t cap;
	void *req;
	_Atomic int state;
	ucs_status_t status;
	size_t len;
} xs_op;

struct xs_stream {
	ucp_context_h ctx;
	ucp_worker_h w;
	ucp_ep_h ep;
	ucp_mem_h memh;
	void *mem;
	int efd;
	int evfd[2];
	int wfd[2]; // epoll of efd and evfd[dir], for waiters outside C
	_Atomic int sleepers[2];
	_Atomic int cancel;
	_Atomic int ep_status;
	pthread_mutex_t lk;
	int nslots;
	xs_op *slots;

	// Error mode none (a same-host peer, so that UCX may use shared
	// memory): UCX reports no peer failure; xs_peer_gone does, from the
	// Go side's liveness socket. Zero-copy operations that were in flight
	// when the peer went are then left to the worker (orphans) rather
	// than waited for: nothing can complete them any more.
	int err_none;
	_Atomic int peer_gone;
	struct xs_orphan *orphans;

	pthread_t bg;
	int bg_started;
	int bgfd;
	_Atomic int active;
	_Atomic int64_t last_leave;
	_Atomic int bg_stop;
};

// The operations and registration of a zero-copy transfer abandoned when
// the peer went; released after the worker.
typedef struct xs_orphan {
	struct xs_orphan *next;
	xs_op *ops;
	ucp_mem_h memh;
} xs_orphan;

static void *xs_bg_main(void *arg);
static void xs_reap(xs_stream *s, xs_op *op);

static inline int64_t xs_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static void xs_signal_fd(int fd)
{
	uint64_t one = 1;
	ssize_t r = write(fd, &one, sizeof(one));
	(void)r;
}

static void xs_drain(int fd)
{
	uint64_t v;
	ssize_t r = read(fd, &v, sizeof(v));
	(void)r;
}

static void xs_wake(xs_stream *s, int dir, int force)
{
	if (force || atomic_load(&s->sleepers[dir]))
		xs_signal_fd(s->evfd[dir]);
}

/*
 * UCX prints its log (warnings about the host's devices, for one) to stdout
 * unless UCX_LOG_FILE says otherwise, and stdout is where xfer writes --json
 * events and listings that programs parse. This handler, first in UCX's
 * chain, writes UCX's messages to stderr instead, one line each, at the
 * levels UCX_LOG_LEVEL enables.
 */
static ucs_log_func_rc_t xs_log(const char *file, unsigned line,
                                const char *function, ucs_log_level_t level,
                                const ucs_log_component_config_t *comp,
                                const char *format, va_list ap)
{
	(void)file;
	(void)line;
	(void)function;
	if (level > comp->log_level && level != UCS_LOG_LEVEL_PRINT)
		return UCS_LOG_FUNC_RC_STOP;
	char msg[512];
	vsnprintf(msg, sizeof(msg), format, ap);
	const char *name = level < UCS_LOG_LEVEL_LAST ? ucs_log_level_names[level] : "LOG";
	fprintf(stderr, "xfer: UCX %s: %s\n", name, msg);
	return UCS_LOG_FUNC_RC_STOP;
}

static pthread_once_t xs_log_once = PTHREAD_ONCE_INIT;

static void xs_log_install(void) { ucs_log_push_handler(xs_log); }

ucs_status_t xs_ctx_init(ucp_context_h *out, const char *tls)
{
	pthread_once(&xs_log_once, xs_log_install);
	ucp_config_t *cfg;
	ucs_status_t st = ucp_config_read(NULL, NULL, &cfg);
	if (st != UCS_OK)
		return st;
	st = ucp_config_modify(cfg, "TLS", tls);
	if (st != UCS_OK) {
		ucp_config_release(cfg);
		return st;
	}
	ucp_params_t p;
	memset(&p, 0, sizeof(p));
	p.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED |
	               UCP_PARAM_FIELD_NAME;
	p.features = UCP_FEATURE_TAG | UCP_FEATURE_RMA | UCP_FEATURE_WAKEUP;
	p.mt_workers_shared = 1;
	p.name = "xfer";
	st = ucp_init(&p, cfg, out);
	ucp_config_release(cfg);
	return st;
}

void xs_ctx_cleanup(ucp_context_h ctx) { ucp_cleanup(ctx); }

static void xs_send_cb(void *req, ucs_status_t status, void *ud)
{
	xs_op *op = ud;
	(void)req;
	op->status = status;
	atomic_store(&op->state, XS_DONE);
	xs_wake(op->s, op->dir, 0);
}

static void xs_recv_cb(void *req, ucs_status_t status,
                       const ucp_tag_recv_info_t *info, void *ud)
{
	xs_op *op = ud;
	(void)req;
	op->status = status;
	op->len = (status == UCS_OK && info != NULL) ? info->length : 0;
	atomic_store(&op->state, XS_DONE);
	xs_wake(op->s, op->dir, 0);
}

static void xs_err_cb(void *arg, ucp_ep_h ep, ucs_status_t status)
{
	xs_stream *s = arg;
	int ok = UCS_OK;
	(void)ep;
	atomic_compare_exchange_strong(&s->ep_status, &ok, (int)status);
	xs_wake(s, XS_DIR_SEND, 1);
	xs_wake(s, XS_DIR_RECV, 1);
}

ucs_status_t xs_stream_create(ucp_context_h ctx, int nslots,
                              const size_t *sizes, xs_stream **out,
                              void **addr, size_t *addrlen)
{
	ucs_status_t st;
	xs_stream *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return UCS_ERR_NO_MEMORY;
	s->ctx = ctx;
	s->efd = -1;
	s->evfd[0] = s->evfd[1] = -1;
	s->wfd[0] = s->wfd[1] = -1;
	s->bgfd = -1;
	pthread_mutex_init(&s->lk, NULL);
	atomic_init(&s->ep_status, UCS_OK);

	ucp_worker_params_t wp;
	memset(&wp, 0, sizeof(wp));
	wp.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
	wp.thread_mode = UCS_THREAD_MODE_SERIALIZED;
	st = ucp_worker_create(ctx, &wp, &s->w);
	if (st != UCS_OK)
		goto fail;
	st = ucp_worker_get_efd(s->w, &s->efd);
	if (st != UCS_OK)
		goto fail;
	s->evfd[0] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	s->evfd[1] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	s->bgfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->evfd[0] < 0 || s->evfd[1] < 0 || s->bgfd < 0) {
		st = UCS_ERR_IO_ERROR;
		goto fail;
	}
	for (int d = 0; d < 2; d++) {
		s->wfd[d] = epoll_create1(EPOLL_CLOEXEC);
		struct epoll_event ev = {.events = EPOLLIN};
		if (s->wfd[d] < 0 || epoll_ctl(s->wfd[d], EPOLL_CTL_ADD, s->efd, &ev) != 0 ||
		    epoll_ctl(s->wfd[d], EPOLL_CTL_ADD, s->evfd[d], &ev) != 0) {
			st = UCS_ERR_IO_ERROR;
			goto fail;
		}
		fcntl(s->wfd[d], F_SETFL, fcntl(s->wfd[d], F_GETFL) | O_NONBLOCK);
	}

	// One registration covers every slot, so verbs hardware DMAs straight
	// from and into them, and each operation on a slot passes the memh.
	size_t total = 0;
	for (int i = 0; i < nslots; i++)
		total += (sizes[i] + 63) & ~(size_t)63;
	ucp_mem_map_params_t mp;
	memset(&mp, 0, sizeof(mp));
	mp.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS |
	                UCP_MEM_MAP_PARAM_FIELD_LENGTH | UCP_MEM_MAP_PARAM_FIELD_FLAGS;
	mp.address = NULL;
	mp.length = total;
	mp.flags = UCP_MEM_MAP_ALLOCATE;
	st = ucp_mem_map(ctx, &mp, &s->memh);
	if (st != UCS_OK)
		goto fail;
	ucp_mem_attr_t ma;
	memset(&ma, 0, sizeof(ma));
	ma.field_mask = UCP_MEM_ATTR_FIELD_ADDRESS | UCP_MEM_ATTR_FIELD_LENGTH;
	st = ucp_mem_query(s->memh, &ma);
	if (st != UCS_OK)
		goto fail;
	if (ma.length < total) {
		st = UCS_ERR_NO_MEMORY;
		goto fail;
	}
	s->mem = ma.address;
	s->slots = calloc((size_t)nslots, sizeof(xs_op));
	if (s->slots == NULL) {
		st = UCS_ERR_NO_MEMORY;
		goto fail;
	}
	s->nslots = nslots;
	char *b = s->mem;
	for (int i = 0; i < nslots; i++) {
		s->slots[i].s = s;
		s->slots[i].buf = b;
		s->slots[i].cap = sizes[i];
		b += (sizes[i] + 63) & ~(size_t)63;
	}

	ucp_address_t *a;
	size_t alen;
	st = ucp_worker_get_address(s->w, &a, &alen);
	if (st != UCS_OK)
		goto fail;
	*addr = malloc(alen);
	if (*addr == NULL) {
		ucp_worker_release_address(s->w, a);
		st = UCS_ERR_NO_MEMORY;
		goto fail;
	}
	memcpy(*addr, a, alen);
	*addrlen = alen;
	ucp_worker_release_address(s->w, a);
	*out = s;
	return UCS_OK;

fail:
	xs_stream_destroy(s, 0);
	return st;
}

void *xs_slot_buf(xs_stream *s, int i) { return s->slots[i].buf; }

ucs_status_t xs_stream_connect(xs_stream *s, const void *peer, int peer_errors)
{
	ucp_ep_params_t ep;
	memset(&ep, 0, sizeof(ep));
	ep.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS |
	                UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE;
	ep.address = peer;
	if (peer_errors) {
		ep.field_mask |= UCP_EP_PARAM_FIELD_ERR_HANDLER;
		ep.err_mode = UCP_ERR_HANDLING_MODE_PEER;
		ep.err_handler.cb = xs_err_cb;
		ep.err_handler.arg = s;
	} else {
		ep.err_mode = UCP_ERR_HANDLING_MODE_NONE;
		s->err_none = 1;
	}
	pthread_mutex_lock(&s->lk);
	ucs_status_t st = ucp_ep_create(s->w, &ep, &s->ep);
	if (st != UCS_OK)
		s->ep = NULL;
	pthread_mutex_unlock(&s->lk);
	if (st != UCS_OK)
		return st;
	if (pthread_create(&s->bg, NULL, xs_bg_main, s) != 0)
		return UCS_ERR_NO_RESOURCE;
	s->bg_started = 1;
	return UCS_OK;
}

void xs_cancel(xs_stream *s)
{
	atomic_store(&s->cancel, 1);
	xs_wake(s, XS_DIR_SEND, 1);
	xs_wake(s, XS_DIR_RECV, 1);
}

void xs_uncancel(xs_stream *s) { atomic_store(&s->cancel, 0); }

ucs_status_t xs_ep_status(xs_stream *s) { return (ucs_status_t)atomic_load(&s->ep_status); }

size_t xs_ep_info(xs_stream *s, char *buf, size_t n)
{
	if (n == 0)
		return 0;
	buf[0] = 0;
	FILE *f = fmemopen(buf, n, "w");
	if (f == NULL)
		return 0;
	pthread_mutex_lock(&s->lk);
	if (s->ep != NULL)
		ucp_ep_print_info(s->ep, f);
	pthread_mutex_unlock(&s->lk);
	long len = ftell(f);
	fclose(f);
	return len < 0 ? 0 : ((size_t)len < n ? (size_t)len : n - 1);
}

void xs_peer_gone(xs_stream *s)
{
	atomic_store(&s->peer_gone, 1);
	int ok = UCS_OK;
	atomic_compare_exchange_strong(&s->ep_status, &ok, (int)UCS_ERR_CONNECTION_RESET);
	xs_wake(s, XS_DIR_SEND, 1);
	xs_wake(s, XS_DIR_RECV, 1);
}

// Whether op may be left in flight: the peer has gone (error mode none) and
// progress finds nothing more to do, so no data can reach or leave op's
// memory any more. Caller does not hold s->lk.
static int xs_may_orphan(xs_stream *s)
{
	if (!s->err_none || !atomic_load(&s->peer_gone))
		return 0;
	pthread_mutex_lock(&s->lk);
	unsigned n = 0;
	for (int i = 0; i < 1024 && (n = ucp_worker_progress(s->w)) != 0; i++)
		;
	pthread_mutex_unlock(&s->lk);
	return n == 0;
}

static void *xs_bg_main(void *arg)
{
	xs_stream *s = arg;
	while (!atomic_load(&s->bg_stop)) {
		int64_t idle = xs_now_ns() - atomic_load(&s->last_leave);
		if (atomic_load(&s->active) > 0 || idle < XS_BG_HANDOFF_NS) {
			// A caller is progressing, or was a moment ago and likely
			// comes back: park until it has stayed away for a while.
			if (!atomic_load(&s->bg_stop)) {
				// No wake-up when a caller leaves (that would cost a
				// thread switch per message): look again in a while.
				int ms = idle < XS_BG_HANDOFF_NS
				             ? (int)((XS_BG_HANDOFF_NS - idle) / 1000000L) + 1
				             : (int)(XS_BG_HANDOFF_NS / 1000000L);
				struct pollfd pf = {.fd = s->bgfd, .events = POLLIN};
				poll(&pf, 1, ms);
			}
			xs_drain(s->bgfd);
			continue;
		}
		ucs_status_t ast = UCS_ERR_BUSY;
		if (pthread_mutex_trylock(&s->lk) == 0) {
			while (ucp_worker_progress(s->w) != 0)
				;
			ast = ucp_worker_arm(s->w);
			pthread_mutex_unlock(&s->lk);
		}
		if (ast == UCS_ERR_BUSY)
			continue;
		struct pollfd pf[2] = {{.fd = s->efd, .events = POLLIN},
		                       {.fd = s->bgfd, .events = POLLIN}};
		poll(pf, 2, XS_BG_POLL_MS);
		if (pf[1].revents & POLLIN)
			xs_drain(s->bgfd);
	}
	return NULL;
}

// Progresses the worker until op leaves XS_POSTED, the deadline passes,
// the stream is cancelled or the endpoint fails.
static ucs_status_t xs_wait_active(xs_stream *s, xs_op *op, int timeout_ms,
                                   int cancelable, int park)
{
	int64_t start = xs_now_ns();
	int64_t deadline = timeout_ms < 0 ? INT64_MAX : start + (int64_t)timeout_ms * 1000000L;
	int64_t last = start;
	int dir = op->dir;
	for (unsigned iter = 0;; iter++) {
		if (atomic_load(&op->state) != XS_POSTED)
			return UCS_OK;
		if (cancelable && atomic_load(&s->cancel))
			return UCS_ERR_CANCELED;
		ucs_status_t es = (ucs_status_t)atomic_load(&s->ep_status);
		unsigned n = 0;
		int locked = pthread_mutex_trylock(&s->lk) == 0;
		if (locked) {
			n = ucp_worker_progress(s->w);
			pthread_mutex_unlock(&s->lk);
		}
		// A holder of the lock that is not running (preempted on a busy
		// host) must not keep this waiter spinning: time spent failing to
		// take the lock counts against the spin like time without
		// progress, and the sleep below blocks on the lock instead.
		if (locked && es != UCS_OK && n == 0) {
			// Whatever UCX had received before the failure has been
			// progressed: what is still pending will never arrive.
			return atomic_load(&op->state) != XS_POSTED ? UCS_OK : es;
		}
		int64_t now = ((iter & 15) == 0 || n == 0) ? xs_now_ns() : last;
		if (n != 0) {
			last = now;
			continue;
		}
		if (now - last < XS_SPIN_NS)
			continue;
		if (!park && now >= deadline)
			return UCS_ERR_TIMED_OUT;

		// Sleep until the worker has an event, a completion, cancel or
		// error writes our eventfd, or the safety timeout passes.
		atomic_store(&s->sleepers[dir], 1);
		if (atomic_load(&op->state) != XS_POSTED ||
		    (cancelable && atomic_load(&s->cancel)) ||
		    atomic_load(&s->ep_status) != UCS_OK) {
			atomic_store(&s->sleepers[dir], 0);
			continue;
		}
		pthread_mutex_lock(&s->lk);
		ucs_status_t ast = ucp_worker_arm(s->w);
		pthread_mutex_unlock(&s->lk);
		if (ast == UCS_OK && park)
			return UCS_ERR_NO_PROGRESS; // sleepers[dir] stays set
		if (ast == UCS_OK) {
			struct pollfd pf[2] = {{.fd = s->efd, .events = POLLIN},
			                       {.fd = s->evfd[dir], .events = POLLIN}};
			int64_t left_ms = (deadline - now) / 1000000L + 1;
			poll(pf, 2, left_ms < XS_POLL_MS ? (int)left_ms : XS_POLL_MS);
			if (pf[1].revents & POLLIN)
				xs_drain(s->evfd[dir]);
		}
		atomic_store(&s->sleepers[dir], 0);
		last = xs_now_ns();
	}
}

ucs_status_t xs_slot_try(xs_stream *s, int i, int cancelable, size_t *len)
{
	xs_op *op = &s->slots[i];
	int dir = op->dir;
	atomic_store(&s->sleepers[dir], 0);
	xs_drain(s->evfd[dir]);
	if (atomic_load(&op->state) == XS_POSTED) {
		atomic_fetch_add(&s->active, 1);
		ucs_status_t st = xs_wait_active(s, op, 0, cancelable, 1);
		atomic_store(&s->last_leave, xs_now_ns());
		atomic_fetch_sub(&s->active, 1);
		if (st != UCS_OK)
			return st;
	}
	xs_reap(s, op);
	*len = op->len;
	return op->status;
}

int xs_wait_fd(xs_stream *s, int dir) { return s->wfd[dir]; }

int xs_fd_ready(int fd)
{
	struct pollfd pf = {.fd = fd, .events = POLLIN};
	return poll(&pf, 1, 0) > 0;
}

// xs_wait_active with the background thread standing aside.
static ucs_status_t xs_wait(xs_stream *s, xs_op *op, int timeout_ms,
                            int cancelable)
{
	if (atomic_load(&op->state) != XS_POSTED)
		return UCS_OK;
	atomic_fetch_add(&s->active, 1);
	ucs_status_t st = xs_wait_active(s, op, timeout_ms, cancelable, 0);
	atomic_store(&s->last_leave, xs_now_ns());
	atomic_fetch_sub(&s->active, 1);
	return st;
}

// Frees the request of a completed operation.
static void xs_reap(xs_stream *s, xs_op *op)
{
	if (atomic_load(&op->state) != XS_DONE)
		return;
	if (op->req != NULL) {
		pthread_mutex_lock(&s->lk);
		ucp_request_free(op->req);
		pthread_mutex_unlock(&s->lk);
		op->req = NULL;
	}
	atomic_store(&op->state, XS_IDLE);
}

// Posts a send or receive of op. Caller holds s->lk.
static ucs_status_t xs_post_locked(xs_stream *s, xs_op *op, int dir,
                                   uint64_t tag, void *buf, size_t len,
                                   ucp_mem_h memh, int sync)
{
	ucp_request_param_t rp;
	memset(&rp, 0, sizeof(rp));
	rp.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
	if (memh != NULL) {
		rp.op_attr_mask |= UCP_OP_ATTR_FIELD_MEMH;
		rp.memh = memh;
	}
	rp.user_data = op;
	op->dir = dir;
	op->req = NULL;
	op->status = UCS_OK;
	op->len = 0;
	atomic_store(&op->state, XS_POSTED);
	void *req;
	if (dir == XS_DIR_SEND) {
		// Error mode none: UCX would still take eager sends to a peer
		// that is gone (they complete locally), so refuse them here.
		if (s->ep == NULL || atomic_load(&s->peer_gone)) {
			atomic_store(&op->state, XS_IDLE);
			ucs_status_t es = (ucs_status_t)atomic_load(&s->ep_status);
			return es != UCS_OK ? es : UCS_ERR_NOT_CONNECTED;
		}
		rp.cb.send = xs_send_cb;
		req = sync ? ucp_tag_send_sync_nbx(s->ep, buf, len, tag, &rp)
		           : ucp_tag_send_nbx(s->ep, buf, len, tag, &rp);
		if (req == NULL) {
			op->len = len;
			atomic_store(&op->state, XS_IDLE);
			return UCS_OK;
		}
	} else {
		// NO_IMM_CMPL: UCX 1.13 does not report the length of a receive
		// that completes immediately, so always take it from the callback
		// (which then runs inside ucp_tag_recv_nbx).
		rp.op_attr_mask |= UCP_OP_ATTR_FLAG_NO_IMM_CMPL;
		rp.cb.recv = xs_recv_cb;
		req = ucp_tag_recv_nbx(s->w, buf, len, tag, UINT64_MAX, &rp);
	}
	if (UCS_PTR_IS_ERR(req)) {
		atomic_store(&op->state, XS_IDLE);
		return UCS_PTR_STATUS(req);
	}
	op->req = req;
	return UCS_OK;
}

ucs_status_t xs_slot_send(xs_stream *s, int i, uint64_t tag, size_t len, int sync)
{
	xs_op *op = &s->slots[i];
	pthread_mutex_lock(&s->lk);
	ucs_status_t st = xs_post_locked(s, op, XS_DIR_SEND, tag, op->buf, len, s->memh, sync);
	if (st == UCS_OK && op->req != NULL)
		ucp_worker_progress(s->w); // get the transfer going
	pthread_mutex_unlock(&s->lk);
	return st;
}

ucs_status_t xs_slot_recv(xs_stream *s, int i, uint64_t tag)
{
	xs_op *op = &s->slots[i];
	pthread_mutex_lock(&s->lk);
	ucs_status_t st = xs_post_locked(s, op, XS_DIR_RECV, tag, op->buf, op->cap, s->memh, 0);
	pthread_mutex_unlock(&s->lk);
	return st;
}

ucs_status_t xs_slot_wait(xs_stream *s, int i, int timeout_ms, int cancelable,
                          size_t *len)
{
	xs_op *op = &s->slots[i];
	ucs_status_t st = xs_wait(s, op, timeout_ms, cancelable);
	if (st != UCS_OK)
		return st;
	xs_reap(s, op);
	*len = op->len;
	return op->status;
}

// Force-closes the endpoint: UCX completes everything in flight on it.
static void xs_force_close(xs_stream *s)
{
	pthread_mutex_lock(&s->lk);
	ucp_ep_h ep = s->ep;
	s->ep = NULL;
	void *req = NULL;
	if (ep != NULL) {
		ucp_request_param_t rp;
		memset(&rp, 0, sizeof(rp));
		rp.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
		rp.flags = UCP_EP_CLOSE_FLAG_FORCE;
		req = ucp_ep_close_nbx(ep, &rp);
	}
	int ok = UCS_OK;
	atomic_compare_exchange_strong(&s->ep_status, &ok, (int)UCS_ERR_CANCELED);
	while (UCS_PTR_IS_PTR(req) && ucp_request_check_status(req) == UCS_INPROGRESS) {
		ucp_worker_progress(s->w);
	}
	if (UCS_PTR_IS_PTR(req))
		ucp_request_free(req);
	pthread_mutex_unlock(&s->lk);
	xs_wake(s, XS_DIR_SEND, 1);
	xs_wake(s, XS_DIR_RECV, 1);
}

// Progresses until op is no longer in flight, however long that takes: the
// caller's memory must not be handed back to Go while UCX may touch it.
// Returns 0 once it is not; 1 if op was left in flight because the peer
// went (xs_may_orphan), and its memory must then outlive the worker.
static int xs_settle(xs_stream *s, xs_op *op)
{
	while (atomic_load(&op->state) == XS_POSTED) {
		if (xs_may_orphan(s))
			return atomic_load(&op->state) == XS_POSTED;
		pthread_mutex_lock(&s->lk);
		unsigned n = ucp_worker_progress(s->w);
		pthread_mutex_unlock(&s->lk);
		if (n == 0 && atomic_load(&op->state) == XS_POSTED) {
			struct timespec ts = {0, 100000};
			nanosleep(&ts, NULL);
		}
	}
	return 0;
}

// Makes sure no operation of ops[from:to) still refers to caller memory:
// receives not yet matched are cancelled; whatever is still in flight after
// a short grace period is ended by force-closing the endpoint (error mode
// peer) or, in error mode none, where a force close would confuse a live
// peer, waited for until it ends or the peer is gone. Returns 1 if some
// operation was left in flight (xs_settle), 0 if none refers to ops any
// more.
static int xs_abort_ops(xs_stream *s, xs_op *ops, size_t from, size_t to)
{
	for (size_t k = from; k < to; k++) {
		xs_op *op = &ops[k % XS_USER_WINDOW];
		if (op->dir == XS_DIR_RECV && atomic_load(&op->state) == XS_POSTED) {
			pthread_mutex_lock(&s->lk);
			ucp_request_cancel(s->w, op->req);
			pthread_mutex_unlock(&s->lk);
		}
	}
	int64_t deadline = xs_now_ns() + 100 * 1000000L;
	int pending = 0;
	for (size_t k = from; k < to; k++) {
		int64_t left = (deadline - xs_now_ns()) / 1000000L;
		xs_op *op = &ops[k % XS_USER_WINDOW];
		xs_wait(s, op, left > 0 ? (int)left : 0, 0);
		pending |= atomic_load(&op->state) == XS_POSTED;
	}
	if (pending && !s->err_none)
		xs_force_close(s);
	int orphaned = 0;
	for (size_t k = from; k < to; k++) {
		if (xs_settle(s, &ops[k % XS_USER_WINDOW]))
			orphaned = 1;
		else
			xs_reap(s, &ops[k % XS_USER_WINDOW]);
	}
	return orphaned;
}

static ucs_status_t xs_user_xfer(xs_stream *s, int dir, uint64_t tag0, void *p,
                                 size_t len, size_t frag, int cancelable)
{
	if (len == 0)
		return UCS_OK;
	// Register the caller's memory for this call only: nothing stays
	// registered (or cached) once Go may reuse or release it.
	ucp_mem_h memh;
	ucp_mem_map_params_t mp;
	memset(&mp, 0, sizeof(mp));
	mp.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
	mp.address = p;
	mp.length = len;
	ucs_status_t err = ucp_mem_map(s->ctx, &mp, &memh);
	if (err != UCS_OK)
		return err;
	// On the heap: when the peer goes in error mode none, operations may
	// stay in flight past this call (xs_abort_ops).
	xs_op *ops = calloc(XS_USER_WINDOW, sizeof(xs_op));
	if (ops == NULL) {
		ucp_mem_unmap(s->ctx, memh);
		return UCS_ERR_NO_MEMORY;
	}
	int orphaned = 0;
	for (int k = 0; k < XS_USER_WINDOW; k++)
		ops[k].s = s;
	size_t nfrag = (len + frag - 1) / frag, next = 0, done = 0;
	while (done < nfrag) {
		while (err == UCS_OK && next < nfrag && next - done < XS_USER_WINDOW) {
			size_t off = next * frag, n = len - off < frag ? len - off : frag;
			pthread_mutex_lock(&s->lk);
			err = xs_post_locked(s, &ops[next % XS_USER_WINDOW], dir, tag0 + next,
			                     (char *)p + off, n, memh, dir == XS_DIR_SEND);
			if (err == UCS_OK && dir == XS_DIR_SEND)
				ucp_worker_progress(s->w);
			pthread_mutex_unlock(&s->lk);
			if (err == UCS_OK)
				next++;
		}
		if (done == next)
			break;
		xs_op *op = &ops[done % XS_USER_WINDOW];
		ucs_status_t st = xs_wait(s, op, -1, cancelable);
		if (st == UCS_OK) {
			xs_reap(s, op);
			st = op->status;
			if (st == UCS_OK && dir == XS_DIR_RECV &&
			    op->len != (len - done * frag < frag ? len - done * frag : frag))
				st = UCS_ERR_MESSAGE_TRUNCATED;
		}
		if (st != UCS_OK) {
			err = st;
			orphaned = xs_abort_ops(s, ops, done, next);
			break;
		}
		done++;
	}
	if (orphaned) {
		xs_orphan *o = malloc(sizeof(*o));
		if (o != NULL) {
			o->ops = ops;
			o->memh = memh;
			pthread_mutex_lock(&s->lk);
			o->next = s->orphans;
			s->orphans = o;
			pthread_mutex_unlock(&s->lk);
		}
		// Without the record, the operations and registration leak:
		// releasing them while UCX may still refer to them would be worse.
		return err;
	}
	free(ops);
	ucp_mem_unmap(s->ctx, memh);
	return err;
}

ucs_status_t xs_send_user(xs_stream *s, uint64_t tag0, const void *p,
                          size_t len, size_t frag, int cancelable)
{
	return xs_user_xfer(s, XS_DIR_SEND, tag0, (void *)p, len, frag, cancelable);
}

ucs_status_t xs_recv_user(xs_stream *s, uint64_t tag0, void *p, size_t len,
                          size_t frag, int cancelable)
{
	return xs_user_xfer(s, XS_DIR_RECV, tag0, p, len, frag, cancelable);
}

// Progresses until req completes or the deadline passes; frees it if done.
static void xs_wait_req(xs_stream *s, void *req, int timeout_ms)
{
	int64_t deadline = xs_now_ns() + (int64_t)timeout_ms * 1000000L;
	for (;;) {
		pthread_mutex_lock(&s->lk);
		ucp_worker_progress(s->w);
		int done = ucp_request_check_status(req) != UCS_INPROGRESS;
		if (done)
			ucp_request_free(req);
		pthread_mutex_unlock(&s->lk);
		if (done || xs_now_ns() > deadline)
			return;
	}
}

// Receives, into the last (largest) slot, and drops the messages that
// arrived but were never asked for, so that UCX does not warn about each
// one when the worker goes. Bounded: a message whose data would still have
// to come from the (closed) endpoint fails at once.
static void xs_drain_unexpected(xs_stream *s)
{
	if (s->slots == NULL)
		return;
	xs_op *op = &s->slots[s->nslots - 1];
	if (atomic_load(&op->state) != XS_IDLE)
		return;
	for (int i = 0; i < 4096; i++) {
		ucp_tag_recv_info_t info;
		pthread_mutex_lock(&s->lk);
		ucp_tag_message_h m = ucp_tag_probe_nb(s->w, 0, 0, 1, &info);
		void *req = NULL;
		if (m != NULL) {
			ucp_request_param_t rp;
			memset(&rp, 0, sizeof(rp));
			rp.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA |
			                  UCP_OP_ATTR_FIELD_MEMH | UCP_OP_ATTR_FLAG_NO_IMM_CMPL;
			rp.cb.recv = xs_recv_cb;
			rp.user_data = op;
			rp.memh = s->memh;
			op->dir = XS_DIR_RECV;
			op->req = NULL;
			atomic_store(&op->state, XS_POSTED);
			req = ucp_tag_msg_recv_nbx(s->w, op->buf, op->cap, m, &rp);
			if (UCS_PTR_IS_ERR(req))
				atomic_store(&op->state, XS_IDLE);
			else
				op->req = req;
		}
		pthread_mutex_unlock(&s->lk);
		if (m == NULL || UCS_PTR_IS_ERR(req))
			return;
		xs_wait(s, op, 1000, 0);
		if (atomic_load(&op->state) == XS_POSTED && xs_settle(s, op))
			return; // the slot outlives the worker
		xs_reap(s, op);
	}
}

void xs_stream_destroy(xs_stream *s, int close_ms)
{
	if (s == NULL)
		return;
	if (s->bg_started) {
		atomic_store(&s->bg_stop, 1);
		xs_signal_fd(s->bgfd);
		pthread_join(s->bg, NULL);
		s->bg_started = 0;
	}
	if (s->w != NULL) {
		if (s->ep != NULL) {
			ucp_request_param_t rp;
			memset(&rp, 0, sizeof(rp));
			// In error mode none a force close may cause transport
			// errors at a live peer, which that mode treats as fatal:
			// flush instead (bounded), unless the peer is gone.
			int force = close_ms <= 0 || atomic_load(&s->ep_status) != UCS_OK;
			if (s->err_none && !atomic_load(&s->peer_gone)) {
				force = 0;
				if (close_ms <= 0)
					close_ms = 1000;
			}
			if (force) {
				rp.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
				rp.flags = UCP_EP_CLOSE_FLAG_FORCE;
			}
			pthread_mutex_lock(&s->lk);
			void *req = ucp_ep_close_nbx(s->ep, &rp);
			s->ep = NULL;
			pthread_mutex_unlock(&s->lk);
			if (UCS_PTR_IS_PTR(req))
				xs_wait_req(s, req, force ? 1000 : close_ms);
		}
		xs_drain_unexpected(s);
		// Cancel the receives still posted so no request refers to a slot.
		for (int i = 0; s->slots != NULL && i < s->nslots; i++) {
			xs_op *op = &s->slots[i];
			if (atomic_load(&op->state) == XS_POSTED) {
				if (op->dir == XS_DIR_RECV) {
					pthread_mutex_lock(&s->lk);
					ucp_request_cancel(s->w, op->req);
					pthread_mutex_unlock(&s->lk);
				}
				xs_wait(s, op, 1000, 0);
			}
			xs_reap(s, op);
		}
		// Anything left is released by the worker; its callbacks may still
		// run, so the slots outlive the worker.
		ucp_worker_destroy(s->w);
		s->w = NULL;
	}
	while (s->orphans != NULL) {
		xs_orphan *o = s->orphans;
		s->orphans = o->next;
		ucp_mem_unmap(s->ctx, o->memh);
		free(o->ops);
		free(o);
	}
	if (s->memh != NULL)
		ucp_mem_unmap(s->ctx, s->memh);
	for (int d = 0; d < 2; d++) {
		if (s->evfd[d] >= 0)
			close(s->evfd[d]);
		if (s->wfd[d] >= 0)
			close(s->wfd[d]);
	}
	if (s->bgfd >= 0)
		close(s->bgfd);
	free(s->slots);
	pthread_mutex_destroy(&s->lk);
	free(s);
}
