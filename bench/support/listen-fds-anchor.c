/* The anchor for listenFds(): what libsystemd's own calls cost on the same fds, in one process:
 * sd_listen_fds_with_names() then, per fd, sd_is_socket() and getsockname(). Prints milliseconds. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <time.h>

int main(int argc, char **argv) {
  struct timespec a, b;
  char **names = NULL;
  int n, expected = argc > 1 ? atoi(argv[1]) : -1;
  clock_gettime(CLOCK_MONOTONIC, &a);
  n = sd_listen_fds_with_names(1, &names);
  for (int i = 0; i < n; i++) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (sd_is_socket(SD_LISTEN_FDS_START + i, 0, 0, -1) <= 0) return 2;
    if (getsockname(SD_LISTEN_FDS_START + i, (struct sockaddr *)&ss, &len) < 0) return 3;
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  if (n != expected) {
    fprintf(stderr, "expected %d fds, got %d\n", expected, n);
    return 1;
  }
  for (int i = 0; i < n; i++) free(names[i]);
  free(names);
  printf("%.3f\n", (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6);
  return 0;
}
