/*
 * What the addon's C files share: the error shape src/native.ts maps ({ errno, syscall }), strict
 * argument reading, and the registration functions each file exports to sd_activate.c's init.
 */
#ifndef SD_ACTIVATE_NAPI_UTIL_H
#define SD_ACTIVATE_NAPI_UTIL_H

#include <stdint.h>
#include <string.h>

#include <node_api.h>

#define CHECK(call)                                                            \
  do {                                                                         \
    if ((call) != napi_ok) return NULL;                                        \
  } while (0)

/* An Error carrying the positive errno and the failing syscall (and the fd, when the call names
 * several); src/errors.ts makes it Node-style. */
static inline napi_value errno_error(napi_env env, int err, const char *syscall) {
  napi_value msg, error, errno_value, syscall_value;
  if (napi_create_string_utf8(env, strerror(err), NAPI_AUTO_LENGTH, &msg) != napi_ok) return NULL;
  if (napi_create_error(env, NULL, msg, &error) != napi_ok) return NULL;
  napi_create_int32(env, err, &errno_value);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_value);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_set_named_property(env, error, "syscall", syscall_value);
  return error;
}

static inline napi_value throw_errno(napi_env env, int err, const char *syscall) {
  napi_value error = errno_error(env, err, syscall);
  if (error) napi_throw(env, error);
  return NULL;
}

/* The same, naming the fd it was about when that is not the call's first argument. */
static inline napi_value throw_errno_fd(napi_env env, int err, const char *syscall, int fd) {
  napi_value error = errno_error(env, err, syscall), fd_value;
  if (!error) return NULL;
  if (napi_create_int32(env, fd, &fd_value) == napi_ok) napi_set_named_property(env, error, "fd", fd_value);
  napi_throw(env, error);
  return NULL;
}

static inline napi_value throw_type(napi_env env, const char *message) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
  return NULL;
}

/* Only a number that is exactly a C int: napi_get_value_int32() alone would truncate 3.5 to 3 and
 * wrap 2**32 + 3 to 3, and so act on an fd nobody named. */
static inline int get_int32(napi_env env, napi_value value, int32_t *out) {
  napi_valuetype type;
  double d;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_number) return 0;
  if (napi_get_value_double(env, value, &d) != napi_ok) return 0;
  if (!(d >= INT32_MIN && d <= INT32_MAX) || d != (double)(int32_t)d) return 0;
  *out = (int32_t)d;
  return 1;
}

/* The first `want` arguments of the call, or 0 when fewer were given. */
static inline int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return 0;
  return argc >= want;
}

/* The first `want` arguments, the first of them an fd (an int >= 0), or 0. */
static inline int get_fd_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, int32_t *fd) {
  return get_args(env, info, want, argv) && get_int32(env, argv[0], fd) && *fd >= 0;
}

/* One entry of a file's table of exported functions. */
#define EXPORT_FUNCTION(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_enumerable, NULL}
/* Adds a file's table (an array, not a pointer) to the addon's exports. */
#define DEFINE_EXPORTS(env, exports, table) napi_define_properties(env, exports, sizeof(table) / sizeof((table)[0]), table)

static inline int set_int(napi_env env, napi_value obj, const char *key, int64_t v) {
  napi_value value;
  return napi_create_int64(env, v, &value) == napi_ok && napi_set_named_property(env, obj, key, value) == napi_ok;
}

/* One message read by recv_message() (recv_message.c): `fds` and `cred` point into the caller's control buffer. */
struct ucred;
typedef struct {
  napi_value data;
  /* The whole length of the message, which `data` may hold only the first bytes of. */
  size_t size;
  int *fds;
  size_t n_fds;
  struct ucred *cred;
  int flags; /* msg_flags: MSG_TRUNC, MSG_CTRUNC */
} received_message;

/* 1 with a message in *out, 0 when nothing is queued, -1 with an exception pending. `control` must
 * be aligned for struct cmsghdr. At most `max` bytes of the message are kept (SIZE_MAX: all). */
int recv_message(napi_env env, int fd, size_t max, void *control, size_t control_len, received_message *out);
/* { data, fds, truncated, controlTruncated }; NULL (fds closed) when it cannot be built. */
napi_value received_object(napi_env env, const received_message *m);
void close_fds(const int *fds, size_t n);

/* Registration of the functions defined outside sd_activate.c. */
napi_status sd_watch_init(napi_env env, napi_value exports);     /* watch.c */
napi_status notify_receiver_init(napi_env env, napi_value exports); /* notify_receiver.c */
napi_status handover_init(napi_env env, napi_value exports);   /* handover.c */

#endif
