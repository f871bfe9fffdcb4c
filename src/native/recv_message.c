/*
 * Reading one whole message with its fds, as both receivers of the addon do (notify_receiver.c
 * for sd_notify datagrams, handover.c for the hand-over's seqpacket messages): its exact length
 * peeked first, so the bytes land in a Buffer of their size with no copy, up to a limit the caller
 * sets (a reader that drops what is too long never has to hold it); recvmsg(2) with MSG_DONTWAIT
 * and MSG_CMSG_CLOEXEC; the fds and credentials found in it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "napi_util.h"

void close_fds(const int *fds, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int one;
    memcpy(&one, fds + i, sizeof(one));
    close(one);
  }
}

int recv_message(napi_env env, int fd, size_t max, void *control, size_t control_len, received_message *out) {
  ssize_t want, got;
  size_t room;
  void *buf = NULL;
  struct iovec iov;
  struct msghdr mh;
  struct cmsghdr *cmsg;

  memset(out, 0, sizeof(*out));
  /* MSG_TRUNC makes a datagram or seqpacket recv() return the real length; MSG_PEEK leaves it queued. */
  do {
    want = recv(fd, NULL, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
  } while (want < 0 && errno == EINTR);
  if (want < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    throw_errno(env, errno, "recv");
    return -1;
  }
  room = (size_t)want < max ? (size_t)want : max;
  if (napi_create_buffer(env, room, &buf, &out->data) != napi_ok) return -1;

  memset(&mh, 0, sizeof(mh));
  iov.iov_base = buf;
  iov.iov_len = room;
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = control;
  mh.msg_controllen = control_len;
  /* MSG_TRUNC: the whole length again, however much of it fits. */
  do {
    got = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
  } while (got < 0 && errno == EINTR);
  if (got < 0) {
    /* Another reader of the same fd took it between the peek and here. */
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    throw_errno(env, errno, "recvmsg");
    return -1;
  }
  for (cmsg = CMSG_FIRSTHDR(&mh); cmsg; cmsg = CMSG_NXTHDR(&mh, cmsg)) {
    if (cmsg->cmsg_level != SOL_SOCKET) continue;
    if (cmsg->cmsg_type == SCM_RIGHTS) {
      out->fds = (int *)CMSG_DATA(cmsg);
      out->n_fds = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    } else if (cmsg->cmsg_type == SCM_CREDENTIALS && cmsg->cmsg_len == CMSG_LEN(sizeof(struct ucred))) {
      out->cred = (struct ucred *)CMSG_DATA(cmsg);
    }
  }
  out->flags = mh.msg_flags;
  out->size = (size_t)got;
  if ((size_t)got < room) {
    /* Never shorter than peeked unless a second reader raced this one: keep what came, not zeros. */
    napi_value shorter;
    void *ignored;
    if (napi_create_buffer_copy(env, (size_t)got, buf, &ignored, &shorter) != napi_ok) {
      close_fds(out->fds, out->n_fds);
      return -1;
    }
    out->data = shorter;
  }
  return 1;
}

napi_value received_object(napi_env env, const received_message *m) {
  napi_value result, fd_array, flag;
  /* The fds are this process's: close them all if the object cannot be built. */
  if (napi_create_array_with_length(env, m->n_fds, &fd_array) != napi_ok) goto fail;
  for (size_t i = 0; i < m->n_fds; i++) {
    napi_value v;
    int one;
    memcpy(&one, m->fds + i, sizeof(one));
    if (napi_create_int32(env, one, &v) != napi_ok || napi_set_element(env, fd_array, (uint32_t)i, v) != napi_ok) goto fail;
  }
  if (napi_create_object(env, &result) != napi_ok) goto fail;
  if (napi_set_named_property(env, result, "data", m->data) != napi_ok || napi_set_named_property(env, result, "fds", fd_array) != napi_ok) goto fail;
  if (napi_get_boolean(env, (m->flags & MSG_TRUNC) != 0, &flag) != napi_ok || napi_set_named_property(env, result, "truncated", flag) != napi_ok) goto fail;
  if (napi_get_boolean(env, (m->flags & MSG_CTRUNC) != 0, &flag) != napi_ok || napi_set_named_property(env, result, "controlTruncated", flag) != napi_ok) goto fail;
  return result;
fail:
  close_fds(m->fds, m->n_fds);
  return NULL;
}
