/*
 * libsystemd's side of test/notify-libsystemd.test.ts: the same notify calls made through the
 * installed libsystemd, so the test can compare what arrives, byte for byte.
 *
 *   notify-harness send MESSAGE                 sd_notify(0, MESSAGE); prints the return value
 *   notify-harness send-unset MESSAGE           sd_notify(1, MESSAGE); prints it and "unset" or "kept"
 *   notify-harness send-fds PATH N MESSAGE      opens PATH N times, sd_pid_notify_with_fds(0, 0, ...)
 *   notify-harness send-status N                sd_notify(0, "STATUS=" and N times 'x'), past argv's limits
 *   notify-harness pid-send PID MESSAGE         sd_pid_notify(PID, 0, MESSAGE)
 *   notify-harness barrier USEC                 sd_notify_barrier(0, USEC)
 *   notify-harness monotonic                    CLOCK_MONOTONIC in microseconds
 *   notify-harness watchdog [unset]             per stdin line "USEC PID", each '-' (unset) or '=' and
 *                                               the value in hex, @SELF@ in it replaced by getpid():
 *                                               prints "R USEC" from sd_watchdog_enabled(); with
 *                                               "unset", also whether both variables are gone after
 *
 * Every line printed ends with '\n'; the first line of `watchdog` is "pid PID".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

static int usage(void) {
  fprintf(stderr, "usage: notify-harness send|send-unset|send-fds|pid-send|barrier|monotonic|watchdog ...\n");
  return 2;
}

/* Hex to text, with @SELF@ replaced by our pid. Returns NULL for '-' (unset). */
static char *decode(const char *field) {
  static char buf[2][8192];
  static int which;
  char raw[4096], pid[32];
  size_t n = 0, out = 0;
  char *b = buf[which ^= 1];
  if (field[0] == '-') return NULL;
  for (const char *p = field + 1; p[0] && p[1] && n < sizeof(raw) - 1; p += 2) {
    unsigned v;
    sscanf(p, "%2x", &v);
    raw[n++] = (char)v;
  }
  raw[n] = 0;
  snprintf(pid, sizeof(pid), "%d", (int)getpid());
  for (const char *p = raw; *p && out < sizeof(buf[0]) - 32;) {
    if (strncmp(p, "@SELF@", 6) == 0) {
      out += (size_t)sprintf(b + out, "%s", pid);
      p += 6;
    } else {
      b[out++] = *p++;
    }
  }
  b[out] = 0;
  return b;
}

static int watchdog(int unset) {
  char line[16384];
  printf("pid %d\n", (int)getpid());
  while (fgets(line, sizeof(line), stdin)) {
    char usec_field[8192], pid_field[8192];
    char *usec_text, *pid_text;
    uint64_t usec = 0;
    int r;
    if (sscanf(line, "%8191s %8191s", usec_field, pid_field) != 2) return usage();
    usec_text = decode(usec_field);
    pid_text = decode(pid_field);
    if (usec_text) setenv("WATCHDOG_USEC", usec_text, 1); else unsetenv("WATCHDOG_USEC");
    if (pid_text) setenv("WATCHDOG_PID", pid_text, 1); else unsetenv("WATCHDOG_PID");
    r = sd_watchdog_enabled(unset, &usec);
    if (r > 0)
      printf("%d %llu", r, (unsigned long long)usec);
    else
      printf("%d -", r);
    if (unset) printf(" %s", getenv("WATCHDOG_USEC") || getenv("WATCHDOG_PID") ? "kept" : "unset");
    printf("\n");
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) return usage();
  if (strcmp(argv[1], "send") == 0 && argc == 3) {
    printf("%d\n", sd_notify(0, argv[2]));
  } else if (strcmp(argv[1], "send-unset") == 0 && argc == 3) {
    int r = sd_notify(1, argv[2]);
    printf("%d %s\n", r, getenv("NOTIFY_SOCKET") ? "kept" : "unset");
  } else if (strcmp(argv[1], "send-fds") == 0 && argc == 5) {
    int n = atoi(argv[3]);
    int *fds = calloc((size_t)n + 1, sizeof(int));
    for (int i = 0; i < n; i++) {
      fds[i] = open(argv[2], O_RDONLY | O_CLOEXEC);
      if (fds[i] < 0) {
        perror("open");
        return 1;
      }
    }
    printf("%d\n", sd_pid_notify_with_fds(0, 0, argv[4], fds, (unsigned)n));
  } else if (strcmp(argv[1], "send-status") == 0 && argc == 3) {
    size_t n = strtoul(argv[2], NULL, 10);
    char *message = malloc(n + 8);
    if (!message) return 1;
    memcpy(message, "STATUS=", 7);
    memset(message + 7, 'x', n);
    message[n + 7] = 0;
    printf("%d\n", sd_notify(0, message));
  } else if (strcmp(argv[1], "pid-send") == 0 && argc == 4) {
    printf("%d\n", sd_pid_notify((pid_t)atoi(argv[2]), 0, argv[3]));
  } else if (strcmp(argv[1], "barrier") == 0 && argc == 3) {
    printf("%d\n", sd_notify_barrier(0, strtoull(argv[2], NULL, 10)));
  } else if (strcmp(argv[1], "monotonic") == 0 && argc == 2) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    printf("%llu\n", (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
  } else if (strcmp(argv[1], "watchdog") == 0 && (argc == 2 || (argc == 3 && strcmp(argv[2], "unset") == 0))) {
    return watchdog(argc == 3);
  } else {
    return usage();
  }
  return 0;
}
