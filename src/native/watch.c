/*
 * Waiting on sockets without Node's event loop, for `sd-activate run --lazy` and `--accept`.
 *
 * The listening sockets a supervisor hands to its children must never be registered in the
 * supervisor's own loop (Node would accept on them too). So readiness is waited for here, with
 * a plain poll(2) on a libuv worker thread, and a connection is accepted with accept4(2) only
 * when the supervisor means to pass it on. A pipe's read end in the set lets the caller wake the
 * poll early: writing one byte to its other end cancels the wait.
 *
 * Syscalls only, as in sd_activate.c: errors come back as { errno, syscall }.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "napi_util.h"

#define MAX_POLL_FDS 1024

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  struct pollfd fds[MAX_POLL_FDS];
  nfds_t n;
  int timeout;
  int result;
  int err;
} poll_job;

static void poll_execute(napi_env env, void *data) {
  poll_job *job = data;
  (void)env;
  do {
    job->result = poll(job->fds, job->n, job->timeout);
  } while (job->result < 0 && errno == EINTR);
  job->err = job->result < 0 ? errno : 0;
}

/* Resolves with the fds that have any event (POLLIN, or POLLHUP/POLLERR, which a reader must
 * see too: a closed FIFO writer or a socket error is a reason to wake up). */
static void poll_complete(napi_env env, napi_status status, void *data) {
  poll_job *job = data;
  napi_value out;
  if (status != napi_ok || job->result < 0) {
    napi_reject_deferred(env, job->deferred, errno_error(env, status != napi_ok ? ECANCELED : job->err, "poll"));
  } else {
    uint32_t k = 0;
    napi_create_array(env, &out);
    for (nfds_t i = 0; i < job->n; i++) {
      if (job->fds[i].revents == 0) continue;
      napi_value fd;
      napi_create_int32(env, job->fds[i].fd, &fd);
      napi_set_element(env, out, k++, fd);
    }
    napi_resolve_deferred(env, job->deferred, out);
  }
  napi_delete_async_work(env, job->work);
  free(job);
}

/* pollReadable(fds, timeoutMs[, hangupOnly]) -> Promise<number[]>; timeoutMs -1 waits for ever.
 * The fds listed in hangupOnly are polled with no events: only POLLHUP/POLLERR wake for them, as
 * systemd watches the fds in its fd store. */
static napi_value poll_readable(napi_env env, napi_callback_info info) {
  napi_value argv[3], promise, name;
  size_t argc = 3;
  bool is_array;
  uint32_t n, n_hup = 0;
  int32_t timeout;
  poll_job *job;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) goto bad;
  if (napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array) goto bad;
  if (napi_get_array_length(env, argv[0], &n) != napi_ok || n == 0 || n > MAX_POLL_FDS) goto bad;
  if (!get_int32(env, argv[1], &timeout)) goto bad;
  job = calloc(1, sizeof(*job));
  if (!job) {
    napi_throw(env, errno_error(env, ENOMEM, "poll"));
    return NULL;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value el;
    int32_t fd;
    if (napi_get_element(env, argv[0], i, &el) != napi_ok || !get_int32(env, el, &fd) || fd < 0) {
      free(job);
      goto bad;
    }
    job->fds[i].fd = fd;
    job->fds[i].events = POLLIN;
  }
  if (argc >= 3) {
    napi_valuetype vt;
    if (napi_typeof(env, argv[2], &vt) != napi_ok) goto bad_job;
    if (vt != napi_undefined) {
      if (napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[2], &n_hup) != napi_ok) goto bad_job;
      for (uint32_t k = 0; k < n_hup; k++) {
        napi_value el;
        int32_t fd;
        if (napi_get_element(env, argv[2], k, &el) != napi_ok || !get_int32(env, el, &fd)) goto bad_job;
        for (uint32_t i = 0; i < n; i++)
          if (job->fds[i].fd == fd) job->fds[i].events = 0;
      }
    }
  }
  job->n = n;
  job->timeout = timeout;
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "sd-activate:poll", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, poll_execute, poll_complete, job, &job->work) != napi_ok ||
      napi_queue_async_work(env, job->work) != napi_ok) {
    free(job);
    return NULL;
  }
  return promise;
bad_job:
  free(job);
bad:
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "pollReadable(fds, timeoutMs[, hangupOnly]) takes 1 to 1024 fds, an integer and fds");
  return NULL;
}

/* accept(fd) -> the connected fd, close-on-exec (systemd's Accept=yes does the same). */
static napi_value do_accept(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  int32_t fd;
  int conn;
  if (!get_fd_args(env, info, 1, argv, &fd)) return throw_type(env, "fd must be an integer");
  do {
    conn = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
  } while (conn < 0 && errno == EINTR);
  if (conn < 0) {
    napi_throw(env, errno_error(env, errno, "accept4"));
    return NULL;
  }
  if (napi_create_int32(env, conn, &out) != napi_ok) return NULL;
  return out;
}

/* Called from sd_activate.c's init: adds this file's functions to the addon's exports. */
napi_status sd_watch_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      EXPORT_FUNCTION("pollReadable", poll_readable),
      EXPORT_FUNCTION("accept", do_accept),
  };
  return DEFINE_EXPORTS(env, exports, props);
}
