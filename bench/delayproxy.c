/* delayproxy: a TCP proxy on loopback that puts a gateway RTT milliseconds away, for the
 * "whole lesson on a remote gateway" benchmark (bench/suite.lua, M.remote).
 *
 * usage: delayproxy --target HOST:PORT --rtt-ms R [--max-conns N] [--buffer-kib K]
 *                   [--deadline SECONDS] [--stats FILE] [--spin-us N]
 *
 * It listens on 127.0.0.1:0, prints "listening 127.0.0.1:PORT" on stdout (then nothing
 * else), and forwards every accepted connection to HOST:PORT (numeric IPv4).
 *
 * The model: a link with a one-way delay of RTT/2 in each direction and no bandwidth limit.
 * - Every chunk of bytes read from one side is written to the other side RTT/2 after it was
 *   read. Chunks of one direction leave in the order they came (a FIFO per direction, with
 *   due times that never decrease), so TLS records and HTTP messages arrive intact and in
 *   order; the two directions are independent.
 * - The TCP handshake. The client's SYN / SYN-ACK happen against this proxy, on loopback, so
 *   its connect() returns at once, where on a real link it returns after one RTT. So the
 *   connection is held as if it had opened RTT after accept(): the client's bytes are taken
 *   as sent at max(read time, accept time + RTT) and delivered RTT/2 later. A client that
 *   writes at once after connect() (a TLS ClientHello, a plain HTTP request) has its first
 *   bytes reach the server 1.5 RTT after connect(), and the answer back at 2 RTT: one RTT for
 *   the TCP handshake plus one for the exchange, as on a real link. The upstream connection
 *   itself is opened at accept time (loopback, instant); the server cannot tell the difference
 *   for protocols in which the client speaks first (HTTP, TLS).
 * - End of stream (FIN) travels like data: shutdown(SHUT_WR) on the other side RTT/2 after
 *   the EOF was read. An error (RST, EPIPE) closes both sides at once.
 * So one new TLS 1.3 connection with one request costs the client 3 RTT (TCP, TLS, the
 * request), each further request on it 1 RTT: the "floor" the benchmark compares with.
 *
 * Accuracy: timers are ppoll() timeouts in nanoseconds with the timer slack set to 1 ns. A
 * process woken from a sleep of milliseconds on an idle virtual CPU runs some 100-1000 µs
 * late, so the last --spin-us (default 300) before a chunk is due are polled without sleeping
 * (ppoll with a zero timeout, still serving every socket): a core busy for 0.3 ms per delivery,
 * for deliveries on time to a few µs when a core is free (when the client and the server keep
 * both cores busy, a delivery can still wait for one). At RTT 0 each direction costs one extra read and write on loopback (tens of
 * microseconds). How late each chunk left is counted (late_ns_sum, late_ns_max in the stats).
 *
 * Bounds: at most --max-conns connections at once (default 64; beyond it the listener is not
 * polled and new clients wait in its backlog), at most --buffer-kib KiB queued per direction
 * (default 1024; beyond it the source is not read until the queue drains), reads of 64 KiB
 * at most. It stops on SIGTERM or SIGINT, at the --deadline (default 600 s), or when its parent
 * process goes away.
 *
 * Stats: --stats FILE is rewritten (atomically, by rename) whenever a connection is accepted
 * or closed: "accepted N\nactive N\nbytes_up N\nbytes_down N\nchunks N\nlate_ns_sum N\nlate_ns_max N\n"
 * (bytes_up: client to server, bytes_down: server to client, counted when written; chunks
 * delivered, and by how much their first write missed their due time, in all and at most). The accept count is written before any
 * byte of that connection is forwarded, so a client that has finished has been counted.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define READ_MAX 65536

struct chunk {
  struct chunk *next;
  int64_t due;       /* monotonic ns at which it may be written */
  size_t len, off;   /* len 0: the end of the stream (shutdown SHUT_WR) */
  int tried;         /* a write was attempted (its lateness counted) */
  unsigned char data[];
};

struct dir {
  struct chunk *head, *tail;
  size_t queued;
  int eof_read;      /* the source has sent its EOF (queued as a len 0 chunk) */
  int shut;          /* the EOF was delivered */
  int blocked;       /* the head is due but the destination's buffer is full */
};

struct conn {
  int used;
  int cfd, ufd;      /* client side, upstream side */
  int connecting;    /* upstream connect() in progress */
  int64_t opened;    /* when the client's bytes count as sendable: accept + RTT */
  struct dir up, down;
};

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) { (void)sig; stop_flag = 1; }

static int64_t half_ns, rtt_ns, spin_ns = 300000;
static size_t cap_bytes = 1024 * 1024;
static int max_conns = 64;
static struct conn *conns;
static int nactive;
static unsigned long long accepted, bytes_up, bytes_down, chunks, late_ns_sum, late_ns_max;
static const char *stats_path;
static struct sockaddr_in target;

static int64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void write_stats(void)
{
  if (!stats_path) return;
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", stats_path) >= (int)sizeof tmp) return;
  FILE *f = fopen(tmp, "w");
  if (!f) return;
  fprintf(f, "accepted %llu\nactive %d\nbytes_up %llu\nbytes_down %llu\nchunks %llu\nlate_ns_sum %llu\n"
          "late_ns_max %llu\n", accepted, nactive, bytes_up, bytes_down, chunks, late_ns_sum, late_ns_max);
  if (fclose(f) == 0) rename(tmp, stats_path);
}

static void free_dir(struct dir *d)
{
  struct chunk *c = d->head;
  while (c) {
    struct chunk *n = c->next;
    free(c);
    c = n;
  }
  memset(d, 0, sizeof *d);
}

static void close_conn(struct conn *c)
{
  if (!c->used) return;
  close(c->cfd);
  close(c->ufd);
  free_dir(&c->up);
  free_dir(&c->down);
  c->used = 0;
  nactive--;
  write_stats();
}

static void set_nodelay(int fd)
{
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void accept_one(int lfd)
{
  int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (cfd < 0) return;
  accepted++;
  int64_t t = now_ns();
  struct conn *c = NULL;
  for (int i = 0; i < max_conns; i++) {
    if (!conns[i].used) { c = &conns[i]; break; }
  }
  int ufd = c ? socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) : -1;
  if (ufd < 0) {
    close(cfd);
    return;
  }
  set_nodelay(cfd);
  set_nodelay(ufd);
  int rc = connect(ufd, (struct sockaddr *)&target, sizeof target);
  if (rc < 0 && errno != EINPROGRESS) {
    close(cfd);
    close(ufd);
    return;
  }
  memset(c, 0, sizeof *c);
  c->used = 1;
  c->cfd = cfd;
  c->ufd = ufd;
  c->connecting = rc < 0;
  c->opened = t + rtt_ns;
  nactive++;
  write_stats();
}

/* Reads what the source has (one read) into the direction's queue. Returns -1 on error. */
static int pull(int from, struct dir *d, int64_t gate)
{
  struct chunk *ch = malloc(sizeof *ch + READ_MAX);
  if (!ch) return -1;
  ssize_t n = read(from, ch->data, READ_MAX);
  if (n < 0) {
    free(ch);
    return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
  }
  int64_t t = now_ns();
  if (t < gate) t = gate;
  if (n > 0 && n < READ_MAX) {
    struct chunk *small = realloc(ch, sizeof *ch + (size_t)n);
    if (small) ch = small;
  }
  ch->next = NULL;
  ch->due = t + half_ns;
  ch->len = (size_t)n;
  ch->off = 0;
  ch->tried = 0;
  if (d->tail) d->tail->next = ch; else d->head = ch;
  d->tail = ch;
  d->queued += (size_t)n;
  if (n == 0) d->eof_read = 1;
  return 0;
}

/* Writes the due chunks of a direction. Returns -1 when the connection must close. */
static int push(int to, struct dir *d, int64_t t, unsigned long long *count)
{
  d->blocked = 0;
  while (d->head && d->head->due <= t) {
    struct chunk *ch = d->head;
    if (!ch->tried) {
      /* How late the first write of a chunk is against its due time. */
      unsigned long long late = (unsigned long long)(now_ns() - ch->due);
      ch->tried = 1;
      chunks++;
      late_ns_sum += late;
      if (late > late_ns_max) late_ns_max = late;
    }
    if (ch->len == 0) {
      if (shutdown(to, SHUT_WR) < 0 && errno != ENOTCONN) return -1;
      d->shut = 1;
    } else {
      ssize_t n = send(to, ch->data + ch->off, ch->len - ch->off, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
          d->blocked = 1;
          return 0;
        }
        return -1;
      }
      ch->off += (size_t)n;
      d->queued -= (size_t)n;
      *count += (unsigned long long)n;
      if (ch->off < ch->len) {
        d->blocked = 1;
        return 0;
      }
    }
    d->head = ch->next;
    if (!d->head) d->tail = NULL;
    free(ch);
  }
  return 0;
}

static int flush_conn(struct conn *c, int64_t t)
{
  if (!c->connecting && push(c->ufd, &c->up, t, &bytes_up) < 0) return -1;
  if (push(c->cfd, &c->down, t, &bytes_down) < 0) return -1;
  return 0;
}

static int parse_target(const char *s)
{
  const char *colon = strrchr(s, ':');
  if (!colon || colon == s || (size_t)(colon - s) >= 64) return -1;
  char host[64];
  memcpy(host, s, (size_t)(colon - s));
  host[colon - s] = '\0';
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || port < 1 || port > 65535) return -1;
  memset(&target, 0, sizeof target);
  target.sin_family = AF_INET;
  target.sin_port = htons((uint16_t)port);
  return inet_pton(AF_INET, host, &target.sin_addr) == 1 ? 0 : -1;
}

static void usage(void)
{
  fprintf(stderr, "usage: delayproxy --target HOST:PORT --rtt-ms R [--max-conns N] [--buffer-kib K] "
                  "[--deadline SECONDS] [--stats FILE] [--spin-us N]\n");
  exit(2);
}

int main(int argc, char **argv)
{
  double rtt_ms = -1, deadline_s = 600;
  int have_target = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) usage();
    if (!strcmp(a, "--target")) { if (parse_target(v) < 0) usage(); have_target = 1; }
    else if (!strcmp(a, "--rtt-ms")) rtt_ms = strtod(v, NULL);
    else if (!strcmp(a, "--max-conns")) max_conns = atoi(v);
    else if (!strcmp(a, "--buffer-kib")) cap_bytes = (size_t)atol(v) * 1024;
    else if (!strcmp(a, "--deadline")) deadline_s = strtod(v, NULL);
    else if (!strcmp(a, "--stats")) stats_path = v;
    else if (!strcmp(a, "--spin-us")) spin_ns = (int64_t)atol(v) * 1000;
    else usage();
    i++;
  }
  if (!have_target || rtt_ms < 0 || rtt_ms > 10000 || max_conns < 1 || max_conns > 1024 || cap_bytes < READ_MAX ||
      deadline_s <= 0 || spin_ns < 0 || spin_ns > 100000000)
    usage();
  rtt_ns = (int64_t)(rtt_ms * 1e6 + 0.5);
  half_ns = rtt_ns / 2;
  conns = calloc((size_t)max_conns, sizeof *conns);
  struct pollfd *pfd = calloc((size_t)(2 * max_conns + 1), sizeof *pfd);
  if (!conns || !pfd) return 1;

  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL); /* wake when asked, not up to 50 µs later */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  pid_t parent = getppid();

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in la;
  memset(&la, 0, sizeof la);
  la.sin_family = AF_INET;
  la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof la;
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&la, sizeof la) < 0 || listen(lfd, 128) < 0 ||
      getsockname(lfd, (struct sockaddr *)&la, &len) < 0) {
    perror("delayproxy: listen");
    return 1;
  }
  write_stats();
  printf("listening 127.0.0.1:%d\n", ntohs(la.sin_port));
  fflush(stdout);

  int64_t deadline = now_ns() + (int64_t)(deadline_s * 1e9);
  while (!stop_flag) {
    int64_t t = now_ns();
    if (t >= deadline) {
      fprintf(stderr, "delayproxy: deadline reached\n");
      break;
    }
    if (getppid() != parent) break;
    /* Deliver what is due, then wait for input, writability or the next due time. */
    for (int i = 0; i < max_conns; i++) {
      struct conn *c = &conns[i];
      if (!c->used) continue;
      if (flush_conn(c, t) < 0 || (c->up.shut && c->down.shut)) close_conn(c);
    }
    int64_t wake = t + 1000000000; /* at least once a second: deadline, parent */
    if (wake > deadline) wake = deadline;
    int64_t next_due = INT64_MAX;
    pfd[0].fd = nactive < max_conns ? lfd : -1;
    pfd[0].events = POLLIN;
    pfd[0].revents = 0;
    for (int i = 0; i < max_conns; i++) {
      struct conn *c = &conns[i];
      struct pollfd *pc = &pfd[1 + 2 * i], *pu = &pfd[2 + 2 * i];
      pc->fd = pu->fd = -1;
      pc->events = pu->events = pc->revents = pu->revents = 0;
      if (!c->used) continue;
      if (!c->up.eof_read && c->up.queued < cap_bytes) pc->events |= POLLIN;
      if (c->down.blocked) pc->events |= POLLOUT;
      if (c->connecting || c->up.blocked) pu->events |= POLLOUT;
      if (!c->connecting && !c->down.eof_read && c->down.queued < cap_bytes) pu->events |= POLLIN;
      if (pc->events) pc->fd = c->cfd;
      if (pu->events) pu->fd = c->ufd;
      if (c->up.head && !c->up.blocked && !c->connecting && c->up.head->due < next_due) next_due = c->up.head->due;
      if (c->down.head && !c->down.blocked && c->down.head->due < next_due) next_due = c->down.head->due;
    }
    if (next_due < wake) wake = next_due;
    nfds_t n = (nfds_t)(2 * max_conns + 1);
    int64_t wait = wake - now_ns();
    if (wake == next_due) wait = wait > spin_ns ? wait - spin_ns : 0; /* the last stretch polled, not slept */
    if (wait < 0) wait = 0;
    struct timespec ts = { (time_t)(wait / 1000000000), (long)(wait % 1000000000) };
    int rc = ppoll(pfd, n, &ts, NULL);
    if (rc < 0) {
      if (errno == EINTR) continue;
      perror("delayproxy: ppoll");
      break;
    }
    if (rc == 0) continue;
    if (pfd[0].revents & POLLIN) {
      for (int k = 0; k < 16 && nactive < max_conns; k++) {
        int before = nactive;
        accept_one(lfd);
        if (nactive == before) break;
      }
    }
    for (int i = 0; i < max_conns; i++) {
      struct conn *c = &conns[i];
      if (!c->used) continue;
      short rc_ = pfd[1 + 2 * i].revents, ru = pfd[2 + 2 * i].revents;
      int bad = 0;
      if (c->connecting && ru) {
        int err = 0;
        socklen_t el = sizeof err;
        if (getsockopt(c->ufd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) bad = 1;
        else c->connecting = 0;
        ru = 0;
      }
      if (!bad && (rc_ & (POLLIN | POLLHUP | POLLERR)) && !c->up.eof_read && c->up.queued < cap_bytes)
        bad = pull(c->cfd, &c->up, c->opened) < 0;
      if (!bad && (ru & (POLLIN | POLLHUP | POLLERR)) && !c->down.eof_read && c->down.queued < cap_bytes)
        bad = pull(c->ufd, &c->down, 0) < 0;
      if (!bad && ((rc_ | ru) & POLLERR) && !(rc_ & POLLIN) && !(ru & POLLIN)) bad = 1;
      if (bad) close_conn(c);
    }
  }
  for (int i = 0; i < max_conns; i++) close_conn(&conns[i]);
  close(lfd);
  write_stats();
  fprintf(stderr, "delayproxy: accepted %llu connections, %llu bytes up, %llu bytes down\n", accepted, bytes_up,
          bytes_down);
  free(conns);
  free(pfd);
  return 0;
}
