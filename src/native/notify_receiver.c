/*
 * The receiving end of sd_notify(3): what a service manager does with its
 * notify socket, for tests and for running services outside systemd.
 *
 * Syscalls in, facts out, as in sd_activate.c: a bound AF_UNIX datagram
 * socket with SO_PASSCRED, one recvmsg() per call returning the bytes, the
 * fds and the sender's credentials, and a libuv poll watcher so that Node
 * hears about a readable socket without a thread or a blocked loop. Nothing
 * here parses a message.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include "napi_util.h"
#include <uv.h>

#ifndef SCM_MAX_FD
#define SCM_MAX_FD 253
#endif

/* notifyReceiverOpen(sockaddr) -> fd: socket, SO_PASSCRED and bind in one
 * call, so that a failed bind leaves no fd behind. Non-blocking, because
 * the only reader is the event loop; close-on-exec, because a child has no
 * business reading a service manager's messages. SO_PASSCRED is set before
 * bind so that no datagram can arrive without the sender's credentials. */
static napi_value receiver_open(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc = 1;
  bool is_buffer;
  void *addr;
  size_t addr_len;
  int fd, one = 1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return throw_type(env, "notifyReceiverOpen takes a sockaddr Buffer");
  if (napi_is_buffer(env, argv[0], &is_buffer) != napi_ok || !is_buffer || napi_get_buffer_info(env, argv[0], &addr, &addr_len) != napi_ok)
    return throw_type(env, "sockaddr must be a Buffer");
  fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return throw_errno(env, errno, "socket");
  if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, "setsockopt");
  }
  if (bind(fd, addr, (socklen_t)addr_len) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, "bind");
  }
  napi_value out;
  CHECK(napi_create_int32(env, fd, &out));
  return out;
}

/* notifyReceive(fd, maxBytes) -> { data, size, fds, pid, uid, gid, truncated, controlTruncated } | null.
 * null when nothing is queued (EAGAIN). `data` holds at most maxBytes of the datagram, `size` is
 * its whole length: a reader that drops what is too long never has to hold it. The received fds
 * are the caller's to close; they come close-on-exec (MSG_CMSG_CLOEXEC), like systemd's own. */
static napi_value receiver_receive(napi_env env, napi_callback_info info) {
  napi_value argv[2], result;
  int fd, status;
  int32_t max;
  union {
    struct cmsghdr align;
    char bytes[CMSG_SPACE(sizeof(int) * SCM_MAX_FD) + CMSG_SPACE(sizeof(struct ucred))];
  } control;
  received_message m;

  if (!get_fd_args(env, info, 2, argv, &fd) ||
      !get_int32(env, argv[1], &max) || max < 0)
    return throw_type(env, "notifyReceive(fd, maxBytes) takes an fd and a byte count");
  status = recv_message(env, fd, (size_t)max, control.bytes, sizeof(control.bytes), &m);
  if (status < 0) return NULL;
  if (status == 0) {
    CHECK(napi_get_null(env, &result));
    return result;
  }
  result = received_object(env, &m);
  if (!result) return NULL;
  if (!set_int(env, result, "size", (int64_t)m.size) || (m.cred && (!set_int(env, result, "pid", m.cred->pid) || !set_int(env, result, "uid", m.cred->uid) || !set_int(env, result, "gid", m.cred->gid)))) {
    close_fds(m.fds, m.n_fds);
    return NULL;
  }
  return result;
}

/*
 * A uv_poll_t on the receiver's fd. Its memory has two owners: the libuv
 * handle (until its close callback) and the JS external that names it
 * (until garbage collected). It is freed when both are done, so that a
 * second unwatch() or a late ref() from JS finds a closed watcher, not
 * freed memory.
 */
typedef struct watcher {
  uv_poll_t poll;
  napi_env env;
  int fd;
  napi_ref callback;
  napi_async_context async_context;
  napi_async_cleanup_hook_handle cleanup;
  int closing;      /* uv_close() called */
  int handle_done;  /* its close callback ran */
  int external_gone;
} watcher;

static void watcher_maybe_free(watcher *w) {
  if (w->handle_done && w->external_gone) free(w);
}

static void watcher_closed(uv_handle_t *handle) {
  watcher *w = (watcher *)handle->data;
  if (w->callback) napi_delete_reference(w->env, w->callback);
  w->callback = NULL;
  if (w->async_context) napi_async_destroy(w->env, w->async_context);
  w->async_context = NULL;
  if (w->cleanup) napi_remove_async_cleanup_hook(w->cleanup);
  w->cleanup = NULL;
  w->handle_done = 1;
  watcher_maybe_free(w);
}

static void watcher_close(watcher *w) {
  if (w->closing) return;
  w->closing = 1;
  /* uv_close() stops the poll and takes the fd out of epoll right away, so
   * the caller may close the fd as soon as this returns. */
  uv_close((uv_handle_t *)&w->poll, watcher_closed);
}

/* The environment is going away (a worker ends, the process exits) with the
 * watcher still open: close it so the loop can finish, and the socket with
 * it, since the JS code that would have closed it will never run again (a
 * worker's fds are the process's, and would outlive it). */
static void watcher_env_cleanup(napi_async_cleanup_hook_handle handle, void *arg) {
  watcher *w = (watcher *)arg;
  (void)handle;
  if (w->closing) return;
  watcher_close(w);
  close(w->fd);
}

static void watcher_external_gone(napi_env env, void *data, void *hint) {
  watcher *w = (watcher *)data;
  (void)env;
  (void)hint;
  w->external_gone = 1;
  watcher_maybe_free(w);
}

static void watcher_ready(uv_poll_t *poll, int status, int events) {
  watcher *w = (watcher *)poll->data;
  napi_env env = w->env;
  napi_handle_scope scope;
  napi_value callback, recv, args[2], ignored;
  if (w->closing || !w->callback) return;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  if (napi_get_reference_value(env, w->callback, &callback) == napi_ok && callback &&
      napi_get_global(env, &recv) == napi_ok /* napi_make_callback needs an object */ &&
      napi_create_int32(env, status < 0 ? -status : 0, &args[0]) == napi_ok && napi_create_int32(env, status < 0 ? 0 : events, &args[1]) == napi_ok) {
    /* napi_make_callback, not napi_call_function: it runs the microtasks and
     * nextTicks the callback queued, as after any other I/O callback. */
    napi_make_callback(env, w->async_context, recv, callback, 2, args, &ignored);
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
      napi_value error;
      /* A throwing listener must reach 'uncaughtException', as it would
       * from a socket's 'data' handler, not vanish here. */
      if (napi_get_and_clear_last_exception(env, &error) == napi_ok) napi_fatal_exception(env, error);
    }
  }
  napi_close_handle_scope(env, scope);
}

static watcher *get_watcher(napi_env env, napi_value value) {
  napi_valuetype type;
  void *data;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_external) return NULL;
  if (napi_get_value_external(env, value, &data) != napi_ok) return NULL;
  return (watcher *)data;
}

/* watchReadable(fd, callback(errno, events)) -> watcher. callback(0, events)
 * each time the fd is readable (level-triggered: until it has been drained;
 * events is libuv's mask, UV_READABLE 1 and UV_WRITABLE 2), callback(errno, 0)
 * when polling failed (libuv reports a socket error, POLLERR, as EBADF, and
 * stops the watcher). The watcher keeps the loop alive until unref'd. If the
 * environment ends while it still watches, the fd is closed with it. One
 * watcher per fd: libuv refuses a second (EEXIST); watchEvents() changes what
 * the one there waits for. */
static napi_value watch_fd(napi_env env, napi_callback_info info, int events) {
  napi_value argv[2], name, external;
  int fd;
  napi_valuetype type;
  uv_loop_t *loop;
  watcher *w;
  int err;

  if (!get_fd_args(env, info, 2, argv, &fd))
    return throw_type(env, "watchReadable(fd, callback) takes an integer and a function");
  if (napi_typeof(env, argv[1], &type) != napi_ok || type != napi_function) return throw_type(env, "callback must be a function");
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return NULL;

  w = calloc(1, sizeof(*w));
  if (!w) return throw_errno(env, ENOMEM, "uv_poll_init");
  w->env = env;
  w->fd = fd;
  err = uv_poll_init(loop, &w->poll, fd);
  if (err < 0) {
    free(w);
    return throw_errno(env, -err, "uv_poll_init");
  }
  w->poll.data = w;
  /* From here a failure closes the handle, and the close callback frees w
   * once the external is known to be gone too. */
  w->external_gone = 1;
  if (napi_create_reference(env, argv[1], 1, &w->callback) != napi_ok ||
      napi_create_string_utf8(env, "NotifyReceiver", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &w->async_context) != napi_ok ||
      napi_add_async_cleanup_hook(env, watcher_env_cleanup, w, &w->cleanup) != napi_ok) {
    watcher_close(w);
    return NULL;
  }
  err = uv_poll_start(&w->poll, events, watcher_ready);
  if (err < 0) {
    watcher_close(w);
    return throw_errno(env, -err, "uv_poll_start");
  }
  if (napi_create_external(env, w, watcher_external_gone, NULL, &external) != napi_ok) {
    watcher_close(w);
    return NULL;
  }
  w->external_gone = 0;
  return external;
}

static napi_value watch_readable(napi_env env, napi_callback_info info) { return watch_fd(env, info, UV_READABLE); }

/* watchEvents(watcher, readable, writable): what the watcher waits for from now on (uv_poll_start
 * again on the same handle, as libuv allows). Nothing to do on a closed watcher. */
static napi_value watch_events(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  size_t argc = 3;
  bool readable, writable;
  watcher *w;
  int err;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 || !(w = get_watcher(env, argv[0])) ||
      napi_get_value_bool(env, argv[1], &readable) != napi_ok || napi_get_value_bool(env, argv[2], &writable) != napi_ok)
    return throw_type(env, "watchEvents takes a watcher and two booleans");
  if (w->closing) return NULL;
  err = readable || writable ? uv_poll_start(&w->poll, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0), watcher_ready) : uv_poll_stop(&w->poll);
  if (err < 0) return throw_errno(env, -err, "uv_poll_start");
  return NULL;
}

/* unwatch(watcher): stops polling; the fd may be closed right after. Idempotent. */
static napi_value unwatch(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc = 1;
  watcher *w;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || !(w = get_watcher(env, argv[0])))
    return throw_type(env, "unwatch takes a watcher");
  watcher_close(w);
  return NULL;
}

/* watchRef(watcher, on): whether the watcher keeps the event loop alive. */
static napi_value watch_ref(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc = 2;
  bool on;
  watcher *w;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 || !(w = get_watcher(env, argv[0])))
    return throw_type(env, "watchRef takes a watcher and a boolean");
  if (napi_get_value_bool(env, argv[1], &on) != napi_ok) return throw_type(env, "on must be a boolean");
  if (w->closing) return NULL;
  if (on)
    uv_ref((uv_handle_t *)&w->poll);
  else
    uv_unref((uv_handle_t *)&w->poll);
  return NULL;
}

/* Called from sd_activate.c's init: adds this file's functions to the exports. */
napi_status notify_receiver_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      EXPORT_FUNCTION("notifyReceiverOpen", receiver_open),
      EXPORT_FUNCTION("notifyReceive", receiver_receive),
      EXPORT_FUNCTION("watchReadable", watch_readable),
      EXPORT_FUNCTION("watchEvents", watch_events),
      EXPORT_FUNCTION("unwatch", unwatch),
      EXPORT_FUNCTION("watchRef", watch_ref),
  };
  return DEFINE_EXPORTS(env, exports, props);
}
