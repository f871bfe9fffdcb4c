/*
 * The anchor of bench/notify.ts: libsystemd's own sd_notify(), N times in a row, timed inside
 * the process so that its start-up is not counted.
 *
 *   notify-libsystemd N MESSAGE    prints the elapsed nanoseconds; exits 1 on the first failure
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <systemd/sd-daemon.h>

int main(int argc, char **argv) {
  struct timespec start, end;
  long n;
  if (argc != 3 || (n = strtol(argv[1], NULL, 10)) <= 0) {
    fprintf(stderr, "usage: notify-libsystemd N MESSAGE\n");
    return 2;
  }
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (long i = 0; i < n; i++) {
    int r = sd_notify(0, argv[2]);
    if (r <= 0) {
      fprintf(stderr, "sd_notify: %d\n", r);
      return 1;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &end);
  printf("%lld\n", (long long)(end.tv_sec - start.tv_sec) * 1000000000LL + (end.tv_nsec - start.tv_nsec));
  return 0;
}
