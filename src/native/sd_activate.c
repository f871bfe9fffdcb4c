/*
 * sd-activate's native half: the few syscalls Node has no API for.
 *
 * Syscalls in, facts out. Nothing here reads the environment, decodes an
 * address or decides anything: errors come back as { errno, syscall } and
 * src/errors.ts turns them into Node-style errors; addresses come back as the
 * raw sockaddr bytes and src/sockaddr.ts decodes them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include "napi_util.h"

#ifndef SO_DOMAIN
#define SO_DOMAIN 39
#endif
#ifndef SO_PROTOCOL
#define SO_PROTOCOL 38
#endif
#ifndef SCM_MAX_FD
#define SCM_MAX_FD 253
#endif
#ifndef PIDFS_MAGIC
#define PIDFS_MAGIC 0x50494446
#endif

static napi_value make_int(napi_env env, int64_t v) {
  napi_value out;
  if (napi_create_int64(env, v, &out) != napi_ok) return NULL;
  return out;
}

static int set_bool(napi_env env, napi_value obj, const char *key, int v) {
  napi_value value;
  return napi_get_boolean(env, v, &value) == napi_ok && napi_set_named_property(env, obj, key, value) == napi_ok;
}

static int set_bytes(napi_env env, napi_value obj, const char *key, const void *data, size_t len) {
  napi_value value;
  void *copy;
  return napi_create_buffer_copy(env, len, data, &copy, &value) == napi_ok &&
         napi_set_named_property(env, obj, key, value) == napi_ok;
}

static int get_sockopt_int(int fd, int level, int name, int *out) {
  socklen_t len = sizeof(*out);
  return getsockopt(fd, level, name, out, &len);
}

/* inspect(fd): fstat, and for sockets the socket options and both addresses;
 * for regular files also mq_getattr, since a POSIX message queue fd fstat()s
 * as a regular file on the mqueue filesystem. */
static napi_value inspect(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  int32_t fd;
  struct stat st;
  if (!get_args(env, info, 1, argv) || !get_int32(env, argv[0], &fd)) return throw_type(env, "fd must be an integer");
  if (fstat(fd, &st) < 0) return throw_errno(env, errno, "fstat");

  CHECK(napi_create_object(env, &result));
  if (!set_int(env, result, "mode", st.st_mode & S_IFMT)) return NULL;
  if (!set_int(env, result, "rdevMajor", major(st.st_rdev))) return NULL;
  if (!set_int(env, result, "rdevMinor", minor(st.st_rdev))) return NULL;
  if (!set_int(env, result, "size", st.st_size)) return NULL;

  if (S_ISSOCK(st.st_mode)) {
    int domain, type, protocol, accepting;
    struct sockaddr_storage addr;
    socklen_t len;
    if (get_sockopt_int(fd, SOL_SOCKET, SO_DOMAIN, &domain) < 0) return throw_errno(env, errno, "getsockopt");
    if (get_sockopt_int(fd, SOL_SOCKET, SO_TYPE, &type) < 0) return throw_errno(env, errno, "getsockopt");
    if (get_sockopt_int(fd, SOL_SOCKET, SO_PROTOCOL, &protocol) < 0) return throw_errno(env, errno, "getsockopt");
    /* Not every family implements SO_ACCEPTCONN; those cannot listen anyway. */
    if (get_sockopt_int(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting) < 0) accepting = 0;
    if (!set_int(env, result, "domain", domain) || !set_int(env, result, "type", type) ||
        !set_int(env, result, "protocol", protocol) || !set_bool(env, result, "acceptConn", accepting))
      return NULL;

    len = sizeof(addr);
    memset(&addr, 0, sizeof(addr));
    if (getsockname(fd, (struct sockaddr *)&addr, &len) < 0) return throw_errno(env, errno, "getsockname");
    if (!set_bytes(env, result, "local", &addr, len > sizeof(addr) ? sizeof(addr) : len)) return NULL;

    len = sizeof(addr);
    memset(&addr, 0, sizeof(addr));
    if (getpeername(fd, (struct sockaddr *)&addr, &len) == 0) {
      if (!set_bytes(env, result, "peer", &addr, len > sizeof(addr) ? sizeof(addr) : len)) return NULL;
    } else if (errno != ENOTCONN && errno != EOPNOTSUPP) {
      return throw_errno(env, errno, "getpeername");
    }
  } else if (S_ISREG(st.st_mode)) {
    struct mq_attr attr;
    if (mq_getattr(fd, &attr) == 0) {
      napi_value mq;
      CHECK(napi_create_object(env, &mq));
      if (!set_int(env, mq, "flags", attr.mq_flags) || !set_int(env, mq, "maxmsg", attr.mq_maxmsg) ||
          !set_int(env, mq, "msgsize", attr.mq_msgsize) || !set_int(env, mq, "curmsgs", attr.mq_curmsgs))
        return NULL;
      CHECK(napi_set_named_property(env, result, "mq", mq));
    } else if (errno != EBADF) {
      return throw_errno(env, errno, "mq_getattr");
    }
  }
  return result;
}

/* getCloexec(fd) -> boolean */
static napi_value get_cloexec(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  int32_t fd;
  int flags;
  if (!get_args(env, info, 1, argv) || !get_int32(env, argv[0], &fd)) return throw_type(env, "fd must be an integer");
  flags = fcntl(fd, F_GETFD);
  if (flags < 0) return throw_errno(env, errno, "fcntl");
  CHECK(napi_get_boolean(env, flags & FD_CLOEXEC, &out));
  return out;
}

/* setCloexec(fd, on): like libsystemd's fd_cloexec(), no write when already so. */
static napi_value set_cloexec(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  bool on;
  int flags, wanted;
  if (!get_args(env, info, 2, argv) || !get_int32(env, argv[0], &fd)) return throw_type(env, "fd must be an integer");
  if (napi_get_value_bool(env, argv[1], &on) != napi_ok) return throw_type(env, "on must be a boolean");
  flags = fcntl(fd, F_GETFD);
  if (flags < 0) return throw_errno(env, errno, "fcntl");
  wanted = on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
  if (wanted != flags && fcntl(fd, F_SETFD, wanted) < 0) return throw_errno(env, errno, "fcntl");
  return NULL;
}

/* socket(domain, type, protocol) -> fd. type may carry SOCK_CLOEXEC/SOCK_NONBLOCK. */
static napi_value do_socket(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t domain, type, protocol;
  int fd;
  if (!get_args(env, info, 3, argv) || !get_int32(env, argv[0], &domain) || !get_int32(env, argv[1], &type) ||
      !get_int32(env, argv[2], &protocol))
    return throw_type(env, "socket(domain, type, protocol) takes integers");
  fd = socket(domain, type, protocol);
  if (fd < 0) return throw_errno(env, errno, "socket");
  return make_int(env, fd);
}

/* setsockopt(fd, level, name, int value) */
static napi_value do_setsockopt(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t fd, level, name, value;
  if (!get_args(env, info, 4, argv) || !get_int32(env, argv[0], &fd) || !get_int32(env, argv[1], &level) ||
      !get_int32(env, argv[2], &name) || !get_int32(env, argv[3], &value))
    return throw_type(env, "setsockopt(fd, level, name, value) takes integers");
  if (setsockopt(fd, level, name, &value, sizeof(value)) < 0) return throw_errno(env, errno, "setsockopt");
  return NULL;
}

static int get_fd_and_buffer(napi_env env, napi_callback_info info, int32_t *fd, void **data, size_t *len) {
  napi_value argv[2];
  bool is_buffer;
  if (!get_args(env, info, 2, argv) || !get_int32(env, argv[0], fd)) return 0;
  if (napi_is_buffer(env, argv[1], &is_buffer) != napi_ok || !is_buffer) return 0;
  return napi_get_buffer_info(env, argv[1], data, len) == napi_ok;
}

/* A call of one fd and one sockaddr: bind(2), connect(2). */
typedef int (*sockaddr_call)(int, const struct sockaddr *, socklen_t);

static napi_value with_sockaddr(napi_env env, napi_callback_info info, sockaddr_call call, const char *name) {
  int32_t fd;
  void *addr;
  size_t len;
  if (!get_fd_and_buffer(env, info, &fd, &addr, &len)) return throw_type(env, "takes an fd (an integer) and a sockaddr (a Buffer)");
  if (call(fd, addr, (socklen_t)len) < 0) return throw_errno(env, errno, name);
  return NULL;
}

/* bind(fd, sockaddr bytes) */
static napi_value do_bind(napi_env env, napi_callback_info info) { return with_sockaddr(env, info, bind, "bind"); }

/* connect(fd, sockaddr bytes) */
static napi_value do_connect(napi_env env, napi_callback_info info) { return with_sockaddr(env, info, connect, "connect"); }

/* listen(fd, backlog) */
static napi_value do_listen(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd, backlog;
  if (!get_args(env, info, 2, argv) || !get_int32(env, argv[0], &fd) || !get_int32(env, argv[1], &backlog))
    return throw_type(env, "listen(fd, backlog) takes integers");
  if (listen(fd, backlog) < 0) return throw_errno(env, errno, "listen");
  return NULL;
}

/* close(fd) */
static napi_value do_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv) || !get_int32(env, argv[0], &fd)) return throw_type(env, "fd must be an integer");
  if (close(fd) < 0 && errno != EINTR) return throw_errno(env, errno, "close");
  return NULL;
}

/* A string that fits with its NUL and has no NUL inside: the C call would
 * silently stop at an embedded one and act on a shorter name. */
static int get_string(napi_env env, napi_value value, char *buf, size_t size) {
  size_t len;
  if (napi_get_value_string_utf8(env, value, buf, size, &len) != napi_ok) return 0;
  return len < size - 1 && strlen(buf) == len;
}

/* mkfifo(path, mode) */
static napi_value do_mkfifo(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char path[4096];
  int32_t mode;
  if (!get_args(env, info, 2, argv) || !get_string(env, argv[0], path, sizeof(path)) || !get_int32(env, argv[1], &mode))
    return throw_type(env, "mkfifo(path, mode) takes a string and an integer");
  if (mkfifo(path, (mode_t)mode) < 0) return throw_errno(env, errno, "mkfifo");
  return NULL;
}

/* mqOpen(name, oflag, mode, maxmsg, msgsize) -> fd; maxmsg 0 takes the system default. */
static napi_value do_mq_open(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  char name[256];
  int32_t oflag, mode, maxmsg, msgsize;
  struct mq_attr attr;
  mqd_t mq;
  if (!get_args(env, info, 5, argv) || !get_string(env, argv[0], name, sizeof(name)) || !get_int32(env, argv[1], &oflag) ||
      !get_int32(env, argv[2], &mode) || !get_int32(env, argv[3], &maxmsg) || !get_int32(env, argv[4], &msgsize))
    return throw_type(env, "mqOpen(name, oflag, mode, maxmsg, msgsize) takes a string and integers");
  memset(&attr, 0, sizeof(attr));
  attr.mq_maxmsg = maxmsg;
  attr.mq_msgsize = msgsize;
  mq = mq_open(name, oflag, (mode_t)mode, maxmsg > 0 ? &attr : NULL);
  if (mq == (mqd_t)-1) return throw_errno(env, errno, "mq_open");
  return make_int(env, (int)mq);
}

/* mqUnlink(name) */
static napi_value do_mq_unlink(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char name[256];
  if (!get_args(env, info, 1, argv) || !get_string(env, argv[0], name, sizeof(name))) return throw_type(env, "name must be a string");
  if (mq_unlink(name) < 0) return throw_errno(env, errno, "mq_unlink");
  return NULL;
}

/* pidfdInodeId() -> bigint, or null where pidfds have no unique inode (no pidfs). */
static napi_value pidfd_inode_id(napi_env env, napi_callback_info info) {
  napi_value out;
  struct statfs sfs;
  struct stat st;
  int fd;
  (void)info;
#ifdef SYS_pidfd_open
  fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
#else
  fd = -1;
  errno = ENOSYS;
#endif
  if (fd < 0) {
    CHECK(napi_get_null(env, &out));
    return out;
  }
  if (fstatfs(fd, &sfs) < 0 || (unsigned long)sfs.f_type != PIDFS_MAGIC || fstat(fd, &st) < 0) {
    close(fd);
    CHECK(napi_get_null(env, &out));
    return out;
  }
  close(fd);
  CHECK(napi_create_bigint_uint64(env, (uint64_t)st.st_ino, &out));
  return out;
}

/* setChildSubreaper(on): prctl(PR_SET_CHILD_SUBREAPER), as systemd's manager is one. */
static napi_value set_child_subreaper(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  bool on;
  if (!get_args(env, info, 1, argv) || napi_get_value_bool(env, argv[0], &on) != napi_ok) return throw_type(env, "setChildSubreaper takes a boolean");
  if (prctl(PR_SET_CHILD_SUBREAPER, on ? 1 : 0, 0, 0, 0) < 0) return throw_errno(env, errno, "prctl");
  return NULL;
}

/*
 * reapChild(pid): waitid(P_PID, pid, WEXITED | WNOHANG). null while the child runs, else
 * { code, signal } (one of them null: code for an exit, the signal number for a kill or a core
 * dump). ECHILD when pid is not a child of this process.
 */
static napi_value reap_child(napi_env env, napi_callback_info info) {
  napi_value argv[1], out, code, sig;
  int32_t pid;
  siginfo_t si;
  if (!get_args(env, info, 1, argv) || !get_int32(env, argv[0], &pid) || pid <= 0) return throw_type(env, "pid must be a positive integer");
  memset(&si, 0, sizeof si);
  if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG) < 0) return throw_errno(env, errno, "waitid");
  if (si.si_pid == 0) {
    CHECK(napi_get_null(env, &out));
    return out;
  }
  CHECK(napi_create_object(env, &out));
  if (si.si_code == CLD_EXITED) {
    code = make_int(env, si.si_status);
    CHECK(napi_get_null(env, &sig));
  } else {
    CHECK(napi_get_null(env, &code));
    sig = make_int(env, si.si_status);
  }
  if (!code || !sig) return NULL;
  CHECK(napi_set_named_property(env, out, "code", code));
  CHECK(napi_set_named_property(env, out, "signal", sig));
  return out;
}

/* pipe() -> [readFd, writeFd], both close-on-exec. */
static napi_value do_pipe(napi_env env, napi_callback_info info) {
  napi_value out;
  int fds[2];
  (void)info;
  if (pipe2(fds, O_CLOEXEC) < 0) return throw_errno(env, errno, "pipe2");
  CHECK(napi_create_array_with_length(env, 2, &out));
  CHECK(napi_set_element(env, out, 0, make_int(env, fds[0])));
  CHECK(napi_set_element(env, out, 1, make_int(env, fds[1])));
  return out;
}

/* peerCredentials(fd) -> { pid, uid, gid }: getsockopt(SO_PEERCRED) of a connected unix socket. */
static napi_value peer_credentials(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  size_t argc = 1;
  int32_t fd;
  struct ucred cred;
  socklen_t len = sizeof(cred);
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) return throw_type(env, "peerCredentials(fd) takes an integer");
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return throw_errno(env, errno, "getsockopt");
  CHECK(napi_create_object(env, &out));
  if (!set_int(env, out, "pid", cred.pid) || !set_int(env, out, "uid", cred.uid) || !set_int(env, out, "gid", cred.gid)) return NULL;
  return out;
}

/* socketpair(type) -> [fd, fd]: AF_UNIX, close-on-exec. */
static napi_value do_socketpair(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  size_t argc = 1;
  int32_t type;
  int fds[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_int32(env, argv[0], &type) != napi_ok) return throw_type(env, "socketpair(type) takes an integer");
  if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fds) < 0) return throw_errno(env, errno, "socketpair");
  CHECK(napi_create_array_with_length(env, 2, &out));
  CHECK(napi_set_element(env, out, 0, make_int(env, fds[0])));
  CHECK(napi_set_element(env, out, 1, make_int(env, fds[1])));
  return out;
}

/* notifySend(sockaddr, message, fds|null, cred|null) -> bytes sent.
 * One AF_UNIX datagram, as sd_pid_notify_with_fds() sends it: a fresh
 * SOCK_DGRAM|SOCK_CLOEXEC socket, MSG_NOSIGNAL, SCM_RIGHTS for fds and
 * SCM_CREDENTIALS only when the caller passes a credential to claim.
 *
 * An fd to pass that is closed fails with EBADF (and its number as `fd`)
 * before the socket is opened: the socket takes the lowest free number,
 * and a number closed just before would otherwise pass the socket itself,
 * which the receiver keeps (systemd's fd store hands it back after a
 * restart). The socket is checked against the fds once more, for a number
 * another thread closed in between. */
static napi_value notify_send(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  size_t argc = 4;
  void *addr, *msg;
  size_t addr_len, msg_len;
  bool is_buffer;
  uint32_t n_fds = 0;
  int fds[SCM_MAX_FD];
  struct ucred cred;
  int have_cred = 0;
  napi_valuetype vt;
  struct iovec iov;
  struct msghdr mh;
  char control[CMSG_SPACE(sizeof(int) * SCM_MAX_FD) + CMSG_SPACE(sizeof(struct ucred))];
  int sock;
  ssize_t sent;

  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4) return throw_type(env, "notifySend takes 4 arguments");
  if (napi_is_buffer(env, argv[0], &is_buffer) != napi_ok || !is_buffer || napi_get_buffer_info(env, argv[0], &addr, &addr_len) != napi_ok)
    return throw_type(env, "sockaddr must be a Buffer");
  if (napi_is_buffer(env, argv[1], &is_buffer) != napi_ok || !is_buffer || napi_get_buffer_info(env, argv[1], &msg, &msg_len) != napi_ok)
    return throw_type(env, "message must be a Buffer");

  /* Anything but an array or null/undefined is a mistake, not "no fds": a
   * silently dropped fd would be a message that means something else. */
  CHECK(napi_typeof(env, argv[2], &vt));
  if (vt != napi_null && vt != napi_undefined) {
    bool is_array;
    CHECK(napi_is_array(env, argv[2], &is_array));
    if (!is_array) return throw_type(env, "fds must be an array of integers or null");
    CHECK(napi_get_array_length(env, argv[2], &n_fds));
    if (n_fds > SCM_MAX_FD) return throw_errno(env, E2BIG, "sendmsg");
    for (uint32_t i = 0; i < n_fds; i++) {
      napi_value el;
      int32_t fd;
      CHECK(napi_get_element(env, argv[2], i, &el));
      if (!get_int32(env, el, &fd)) return throw_type(env, "fds must be integers");
      fds[i] = fd;
    }
  }
  CHECK(napi_typeof(env, argv[3], &vt));
  if (vt != napi_null && vt != napi_undefined && vt != napi_object) return throw_type(env, "cred must be an object or null");
  if (vt == napi_object) {
    napi_value v;
    int32_t pid, uid, gid;
    CHECK(napi_get_named_property(env, argv[3], "pid", &v));
    if (!get_int32(env, v, &pid)) return throw_type(env, "cred.pid must be an integer");
    CHECK(napi_get_named_property(env, argv[3], "uid", &v));
    if (!get_int32(env, v, &uid)) return throw_type(env, "cred.uid must be an integer");
    CHECK(napi_get_named_property(env, argv[3], "gid", &v));
    if (!get_int32(env, v, &gid)) return throw_type(env, "cred.gid must be an integer");
    cred.pid = pid;
    cred.uid = (uid_t)uid;
    cred.gid = (gid_t)gid;
    have_cred = 1;
  }

  memset(&mh, 0, sizeof(mh));
  memset(control, 0, sizeof(control));
  iov.iov_base = msg;
  iov.iov_len = msg_len;
  mh.msg_name = addr;
  mh.msg_namelen = (socklen_t)addr_len;
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (n_fds > 0 || have_cred) {
    struct cmsghdr *cmsg;
    size_t space = (n_fds > 0 ? CMSG_SPACE(sizeof(int) * n_fds) : 0) + (have_cred ? CMSG_SPACE(sizeof(struct ucred)) : 0);
    mh.msg_control = control;
    mh.msg_controllen = space;
    cmsg = CMSG_FIRSTHDR(&mh);
    if (n_fds > 0) {
      cmsg->cmsg_level = SOL_SOCKET;
      cmsg->cmsg_type = SCM_RIGHTS;
      cmsg->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
      memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * n_fds);
      if (have_cred) cmsg = CMSG_NXTHDR(&mh, cmsg);
    }
    if (have_cred) {
      cmsg->cmsg_level = SOL_SOCKET;
      cmsg->cmsg_type = SCM_CREDENTIALS;
      cmsg->cmsg_len = CMSG_LEN(sizeof(struct ucred));
      memcpy(CMSG_DATA(cmsg), &cred, sizeof(cred));
    }
  }

  for (uint32_t i = 0; i < n_fds; i++)
    if (fcntl(fds[i], F_GETFD) < 0) return throw_errno_fd(env, errno, "sendmsg", fds[i]);
  sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return throw_errno(env, errno, "socket");
  for (uint32_t i = 0; i < n_fds; i++) {
    if (fds[i] == sock) {
      close(sock);
      return throw_errno_fd(env, EBADF, "sendmsg", fds[i]);
    }
  }
  /* libsystemd raises SO_SNDBUF to 8 MiB on every notify socket (fd_inc_sndbuf). Only a message
   * near the default buffer needs it, so the two extra syscalls are spent only then. */
  if (msg_len > 64 * 1024) {
    int size = 8 * 1024 * 1024, current = 0;
    socklen_t len = sizeof(current);
    if (getsockopt(sock, SOL_SOCKET, SO_SNDBUF, &current, &len) < 0 || current < size) {
      if (setsockopt(sock, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)) < 0) (void)setsockopt(sock, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size));
    }
  }
  do {
    sent = sendmsg(sock, &mh, MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    int err = errno;
    close(sock);
    return throw_errno(env, err, "sendmsg");
  }
  close(sock);
  return make_int(env, sent);
}

static int add_const(napi_env env, napi_value obj, const char *name, int64_t v) { return set_int(env, obj, name, v); }

static napi_value init(napi_env env, napi_value exports) {
  napi_value constants;
  napi_property_descriptor props[] = {
      EXPORT_FUNCTION("inspect", inspect),
      EXPORT_FUNCTION("getCloexec", get_cloexec),
      EXPORT_FUNCTION("setCloexec", set_cloexec),
      EXPORT_FUNCTION("socket", do_socket),
      EXPORT_FUNCTION("setsockopt", do_setsockopt),
      EXPORT_FUNCTION("bind", do_bind),
      EXPORT_FUNCTION("connect", do_connect),
      EXPORT_FUNCTION("listen", do_listen),
      EXPORT_FUNCTION("close", do_close),
      EXPORT_FUNCTION("mkfifo", do_mkfifo),
      EXPORT_FUNCTION("mqOpen", do_mq_open),
      EXPORT_FUNCTION("mqUnlink", do_mq_unlink),
      EXPORT_FUNCTION("pidfdInodeId", pidfd_inode_id),
      EXPORT_FUNCTION("pipe", do_pipe),
      EXPORT_FUNCTION("socketpair", do_socketpair),
      EXPORT_FUNCTION("peerCredentials", peer_credentials),
      EXPORT_FUNCTION("setChildSubreaper", set_child_subreaper),
      EXPORT_FUNCTION("reapChild", reap_child),
      EXPORT_FUNCTION("notifySend", notify_send),
  };
  CHECK(DEFINE_EXPORTS(env, exports, props));
  CHECK(sd_watch_init(env, exports));
  CHECK(handover_init(env, exports));
  CHECK(notify_receiver_init(env, exports));

  CHECK(napi_create_object(env, &constants));
  if (!add_const(env, constants, "AF_UNIX", AF_UNIX) || !add_const(env, constants, "AF_INET", AF_INET) ||
      !add_const(env, constants, "AF_INET6", AF_INET6) || !add_const(env, constants, "AF_NETLINK", AF_NETLINK) ||
      !add_const(env, constants, "AF_PACKET", AF_PACKET) || !add_const(env, constants, "AF_VSOCK", AF_VSOCK) ||
      !add_const(env, constants, "SOCK_STREAM", SOCK_STREAM) || !add_const(env, constants, "SOCK_DGRAM", SOCK_DGRAM) ||
      !add_const(env, constants, "SOCK_SEQPACKET", SOCK_SEQPACKET) || !add_const(env, constants, "SOCK_RAW", SOCK_RAW) ||
      !add_const(env, constants, "SOCK_RDM", SOCK_RDM) || !add_const(env, constants, "SOCK_CLOEXEC", SOCK_CLOEXEC) ||
      !add_const(env, constants, "SOCK_NONBLOCK", SOCK_NONBLOCK) || !add_const(env, constants, "SOL_SOCKET", SOL_SOCKET) ||
      !add_const(env, constants, "SO_REUSEADDR", SO_REUSEADDR) || !add_const(env, constants, "SO_REUSEPORT", SO_REUSEPORT) ||
      !add_const(env, constants, "SO_PASSCRED", SO_PASSCRED) || !add_const(env, constants, "IPPROTO_IPV6", IPPROTO_IPV6) ||
      !add_const(env, constants, "IPV6_V6ONLY", IPV6_V6ONLY) || !add_const(env, constants, "IPPROTO_TCP", IPPROTO_TCP) ||
      !add_const(env, constants, "IPPROTO_UDP", IPPROTO_UDP) || !add_const(env, constants, "IPPROTO_SCTP", IPPROTO_SCTP) ||
      !add_const(env, constants, "S_IFSOCK", S_IFSOCK) || !add_const(env, constants, "S_IFIFO", S_IFIFO) ||
      !add_const(env, constants, "S_IFREG", S_IFREG) || !add_const(env, constants, "S_IFCHR", S_IFCHR) ||
      !add_const(env, constants, "S_IFDIR", S_IFDIR) || !add_const(env, constants, "S_IFBLK", S_IFBLK) ||
      !add_const(env, constants, "S_IFLNK", S_IFLNK) || !add_const(env, constants, "O_RDWR", O_RDWR) ||
      !add_const(env, constants, "O_RDONLY", O_RDONLY) || !add_const(env, constants, "O_WRONLY", O_WRONLY) ||
      !add_const(env, constants, "O_CREAT", O_CREAT) || !add_const(env, constants, "O_NONBLOCK", O_NONBLOCK) ||
      !add_const(env, constants, "O_CLOEXEC", O_CLOEXEC) || !add_const(env, constants, "SCM_MAX_FD", SCM_MAX_FD))
    return NULL;
  CHECK(napi_set_named_property(env, exports, "constants", constants));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
