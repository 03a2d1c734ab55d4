/*
 * wanproxy: a TCP relay that makes a loopback link look like a far one
 * (delay each way, optional bandwidth) and counts the round trips a client
 * waits for.  Used by the remote tests and `make bench`'s WAN phase.
 *
 *   wanproxy [-d MS] [-r KBYTES_PER_S] [-l PORT] [-P PORTFILE]
 *            [-s STATSFILE] [-v] HOST:PORT
 *
 *   -d MS        delay added to every byte in each direction (default 0;
 *                -d 20 gives a 40 ms round trip)
 *   -r KB/S      bandwidth of each direction (default unlimited)
 *   -l PORT      listen on 127.0.0.1:PORT (default 0: a free port)
 *   -P FILE      write the port listened on to FILE once listening (wait
 *                for the file to be non-empty before connecting)
 *   -s FILE      append one line per finished connection to FILE:
 *                  conn N turns T up BYTES down BYTES ms ELAPSED
 *   -v           the same lines, and one per turn, on stderr; -vv also
 *                one per piece of data read (direction, size, time)
 *   HOST:PORT    where to relay to (an IPv4 address or a name)
 *
 * A "turn" is one wait of the client for the server: the client sends
 * data after the relay has handed it an answer since the client's
 * previous turn began.  An answer is server data the relay read after it
 * had written the turn's first data to the server; data the server sent
 * before (its banner, its key exchange offer) is not waited for.  The
 * first client send is turn 1 (the TCP connect itself is one more round
 * trip, not counted).  Requests the client pipelines without waiting for
 * answers stay one turn; a request sent only after an answer came back
 * starts a new one.  With -d D, a connection's elapsed time is about
 * turns x 2D plus transfer time: the two agree when counting is right.
 *
 * The relay runs until SIGTERM or SIGINT; it then writes
 *   total conns N turns T up BYTES down BYTES
 * to the stats file (and stderr with -v) and exits 0.  Many connections
 * at once are relayed (one poll loop, no threads).
 *
 * In shell tests: tests/lib/wanproxy.sh (wanproxy_start, wanproxy_turns).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 256
#define READ_SIZE (64u << 10)
/* bytes held in flight per direction before the relay stops reading (the
   window of a long fat link; TCP's own flow control works beyond it) */
#define MAX_QUEUED (32u << 20)

/* one piece of data in flight in one direction */
struct chunk {
	struct chunk *next;
	int64_t due_us; /* when it may be written to the far side */
	size_t len;	/* 0: end of stream (shutdown the far side) */
	size_t off;	/* bytes of it already written */
	int turn;	/* up: the first data of a turn; down: read after the
			   current turn's data reached the server */
	unsigned char data[];
};

/* one direction of a connection: read from `from`, written to `to` */
struct dir {
	int from, to;
	struct chunk *head, *tail; /* in flight, oldest first */
	int64_t link_free_us;	   /* bandwidth: when the link is idle */
	int read_eof;		   /* `from` gave EOF or an error */
	int done;		   /* EOF delivered (or failed) to `to` */
	size_t queued;		   /* bytes in flight */
	uint64_t bytes;
};

struct conn {
	int used;
	unsigned id;
	int cfd, sfd;
	struct dir up;		   /* client -> server */
	struct dir down;	   /* server -> client */
	int delivered_since;	   /* an answer reached the client since the
				      client's last turn began */
	int64_t turn_at_server_us; /* when the current turn's first data
				      was written to the server, 0: not yet */
	unsigned turns;
	int64_t start_us;
};

static struct conn conns[MAX_CONNS];
static volatile sig_atomic_t stop;
static int64_t delay_us;
static int64_t rate_bps; /* bytes per second, 0 = unlimited */
static FILE *stats;
static int verbose;
static unsigned next_id = 1;
static uint64_t tot_conns, tot_turns, tot_up, tot_down;

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: wanproxy [-d MS] [-r KB/S] [-l PORT] "
			"[-P PORTFILE] [-s STATSFILE] [-v] HOST:PORT\n");
	exit(2);
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0)
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static struct chunk *dir_push(struct dir *d, const unsigned char *buf,
			      size_t len)
{
	struct chunk *c = malloc(sizeof(*c) + len);
	int64_t now = now_us();
	int64_t start;

	if (!c) {
		perror("wanproxy: malloc");
		exit(1);
	}
	c->next = NULL;
	c->len = len;
	c->off = 0;
	c->turn = 0;
	if (len)
		memcpy(c->data, buf, len);
	start = now > d->link_free_us ? now : d->link_free_us;
	if (rate_bps > 0) {
		start += (int64_t)len * 1000000 / rate_bps;
		d->link_free_us = start;
	}
	c->due_us = start + delay_us;
	d->queued += len;
	if (d->tail)
		d->tail->next = c;
	else
		d->head = c;
	d->tail = c;
	return c;
}

static void dir_free(struct dir *d)
{
	while (d->head) {
		struct chunk *c = d->head;

		d->head = c->next;
		free(c);
	}
	d->tail = NULL;
	d->queued = 0;
}

static void conn_finish(struct conn *c)
{
	double ms = (double)(now_us() - c->start_us) / 1000.0;

	if (stats) {
		fprintf(stats, "conn %u turns %u up %llu down %llu ms %.1f\n",
			c->id, c->turns, (unsigned long long)c->up.bytes,
			(unsigned long long)c->down.bytes, ms);
		fflush(stats);
	}
	if (verbose)
		fprintf(stderr,
			"wanproxy: conn %u turns %u up %llu down %llu "
			"ms %.1f\n",
			c->id, c->turns, (unsigned long long)c->up.bytes,
			(unsigned long long)c->down.bytes, ms);
	tot_conns++;
	tot_turns += c->turns;
	tot_up += c->up.bytes;
	tot_down += c->down.bytes;
	close(c->cfd);
	close(c->sfd);
	dir_free(&c->up);
	dir_free(&c->down);
	c->used = 0;
}

/* read what `from` has and queue it */
static void dir_read(struct conn *c, struct dir *d, int is_up)
{
	static unsigned char buf[READ_SIZE];
	ssize_t n = read(d->from, buf, sizeof(buf));
	struct chunk *k;
	int new_turn = 0;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		d->read_eof = 1;
		(void)dir_push(d, NULL, 0);
		return;
	}
	d->bytes += (uint64_t)n;
	if (verbose > 1)
		fprintf(stderr, "wanproxy: conn %u %s %zd bytes at %.1f ms\n",
			c->id, is_up ? "up" : "down", n,
			(double)(now_us() - c->start_us) / 1000.0);
	if (is_up && (c->turns == 0 || c->delivered_since)) {
		c->turns++;
		c->delivered_since = 0;
		c->turn_at_server_us = 0;
		new_turn = 1;
		if (verbose)
			fprintf(stderr,
				"wanproxy: conn %u turn %u at %.1f ms\n", c->id,
				c->turns,
				(double)(now_us() - c->start_us) / 1000.0);
	}
	k = dir_push(d, buf, (size_t)n);
	if (is_up)
		k->turn = new_turn;
	else
		k->turn = c->turn_at_server_us &&
			  now_us() >= c->turn_at_server_us;
}

/* write what is due to `to` */
static void dir_write(struct conn *c, struct dir *d, int is_up, int64_t now)
{
	while (d->head && d->head->due_us <= now && !d->done) {
		struct chunk *k = d->head;

		if (k->len == 0) {
			(void)shutdown(d->to, SHUT_WR);
			d->done = 1;
		} else {
			ssize_t n =
				write(d->to, k->data + k->off, k->len - k->off);

			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return;
			if (n < 0) {
				/* the far side is gone: drop the rest, and
				   stop reading this direction */
				d->done = 1;
				d->read_eof = 1;
				dir_free(d);
				return;
			}
			/* server data sent before the server saw the
			   turn's request (a banner, a key exchange offer)
			   is no answer to wait for */
			if (!is_up && k->turn)
				c->delivered_since = 1;
			if (is_up && k->turn && !c->turn_at_server_us)
				c->turn_at_server_us = now_us();
			k->off += (size_t)n;
			if (k->off < k->len)
				return;
		}
		d->queued -= k->len;
		d->head = k->next;
		if (!d->head)
			d->tail = NULL;
		free(k);
	}
}

static int resolve(const char *spec, struct sockaddr_storage *ss,
		   socklen_t *sslen)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	struct addrinfo hints, *ai = NULL;
	size_t hl;
	int rc;

	if (!colon || colon == spec)
		return -1;
	hl = (size_t)(colon - spec);
	if (hl >= sizeof(host))
		return -1;
	memcpy(host, spec, hl);
	host[hl] = 0;
	if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = 0;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, colon + 1, &hints, &ai);
	if (rc || !ai) {
		fprintf(stderr, "wanproxy: %s: %s\n", spec, gai_strerror(rc));
		return -1;
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*sslen = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

static void accept_one(int lfd, const struct sockaddr_storage *target,
		       socklen_t tlen)
{
	int cfd = accept(lfd, NULL, NULL);
	int sfd, one = 1;
	struct conn *c = NULL;

	if (cfd < 0)
		return;
	for (int i = 0; i < MAX_CONNS; i++) {
		if (!conns[i].used) {
			c = &conns[i];
			break;
		}
	}
	sfd = socket(target->ss_family, SOCK_STREAM, 0);
	/* a blocking connect: the target is local, this takes no time */
	if (!c || sfd < 0 ||
	    connect(sfd, (const struct sockaddr *)target, tlen) < 0) {
		perror("wanproxy: connect to target");
		close(cfd);
		if (sfd >= 0)
			close(sfd);
		return;
	}
	(void)setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	set_nonblock(cfd);
	set_nonblock(sfd);
	memset(c, 0, sizeof(*c));
	c->used = 1;
	c->id = next_id++;
	c->cfd = cfd;
	c->sfd = sfd;
	c->up.from = cfd;
	c->up.to = sfd;
	c->down.from = sfd;
	c->down.to = cfd;
	c->start_us = now_us();
}

int main(int argc, char **argv)
{
	const char *portfile = NULL, *statsfile = NULL;
	struct sockaddr_storage target;
	socklen_t tlen = 0;
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	struct sigaction sa;
	int port = 0, opt, lfd, one = 1;

	while ((opt = getopt(argc, argv, "d:r:l:P:s:v")) != -1) {
		switch (opt) {
		case 'd':
			delay_us = (int64_t)(atof(optarg) * 1000.0);
			break;
		case 'r':
			rate_bps = (int64_t)(atof(optarg) * 1000.0);
			break;
		case 'l':
			port = atoi(optarg);
			break;
		case 'P':
			portfile = optarg;
			break;
		case 's':
			statsfile = optarg;
			break;
		case 'v':
			verbose++;
			break;
		default:
			usage();
		}
	}
	if (optind != argc - 1 || delay_us < 0 || rate_bps < 0)
		usage();
	if (resolve(argv[optind], &target, &tlen) < 0)
		return 2;
	if (statsfile) {
		stats = fopen(statsfile, "a");
		if (!stats) {
			perror(statsfile);
			return 1;
		}
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	(void)setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(lfd, 64) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &slen) < 0) {
		perror("wanproxy: listen");
		return 1;
	}
	set_nonblock(lfd);
	if (portfile) {
		char tmp[4096];
		FILE *f;

		snprintf(tmp, sizeof(tmp), "%s.tmp", portfile);
		f = fopen(tmp, "w");
		if (!f || fprintf(f, "%u\n", ntohs(sin.sin_port)) < 0 ||
		    fclose(f) != 0 || rename(tmp, portfile) < 0) {
			perror(portfile);
			return 1;
		}
	}
	if (verbose)
		fprintf(stderr,
			"wanproxy: 127.0.0.1:%u -> %s, %lld ms each way\n",
			ntohs(sin.sin_port), argv[optind],
			(long long)(delay_us / 1000));

	while (!stop) {
		static struct pollfd pfd[1 + 4 * MAX_CONNS];
		static struct conn *who[1 + 4 * MAX_CONNS];
		int64_t now = now_us(), next = -1;
		int n = 0, timeout;

		pfd[n].fd = lfd;
		pfd[n].events = POLLIN;
		who[n++] = NULL;
		for (int i = 0; i < MAX_CONNS; i++) {
			struct conn *c = &conns[i];

			if (!c->used)
				continue;
			dir_write(c, &c->up, 1, now);
			dir_write(c, &c->down, 0, now);
			if (c->up.done && c->down.done) {
				conn_finish(c);
				continue;
			}
			for (int k = 0; k < 2; k++) {
				struct dir *d = k ? &c->down : &c->up;
				short ev = 0;

				if (!d->read_eof && d->queued < MAX_QUEUED)
					ev |= POLLIN;
				if (d->head && d->head->due_us <= now &&
				    !d->done)
					ev |= POLLOUT;
				else if (d->head && !d->done &&
					 (next < 0 || d->head->due_us < next))
					next = d->head->due_us;
				/* POLLIN on from, POLLOUT on to */
				if (ev & POLLIN) {
					pfd[n].fd = d->from;
					pfd[n].events = POLLIN;
					who[n++] = c;
				}
				if (ev & POLLOUT) {
					pfd[n].fd = d->to;
					pfd[n].events = POLLOUT;
					who[n++] = c;
				}
			}
		}
		timeout = -1;
		if (next >= 0) {
			int64_t w = next - now_us();

			timeout = w <= 0 ? 0 : (int)((w + 999) / 1000);
		}
		if (poll(pfd, (nfds_t)n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			perror("wanproxy: poll");
			return 1;
		}
		if (pfd[0].revents & POLLIN)
			accept_one(lfd, &target, tlen);
		for (int i = 1; i < n; i++) {
			struct conn *c = who[i];

			if (!pfd[i].revents || !c->used)
				continue;
			if (pfd[i].events & POLLIN) {
				if (pfd[i].fd == c->cfd && !c->up.read_eof)
					dir_read(c, &c->up, 1);
				else if (pfd[i].fd == c->sfd &&
					 !c->down.read_eof)
					dir_read(c, &c->down, 0);
			}
		}
	}
	for (int i = 0; i < MAX_CONNS; i++)
		if (conns[i].used)
			conn_finish(&conns[i]);
	if (stats) {
		fprintf(stats,
			"total conns %llu turns %llu up %llu down %llu\n",
			(unsigned long long)tot_conns,
			(unsigned long long)tot_turns,
			(unsigned long long)tot_up,
			(unsigned long long)tot_down);
		fclose(stats);
	}
	if (verbose)
		fprintf(stderr, "wanproxy: total conns %llu turns %llu\n",
			(unsigned long long)tot_conns,
			(unsigned long long)tot_turns);
	close(lfd);
	return 0;
}
