/*
 * gzstream: read-ahead and gzip inflation of an archive input (see
 * include/gzstream.h).
 *
 * Workload: one pass over a day's tar.gz of a mail volume, hundreds of MB
 * to a few GB, from a file or an ssh pipe.  Inflation is the slowest step
 * of ingest, so it runs on its own thread with ISA-L and hands the parser
 * large blocks through a ring, never copying a decompressed byte twice.
 *
 * Design notes:
 *  1. The ring holds nblocks blocks.  The consumer holds at most one block
 *     (the one it borrowed last); the producer fills block wr only while
 *     nfull + held < nblocks, so it never writes a block that is full or
 *     borrowed.  Indices and counters change only under lock.
 *  2. A block's bytes are written by the producer before it is published
 *     under lock and read by the consumer after it took it under lock; the
 *     mutex orders them.  The producer's error record is written before
 *     done is set under lock and read after done is seen under lock.
 *  3. Only full blocks are published, except the last one before the end,
 *     an error, or trailing data; empty blocks are never published, so
 *     the consumer never mistakes one for the end.
 *  4. close sets stop, wakes a producer waiting for a free block, and
 *     writes to a wake pipe a producer blocked in poll(2) on a pipe or
 *     socket also watches; regular files never block, so they are read
 *     without poll.
 *  5. Between members, isal_inflate leaves next_in just past the trailer
 *     (it keeps at most the 8 trailer bytes in its bit buffer and consumes
 *     exactly those), so the next member's magic is read from next_in.
 */
#include "gzstream.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <isa-l/igzip_lib.h>

#define GZ_MAGIC1 0x1f
#define GZ_MAGIC2 0x8b
#define GZ_MAX_BLOCK_SIZE ((size_t)64 << 20)
#define GZ_MAX_NBLOCKS 64u
#define GZ_MIN_IN_SIZE 16u
#define GZ_WARN_MAX 512

/* Internal codes of the producer's steps, beside negative errno values. */
#define GZ_STOPPED (-ECANCELED) /* the consumer closed the stream */

struct gz_block {
	uint8_t *data;	 /* block_size bytes */
	size_t len;	 /* bytes filled */
	uint64_t in_off; /* compressed bytes behind the block's end */
};

struct gzstream {
	/* Fixed at open. */
	int fd;			 /* input, owned by the caller */
	char *label;		 /* names the input in messages */
	bool gzip;		 /* inflating, else passing through */
	bool use_poll;		 /* fd may block: poll it with the wake pipe */
	int wake[2];		 /* close writes to wake[1]; -1 when unused */
	size_t block_size;	 /* bytes per ring block */
	unsigned nblocks;	 /* blocks in the ring */
	size_t in_size;		 /* bytes asked of each read(2) */
	struct gz_block *blocks; /* the ring */
	uint8_t *in;		 /* input buffer, in_size bytes */
	size_t in_len;	  /* bytes read at open, handed to the producer */
	pthread_t thread; /* the producer */
	bool thread_started;

	/* Shared, under lock (design note 1). */
	pthread_mutex_t lock;
	pthread_cond_t can_fill;	/* a block became free, or stop */
	pthread_cond_t can_take;	/* a block was published, or done */
	unsigned wr;			/* next block the producer fills */
	unsigned rd;			/* next block the consumer takes */
	unsigned nfull;			/* published blocks not yet taken */
	bool held;			/* the consumer borrows block rd - 1 */
	bool done;			/* the producer has finished */
	int perr_code;			/* 0 at a clean end, else the error */
	struct mv_err perr;		/* the producer's error message */
	char warning[GZ_WARN_MAX];	/* "" or a warning for the user */
	atomic_bool stop;		/* the consumer is closing */
	atomic_uint_least64_t total_in; /* bytes read from fd */

	/* Producer only. */
	struct inflate_state *st; /* ISA-L inflate state */
	uint64_t member_off;	  /* compressed offset of the current member */

	/* Consumer only. */
	const uint8_t *cur; /* the borrowed block */
	size_t cur_len;	    /* its length */
	size_t cur_pos;	    /* bytes of it handed out */
	uint64_t out_off;   /* compressed offset of what was handed out */
	uint64_t total_out; /* decompressed bytes handed out */
	const char *warn;   /* warning, once the end was seen */
};

/* Read up to n bytes from the input into p: > 0 bytes read, 0 at the end
 * of input, GZ_STOPPED when closing, or -errno. */
static ssize_t input_read(struct gzstream *g, uint8_t *p, size_t n)
{
	for (;;) {
		ssize_t r;

		if (atomic_load(&g->stop))
			return GZ_STOPPED;
		if (g->use_poll) {
			struct pollfd pfd[2] = {
				{.fd = g->fd, .events = POLLIN},
				{.fd = g->wake[0], .events = POLLIN},
			};

			if (poll(pfd, 2, -1) < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			if (pfd[1].revents)
				return GZ_STOPPED;
		}
		r = read(g->fd, p, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN && g->use_poll)
				continue;
			return -errno;
		}
		atomic_fetch_add(&g->total_in, (uint64_t)r);
		return r;
	}
}

/* Wait for a free block and return it, emptied, in *out. */
static int block_acquire(struct gzstream *g, struct gz_block **out)
{
	int rc = 0;

	pthread_mutex_lock(&g->lock);
	while (!atomic_load(&g->stop) && g->nfull + g->held == g->nblocks)
		pthread_cond_wait(&g->can_fill, &g->lock);
	if (atomic_load(&g->stop))
		rc = GZ_STOPPED;
	else
		*out = &g->blocks[g->wr];
	pthread_mutex_unlock(&g->lock);
	if (!rc)
		(*out)->len = 0;
	return rc;
}

/* Hand block wr to the consumer (design note 3: never an empty one). */
static void block_publish(struct gzstream *g, struct gz_block *b,
			  uint64_t in_off)
{
	if (!b || !b->len)
		return;
	pthread_mutex_lock(&g->lock);
	b->in_off = in_off;
	g->wr = (g->wr + 1) % g->nblocks;
	g->nfull++;
	pthread_cond_signal(&g->can_take);
	pthread_mutex_unlock(&g->lock);
}

static void producer_finish(struct gzstream *g, int code)
{
	pthread_mutex_lock(&g->lock);
	g->done = true;
	g->perr_code = code;
	pthread_cond_signal(&g->can_take);
	pthread_mutex_unlock(&g->lock);
}

static uint64_t bytes_read(const struct gzstream *g)
{
	return atomic_load(&g->total_in);
}

/* Compressed bytes the inflater has consumed so far. */
static uint64_t inflate_offset(const struct gzstream *g)
{
	const struct inflate_state *st = g->st;
	uint64_t pending = st->avail_in;

	if (st->read_in_length > 0)
		pending += (uint64_t)st->read_in_length / 8;
	return bytes_read(g) - pending;
}

static int read_failed(struct gzstream *g, int code)
{
	return mv_err_set(&g->perr, code,
			  "cannot read '%s': %s at compressed byte %" PRIu64,
			  g->label, strerror(-code), bytes_read(g));
}

static int truncated(struct gzstream *g)
{
	return mv_err_set(&g->perr, -EPIPE,
			  "cannot read '%s': gzip stream truncated at "
			  "compressed byte %" PRIu64,
			  g->label, bytes_read(g));
}

static int corrupt(struct gzstream *g, int isal_rc)
{
	const char *why;

	switch (isal_rc) {
	case ISAL_INVALID_BLOCK:
		why = "invalid deflate block";
		break;
	case ISAL_INVALID_SYMBOL:
		why = "invalid deflate symbol";
		break;
	case ISAL_INVALID_LOOKBACK:
		why = "back-reference before the start of the data";
		break;
	case ISAL_INVALID_WRAPPER:
		why = "invalid gzip header";
		break;
	case ISAL_UNSUPPORTED_METHOD:
		why = "compression method is not deflate";
		break;
	case ISAL_INCORRECT_CHECKSUM:
		why = "CRC-32 or length mismatch";
		break;
	default:
		why = "undecodable data";
		break;
	}
	return mv_err_set(&g->perr, -EBADMSG,
			  "cannot read '%s': gzip data corrupt at compressed "
			  "byte %" PRIu64 ": %s in the member starting at "
			  "byte %" PRIu64,
			  g->label, inflate_offset(g), why, g->member_off);
}

/* Make at least two unconsumed input bytes available unless the input
 * ends first.  Returns 0 or a negative code. */
static int input_want2(struct gzstream *g)
{
	struct inflate_state *st = g->st;

	while (st->avail_in < 2) {
		ssize_t n;

		memmove(g->in, st->next_in, st->avail_in);
		st->next_in = g->in;
		n = input_read(g, g->in + st->avail_in,
			       g->in_size - st->avail_in);
		if (n < 0)
			return (int)n;
		if (n == 0)
			return 0;
		st->avail_in += (uint32_t)n;
	}
	return 0;
}

/* After a member: 1 when another member follows, 0 at the end of input,
 * 2 when other bytes follow (see skip_trailing), or a negative code. */
static int member_next(struct gzstream *g)
{
	struct inflate_state *st = g->st;
	int rc;

	rc = input_want2(g);
	if (rc == GZ_STOPPED)
		return rc;
	if (rc < 0)
		return read_failed(g, rc);
	if (st->avail_in == 0)
		return 0;
	if (st->next_in[0] == GZ_MAGIC1 && st->avail_in == 1)
		return truncated(g);
	if (st->next_in[0] != GZ_MAGIC1 || st->next_in[1] != GZ_MAGIC2)
		return 2;
	g->member_off = inflate_offset(g);
	isal_inflate_reset(st);
	st->crc_flag = ISAL_GZIP;
	return 1;
}

/* Read the input to its end after the last member, as gzip -dc does:
 * zeros are padding, anything else earns a warning. */
static int skip_trailing(struct gzstream *g)
{
	struct inflate_state *st = g->st;
	uint64_t start = inflate_offset(g);
	bool zeros = true;
	const uint8_t *p = st->next_in;
	size_t n = st->avail_in;

	for (;;) {
		ssize_t r;
		size_t i;

		for (i = 0; zeros && i < n; i++)
			zeros = p[i] == 0;
		st->avail_in = 0;
		r = input_read(g, g->in, g->in_size);
		if (r == GZ_STOPPED)
			return (int)r;
		if (r < 0)
			return read_failed(g, (int)r);
		if (r == 0)
			break;
		p = g->in;
		n = (size_t)r;
	}
	if (!zeros)
		snprintf(g->warning, sizeof(g->warning),
			 "'%s': %" PRIu64 " bytes of trailing garbage after "
			 "the gzip data at compressed byte %" PRIu64 " ignored",
			 g->label, bytes_read(g) - start, start);
	return 0;
}

static int run_gzip(struct gzstream *g)
{
	struct inflate_state *st = g->st;
	struct gz_block *b = NULL;
	int rc;

	isal_inflate_init(st);
	st->crc_flag = ISAL_GZIP;
	st->next_in = g->in;
	st->avail_in = (uint32_t)g->in_len;
	g->member_off = 0;
	for (;;) {
		int irc;

		if (!b) {
			rc = block_acquire(g, &b);
			if (rc)
				return rc;
		}
		st->next_out = b->data + b->len;
		st->avail_out = (uint32_t)(g->block_size - b->len);
		irc = isal_inflate(st);
		b->len = g->block_size - st->avail_out;
		if (irc < 0) {
			block_publish(g, b, inflate_offset(g));
			return corrupt(g, irc);
		}
		if (st->block_state == ISAL_BLOCK_FINISH) {
			rc = member_next(g);
			if (rc == 1)
				continue;
			block_publish(g, b, inflate_offset(g));
			if (rc == 2)
				rc = skip_trailing(g);
			return rc;
		}
		if (st->avail_out == 0) {
			block_publish(g, b, inflate_offset(g));
			b = NULL;
			continue;
		}
		if (st->avail_in == 0) {
			ssize_t n = input_read(g, g->in, g->in_size);

			if (n == GZ_STOPPED)
				return (int)n;
			if (n < 0 || n == 0) {
				block_publish(g, b, inflate_offset(g));
				return n ? read_failed(g, (int)n)
					 : truncated(g);
			}
			st->next_in = g->in;
			st->avail_in = (uint32_t)n;
			continue;
		}
		/* Input and output left, no error, not finished: ISA-L
		 * wants something gzip cannot give (a dictionary). */
		block_publish(g, b, inflate_offset(g));
		return corrupt(g, irc);
	}
}

static int run_passthrough(struct gzstream *g)
{
	struct gz_block *b = NULL;
	const uint8_t *pend = g->in;
	size_t pend_len = g->in_len;
	uint64_t off = 0;
	int rc;

	for (;;) {
		size_t room;

		if (!b) {
			rc = block_acquire(g, &b);
			if (rc)
				return rc;
		}
		room = g->block_size - b->len;
		if (pend_len) {
			size_t n = pend_len < room ? pend_len : room;

			memcpy(b->data + b->len, pend, n);
			pend += n;
			pend_len -= n;
			b->len += n;
			off += n;
		} else {
			ssize_t n = input_read(g, b->data + b->len, room);

			if (n == GZ_STOPPED)
				return (int)n;
			if (n < 0 || n == 0) {
				block_publish(g, b, off);
				return n ? read_failed(g, (int)n) : 0;
			}
			b->len += (size_t)n;
			off += (uint64_t)n;
		}
		if (b->len == g->block_size) {
			block_publish(g, b, off);
			b = NULL;
		}
	}
}

static void *producer_main(void *arg)
{
	struct gzstream *g = arg;
	int rc;

	rc = g->gzip ? run_gzip(g) : run_passthrough(g);
	producer_finish(g, rc == GZ_STOPPED ? 0 : rc);
	return NULL;
}

/* Read the first bytes at open: at least two, unless the input is
 * shorter. */
static int read_prefix(struct gzstream *g, struct mv_err *err)
{
	while (g->in_len < 2) {
		ssize_t r =
			read(g->fd, g->in + g->in_len, g->in_size - g->in_len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN) {
			struct pollfd pfd = {.fd = g->fd, .events = POLLIN};

			poll(&pfd, 1, -1);
			continue;
		}
		if (r < 0)
			return mv_err_set(err, -errno, "cannot read '%s': %s",
					  g->label, strerror(errno));
		if (r == 0)
			break;
		g->in_len += (size_t)r;
	}
	atomic_store(&g->total_in, g->in_len);
	if (!g->in_len)
		return mv_err_set(err, -ENODATA,
				  "cannot read '%s': input is empty", g->label);
	return 0;
}

static void apply_opts(struct gzstream *g, const struct gzstream_opts *o)
{
	g->block_size =
		o && o->block_size ? o->block_size : GZSTREAM_BLOCK_SIZE;
	if (g->block_size > GZ_MAX_BLOCK_SIZE)
		g->block_size = GZ_MAX_BLOCK_SIZE;
	g->nblocks = o && o->nblocks ? o->nblocks : GZSTREAM_NBLOCKS;
	if (g->nblocks < 2)
		g->nblocks = 2;
	if (g->nblocks > GZ_MAX_NBLOCKS)
		g->nblocks = GZ_MAX_NBLOCKS;
	g->in_size = o && o->in_size ? o->in_size : GZSTREAM_IN_SIZE;
	if (g->in_size < GZ_MIN_IN_SIZE)
		g->in_size = GZ_MIN_IN_SIZE;
	if (g->in_size > UINT32_MAX)
		g->in_size = UINT32_MAX;
}

static int start_thread(struct gzstream *g, struct mv_err *err)
{
	sigset_t all, old;
	int rc;

	/* The producer inherits a blocked mask: signals go to the
	 * program's own threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&g->thread, NULL, producer_main, g);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc)
		return mv_err_set(err, -rc,
				  "cannot read '%s': cannot start "
				  "a thread: %s",
				  g->label, strerror(rc));
	g->thread_started = true;
	return 0;
}

int gzstream_open_opts(int fd, const char *label,
		       const struct gzstream_opts *opts, struct gzstream **out,
		       struct mv_err *err)
{
	struct gzstream *g;
	struct stat sb;
	unsigned i;
	int rc;

	g = calloc(1, sizeof(*g));
	if (!g)
		return mv_err_set(err, -ENOMEM, "out of memory");
	g->fd = fd;
	g->wake[0] = g->wake[1] = -1;
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->can_fill, NULL);
	pthread_cond_init(&g->can_take, NULL);
	atomic_init(&g->stop, false);
	atomic_init(&g->total_in, 0);
	apply_opts(g, opts);
	g->label = strdup(label ? label : "-");
	g->in = malloc(g->in_size);
	g->blocks = calloc(g->nblocks, sizeof(*g->blocks));
	if (!g->label || !g->in || !g->blocks) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	for (i = 0; i < g->nblocks; i++) {
		g->blocks[i].data = malloc(g->block_size);
		if (!g->blocks[i].data) {
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			goto fail;
		}
	}
	if (fstat(fd, &sb) < 0) {
		rc = mv_err_set(err, -errno, "cannot read '%s': %s", g->label,
				strerror(errno));
		goto fail;
	}
	rc = read_prefix(g, err);
	if (rc)
		goto fail;
	g->gzip = g->in_len >= 2 && g->in[0] == GZ_MAGIC1 &&
		  g->in[1] == GZ_MAGIC2;
	if (g->gzip) {
		g->st = malloc(sizeof(*g->st));
		if (!g->st) {
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			goto fail;
		}
	}
	g->use_poll = !S_ISREG(sb.st_mode) && !S_ISBLK(sb.st_mode);
	if (g->use_poll && pipe2(g->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		rc = mv_err_set(err, -errno, "cannot read '%s': %s", g->label,
				strerror(errno));
		g->wake[0] = g->wake[1] = -1;
		goto fail;
	}
	rc = start_thread(g, err);
	if (rc)
		goto fail;
	*out = g;
	return 0;
fail:
	gzstream_close(g);
	return rc;
}

int gzstream_open(int fd, const char *label, struct gzstream **out,
		  struct mv_err *err)
{
	return gzstream_open_opts(fd, label, NULL, out, err);
}

/* Give back the borrowed block and take the next one: 1 with a block in
 * cur, 0 at the end, or the producer's error. */
static int block_take(struct gzstream *g, struct mv_err *err)
{
	struct gz_block *b = NULL;
	int code;

	pthread_mutex_lock(&g->lock);
	if (g->held) {
		g->held = false;
		pthread_cond_signal(&g->can_fill);
	}
	g->cur = NULL;
	g->cur_len = g->cur_pos = 0;
	while (!g->nfull && !g->done)
		pthread_cond_wait(&g->can_take, &g->lock);
	if (g->nfull) {
		b = &g->blocks[g->rd];
		g->rd = (g->rd + 1) % g->nblocks;
		g->nfull--;
		g->held = true;
	}
	code = g->perr_code;
	if (!b && g->warning[0])
		g->warn = g->warning;
	pthread_mutex_unlock(&g->lock);
	if (b) {
		g->cur = b->data;
		g->cur_len = b->len;
		g->out_off = b->in_off;
		return 1;
	}
	if (code)
		return mv_err_set(err, code, "%s", g->perr.msg);
	return 0;
}

int gzstream_next_block(struct gzstream *g, const void **out, size_t *out_len,
			struct mv_err *err)
{
	if (g->cur_pos == g->cur_len) {
		int rc = block_take(g, err);

		if (rc < 0)
			return rc;
		if (rc == 0) {
			*out = NULL;
			*out_len = 0;
			return 0;
		}
	}
	*out = g->cur + g->cur_pos;
	*out_len = g->cur_len - g->cur_pos;
	g->total_out += *out_len;
	g->cur_pos = g->cur_len;
	return 0;
}

int gzstream_read(struct gzstream *g, void *buf, size_t len, size_t *out_len,
		  struct mv_err *err)
{
	uint8_t *p = buf;
	size_t done = 0;
	int rc;

	while (done < len) {
		size_t n;

		if (g->cur_pos == g->cur_len) {
			rc = block_take(g, done ? NULL : err);
			if (rc < 0 && !done)
				return rc;
			if (rc <= 0)
				break;
		}
		n = g->cur_len - g->cur_pos;
		if (n > len - done)
			n = len - done;
		memcpy(p + done, g->cur + g->cur_pos, n);
		g->cur_pos += n;
		done += n;
	}
	g->total_out += done;
	*out_len = done;
	return 0;
}

int gzstream_finish(struct gzstream *g, uint64_t *out_skipped,
		    struct mv_err *err)
{
	uint64_t skipped = 0;

	for (;;) {
		const void *p;
		size_t n;
		int rc = gzstream_next_block(g, &p, &n, err);

		if (rc)
			return rc;
		if (!n)
			break;
		skipped += n;
	}
	if (out_skipped)
		*out_skipped = skipped;
	return 0;
}

bool gzstream_is_gzip(const struct gzstream *g)
{
	return g->gzip;
}

uint64_t gzstream_compressed_offset(const struct gzstream *g)
{
	return g->out_off;
}

uint64_t gzstream_total_in(const struct gzstream *g)
{
	return bytes_read(g);
}

uint64_t gzstream_total_out(const struct gzstream *g)
{
	return g->total_out;
}

const char *gzstream_warning(const struct gzstream *g)
{
	return g->warn;
}

void gzstream_close(struct gzstream *g)
{
	if (!g)
		return;
	if (g->thread_started) {
		pthread_mutex_lock(&g->lock);
		atomic_store(&g->stop, true);
		pthread_cond_broadcast(&g->can_fill);
		pthread_mutex_unlock(&g->lock);
		if (g->wake[1] >= 0) {
			ssize_t r = write(g->wake[1], "x", 1);

			(void)r;
		}
		pthread_join(g->thread, NULL);
	}
	if (g->wake[0] >= 0)
		close(g->wake[0]);
	if (g->wake[1] >= 0)
		close(g->wake[1]);
	if (g->blocks) {
		unsigned i;

		for (i = 0; i < g->nblocks; i++)
			free(g->blocks[i].data);
	}
	free(g->blocks);
	free(g->st);
	free(g->in);
	free(g->label);
	pthread_cond_destroy(&g->can_take);
	pthread_cond_destroy(&g->can_fill);
	pthread_mutex_destroy(&g->lock);
	free(g);
}
