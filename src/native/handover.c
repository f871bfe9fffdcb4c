/*
 * Passing established connections between processes: a SOCK_SEQPACKET socketpair (each message
 * arrives whole, in order, and the end of the peer is seen), sendmsg(2) with SCM_RIGHTS and a
 * payload, recvmsg(2) returning both, and the byte counts of a socket's kernel queues.
 *
 * Syscalls in, facts out, as in sd_activate.c: what a message means, when to send it and what
 * to do with a connection is decided in TypeScript. One exception to "facts only": fds that
 * arrive with a control message the kernel had to cut (MSG_CTRUNC, when this process ran out of
 * fds) are closed here, since a batch that lost some of its fds cannot be matched with its
 * payload, and fds nobody can name would leak.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "napi_util.h"

#ifndef SCM_MAX_FD
#define SCM_MAX_FD 253
#endif
/* linux/sockios.h names them, but musl's toolchain has no kernel headers: they are the tty ioctls'
 * numbers (include/uapi/linux/sockios.h). */
#ifndef SIOCINQ
#define SIOCINQ FIONREAD
#endif
#ifndef SIOCOUTQ
#define SIOCOUTQ TIOCOUTQ
#endif

/* seqpacketPair() -> [fd, fd]: close-on-exec (a child gets one only when it is passed on purpose). */
static napi_value seqpacket_pair(napi_env env, napi_callback_info info) {
  napi_value out, a, b;
  int fds[2];
  (void)info;
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0) return throw_errno(env, errno, "socketpair");
  if (napi_create_array_with_length(env, 2, &out) != napi_ok || napi_create_int32(env, fds[0], &a) != napi_ok ||
      napi_create_int32(env, fds[1], &b) != napi_ok || napi_set_element(env, out, 0, a) != napi_ok ||
      napi_set_element(env, out, 1, b) != napi_ok) {
    close(fds[0]);
    close(fds[1]);
    return NULL;
  }
  return out;
}

/*
 * sendFds(fd, payload, fds) -> bytes sent. One sendmsg(2) on a connected socket, MSG_NOSIGNAL
 * (a peer that is gone is EPIPE, not a signal) and MSG_DONTWAIT (a full socket is EAGAIN, for
 * the caller to wait on, never a blocked event loop). At most SCM_MAX_FD fds (else E2BIG, as
 * notifySend); an empty payload is refused, because a zero-length message would read as the
 * end of the peer on the other side.
 */
static napi_value send_fds(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd;
  bool is_buffer, is_array;
  void *data;
  size_t len;
  uint32_t n_fds;
  int fds[SCM_MAX_FD];
  union {
    struct cmsghdr align;
    char bytes[CMSG_SPACE(sizeof(int) * SCM_MAX_FD)];
  } control;
  struct iovec iov;
  struct msghdr mh;
  ssize_t sent;

  if (!get_fd_args(env, info, 3, argv, &fd))
    return throw_type(env, "sendFds(fd, payload, fds) takes an fd, a Buffer and an array of fds");
  if (napi_is_buffer(env, argv[1], &is_buffer) != napi_ok || !is_buffer || napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok)
    return throw_type(env, "payload must be a Buffer");
  if (len == 0) return throw_type(env, "payload must not be empty");
  if (napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[2], &n_fds) != napi_ok)
    return throw_type(env, "fds must be an array of integers");
  if (n_fds > SCM_MAX_FD) return throw_errno(env, E2BIG, "sendmsg");
  for (uint32_t i = 0; i < n_fds; i++) {
    napi_value el;
    int32_t one;
    if (napi_get_element(env, argv[2], i, &el) != napi_ok || !get_int32(env, el, &one) || one < 0) return throw_type(env, "fds must be integers");
    fds[i] = one;
  }

  memset(&mh, 0, sizeof(mh));
  iov.iov_base = data;
  iov.iov_len = len;
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (n_fds > 0) {
    struct cmsghdr *cmsg;
    memset(&control, 0, sizeof(control));
    mh.msg_control = control.bytes;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
    cmsg = CMSG_FIRSTHDR(&mh);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
    memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * n_fds);
  }
  do {
    sent = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) return throw_errno(env, errno, "sendmsg");
  napi_value out;
  CHECK(napi_create_int64(env, sent, &out));
  return out;
}

/*
 * receiveFds(fd) -> { data, fds, truncated, controlTruncated } | null: one message
 * (recv_message.c), null when nothing is queued. An empty `data` is the end of the peer. With
 * controlTruncated, the fds that did arrive have been closed and `fds` is empty.
 */
static napi_value receive_fds(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  int32_t fd;
  int status;
  union {
    struct cmsghdr align;
    char bytes[CMSG_SPACE(sizeof(int) * SCM_MAX_FD)];
  } control;
  received_message m;

  if (!get_fd_args(env, info, 1, argv, &fd))
    return throw_type(env, "fd must be an integer");
  status = recv_message(env, fd, SIZE_MAX, control.bytes, sizeof(control.bytes), &m);
  if (status < 0) return NULL;
  if (status == 0) {
    CHECK(napi_get_null(env, &result));
    return result;
  }
  if (m.flags & MSG_CTRUNC) {
    close_fds(m.fds, m.n_fds);
    m.n_fds = 0;
  }
  return received_object(env, &m);
}

/* One ioctl(2) that reports a byte count of a socket's queue. */
static napi_value queue_bytes(napi_env env, napi_callback_info info, unsigned long request) {
  napi_value argv[1], out;
  int32_t fd;
  int n = 0;
  if (!get_fd_args(env, info, 1, argv, &fd))
    return throw_type(env, "fd must be an integer");
  if (ioctl(fd, request, &n) < 0) return throw_errno(env, errno, "ioctl");
  CHECK(napi_create_int32(env, n, &out));
  return out;
}

/* inq(fd): SIOCINQ, the bytes received and not read yet (for a stream socket). */
static napi_value inq(napi_env env, napi_callback_info info) { return queue_bytes(env, info, SIOCINQ); }

/* outq(fd): SIOCOUTQ, the bytes written and not yet acknowledged by a TCP peer; for a unix socket
 * the kernel counts the memory of the buffers the peer has not read, not bytes. */
static napi_value outq(napi_env env, napi_callback_info info) { return queue_bytes(env, info, SIOCOUTQ); }

/* dup(fd) -> a new fd for the same open socket, close-on-exec (fcntl F_DUPFD_CLOEXEC): a listening
 * socket kept open while the Node server on the original closes, to listen on it again. */
static napi_value do_dup(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  int32_t fd;
  int copy;
  if (!get_fd_args(env, info, 1, argv, &fd))
    return throw_type(env, "fd must be an integer");
  copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (copy < 0) return throw_errno(env, errno, "fcntl");
  CHECK(napi_create_int32(env, copy, &out));
  return out;
}

/* Called from sd_activate.c's init: adds this file's functions to the addon's exports. */
napi_status handover_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      EXPORT_FUNCTION("seqpacketPair", seqpacket_pair),
      EXPORT_FUNCTION("sendFds", send_fds),
      EXPORT_FUNCTION("receiveFds", receive_fds),
      EXPORT_FUNCTION("inq", inq),
      EXPORT_FUNCTION("outq", outq),
      EXPORT_FUNCTION("dup", do_dup),
  };
  return DEFINE_EXPORTS(env, exports, props);
}
