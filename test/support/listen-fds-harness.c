/*
 * Differential oracle for src/env.ts: runs libsystemd's own sd_listen_fds_with_names() on
 * test cases read from stdin, so the TypeScript parser can be compared with the real thing.
 *
 * Build: cc -o listen-fds-harness listen-fds-harness.c -lsystemd
 *
 * Setup: fds 3 .. 3+OPEN_FDS-1 are open (on /dev/null), every fd above them is closed, so
 * libsystemd's fd_cloexec() loop succeeds for LISTEN_FDS <= OPEN_FDS and fails with -EBADF
 * on fd 3+OPEN_FDS for anything larger.
 *
 * Output, first line: "ready <pid> <OPEN_FDS>".
 *
 * Input, one case per line: four fields separated by single spaces, for LISTEN_PID,
 * LISTEN_PIDFDID, LISTEN_FDS and LISTEN_FDNAMES in that order. Each field is "-" (the variable
 * is unset) or "=" followed by the value's bytes in hex ("=" alone is the empty string).
 * In every value, these tokens are replaced before the variable is set:
 *   @SELF@     getpid() in decimal     @SELFHEX@  getpid() in hex (no prefix)
 *   @SELFOCT@  getpid() in octal       @SELFBIN@  getpid() in binary
 *   @OTHER@    getpid() + 1 in decimal
 *
 * Output, one line per case: "<r> <w> <usec>[ =<hex name>]...", where
 *   r     is the return value of sd_listen_fds_with_names(0, &names), a count or a negative errno;
 *   names are the names it returned (only when r > 0), each hex-encoded after "=";
 *   w     is sd_watchdog_enabled(0, &usec) with WATCHDOG_USEC set to the LISTEN_PIDFDID value
 *         (WATCHDOG_PID unset), or "-" when LISTEN_PIDFDID is unset: libsystemd parses
 *         WATCHDOG_USEC with safe_atou64(), the parser LISTEN_PIDFDID uses where it is known;
 *   usec  is the value sd_watchdog_enabled() reported when w is 1, "-" otherwise.
 * A malformed input line makes the program exit with status 2.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#define OPEN_FDS 16

static const char *const variables[4] = {"LISTEN_PID", "LISTEN_PIDFDID", "LISTEN_FDS", "LISTEN_FDNAMES"};

static int hex_value(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Decodes `len` hex digits at `hex`; returns a malloc'ed NUL-terminated string, or NULL if malformed
 * (odd length, a non-hex digit, or an embedded NUL, which no environment variable can hold). */
static char *decode_hex(const char *hex, size_t len) {
        if (len % 2 != 0)
                return NULL;
        char *out = malloc(len / 2 + 1);
        if (!out)
                abort();
        for (size_t i = 0; i < len / 2; i++) {
                int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
                if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                        free(out);
                        return NULL;
                }
                out[i] = (char) (hi * 16 + lo);
        }
        out[len / 2] = 0;
        return out;
}

static void format_binary(char *buf, unsigned long value) {
        char tmp[65];
        size_t n = 0;
        do {
                tmp[n++] = (char) ('0' + (value & 1));
                value >>= 1;
        } while (value);
        for (size_t i = 0; i < n; i++)
                buf[i] = tmp[n - 1 - i];
        buf[n] = 0;
}

/* Replaces every token in `value` (which it frees) and returns the new malloc'ed string. */
static char *substitute(char *value, pid_t pid) {
        char self[32], self_hex[32], self_oct[32], self_bin[72], other[32];
        snprintf(self, sizeof self, "%ld", (long) pid);
        snprintf(self_hex, sizeof self_hex, "%lx", (unsigned long) pid);
        snprintf(self_oct, sizeof self_oct, "%lo", (unsigned long) pid);
        format_binary(self_bin, (unsigned long) pid);
        snprintf(other, sizeof other, "%ld", (long) pid + 1);
        const struct {
                const char *token;
                const char *text;
        } tokens[] = {
                {"@SELF@", self}, {"@SELFHEX@", self_hex}, {"@SELFOCT@", self_oct},
                {"@SELFBIN@", self_bin}, {"@OTHER@", other},
        };

        /* Every replacement is at most 64 characters, every token at least 6. */
        size_t cap = strlen(value) * 11 + 1;
        char *out = malloc(cap);
        if (!out)
                abort();
        size_t n = 0;
        const char *p = value;
        while (*p) {
                size_t t;
                for (t = 0; t < sizeof tokens / sizeof tokens[0]; t++) {
                        size_t len = strlen(tokens[t].token);
                        if (strncmp(p, tokens[t].token, len) == 0) {
                                size_t text_len = strlen(tokens[t].text);
                                memcpy(out + n, tokens[t].text, text_len);
                                n += text_len;
                                p += len;
                                break;
                        }
                }
                if (t == sizeof tokens / sizeof tokens[0])
                        out[n++] = *p++;
        }
        out[n] = 0;
        free(value);
        return out;
}

static void print_hex(const char *s) {
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                printf("%02x", *p);
}

int main(void) {
        pid_t pid = getpid();

        /* fds 3 .. 3+OPEN_FDS-1 open, everything above closed. */
        int null_fd = open("/dev/null", O_RDWR);
        if (null_fd < 0) {
                perror("open /dev/null");
                return 1;
        }
        for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + OPEN_FDS; fd++)
                if (fd != null_fd && dup2(null_fd, fd) < 0) {
                        perror("dup2");
                        return 1;
                }
        if (null_fd >= SD_LISTEN_FDS_START + OPEN_FDS)
                close(null_fd);
        for (int fd = SD_LISTEN_FDS_START + OPEN_FDS; fd < 1024; fd++)
                (void) close(fd);
        if (fcntl(SD_LISTEN_FDS_START + OPEN_FDS, F_GETFD) >= 0 || errno != EBADF) {
                fprintf(stderr, "fd %d is still open\n", SD_LISTEN_FDS_START + OPEN_FDS);
                return 1;
        }

        unsetenv("WATCHDOG_PID");
        unsetenv("WATCHDOG_USEC");

        printf("ready %ld %d\n", (long) pid, OPEN_FDS);

        char *line = NULL;
        size_t line_cap = 0;
        ssize_t line_len;
        unsigned long line_no = 0;
        while ((line_len = getline(&line, &line_cap, stdin)) >= 0) {
                line_no++;
                if (line_len > 0 && line[line_len - 1] == '\n')
                        line[--line_len] = 0;

                char *values[4] = {NULL, NULL, NULL, NULL};
                char *p = line;
                for (int v = 0; v < 4; v++) {
                        char *end = strchr(p, ' ');
                        if ((v < 3) != (end != NULL))
                                goto malformed;
                        size_t len = end ? (size_t) (end - p) : strlen(p);
                        if (len == 1 && p[0] == '-')
                                values[v] = NULL;
                        else if (len >= 1 && p[0] == '=') {
                                values[v] = decode_hex(p + 1, len - 1);
                                if (!values[v])
                                        goto malformed;
                                values[v] = substitute(values[v], pid);
                        } else
                                goto malformed;
                        p = end ? end + 1 : p + len;
                }

                for (int v = 0; v < 4; v++) {
                        int r = values[v] ? setenv(variables[v], values[v], 1) : unsetenv(variables[v]);
                        if (r < 0) {
                                perror("setenv");
                                return 1;
                        }
                }

                char **names = NULL;
                int r = sd_listen_fds_with_names(0, &names);
                printf("%d", r);

                if (values[1]) {
                        uint64_t usec = 0;
                        if (setenv("WATCHDOG_USEC", values[1], 1) < 0) {
                                perror("setenv");
                                return 1;
                        }
                        int w = sd_watchdog_enabled(0, &usec);
                        unsetenv("WATCHDOG_USEC");
                        if (w == 1)
                                printf(" 1 %" PRIu64, usec);
                        else
                                printf(" %d -", w);
                } else
                        printf(" - -");

                if (r > 0) {
                        for (int i = 0; i < r; i++) {
                                printf(" =");
                                print_hex(names[i]);
                                free(names[i]);
                        }
                        free(names);
                }
                printf("\n");

                for (int v = 0; v < 4; v++)
                        free(values[v]);
                continue;

        malformed:
                fprintf(stderr, "malformed input line %lu\n", line_no);
                return 2;
        }
        free(line);
        if (fflush(stdout) != 0) {
                perror("stdout");
                return 1;
        }
        return 0;
}
