/*
 * ingest: chunking, worker pool and in-order storing (include/ingest.h).
 *
 * Jobs live in a ring of ING_QUEUE slots.  The producer fills slot
 * seq % ING_QUEUE, workers take slots in seq order, hash, look up and
 * compress, and mark them done; the producer stores done slots strictly in
 * seq order (repo_writer_put), which frees them.  A file's entry goes to
 * the tree builder when its last chunk has been stored.
 */
#include "ingest.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zdict.h>

#include "chunker.h"
#include "pack.h"
#include "util.h"

#define ING_QUEUE 64

enum job_state { JOB_FREE, JOB_QUEUED, JOB_BUSY, JOB_DONE };

struct pfile {
	struct pfile *next; /* FIFO of files not yet complete */
	char *path;
	struct tree_entry e; /* metadata; chunks filled as stored */
	uint32_t submitted;  /* chunks handed to workers */
	uint32_t stored;     /* chunks stored */
	uint32_t cap;
	uint64_t read; /* bytes passed in */
	bool ended;    /* no more chunks will come */
	void *result;  /* from the analyze hook, or the stream's */
	bool streamed; /* the hook sees the bytes: no analyze() */
	bool fine;     /* cut with ing->fine (fine_path()) */
	void *stream;  /* the hook's stream state while open */
};

struct job {
	enum job_state state;
	uint64_t seq;
	struct pfile *file;   /* owner */
	uint32_t index;	      /* chunk number within the file */
	struct mv_buf raw;    /* chunk bytes */
	struct mv_buf comp;   /* compressed, when new and worth it */
	struct repo_comp how; /* how comp was made */
	struct mv_buf sealed; /* the record sealed (format 2), when new */
	bool known;	      /* already in the index */
	uint8_t id[MV_ID_LEN];
	bool whole;   /* the file's only chunk */
	void *result; /* from the analyze hook */
	int rc;	      /* worker error */
	struct mv_err err;
};

struct ingest {
	struct repo *r;
	struct repo_writer *w;
	struct tree_builder *tb;
	struct ingest_opts opts;
	struct chunker ch;
	struct chunker fine; /* append-mostly files (fine_path()) */
	uint32_t small_file;

	pthread_mutex_t lock;
	pthread_cond_t work; /* a job was queued, or quit */
	pthread_cond_t done; /* a job finished */
	struct job jobs[ING_QUEUE];
	uint64_t next_seq;   /* next job to submit */
	uint64_t next_work;  /* next job a worker takes */
	uint64_t next_store; /* next job to store */
	bool quit;
	pthread_t threads[INGEST_MAX_WORKERS];
	int nthreads;

	struct pfile *cur;	   /* file being read */
	struct mv_buf pending;	   /* bytes of cur not yet cut */
	struct pfile *head, *tail; /* files waiting for chunks */

	bool train;	       /* collecting samples for a dictionary */
	uint64_t redo_below;   /* jobs before this seq compress again */
	struct mv_buf samples; /* sample bytes, back to back */
	size_t *sample_sizes;
	unsigned nsamples;

	struct ingest_stats st;
	char current[256];
	struct timespec last_progress;
	struct timespec started;
	bool progress_shown;

	struct ingest_warning warns[ING_WARN_KINDS];
	size_t nwarns;

	/* dry run: ids of the new chunks met, open addressing */
	uint8_t (*seen)[MV_ID_LEN];
	size_t nseen, capseen; /* capseen: a power of two, or 0 */
};

/* ---- workers -------------------------------------------------------- */

static void work_one(struct ingest *ing, struct job *j)
{
	const struct ingest_hook *h = ing->opts.hook;

	repo_chunk_id(ing->r, j->raw.data, j->raw.len, j->id);
	j->result = NULL;
	/* a large file is analyzed by its first chunk: enough for the
	 * headers of a message; a streamed file by the hook itself */
	if (h && h->analyze && !j->file->streamed &&
	    (j->whole || j->index == 0))
		j->result = h->analyze(h->ctx, j->file->path, j->id,
				       j->raw.data, j->raw.len);
	j->known = repo_chunk_find(ing->r, j->id, NULL, NULL) == 0;
	j->how.kind = 0;
	mv_buf_reset(&j->sealed);
	if (j->known || ing->opts.dry_run)
		return;
	j->rc = repo_compress(ing->r, j->raw.data, j->raw.len, &j->comp,
			      &j->how, &j->err);
	/* encryption too runs here, in parallel, not on the storing
	 * thread (docs/ARCHITECTURE.md, "Data flow of a backup") */
	if (!j->rc)
		j->rc = repo_seal(ing->r, REC_DATA, j->id, j->raw.data,
				  j->raw.len, j->comp.data, j->comp.len,
				  &j->how, &j->sealed, &j->err);
}

static void *worker_main(void *arg)
{
	struct ingest *ing = arg;

	pthread_mutex_lock(&ing->lock);
	for (;;) {
		struct job *j;

		while (!ing->quit && ing->next_work == ing->next_seq)
			pthread_cond_wait(&ing->work, &ing->lock);
		if (ing->quit)
			break;
		j = &ing->jobs[ing->next_work % ING_QUEUE];
		ing->next_work++;
		j->state = JOB_BUSY;
		pthread_mutex_unlock(&ing->lock);
		work_one(ing, j);
		pthread_mutex_lock(&ing->lock);
		j->state = JOB_DONE;
		pthread_cond_broadcast(&ing->done);
	}
	pthread_mutex_unlock(&ing->lock);
	return NULL;
}

/* ---- dictionary training ---------------------------------------------
 *
 * The first backup into a repository without a dictionary keeps a sample
 * of its small files (messages); once enough are seen, a zstd dictionary
 * is trained and stored, and every later small chunk is compressed with
 * it.  Deterministic: the samples are the first files in input order.
 */

#define TRAIN_BYTES (8u << 20) /* sample budget */
#define TRAIN_MAX_SAMPLES 8192
#define TRAIN_MIN_SAMPLES 256
#define TRAIN_MIN_BYTES (1u << 20)
#define TRAIN_SAMPLE_MAX (64u << 10) /* larger files are not samples */
#define DICT_SIZE (112u << 10)

static void train_stop(struct ingest *ing)
{
	ing->train = false;
	mv_buf_release(&ing->samples);
	free(ing->sample_sizes);
	ing->sample_sizes = NULL;
	ing->nsamples = 0;
}

/* Train and install the dictionary; failures only mean no dictionary. */
static void train_now(struct ingest *ing)
{
	void *dict;

	if (ing->nsamples < TRAIN_MIN_SAMPLES ||
	    ing->samples.len < TRAIN_MIN_BYTES) {
		train_stop(ing);
		return;
	}
	dict = malloc(DICT_SIZE);
	if (dict) {
		size_t n = ZDICT_trainFromBuffer(
			dict, DICT_SIZE, ing->samples.data, ing->sample_sizes,
			ing->nsamples);
		/* the jobs with the workers now were compressed with the
		 * dictionary or without it, as the threads' timing had it:
		 * store_job() compresses them again */
		if (!ZDICT_isError(n) &&
		    !repo_writer_set_dictionary(ing->w, dict, n, NULL))
			ing->redo_below = ing->next_seq;
	}
	free(dict);
	train_stop(ing);
}

static void sample(struct ingest *ing, const uint8_t *p, size_t n)
{
	if (n < 256 || n > TRAIN_SAMPLE_MAX)
		return;
	if (!ing->sample_sizes) {
		ing->sample_sizes =
			calloc(TRAIN_MAX_SAMPLES, sizeof(*ing->sample_sizes));
		if (!ing->sample_sizes) {
			train_stop(ing);
			return;
		}
	}
	if (mv_buf_append(&ing->samples, p, n)) {
		train_stop(ing);
		return;
	}
	ing->sample_sizes[ing->nsamples++] = n;
	if (ing->nsamples == TRAIN_MAX_SAMPLES ||
	    ing->samples.len >= TRAIN_BYTES)
		train_now(ing);
}

/* ---- storing, in order ------------------------------------------------ */

static void pfile_free(struct ingest *ing, struct pfile *f)
{
	const struct ingest_hook *h = ing->opts.hook;

	if (!f)
		return;
	if (f->stream)
		f->result = h->stream_end(h->ctx, f->stream, false);
	if (f->result && h && h->free_result)
		h->free_result(h->ctx, f->result);
	free(f->path);
	tree_entry_release(&f->e);
	free(f);
}

/* Hand every file at the head of the FIFO whose chunks are all stored to
 * the tree builder (files complete in submission order). */
static int complete_ready(struct ingest *ing, struct mv_err *err)
{
	struct pfile *f;
	int rc = 0;

	while (!rc && (f = ing->head) && f->ended &&
	       f->stored == f->submitted) {
		ing->head = f->next;
		if (!ing->head)
			ing->tail = NULL;
		f->e.nchunks = f->stored;
		rc = tree_builder_add(ing->tb, f->path, &f->e, err);
		if (!rc && ing->opts.hook && ing->opts.hook->file_done) {
			void *res = f->result;

			f->result = NULL;
			rc = ing->opts.hook->file_done(
				ing->opts.hook->ctx, f->path, &f->e, res, err);
		}
		pfile_free(ing, f);
	}
	return rc;
}

/* An empty slot: no keyed id is all zero bytes in practice. */
static bool id_is_zero(const uint8_t *id, size_t n)
{
	while (n--)
		if (id[n])
			return false;
	return true;
}

static size_t seen_slot(const struct ingest *ing, const uint8_t *id)
{
	uint64_t h;
	size_t i;

	memcpy(&h, id, sizeof(h)); /* keyed ids: already uniform */
	for (i = (size_t)h & (ing->capseen - 1);;
	     i = (i + 1) & (ing->capseen - 1))
		if (!memcmp(ing->seen[i], id, MV_ID_LEN) ||
		    id_is_zero(ing->seen[i], MV_ID_LEN))
			return i;
}

/* Dry run: record a chunk the index does not hold; false when it was
 * met before in this run. */
static int seen_add(struct ingest *ing, const uint8_t *id, bool *out_new,
		    struct mv_err *err)
{
	size_t i;

	if (2 * (ing->nseen + 1) > ing->capseen) {
		size_t cap = ing->capseen ? 2 * ing->capseen : 4096,
		       old = ing->capseen;
		uint8_t(*prev)[MV_ID_LEN] = ing->seen;

		ing->seen = calloc(cap, MV_ID_LEN);
		if (!ing->seen) {
			ing->seen = prev;
			return mv_err_set(err, -ENOMEM, "out of memory");
		}
		ing->capseen = cap;
		for (i = 0; i < old; i++)
			if (!id_is_zero(prev[i], MV_ID_LEN))
				memcpy(ing->seen[seen_slot(ing, prev[i])],
				       prev[i], MV_ID_LEN);
		free(prev);
	}
	i = seen_slot(ing, id);
	*out_new = id_is_zero(ing->seen[i], MV_ID_LEN);
	if (*out_new) {
		memcpy(ing->seen[i], id, MV_ID_LEN);
		ing->nseen++;
	}
	return 0;
}

static int store_job(struct ingest *ing, struct job *j, struct mv_err *err)
{
	struct pfile *f = j->file;
	bool is_new = false;
	int rc;

	if (j->rc) {
		mv_err_set(err, j->rc, "%s", mv_err_msg(&j->err));
		return j->rc;
	}
	if (ing->train && j->whole)
		sample(ing, j->raw.data, j->raw.len);
	if (j->seq < ing->redo_below && !j->known && !ing->opts.dry_run &&
	    !repo_writer_has(ing->w, j->id)) {
		rc = repo_compress(ing->r, j->raw.data, j->raw.len, &j->comp,
				   &j->how, err);
		if (rc)
			return mv_err_prefix(err, "'%s'", f->path);
		mv_buf_reset(&j->sealed); /* sealed again below */
	}
	if (ing->opts.dry_run)
		rc = j->known ? 0 : seen_add(ing, j->id, &is_new, err);
	else if (j->sealed.len)
		rc = repo_writer_put_sealed(ing->w, REC_DATA, j->id, j->raw.len,
					    &j->how, &j->sealed, &is_new, err);
	else
		rc = repo_writer_put_comp(ing->w, REC_DATA, j->id, j->raw.data,
					  j->raw.len, j->comp.data, j->comp.len,
					  &j->how, &is_new, err);
	if (rc)
		return mv_err_prefix(err, "'%s'", f->path);
	ing->st.chunks++;
	if (is_new) {
		ing->st.chunks_new++;
		ing->st.bytes_new += j->raw.len;
	}
	if (j->result) {
		f->result = j->result;
		j->result = NULL;
	}
	memcpy(f->e.chunks[j->index].id, j->id, MV_ID_LEN);
	f->e.chunks[j->index].size = (uint32_t)j->raw.len;
	f->stored++;
	return complete_ready(ing, err);
}

/* Store every done job at the head of the ring; with wait, block until the
 * job seq `until` (exclusive) has been stored. */
static int drain(struct ingest *ing, uint64_t until, struct mv_err *err)
{
	int rc = 0;

	pthread_mutex_lock(&ing->lock);
	while (ing->next_store < ing->next_seq) {
		struct job *j = &ing->jobs[ing->next_store % ING_QUEUE];

		if (j->state != JOB_DONE) {
			if (ing->next_store >= until)
				break;
			pthread_cond_wait(&ing->done, &ing->lock);
			continue;
		}
		pthread_mutex_unlock(&ing->lock);
		rc = store_job(ing, j, err);
		pthread_mutex_lock(&ing->lock);
		j->state = JOB_FREE;
		ing->next_store++;
		if (rc)
			break;
	}
	pthread_mutex_unlock(&ing->lock);
	return rc;
}

static int stopped(struct ingest *ing, struct mv_err *err)
{
	if (ing->opts.stop && *ing->opts.stop)
		return mv_err_set(err, -EINTR, "interrupted");
	return 0;
}

/* Hand n bytes of the current file to a worker as one chunk. */
static int submit(struct ingest *ing, const uint8_t *p, size_t n, bool whole,
		  struct mv_err *err)
{
	struct pfile *f = ing->cur;
	struct job *j;
	int rc;

	rc = stopped(ing, err);
	if (rc)
		return rc;
	/* make sure the slot is free: store everything up to seq - QUEUE */
	if (ing->next_seq - ing->next_store >= ING_QUEUE) {
		rc = drain(ing, ing->next_seq - ING_QUEUE + 1, err);
		if (rc)
			return rc;
	}
	if (f->submitted == f->cap) {
		uint32_t cap = f->cap ? f->cap * 2 : 4;
		struct tree_chunk *c = realloc(f->e.chunks, cap * sizeof(*c));

		if (!c)
			return mv_err_set(err, -ENOMEM, "out of memory");
		f->e.chunks = c;
		f->cap = cap;
	}
	j = &ing->jobs[ing->next_seq % ING_QUEUE];
	mv_buf_reset(&j->raw);
	if (mv_buf_append(&j->raw, p, n))
		return mv_err_set(err, -ENOMEM, "out of memory");
	j->file = f;
	j->whole = whole;
	j->index = f->submitted++;
	j->seq = ing->next_seq;
	j->rc = 0;
	mv_err_clear(&j->err);
	pthread_mutex_lock(&ing->lock);
	j->state = JOB_QUEUED;
	ing->next_seq++;
	pthread_cond_signal(&ing->work);
	pthread_mutex_unlock(&ing->lock);
	/* opportunistically store what is ready */
	return drain(ing, 0, err);
}

/* ---- public API ------------------------------------------------------ */

/*
 * Dovecot's index and control files are logs and caches that grow by
 * appending (dovecot.index.log, .index.cache, dovecot-uidlist) or change a
 * few fixed-size records (dovecot.index).  Stored whole, as every file up to
 * small-file is, each changed folder would cost its whole index every day -
 * on a real mail volume more than the new mail itself (docs/CHUNKING.md,
 * "Append-mostly files").  They are cut with small content-defined chunks
 * instead, so a day costs the appended tail and the changed records.  The
 * cut points are a writer's choice: readers see an ordinary chunk list.
 */
/* 512 B / 2 KiB / 16 KiB: a day of the growth series stored 575 kB with
 * these against 662 kB with 2/8/64 KiB (median of days 2-8; smaller still
 * gains nothing, the records' own cost takes it back; docs/CHUNKING.md). */
static const struct chunker_params fine_params = {512, 2048, 16384, 2048};

static bool fine_path(const char *path)
{
	static const char *const names[] = {
		"dovecot.index",	  "dovecot.index.log",
		"dovecot.index.log.2",	  "dovecot.index.cache",
		"dovecot-uidlist",	  "dovecot.list.index",
		"dovecot.list.index.log", "dovecot.mailbox.log",
		"dovecot.map.index",	  "dovecot.map.index.log",
	};
	const char *base = strrchr(path, '/');
	size_t i;

	base = base ? base + 1 : path;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(base, names[i]))
			return true;
	return false;
}

/* The chunker that cuts f and the size up to which f is one chunk. */
static struct chunker *file_chunker(struct ingest *ing, const struct pfile *f,
				    uint32_t *small)
{
	*small = f->fine ? fine_params.small_file : ing->small_file;
	return f->fine ? &ing->fine : &ing->ch;
}

int ingest_new(struct repo *r, struct repo_writer *w, struct tree_builder *tb,
	       const struct ingest_opts *opts, struct ingest **out,
	       struct mv_err *err)
{
	const struct repo_config *cfg = repo_get_config(r);
	struct ingest *ing;
	long ncpu;
	int i, rc;

	ing = calloc(1, sizeof(*ing));
	if (!ing)
		return mv_err_set(err, -ENOMEM, "out of memory");
	ing->r = r;
	ing->w = w;
	ing->tb = tb;
	if (opts)
		ing->opts = *opts;
	ing->small_file = cfg->chunker.small_file;
	rc = chunker_init(&ing->ch, &cfg->chunker, cfg->secret, MV_SECRET_LEN,
			  err);
	if (!rc)
		rc = chunker_init(&ing->fine, &fine_params, cfg->secret,
				  MV_SECRET_LEN, err);
	if (rc) {
		free(ing);
		return rc;
	}
	pthread_mutex_init(&ing->lock, NULL);
	pthread_cond_init(&ing->work, NULL);
	pthread_cond_init(&ing->done, NULL);
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	ing->nthreads = ing->opts.workers > 0 ? ing->opts.workers
					      : (int)MV_MAX(ncpu, 1);
	if (ing->nthreads > INGEST_MAX_WORKERS)
		ing->nthreads = INGEST_MAX_WORKERS;
	for (i = 0; i < ing->nthreads; i++) {
		if (pthread_create(&ing->threads[i], NULL, worker_main, ing)) {
			ing->nthreads = i;
			ingest_free(ing);
			return mv_err_set(err, -EAGAIN,
					  "cannot start worker "
					  "threads");
		}
	}
	ing->train = !ing->opts.dry_run && !repo_has_dictionary(r);
	clock_gettime(CLOCK_MONOTONIC, &ing->last_progress);
	ing->started = ing->last_progress;
	*out = ing;
	return 0;
}

void ingest_free(struct ingest *ing)
{
	struct pfile *f;
	int i;

	if (!ing)
		return;
	pthread_mutex_lock(&ing->lock);
	ing->quit = true;
	pthread_cond_broadcast(&ing->work);
	pthread_mutex_unlock(&ing->lock);
	for (i = 0; i < ing->nthreads; i++)
		pthread_join(ing->threads[i], NULL);
	for (i = 0; i < ING_QUEUE; i++) {
		mv_buf_release(&ing->jobs[i].raw);
		mv_buf_release(&ing->jobs[i].comp);
		mv_buf_release(&ing->jobs[i].sealed);
	}
	pfile_free(ing, ing->cur);
	while ((f = ing->head)) {
		ing->head = f->next;
		pfile_free(ing, f);
	}
	for (i = 0; i < ING_QUEUE; i++) {
		struct job *j = &ing->jobs[i];

		if (j->result && ing->opts.hook && ing->opts.hook->free_result)
			ing->opts.hook->free_result(ing->opts.hook->ctx,
						    j->result);
	}
	mv_buf_release(&ing->pending);
	train_stop(ing);
	free(ing->seen);
	pthread_cond_destroy(&ing->work);
	pthread_cond_destroy(&ing->done);
	pthread_mutex_destroy(&ing->lock);
	if (ing->progress_shown)
		fputs("\r\033[K", stderr);
	for (i = 0; i < (int)ing->nwarns; i++) {
		free(ing->warns[i].source);
		free(ing->warns[i].one);
		free(ing->warns[i].many);
		free(ing->warns[i].first);
	}
	free(ing);
}

int ingest_file_begin(struct ingest *ing, const char *path,
		      const struct tree_entry *meta, struct mv_err *err)
{
	struct pfile *f;
	uint32_t small;
	int rc;

	if (ing->cur)
		return mv_err_set(err, -EINVAL,
				  "ingest: file '%s' begun "
				  "inside another",
				  path);
	f = calloc(1, sizeof(*f));
	if (!f)
		return mv_err_set(err, -ENOMEM, "out of memory");
	f->path = strdup(path);
	rc = f->path ? tree_entry_copy(&f->e, meta, err) : -ENOMEM;
	if (rc) {
		free(f->path);
		free(f);
		return rc == -ENOMEM ? mv_err_set(err, rc, "out of memory")
				     : rc;
	}
	free(f->e.chunks);
	f->e.chunks = NULL;
	f->e.nchunks = 0;
	f->e.type = TREE_REG;
	ing->cur = f;
	if (ing->opts.hook && ing->opts.hook->stream_begin) {
		const struct ingest_hook *h = ing->opts.hook;

		f->stream = h->stream_begin(h->ctx, path, meta);
		f->streamed = f->stream != NULL;
	}
	f->fine = fine_path(path) && meta->size > fine_params.small_file;
	mv_buf_reset(&ing->pending);
	chunker_reset(file_chunker(ing, f, &small));
	ing->st.files++;
	ing->st.logical += meta->size;
	ingest_set_current(ing, path);
	return 0;
}

int ingest_file_data(struct ingest *ing, const void *buf, size_t len,
		     struct mv_err *err)
{
	struct mv_buf *p = &ing->pending;
	uint32_t small;
	struct chunker *ch = file_chunker(ing, ing->cur, &small);

	ing->st.bytes_in += len;
	ing->cur->read += len;
	if (ing->cur->stream) {
		const struct ingest_hook *h = ing->opts.hook;
		int rc =
			h->stream_data(h->ctx, ing->cur->stream, buf, len, err);
		if (rc) {
			mv_err_prefix(err, "'%s'", ing->cur->path);
			return rc;
		}
	}
	if (mv_buf_append(p, buf, len))
		return mv_err_set(err, -ENOMEM, "out of memory");
	/* a small file is one chunk; a file that grows past its stated size
	 * is cut like any other */
	if (ing->cur->e.size <= small && p->len <= small)
		return 0;
	for (;;) {
		size_t cut = chunker_scan(ch, p->data, p->len, false);
		int rc;

		if (!cut)
			break;
		rc = submit(ing, p->data, cut, false, err);
		if (rc)
			return rc;
		memmove(p->data, p->data + cut, p->len - cut);
		p->len -= cut;
		chunker_reset(ch);
	}
	ingest_progress(ing, false);
	return 0;
}

int ingest_file_end(struct ingest *ing, struct mv_err *err)
{
	struct mv_buf *p = &ing->pending;
	struct pfile *f = ing->cur;
	uint32_t small;
	struct chunker *ch = file_chunker(ing, f, &small);

	while (p->len) {
		bool whole = p->len <= small && !f->submitted;
		size_t cut = whole ? p->len
				   : chunker_scan(ch, p->data, p->len, true);
		int rc = submit(ing, p->data, cut, whole, err);
		if (rc)
			return rc;
		memmove(p->data, p->data + cut, p->len - cut);
		p->len -= cut;
		chunker_reset(ch);
	}
	ing->cur = NULL;
	f->ended = true;
	if (f->stream) {
		const struct ingest_hook *h = ing->opts.hook;

		/* no chunk of a streamed file carries a result */
		f->result = h->stream_end(h->ctx, f->stream, true);
		f->stream = NULL;
	}
	if (ing->tail)
		ing->tail->next = f;
	else
		ing->head = f;
	ing->tail = f;
	return complete_ready(ing, err);
}

int ingest_file_cut(struct ingest *ing, struct mv_err *err)
{
	if (!ing->cur)
		return 0;
	ing->cur->e.size = ing->cur->read;
	free(ing->cur->e.extents);
	ing->cur->e.extents = NULL;
	ing->cur->e.nextents = 0;
	return ingest_file_end(ing, err);
}

void ingest_file_set_extents(struct ingest *ing, struct tree_extent *ext,
			     uint32_t n)
{
	free(ing->cur->e.extents);
	ing->cur->e.extents = ext;
	ing->cur->e.nextents = n;
}

int ingest_entry(struct ingest *ing, const char *path,
		 const struct tree_entry *meta, struct mv_err *err)
{
	const struct ingest_hook *h = ing->opts.hook;
	int rc;

	switch (meta->type) {
	case TREE_DIR:
		ing->st.dirs++;
		break;
	case TREE_REG:
		ing->st.files++;
		ing->st.files_reused++;
		ing->st.logical += meta->size;
		break;
	default:
		ing->st.others++;
	}
	/* A file completes only after every earlier file, so entries added
	 * here never overtake a pending file of the same path. */
	rc = tree_builder_add(ing->tb, path, meta, err);
	/* unchanged files reused from the parent reach the hook too */
	if (!rc && meta->type == TREE_REG && h && h->file_done)
		rc = h->file_done(h->ctx, path, meta, NULL, err);
	return rc;
}

/* Store everything submitted so far. */
static int flush_all(struct ingest *ing, struct mv_err *err)
{
	int rc = drain(ing, ing->next_seq, err);

	if (!rc && ing->head)
		rc = mv_err_set(err, -EIO, "ingest: file '%s' never completed",
				ing->head->path);
	return rc;
}

int ingest_finish(struct ingest *ing, struct mv_err *err)
{
	int rc = flush_all(ing, err);

	if (!rc && ing->train)
		train_now(ing);
	return rc;
}

int ingest_link(struct ingest *ing, const char *path, const char *target,
		struct mv_err *err)
{
	const struct ingest_hook *h = ing->opts.hook;
	int rc = flush_all(ing, err);

	if (rc)
		return rc;
	ing->st.files++;
	rc = tree_builder_link(ing->tb, path, target, err);
	if (!rc && h && h->file_done) {
		const struct tree_entry *e = tree_builder_get(ing->tb, path);

		if (e && e->type == TREE_REG)
			rc = h->file_done(h->ctx, path, e, NULL, err);
	}
	return rc;
}

const struct ingest_stats *ingest_get_stats(const struct ingest *ing)
{
	return &ing->st;
}

void ingest_set_current(struct ingest *ing, const char *what)
{
	snprintf(ing->current, sizeof(ing->current), "%s", what);
}

void ingest_progress(struct ingest *ing, bool force)
{
	struct timespec now;
	char in[32], out[32];
	uint64_t stored;
	double dt, total;

	if (!ing->opts.progress)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	dt = (double)(now.tv_sec - ing->last_progress.tv_sec) +
	     (double)(now.tv_nsec - ing->last_progress.tv_nsec) / 1e9;
	if (!force && dt < 0.25)
		return;
	ing->last_progress = now;
	total = (double)(now.tv_sec - ing->started.tv_sec) +
		(double)(now.tv_nsec - ing->started.tv_nsec) / 1e9;
	stored = ing->w ? repo_writer_stored_bytes(ing->w) : ing->st.bytes_new;
	mv_human_size(ing->st.bytes_in, in, sizeof(in));
	mv_human_size(stored, out, sizeof(out));
	fprintf(stderr,
		"\r\033[K%s read, %s %s (%.1fx), %.0f MiB/s, "
		"%llu files  %.40s",
		in, out, ing->opts.dry_run ? "new" : "stored",
		stored ? (double)ing->st.bytes_in / (double)stored : 0.0,
		total > 0 ? (double)ing->st.bytes_in / 1048576 / total : 0.0,
		(unsigned long long)ing->st.files, ing->current);
	ing->progress_shown = true;
}

void ingest_progress_end(struct ingest *ing)
{
	if (!ing->progress_shown)
		return;
	fputc('\n', stderr);
	ing->progress_shown = false;
}

static char *dup_or_null(const char *s, bool *failed)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*failed = true;
	return d;
}

int ingest_warn(struct ingest *ing, const char *source, const char *one,
		const char *many, const char *first, struct mv_err *err)
{
	struct ingest_warning *w;
	bool failed = false;
	size_t i;

	for (i = 0; i < ing->nwarns; i++) {
		w = &ing->warns[i];
		if (!strcmp(w->source, source) && !strcmp(w->many, many))
			break;
	}
	/* the table is full: the last slot counts every other kind */
	if (i == ING_WARN_KINDS - 1 && i == ing->nwarns) {
		one = "problem of another kind";
		many = "problems of other kinds";
	} else if (i == ING_WARN_KINDS) {
		i = ING_WARN_KINDS - 1;
	}
	w = &ing->warns[i];
	if (i < ing->nwarns) {
		w->count++;
		return 0;
	}
	memset(w, 0, sizeof(*w));
	w->source = dup_or_null(source, &failed);
	w->one = dup_or_null(one, &failed);
	w->many = dup_or_null(many, &failed);
	w->first = dup_or_null(first, &failed);
	if (failed) {
		free(w->source);
		free(w->one);
		free(w->many);
		free(w->first);
		return mv_err_set(err, -ENOMEM, "out of memory");
	}
	w->count = 1;
	ing->nwarns++;
	return 0;
}

const struct ingest_warning *ingest_get_warnings(const struct ingest *ing,
						 size_t *out_n)
{
	*out_n = ing->nwarns;
	return ing->warns;
}
