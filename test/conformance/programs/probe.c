/*
 * A service linked with libsystemd that reports what its manager gave it, so that the same
 * program can be compared under systemd and under `sd-activate run`:
 *
 *   probe DIR [then]        writes DIR/PID.json, then: `exit` (0, the default), `wait` (until a
 *                           signal ends it) or `hold` (until EOF on stdin or on the connection at fd 3)
 *   probe --mq NAME         prints "exists" or "absent": whether the POSIX message queue NAME is
 *                           there (what is left after a stop; /dev/mqueue need not be mounted)
 *   probe --mq-unlink NAME  removes it, if it is there
 *
 * The report holds sd_booted(), sd_listen_fds_with_names(), every open fd (number, what it is, and
 * for sockets type, listening state and peer), and the whole environment. It is written to a temp
 * name and renamed, so a reader never sees half of it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

extern char **environ;

static void json_string(FILE *out, const char *s) {
  fputc('"', out);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') fprintf(out, "\\%c", *p);
    else if (*p < 0x20 || *p == 0x7f) fprintf(out, "\\u%04x", *p);
    else fputc(*p, out);
  }
  fputc('"', out);
}

/* "127.0.0.1:PORT", "[::1]:PORT", a unix path, or "" when there is no peer. */
static void peer_of(int fd, char *buf, size_t size) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  char host[INET6_ADDRSTRLEN];
  buf[0] = 0;
  if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0) return;
  if (ss.ss_family == AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    snprintf(buf, size, "%s:%u", host, ntohs(in->sin_port));
  } else if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    snprintf(buf, size, "[%s]:%u", host, ntohs(in6->sin6_port));
  } else if (ss.ss_family == AF_UNIX) {
    snprintf(buf, size, "unix");
  }
}

/* What fd is, in a few words: "socket stream listening", "socket stream connected", "fifo", "mq", "pipe", "file PATH", "chr PATH", ... */
static void describe(int fd, char *buf, size_t size) {
  struct stat st;
  char link[512] = "", path[64];
  ssize_t n;
  snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  n = readlink(path, link, sizeof(link) - 1);
  if (n >= 0) link[n] = 0;
  if (fstat(fd, &st) < 0) {
    snprintf(buf, size, "closed");
  } else if (sd_is_mq(fd, NULL) > 0) {
    snprintf(buf, size, "mq");
  } else if (S_ISSOCK(st.st_mode)) {
    int type = 0;
    socklen_t len = sizeof(type);
    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len);
    snprintf(buf, size, "socket %s %s", type == SOCK_STREAM ? "stream" : type == SOCK_DGRAM ? "dgram" : type == SOCK_SEQPACKET ? "seqpacket" : "other",
             sd_is_socket(fd, AF_UNSPEC, 0, 1) > 0 ? "listening" : "connected");
  } else if (S_ISFIFO(st.st_mode)) {
    snprintf(buf, size, strncmp(link, "pipe:", 5) == 0 ? "pipe" : "fifo");
  } else if (S_ISREG(st.st_mode)) {
    snprintf(buf, size, "file %s", link);
  } else if (S_ISCHR(st.st_mode)) {
    snprintf(buf, size, "chr %s", link);
  } else {
    snprintf(buf, size, "other %s", link);
  }
}

static int write_report(const char *dir) {
  char tmp[4096], final[4096], what[600], peer[128];
  char **names = NULL;
  int listen = sd_listen_fds_with_names(0, &names);
  snprintf(tmp, sizeof(tmp), "%s/.%d.tmp", dir, (int)getpid());
  snprintf(final, sizeof(final), "%s/%d.json", dir, (int)getpid());
  FILE *out = fopen(tmp, "we");
  if (!out) {
    perror(tmp);
    return -1;
  }
  fprintf(out, "{\"pid\":%d,\"booted\":%d,\"listenFds\":%d,\"names\":[", (int)getpid(), sd_booted(), listen);
  for (int i = 0; listen > 0 && names && i < listen; i++) {
    if (i) fputc(',', out);
    json_string(out, names[i]);
  }
  fprintf(out, "],\"fds\":[");
  /* The report file itself and the directory being read are left out. */
  int skip = fileno(out);
  DIR *d = opendir("/proc/self/fd");
  int first = 1;
  if (d) {
    int self = dirfd(d);
    struct dirent *e;
    int fds[1024], count = 0;
    while ((e = readdir(d)) && count < 1024) {
      if (e->d_name[0] == '.') continue;
      int fd = atoi(e->d_name);
      if (fd != self && fd != skip) fds[count++] = fd;
    }
    closedir(d);
    for (int i = 0; i < count; i++) {
      describe(fds[i], what, sizeof(what));
      peer_of(fds[i], peer, sizeof(peer));
      fprintf(out, "%s{\"fd\":%d,\"what\":", first ? "" : ",", fds[i]);
      json_string(out, what);
      if (peer[0]) {
        fprintf(out, ",\"peer\":");
        json_string(out, peer);
      }
      fputc('}', out);
      first = 0;
    }
  }
  fprintf(out, "],\"env\":{");
  for (char **e = environ; *e; e++) {
    char *eq = strchr(*e, '=');
    if (!eq) continue;
    *eq = 0;
    if (e != environ) fputc(',', out);
    json_string(out, *e);
    fputc(':', out);
    json_string(out, eq + 1);
    *eq = '=';
  }
  fprintf(out, "}}\n");
  if (fclose(out) != 0 || rename(tmp, final) != 0) {
    perror(final);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: probe DIR [exit|wait|hold] | --mq NAME | --mq-unlink NAME\n");
    return 2;
  }
  if (argc == 3 && strcmp(argv[1], "--mq") == 0) {
    mqd_t q = mq_open(argv[2], O_RDONLY);
    if (q == (mqd_t)-1 && errno != ENOENT) {
      perror(argv[2]);
      return 1;
    }
    puts(q == (mqd_t)-1 ? "absent" : "exists");
    return 0;
  }
  if (argc == 3 && strcmp(argv[1], "--mq-unlink") == 0) return mq_unlink(argv[2]) == 0 || errno == ENOENT ? 0 : 1;
  const char *then = argc > 2 ? argv[2] : "exit";
  if (write_report(argv[1]) < 0) return 1;
  if (strcmp(then, "wait") == 0) {
    for (;;) pause();
  } else if (strcmp(then, "hold") == 0) {
    char buf[256];
    int fd = sd_listen_fds(0) > 0 ? SD_LISTEN_FDS_START : 0;
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
  }
  return 0;
}
