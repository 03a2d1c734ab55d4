/*
 * repo: open/create repositories, the writer lock, chunk reads and the
 * write session (include/repo.h holds the crash-safety design notes).
 *
 * Workload: reads come from many FUSE threads at once (small messages,
 * one pread each); writes come from one ingest thread that appends records
 * in order.  The SQLite handle is shared under ix_lock; zstd contexts come
 * from small pools so no thread shares one.
 */
#include "repo.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <zstd.h>

#include "backend.h"
#include "chunker.h"
#include "diskcache.h"
#include "hash.h"
#include "index.h"
#include "pack.h"
#include "snapshot.h"

#define CONFIG_MAX 8192
#define CTX_POOL_MAX 16
#define DATA_PACK_TARGET (32u << 20)
#define META_PACK_TARGET (8u << 20)
#define DEFAULT_ZSTD_LEVEL 3
#define DICT_MAX_CHUNK                                        \
	(128u << 10) /* chunks above this skip the dictionary \
		      */

/* A zstd dictionary, loaded once and kept for the life of the repo. */
struct repo_dict {
	struct repo_dict *next;
	uint32_t dict_id;  /* zstd's id, recorded in record headers */
	ZSTD_CDict *cdict; /* for compressing, NULL until needed */
	ZSTD_DDict *ddict; /* for decompressing */
};

struct ctx_pool {
	pthread_mutex_t lock;
	void *items[CTX_POOL_MAX]; /* idle contexts */
	int n;
};

struct repo {
	struct backend *be;	 /* where the files live */
	char *location;		 /* as the user gave it */
	struct repo_config cfg;	 /* parsed config */
	struct hasher *hasher;	 /* keyed chunk ids */
	struct index *ix;	 /* index.db, under ix_lock */
	pthread_mutex_t ix_lock; /* serialises every index call */
	char *index_path;	 /* local path of the index file */
	char *stamp_path;	 /* remote: cache stamp file */
	char stamp_seen[64];	 /* remote: stamp of the open index */
	char *pending_path;	 /* remote: packs sealed, not committed */
	bool remote;		 /* index is a cached copy */
	bool locked;		 /* we hold the writer lock */
	int64_t data_version;	 /* last seen index data version */
	char (*pack_names)[PACK_NAME_LEN + 1]; /* cache by pack row id */
	int64_t npack_names;
	struct ctx_pool cctx, dctx;
	struct repo_writer *writer; /* the open session, if any */
	struct diskcache *dcache;   /* remote: records already fetched */
	pthread_mutex_t dict_lock;  /* guards dicts and active */
	struct repo_dict *dicts;    /* loaded dictionaries */
	struct repo_dict *active;   /* used to compress small chunks */
	bool dict_probed;	    /* looked for a dictionary already */
};

struct repo_writer {
	struct repo *r;
	struct pack_writer *pw[2]; /* [0] data, [1] meta */
	int64_t pack_id[2];	   /* index rows of the open packs */
	uint64_t stored;	   /* bytes written this session */
	struct mv_buf cbuf;	   /* compression scratch */
	char **sealed;		   /* names of packs sealed this session */
	size_t nsealed;
};

/* ---- small helpers ---------------------------------------------------- */

static void *pool_get(struct ctx_pool *p)
{
	void *c = NULL;

	pthread_mutex_lock(&p->lock);
	if (p->n)
		c = p->items[--p->n];
	pthread_mutex_unlock(&p->lock);
	return c;
}

/* Returns false when the pool is full and the caller must free c. */
static bool pool_put(struct ctx_pool *p, void *c)
{
	bool kept = false;

	pthread_mutex_lock(&p->lock);
	if (p->n < CTX_POOL_MAX) {
		p->items[p->n++] = c;
		kept = true;
	}
	pthread_mutex_unlock(&p->lock);
	return kept;
}

void repo_default_chunker(struct chunker_params *out)
{
	/* See docs/CHUNKING.md for the bake-off behind these numbers. */
	out->min_size = 16 << 10;
	out->avg_size = 64 << 10;
	out->max_size = 256 << 10;
	out->small_file = 256 << 10;
}

static int random_bytes(void *p, size_t n, struct mv_err *err)
{
	uint8_t *b = p;

	while (n) {
		ssize_t r = getrandom(b, n, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return mv_err_set(err, -errno, "getrandom: %s",
					  strerror(errno));
		}
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

/* ---- config ----------------------------------------------------------- */

static int config_format(const struct repo_config *c, char *out, size_t n)
{
	char id[2 * MV_REPO_ID_LEN + 1], secret[2 * MV_SECRET_LEN + 1];

	mv_hex(c->id, MV_REPO_ID_LEN, id);
	mv_hex(c->secret, MV_SECRET_LEN, secret);
	return snprintf(out, n,
			"# mailvault repository - see mailvault-format(5)\n"
			"format = mailvault\n"
			"version = %u\n"
			"id = %s\n"
			"encryption = %s\n"
			"chunker = fastcdc\n"
			"chunk-min = %u\n"
			"chunk-avg = %u\n"
			"chunk-max = %u\n"
			"small-file = %u\n"
			"compression = zstd\n"
			"zstd-level = %d\n"
			"append-only = %s\n"
			"secret = %s\n",
			c->version, id, c->encryption, c->chunker.min_size,
			c->chunker.avg_size, c->chunker.max_size,
			c->chunker.small_file, c->zstd_level,
			(c->flags & REPO_APPEND_ONLY) ? "yes" : "no", secret);
}

static int parse_u32(const char *v, uint32_t *out)
{
	char *end;
	unsigned long x;

	errno = 0;
	x = strtoul(v, &end, 10);
	if (errno || end == v || *end || x > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)x;
	return 0;
}

static int config_parse(char *text, const char *where, struct repo_config *c,
			struct mv_err *err)
{
	char *line, *save = NULL;
	unsigned seen = 0;
	int lineno = 0;

	memset(c, 0, sizeof(*c));
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *eq, *key, *val, *e;
		int bad = 0;

		lineno++;
		while (*line == ' ' || *line == '\t')
			line++;
		if (!*line || *line == '#')
			continue;
		eq = strchr(line, '=');
		if (!eq)
			return mv_err_set(err, -EBADMSG,
					  "%s: line %d: expected "
					  "'key = value'",
					  where, lineno);
		*eq = '\0';
		key = line;
		val = eq + 1;
		for (e = eq - 1; e >= key && (*e == ' ' || *e == '\t'); e--)
			*e = '\0';
		while (*val == ' ' || *val == '\t')
			val++;
		for (e = val + strlen(val);
		     e > val &&
		     (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r');)
			*--e = '\0';
		if (!strcmp(key, "format")) {
			bad = strcmp(val, "mailvault") != 0;
			seen |= 1;
		} else if (!strcmp(key, "version")) {
			bad = parse_u32(val, &c->version) != 0;
			seen |= 2;
		} else if (!strcmp(key, "id")) {
			bad = mv_unhex(val, c->id, MV_REPO_ID_LEN) != 0;
			seen |= 4;
		} else if (!strcmp(key, "secret")) {
			bad = mv_unhex(val, c->secret, MV_SECRET_LEN) != 0;
			seen |= 8;
		} else if (!strcmp(key, "encryption")) {
			snprintf(c->encryption, sizeof(c->encryption), "%s",
				 val);
		} else if (!strcmp(key, "chunk-min")) {
			bad = parse_u32(val, &c->chunker.min_size) != 0;
		} else if (!strcmp(key, "chunk-avg")) {
			bad = parse_u32(val, &c->chunker.avg_size) != 0;
		} else if (!strcmp(key, "chunk-max")) {
			bad = parse_u32(val, &c->chunker.max_size) != 0;
		} else if (!strcmp(key, "small-file")) {
			bad = parse_u32(val, &c->chunker.small_file) != 0;
		} else if (!strcmp(key, "zstd-level")) {
			uint32_t lv;

			bad = parse_u32(val, &lv) != 0 || lv > 22;
			c->zstd_level = (int)lv;
		} else if (!strcmp(key, "append-only")) {
			if (!strcmp(val, "yes"))
				c->flags |= REPO_APPEND_ONLY;
			else
				bad = strcmp(val, "no") != 0;
		}
		/* unknown keys are ignored: later versions may add some */
		if (bad)
			return mv_err_set(err, -EBADMSG,
					  "%s: line %d: bad "
					  "value for '%s'",
					  where, lineno, key);
	}
	if ((seen & 15) != 15)
		return mv_err_set(err, -EBADMSG,
				  "%s: not a mailvault "
				  "repository config (format, version, id "
				  "or secret missing)",
				  where);
	if (c->version != MV_FORMAT_VERSION)
		return mv_err_set(err, -EPROTONOSUPPORT,
				  "%s: format version "
				  "%u is not supported (this mailvault reads "
				  "version %d)",
				  where, c->version, MV_FORMAT_VERSION);
	if (strcmp(c->encryption, "none"))
		return mv_err_set(err, -EPROTONOSUPPORT,
				  "%s: encryption '%s' "
				  "is not supported by this version",
				  where, c->encryption);
	return chunker_params_check(&c->chunker, err);
}

/* ---- locking ---------------------------------------------------------- */

static int lock_describe(struct repo *r, char *out, size_t n, bool *stale)
{
	void *buf = NULL;
	size_t len;
	char host[256] = "?", myhost[256] = "";
	long long pid = 0, t = 0;
	char *p, *save = NULL;

	*stale = false;
	if (backend_read_all(r->be, "lock", 4096, &buf, &len, NULL))
		return -ENOENT;
	for (p = strtok_r(buf, "\n", &save); p;
	     p = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(p, "host=", 5))
			snprintf(host, sizeof(host), "%s", p + 5);
		else if (!strncmp(p, "pid=", 4))
			pid = atoll(p + 4);
		else if (!strncmp(p, "time=", 5))
			t = atoll(p + 5);
	}
	free(buf);
	gethostname(myhost, sizeof(myhost) - 1);
	if (!strcmp(host, myhost) && pid > 0 && kill((pid_t)pid, 0) < 0 &&
	    errno == ESRCH)
		*stale = true;
	snprintf(out, n, "pid %lld on host '%s' since %lld s ago", pid, host,
		 t ? (long long)time(NULL) - t : 0LL);
	return 0;
}

static int lock_take(struct repo *r, bool wait, struct mv_err *err)
{
	char body[512], host[256] = "", who[400];
	bool stale;
	int rc, tries = 0, len;

	gethostname(host, sizeof(host) - 1);
	len = snprintf(body, sizeof(body), "host=%s\npid=%d\ntime=%lld\n", host,
		       (int)getpid(), (long long)time(NULL));
	for (;;) {
		rc = r->be->ops->create_excl(r->be, "lock", body, (size_t)len,
					     err);
		if (rc != -EEXIST)
			break;
		if (lock_describe(r, who, sizeof(who), &stale))
			continue; /* vanished: try again */
		if (stale && tries++ < 3) {
			r->be->ops->remove(r->be, "lock", NULL);
			continue;
		}
		if (!wait)
			return mv_err_set(err, -EBUSY,
					  "repository '%s' is "
					  "locked by %s; if that process is "
					  "gone, remove the file 'lock' in the "
					  "repository",
					  r->location, who);
		sleep(1);
	}
	if (!rc)
		r->locked = true;
	return rc;
}

static void lock_release(struct repo *r)
{
	if (r->locked)
		r->be->ops->remove(r->be, "lock", NULL);
	r->locked = false;
}

/* ---- remote index cache ---------------------------------------------- */

static int cache_dir(const struct repo_config *c, char *out, size_t n,
		     struct mv_err *err)
{
	const char *base = getenv("XDG_CACHE_HOME");
	char id[2 * MV_REPO_ID_LEN + 1];
	int rc;

	mv_hex(c->id, MV_REPO_ID_LEN, id);
	if (base && *base)
		snprintf(out, n, "%s/mailvault/%s", base, id);
	else
		snprintf(out, n, "%s/.cache/mailvault/%s",
			 getenv("HOME") ? getenv("HOME") : "/tmp", id);
	rc = mv_mkdir_p(out, 0700);
	if (rc)
		return mv_err_set(err, rc,
				  "cannot create cache directory "
				  "'%s': %s",
				  out, strerror(-rc));
	return 0;
}

/* Remember which remote copy the open index is: another process on this
 * machine (a backup while a mount runs) may fetch or publish a newer one
 * into the same cache; repo_refresh() compares. */
static void stamp_remember(struct repo *r)
{
	char *s = NULL;

	r->stamp_seen[0] = '\0';
	if (r->stamp_path && !mv_read_file(r->stamp_path, 64, &s, NULL, NULL)) {
		snprintf(r->stamp_seen, sizeof(r->stamp_seen), "%s", s);
		free(s);
	}
}

/* Copy the remote index.db into the cache unless the stamp says the cached
 * copy is current. */
static int remote_index_fetch_once(struct repo *r, struct mv_err *err)
{
	char stamp[64], *old = NULL, tmp[PATH_MAX];
	uint64_t size;
	int64_t mtime;
	uint8_t *buf = NULL;
	uint64_t off = 0;
	int fd = -1, rc;

	rc = r->be->ops->stat(r->be, "index.db", &size, &mtime, err);
	if (rc)
		return rc == -ENOENT ? mv_err_set(err, rc,
						  "repository '%s' "
						  "has no index.db",
						  r->location)
				     : rc;
	snprintf(stamp, sizeof(stamp), "%llu %lld\n", (unsigned long long)size,
		 (long long)mtime);
	if (!mv_read_file(r->stamp_path, 64, &old, NULL, NULL) &&
	    !strcmp(old, stamp) && access(r->index_path, F_OK) == 0) {
		free(old);
		return 0;
	}
	free(old);
	snprintf(tmp, sizeof(tmp), "%s.download", r->index_path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	buf = malloc(1 << 20);
	if (fd < 0 || !buf) {
		rc = mv_err_set(err, -errno, "cannot write '%s': %s", tmp,
				strerror(errno));
		goto out;
	}
	while (off < size) {
		size_t got = 0;

		rc = r->be->ops->read_at(r->be, "index.db", off, buf,
					 MV_MIN((uint64_t)1 << 20, size - off),
					 &got, err);
		if (rc)
			goto out;
		if (!got) {
			rc = mv_err_set(err, -EIO,
					"index.db shrank while "
					"downloading");
			goto out;
		}
		rc = mv_write_full(fd, buf, got);
		if (rc) {
			mv_err_set(err, rc, "cannot write '%s'", tmp);
			goto out;
		}
		off += got;
	}
	if (fsync(fd) < 0 || rename(tmp, r->index_path) < 0) {
		rc = mv_err_set(err, -errno, "cannot store '%s': %s",
				r->index_path, strerror(errno));
		goto out;
	}
	/* a stale WAL of an older copy must not be replayed onto this one */
	{
		char wal[PATH_MAX + 8];

		snprintf(wal, sizeof(wal), "%s-wal", r->index_path);
		unlink(wal);
		snprintf(wal, sizeof(wal), "%s-shm", r->index_path);
		unlink(wal);
	}
	rc = mv_write_file_atomic(r->stamp_path, stamp, strlen(stamp), err);
out:
	if (fd >= 0)
		close(fd);
	if (rc)
		unlink(tmp);
	free(buf);
	return rc;
}

/* An SFTP v3 server cannot rename over a file, so a writer publishing a
 * new index moves the old one aside first: for about one round trip
 * index.db is missing.  A reader that falls in that window tries again. */
static int remote_index_fetch(struct repo *r, struct mv_err *err)
{
	struct timespec ts = {0, 200 * 1000000L};
	int i, rc = 0;

	for (i = 0; i < 5; i++) {
		struct mv_err e = MV_ERR_INIT;

		rc = remote_index_fetch_once(r, &e);
		if (rc != -ENOENT) {
			if (rc)
				mv_err_set(err, rc, "%s", mv_err_msg(&e));
			return rc;
		}
		if (i < 4)
			nanosleep(&ts, NULL);
	}
	return mv_err_set(err, rc, "repository '%s' has no index.db",
			  r->location);
}

/* Upload the cached index: checkpoint, stream to a temporary name, rename
 * over index.db (a reader never sees half an index). */
static int remote_index_publish(struct repo *r, struct mv_err *err)
{
	struct backend_file *f = NULL;
	uint8_t *buf = NULL;
	char stamp[64];
	uint64_t size;
	int64_t mtime;
	int fd = -1, rc;
	ssize_t n;

	rc = index_checkpoint(r->ix, err);
	if (rc)
		return rc;
	fd = open(r->index_path, O_RDONLY | O_CLOEXEC);
	buf = malloc(1 << 20);
	if (fd < 0 || !buf) {
		rc = mv_err_set(err, -errno, "cannot read '%s': %s",
				r->index_path, strerror(errno));
		goto out;
	}
	rc = r->be->ops->file_create(r->be, "index.db", &f, err);
	if (rc)
		goto out;
	while ((n = read(fd, buf, 1 << 20)) > 0) {
		rc = r->be->ops->file_write(f, buf, (size_t)n, err);
		if (rc) {
			r->be->ops->file_abort(f);
			goto out;
		}
	}
	if (n < 0) {
		r->be->ops->file_abort(f);
		rc = mv_err_set(err, -errno, "cannot read '%s'", r->index_path);
		goto out;
	}
	rc = r->be->ops->file_commit(f, err);
	if (rc)
		goto out;
	if (!r->be->ops->stat(r->be, "index.db", &size, &mtime, NULL)) {
		snprintf(stamp, sizeof(stamp), "%llu %lld\n",
			 (unsigned long long)size, (long long)mtime);
		mv_write_file_atomic(r->stamp_path, stamp, strlen(stamp), NULL);
		snprintf(r->stamp_seen, sizeof(r->stamp_seen), "%s", stamp);
	}
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

/* ---- open / init / close ------------------------------------------- */

static bool is_network_fs(const char *path)
{
	struct statfs sf;

	if (statfs(path, &sf) < 0)
		return false;
	switch ((unsigned long)sf.f_type) {
	case 0x6969UL:	   /* NFS */
	case 0x517BUL:	   /* SMB */
	case 0xFF534D42UL: /* CIFS */
	case 0xFE534D42UL: /* SMB2 */
	case 0x65735546UL: /* FUSE (sshfs and friends) */
		return true;
	default:
		return false;
	}
}

static struct repo *repo_alloc(void)
{
	struct repo *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	pthread_mutex_init(&r->ix_lock, NULL);
	pthread_mutex_init(&r->cctx.lock, NULL);
	pthread_mutex_init(&r->dctx.lock, NULL);
	pthread_mutex_init(&r->dict_lock, NULL);
	return r;
}

static int open_index(struct repo *r, bool create, bool writable,
		      struct mv_err *err)
{
	const char *root = r->be->ops->local_root(r->be);
	bool netfs = false;
	int rc;

	if (root) {
		if (asprintf(&r->index_path, "%s/index.db", root) < 0)
			return mv_err_set(err, -ENOMEM, "out of memory");
		netfs = is_network_fs(root);
	} else {
		char dir[PATH_MAX];

		rc = cache_dir(&r->cfg, dir, sizeof(dir), err);
		if (rc)
			return rc;
		if (asprintf(&r->index_path, "%s/index.db", dir) < 0 ||
		    asprintf(&r->stamp_path, "%s/index.stamp", dir) < 0 ||
		    asprintf(&r->pending_path, "%s/pending-packs", dir) < 0)
			return mv_err_set(err, -ENOMEM, "out of memory");
		r->remote = true;
		{
			char chunks[PATH_MAX + 8];

			snprintf(chunks, sizeof(chunks), "%s/chunks", dir);
			r->dcache = diskcache_open(chunks, 0);
		}
		if (create) {
			unlink(r->index_path);
		} else {
			rc = remote_index_fetch(r, err);
			if (rc)
				return rc;
		}
	}
	rc = index_open(r->index_path, create, netfs, false, &r->ix, err);
	if (rc == -EROFS || (rc && !writable && access(r->index_path, W_OK))) {
		mv_err_clear(err);
		rc = index_open(r->index_path, false, netfs, true, &r->ix, err);
	}
	if (rc)
		return rc;
	if (r->remote)
		stamp_remember(r);
	if (create && r->remote)
		rc = remote_index_publish(r, err);
	return rc;
}

int repo_init(const char *location, const struct repo_init_opts *opts,
	      struct mv_err *err)
{
	char text[CONFIG_MAX];
	struct repo *r = NULL;
	uint64_t size;
	int rc, n;

	r = repo_alloc();
	if (!r)
		return mv_err_set(err, -ENOMEM, "out of memory");
	rc = backend_open(location, true, &r->be, err);
	if (rc)
		goto out;
	r->location = strdup(location);
	if (r->be->ops->stat(r->be, "config", &size, NULL, NULL) == 0) {
		rc = mv_err_set(err, -EEXIST,
				"'%s' is already a mailvault "
				"repository",
				location);
		goto out;
	}
	r->cfg.version = MV_FORMAT_VERSION;
	snprintf(r->cfg.encryption, sizeof(r->cfg.encryption), "none");
	if (opts && opts->copy_from)
		r->cfg.chunker = opts->copy_from->chunker;
	else if (opts && opts->chunker)
		r->cfg.chunker = *opts->chunker;
	else
		repo_default_chunker(&r->cfg.chunker);
	rc = chunker_params_check(&r->cfg.chunker, err);
	if (rc)
		goto out;
	r->cfg.zstd_level = opts && opts->zstd_level ? opts->zstd_level
						     : DEFAULT_ZSTD_LEVEL;
	if (opts && opts->append_only)
		r->cfg.flags |= REPO_APPEND_ONLY;
	rc = random_bytes(r->cfg.id, MV_REPO_ID_LEN, err);
	if (!rc && opts && opts->copy_from)
		memcpy(r->cfg.secret, opts->copy_from->secret, MV_SECRET_LEN);
	else if (!rc)
		rc = random_bytes(r->cfg.secret, MV_SECRET_LEN, err);
	if (!rc)
		rc = r->be->ops->mkdir(r->be, "packs", err);
	if (!rc)
		rc = open_index(r, true, true, err);
	if (rc)
		goto out;
	n = config_format(&r->cfg, text, sizeof(text));
	/* the config goes last: its presence means the repository exists */
	rc = backend_write_atomic(r->be, "config", text, (size_t)n, err);
out:
	repo_close(r);
	return rc;
}

int repo_open(const char *location, unsigned flags, struct repo **out,
	      struct mv_err *err)
{
	struct repo *r;
	void *text = NULL;
	size_t len;
	char where[PATH_MAX];
	int rc;

	r = repo_alloc();
	if (!r)
		return mv_err_set(err, -ENOMEM, "out of memory");
	r->location = strdup(location);
	rc = backend_open(location, false, &r->be, err);
	if (rc)
		goto fail;
	rc = backend_read_all(r->be, "config", CONFIG_MAX, &text, &len, err);
	if (rc == -ENOENT) {
		rc = mv_err_set(err, -ENOENT,
				"'%s' is not a mailvault "
				"repository (no config; create one with "
				"'mailvault init')",
				location);
		goto fail;
	}
	if (rc)
		goto fail;
	snprintf(where, sizeof(where), "%s/config", location);
	rc = config_parse(text, where, &r->cfg, err);
	free(text);
	if (rc)
		goto fail;
	rc = hasher_new(r->cfg.secret, MV_SECRET_LEN, &r->hasher, err);
	if (rc)
		goto fail;
	if (flags & REPO_OPEN_WRITE) {
		rc = lock_take(r, flags & REPO_OPEN_WAIT, err);
		if (rc)
			goto fail;
	}
	rc = open_index(r, false, flags & REPO_OPEN_WRITE, err);
	if (rc)
		goto fail;
	index_data_version(r->ix, &r->data_version, NULL);
	*out = r;
	return 0;
fail:
	repo_close(r);
	return rc;
}

void repo_close(struct repo *r)
{
	int i;

	if (!r)
		return;
	if (r->writer)
		repo_writer_abort(r->writer);
	index_close(r->ix);
	lock_release(r);
	backend_close(r->be);
	hasher_free(r->hasher);
	for (i = 0; i < r->cctx.n; i++)
		ZSTD_freeCCtx(r->cctx.items[i]);
	for (i = 0; i < r->dctx.n; i++)
		ZSTD_freeDCtx(r->dctx.items[i]);
	while (r->dicts) {
		struct repo_dict *d = r->dicts;

		r->dicts = d->next;
		ZSTD_freeCDict(d->cdict);
		ZSTD_freeDDict(d->ddict);
		free(d);
	}
	diskcache_close(r->dcache);
	pthread_mutex_destroy(&r->dict_lock);
	pthread_mutex_destroy(&r->cctx.lock);
	pthread_mutex_destroy(&r->dctx.lock);
	pthread_mutex_destroy(&r->ix_lock);
	free(r->pack_names);
	free(r->index_path);
	free(r->stamp_path);
	free(r->pending_path);
	free(r->location);
	explicit_bzero(&r->cfg, sizeof(r->cfg));
	free(r);
}

const struct repo_config *repo_get_config(const struct repo *r)
{
	return &r->cfg;
}

const char *repo_location(const struct repo *r)
{
	return r->location;
}

struct backend *repo_backend(struct repo *r)
{
	return r->be;
}

struct sqlite3 *repo_db(struct repo *r)
{
	return index_db(r->ix);
}

void repo_chunk_id(struct repo *r, const void *data, size_t len,
		   uint8_t out[MV_ID_LEN])
{
	hasher_id(r->hasher, data, len, out);
}

int repo_refresh(struct repo *r, bool *out_changed, struct mv_err *err)
{
	int64_t v = 0;
	int rc;

	*out_changed = false;
	pthread_mutex_lock(&r->ix_lock);
	if (r->remote && !r->writer) {
		char *s = NULL;

		rc = remote_index_fetch(r, err);
		/* compared with the copy we opened, not with the stamp
		 * file before the fetch: a backup on this machine updates
		 * both the cache and the stamp */
		if (!rc && !mv_read_file(r->stamp_path, 64, &s, NULL, NULL)) {
			if (strcmp(s, r->stamp_seen)) {
				struct index *nix = NULL;

				rc = index_open(r->index_path, false, false,
						false, &nix, err);
				if (!rc) {
					index_close(r->ix);
					r->ix = nix;
					snprintf(r->stamp_seen,
						 sizeof(r->stamp_seen), "%s",
						 s);
					*out_changed = true;
				}
			}
			free(s);
		}
		pthread_mutex_unlock(&r->ix_lock);
		return rc;
	}
	rc = index_data_version(r->ix, &v, err);
	if (!rc && v != r->data_version) {
		r->data_version = v;
		*out_changed = true;
	}
	pthread_mutex_unlock(&r->ix_lock);
	return rc;
}

/* ---- reading ------------------------------------------------------- */

int repo_chunk_find(struct repo *r, const uint8_t id[MV_ID_LEN],
		    struct chunk_loc *out, struct mv_err *err)
{
	int rc;

	pthread_mutex_lock(&r->ix_lock);
	rc = index_chunk_find(r->ix, id, out, err);
	pthread_mutex_unlock(&r->ix_lock);
	return rc;
}

static int pack_name_locked(struct repo *r, int64_t pack, char *out, size_t n,
			    struct mv_err *err)
{
	int rc;

	if (pack > 0 && pack < r->npack_names && r->pack_names[pack][0]) {
		snprintf(out, n, "%s", r->pack_names[pack]);
		return 0;
	}
	rc = index_pack_name(r->ix, pack, out, n, err);
	if (rc)
		return rc;
	if (pack > 0 && pack < (int64_t)1 << 24) {
		if (pack >= r->npack_names) {
			int64_t cap = MV_MAX(pack + 1, r->npack_names * 2);
			void *p = realloc(r->pack_names,
					  (size_t)cap * sizeof(*r->pack_names));

			if (!p)
				return 0; /* the cache is optional */
			memset((char *)p +
				       r->npack_names * sizeof(*r->pack_names),
			       0,
			       (size_t)(cap - r->npack_names) *
				       sizeof(*r->pack_names));
			r->pack_names = p;
			r->npack_names = cap;
		}
		snprintf(r->pack_names[pack], sizeof(r->pack_names[pack]), "%s",
			 out);
	}
	return 0;
}

int repo_pack_path(struct repo *r, int64_t pack, char *out, size_t n,
		   struct mv_err *err)
{
	char name[PACK_NAME_LEN + 8];
	int rc;

	pthread_mutex_lock(&r->ix_lock);
	rc = pack_name_locked(r, pack, name, sizeof(name), err);
	pthread_mutex_unlock(&r->ix_lock);
	if (!rc)
		pack_path(name, out, n);
	return rc;
}

/* ---- dictionaries ---------------------------------------------------
 *
 * Small messages compress poorly one by one; a zstd dictionary trained on
 * the repository's own mail (docs/CHUNKING.md: -24 % on generated mail) is
 * stored as a REC_DICT record and listed in the index's dicts table.
 * Record headers name the dictionary by zstd's dictionary id.
 */

static int chunk_read_raw(struct repo *r, const uint8_t id[MV_ID_LEN],
			  struct mv_buf *out, struct mv_err *err);

/* Build a dictionary entry from its bytes; NULL on failure. */
static struct repo_dict *dict_make(struct repo *r, const void *p, size_t n,
				   bool for_compress)
{
	struct repo_dict *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->dict_id = ZSTD_getDictID_fromDict(p, n);
	d->ddict = ZSTD_createDDict(p, n);
	if (for_compress)
		d->cdict = ZSTD_createCDict(p, n, r->cfg.zstd_level);
	if (!d->ddict || (for_compress && !d->cdict) || !d->dict_id) {
		ZSTD_freeCDict(d->cdict);
		ZSTD_freeDDict(d->ddict);
		free(d);
		return NULL;
	}
	return d;
}

/* The dictionary with id dict_id (0: the newest), loading it on first
 * use.  Thread-safe. */
static struct repo_dict *dict_get(struct repo *r, uint32_t dict_id,
				  struct mv_err *err)
{
	struct mv_buf raw = MV_BUF_INIT;
	struct repo_dict *d;
	uint8_t chunk[MV_ID_LEN];
	uint32_t found = 0;
	int rc;

	pthread_mutex_lock(&r->dict_lock);
	for (d = r->dicts; d; d = d->next)
		if (d->dict_id == dict_id) {
			pthread_mutex_unlock(&r->dict_lock);
			return d;
		}
	pthread_mutex_unlock(&r->dict_lock);
	pthread_mutex_lock(&r->ix_lock);
	rc = index_dict_find(r->ix, dict_id, &found, chunk, err);
	pthread_mutex_unlock(&r->ix_lock);
	if (rc) {
		if (dict_id)
			mv_err_set(err, -EIO, "zstd dictionary %u is missing",
				   dict_id);
		return NULL;
	}
	rc = chunk_read_raw(r, chunk, &raw, err);
	d = rc ? NULL : dict_make(r, raw.data, raw.len, true);
	mv_buf_release(&raw);
	if (!d) {
		mv_err_set(err, -EIO, "zstd dictionary %u cannot be loaded",
			   found);
		return NULL;
	}
	pthread_mutex_lock(&r->dict_lock);
	d->next = r->dicts;
	r->dicts = d;
	pthread_mutex_unlock(&r->dict_lock);
	return d;
}

static struct repo_dict *dict_active(struct repo *r)
{
	struct repo_dict *d;

	pthread_mutex_lock(&r->dict_lock);
	if (!r->dict_probed) {
		r->dict_probed = true;
		pthread_mutex_unlock(&r->dict_lock);
		d = dict_get(r, 0, NULL);
		pthread_mutex_lock(&r->dict_lock);
		if (d && !r->active)
			r->active = d;
	}
	d = r->active;
	pthread_mutex_unlock(&r->dict_lock);
	return d;
}

bool repo_has_dictionary(struct repo *r)
{
	return dict_active(r) != NULL;
}

static int decompress(struct repo *r, const struct pack_rec *rec,
		      const uint8_t *payload, struct mv_buf *out,
		      const char *where, struct mv_err *err)
{
	struct repo_dict *dict = NULL;
	ZSTD_DCtx *d;
	size_t n;

	mv_buf_reset(out);
	if (mv_buf_reserve(out, rec->raw_size ? rec->raw_size : 1))
		return mv_err_set(err, -ENOMEM, "out of memory");
	if (rec->comp == PACK_COMP_NONE) {
		if (rec->raw_size != rec->stored_size)
			return mv_err_set(err, -EIO, "%s: size mismatch",
					  where);
		memcpy(out->data, payload, rec->raw_size);
		out->len = rec->raw_size;
		return 0;
	}
	if (rec->comp != PACK_COMP_ZSTD && rec->comp != PACK_COMP_ZSTD_DICT)
		return mv_err_set(err, -EIO, "%s: unknown compression %u",
				  where, rec->comp);
	if (rec->comp == PACK_COMP_ZSTD_DICT) {
		dict = dict_get(r, rec->dict_id, err);
		if (!dict)
			return mv_err_prefix(err, "%s", where);
	}
	d = pool_get(&r->dctx);
	if (!d)
		d = ZSTD_createDCtx();
	if (!d)
		return mv_err_set(err, -ENOMEM, "out of memory");
	if (dict)
		n = ZSTD_decompress_usingDDict(d, out->data, rec->raw_size,
					       payload, rec->stored_size,
					       dict->ddict);
	else
		n = ZSTD_decompressDCtx(d, out->data, rec->raw_size, payload,
					rec->stored_size);
	if (!pool_put(&r->dctx, d))
		ZSTD_freeDCtx(d);
	if (ZSTD_isError(n) || n != rec->raw_size)
		return mv_err_set(err, -EIO, "%s: cannot decompress: %s", where,
				  ZSTD_isError(n) ? ZSTD_getErrorName(n)
						  : "short output");
	out->len = n;
	return 0;
}

/* Check and decompress one record (header + payload) of chunk id. */
static int record_decode(struct repo *r, const uint8_t id[MV_ID_LEN],
			 const uint8_t *buf, size_t len, bool verify_id,
			 struct mv_buf *out, const char *where,
			 struct mv_err *err)
{
	struct pack_rec rec;
	int rc;

	if (len < PACK_REC_HDR_LEN || pack_rec_decode(buf, &rec) ||
	    memcmp(rec.id, id, MV_ID_LEN) ||
	    rec.stored_size != len - PACK_REC_HDR_LEN)
		return mv_err_set(err, -EIO, "%s: record header is damaged",
				  where);
	if (hash_xxh64(buf + PACK_REC_HDR_LEN, rec.stored_size) != rec.checksum)
		return mv_err_set(err, -EIO,
				  "%s: checksum mismatch (data "
				  "damaged)",
				  where);
	rc = decompress(r, &rec, buf + PACK_REC_HDR_LEN, out, where, err);
	if (rc)
		return rc;
	if (verify_id) {
		uint8_t check[MV_ID_LEN];

		repo_chunk_id(r, out->data, out->len, check);
		if (memcmp(check, id, MV_ID_LEN))
			return mv_err_set(err, -EIO,
					  "%s: content does not "
					  "match its id",
					  where);
	}
	return 0;
}

int repo_record_decode(struct repo *r, const uint8_t id[MV_ID_LEN],
		       const void *rec, size_t len, bool verify_id,
		       struct mv_buf *out, struct mv_err *err)
{
	char hex[17], where[64];

	mv_hex(id, 8, hex);
	snprintf(where, sizeof(where), "chunk %s", hex);
	return record_decode(r, id, rec, len, verify_id, out, where, err);
}

/* Stored records are read into a per-thread buffer that stays: a mount
 * serving a restore reads tens of thousands of records, and a fresh
 * malloc() each time cost page faults and heap searches (about 15 % of
 * the mount's CPU in an rsync).  Records above READ_SCRATCH_MAX, and a
 * read nested in another (decoding a record loads its zstd dictionary),
 * use a buffer of their own. */
#define READ_SCRATCH_MAX ((size_t)8 << 20)

struct read_scratch {
	struct mv_buf buf;
	bool busy; /* handed out, not yet given back */
};

static pthread_key_t read_scratch_key;
static pthread_once_t read_scratch_once = PTHREAD_ONCE_INIT;
static bool read_scratch_ok;

static void read_scratch_free(void *p)
{
	struct read_scratch *rs = p;

	mv_buf_release(&rs->buf);
	free(rs);
}

static void read_scratch_init(void)
{
	read_scratch_ok =
		pthread_key_create(&read_scratch_key, read_scratch_free) == 0;
}

/* A buffer of need bytes: the thread's scratch (*scratch set, give it
 * back with read_buffer_done) or a malloc'd one (*own, to be freed). */
static uint8_t *read_buffer(size_t need, struct read_scratch **scratch,
			    uint8_t **own)
{
	struct read_scratch *rs;

	*scratch = NULL;
	*own = NULL;
	pthread_once(&read_scratch_once, read_scratch_init);
	rs = read_scratch_ok && need <= READ_SCRATCH_MAX
		     ? pthread_getspecific(read_scratch_key)
		     : NULL;
	if (!rs && read_scratch_ok && need <= READ_SCRATCH_MAX) {
		rs = calloc(1, sizeof(*rs));
		if (rs && pthread_setspecific(read_scratch_key, rs)) {
			free(rs);
			rs = NULL;
		}
	}
	if (!rs || rs->busy || mv_buf_reserve(&rs->buf, need))
		return *own = malloc(need);
	rs->busy = true;
	*scratch = rs;
	return rs->buf.data;
}

static void read_buffer_done(struct read_scratch *scratch, uint8_t *own)
{
	if (scratch)
		scratch->busy = false;
	free(own);
}

static int chunk_read_once(struct repo *r, const uint8_t id[MV_ID_LEN],
			   bool verify_id, struct mv_buf *out,
			   struct mv_err *err)
{
	char name[PACK_NAME_LEN + 8], path[128], where[256], hex[17];
	struct chunk_loc loc;
	struct read_scratch *scratch = NULL;
	uint8_t *buf = NULL, *own = NULL;
	size_t need, got = 0;
	int rc;

	mv_hex(id, 8, hex);
	pthread_mutex_lock(&r->ix_lock);
	rc = index_chunk_find(r->ix, id, &loc, err);
	if (!rc)
		rc = pack_name_locked(r, loc.pack, name, sizeof(name), err);
	pthread_mutex_unlock(&r->ix_lock);
	if (rc == -ENOENT)
		return mv_err_set(err, -EIO,
				  "chunk %s is missing from the "
				  "index",
				  hex);
	if (rc)
		return rc;
	pack_path(name, path, sizeof(path));
	snprintf(where, sizeof(where), "chunk %s in pack '%s' at offset %llu",
		 hex, path, (unsigned long long)loc.offset);
	need = PACK_REC_HDR_LEN + loc.stored_size;
	if (r->dcache) {
		struct mv_buf cached = MV_BUF_INIT;

		/* a damaged cache file is only a miss */
		if (!diskcache_get(r->dcache, id, &cached) &&
		    !record_decode(r, id, cached.data, cached.len, verify_id,
				   out, where, NULL)) {
			mv_buf_release(&cached);
			return 0;
		}
		mv_buf_release(&cached);
	}
	buf = read_buffer(need, &scratch, &own);
	if (!buf)
		return mv_err_set(err, -ENOMEM, "out of memory");
	while (got < need) {
		size_t k = 0;

		rc = r->be->ops->read_at(r->be, path, loc.offset + got,
					 buf + got, need - got, &k, err);
		if (rc) {
			mv_err_prefix(err, "%s", where);
			rc = err ? err->code : rc;
			if (rc != -ENOMEM)
				rc = -EIO;
			if (err)
				err->code = rc;
			goto out;
		}
		if (!k) {
			rc = mv_err_set(err, -EIO, "%s: pack is truncated",
					where);
			goto out;
		}
		got += k;
	}
	if (loc.stored_size + (size_t)PACK_REC_HDR_LEN != need) {
		rc = mv_err_set(err, -EIO, "%s: record header is damaged",
				where);
		goto out;
	}
	rc = record_decode(r, id, buf, need, verify_id, out, where, err);
	if (!rc && r->dcache)
		diskcache_put(r->dcache, id, buf, need);
out:
	read_buffer_done(scratch, own);
	return rc;
}

/* ---- writing ------------------------------------------------------- */

int repo_compress(struct repo *r, const void *raw, size_t len,
		  struct mv_buf *out, struct repo_comp *out_comp,
		  struct mv_err *err)
{
	struct repo_dict *dict = len <= DICT_MAX_CHUNK ? dict_active(r) : NULL;
	size_t bound = ZSTD_compressBound(len), n;
	ZSTD_CCtx *c;

	out_comp->kind = PACK_COMP_NONE;
	out_comp->dict_id = 0;
	if (len < 64)
		return 0;
	mv_buf_reset(out);
	if (mv_buf_reserve(out, bound))
		return mv_err_set(err, -ENOMEM, "out of memory");
	c = pool_get(&r->cctx);
	if (!c) {
		c = ZSTD_createCCtx();
		if (!c)
			return mv_err_set(err, -ENOMEM, "out of memory");
		ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel,
				       r->cfg.zstd_level);
		ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 0);
		ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1);
	}
	if (dict)
		n = ZSTD_compress_usingCDict(c, out->data, bound, raw, len,
					     dict->cdict);
	else
		n = ZSTD_compress2(c, out->data, bound, raw, len);
	if (!pool_put(&r->cctx, c))
		ZSTD_freeCCtx(c);
	if (ZSTD_isError(n))
		return mv_err_set(err, -EIO, "zstd: %s", ZSTD_getErrorName(n));
	/* store raw unless compression saves at least 1/32 */
	if (n + (len >> 5) < len) {
		out->len = n;
		out_comp->kind = dict ? PACK_COMP_ZSTD_DICT : PACK_COMP_ZSTD;
		out_comp->dict_id = dict ? dict->dict_id : 0;
	}
	return 0;
}

/* ---- packs of interrupted remote sessions ---------------------------
 *
 * On a remote repository an interrupted backup (connection lost for good)
 * leaves the packs it had sealed on the server: uploading them was the
 * expensive part.  Their names are noted in the cache directory
 * (pending-packs) before each upload and forgotten when a session
 * commits.  The next session scans the noted packs that made it to the
 * server (sealed packs describe themselves) and adds their records to its
 * own index transaction, so it stores nothing twice.  Packs of another
 * machine's failed session are not noted here; check reports them and
 * prune removes them.
 */

struct adopt_rec {
	uint8_t id[MV_ID_LEN];
	struct chunk_loc loc;
};

struct adopt {
	struct adopt_rec *v;
	size_t n, cap;
	int kind; /* enum pack_kind, from the first record */
};

static int adopt_collect(const struct pack_rec *rec, uint64_t offset,
			 const void *payload, void *arg)
{
	struct adopt *a = arg;

	(void)payload;
	if (a->n == a->cap) {
		size_t cap = a->cap ? 2 * a->cap : 256;
		struct adopt_rec *p = realloc(a->v, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		a->v = p;
		a->cap = cap;
	}
	if (!a->n)
		a->kind =
			rec->type == REC_DATA ? PACK_KIND_DATA : PACK_KIND_META;
	memcpy(a->v[a->n].id, rec->id, MV_ID_LEN);
	a->v[a->n].loc.pack = 0;
	a->v[a->n].loc.offset = offset;
	a->v[a->n].loc.stored_size = rec->stored_size;
	a->v[a->n].loc.raw_size = rec->raw_size;
	a->v[a->n].loc.type = rec->type;
	a->v[a->n].loc.comp = rec->comp;
	a->n++;
	return 0;
}

static int pack_known(int64_t id, const char *name, int kind, uint64_t size,
		      uint32_t records, void *arg)
{
	(void)id;
	(void)kind;
	(void)size;
	(void)records;
	return strcmp(name, (const char *)arg) ? 0 : -EEXIST;
}

/* Add the records of one sealed pack to the open transaction.  A pack
 * that never reached the server, or not whole, is skipped. */
static int adopt_pack(struct repo *r, const char *name, struct mv_err *err)
{
	struct adopt a = {NULL, 0, 0, PACK_KIND_DATA};
	struct mv_err e = MV_ERR_INIT;
	char path[128];
	uint64_t size = 0;
	int64_t id;
	bool sealed = false;
	size_t i;
	int rc;

	rc = index_pack_each(r->ix, pack_known, (void *)name, NULL);
	if (rc == -EEXIST)
		return 0; /* committed after all */
	pack_path(name, path, sizeof(path));
	rc = r->be->ops->stat(r->be, path, &size, NULL, &e);
	if (rc == -ENOENT)
		return 0;
	if (!rc)
		rc = pack_scan(r->be, path, false, adopt_collect, &a, &sealed,
			       &e);
	if (rc == -EBADMSG || (!rc && (!sealed || !a.n))) {
		rc = 0; /* not whole: left for check and prune */
		goto out;
	}
	if (rc) {
		rc = mv_err_set(err, rc, "%s", mv_err_msg(&e));
		goto out;
	}
	rc = index_pack_add(r->ix, name, a.kind, &id, err);
	for (i = 0; !rc && i < a.n; i++) {
		a.v[i].loc.pack = id;
		rc = index_chunk_add(r->ix, a.v[i].id, &a.v[i].loc, err);
	}
	if (!rc)
		rc = index_pack_update(r->ix, id, size, (uint32_t)a.n, err);
out:
	free(a.v);
	return rc;
}

static int adopt_pending(struct repo *r, struct mv_err *err)
{
	char *text = NULL, *line, *save = NULL;
	int rc = 0;

	if (!r->pending_path ||
	    mv_read_file(r->pending_path, 1 << 20, &text, NULL, NULL))
		return 0;
	pthread_mutex_lock(&r->ix_lock);
	for (line = strtok_r(text, "\n", &save); line && !rc;
	     line = strtok_r(NULL, "\n", &save))
		if (strlen(line) == PACK_NAME_LEN &&
		    strspn(line, "0123456789abcdef") == PACK_NAME_LEN)
			rc = adopt_pack(r, line, err);
	pthread_mutex_unlock(&r->ix_lock);
	free(text);
	return rc;
}

/* Note a pack name before its upload (see above). */
static void pending_note(struct repo *r, const char *name)
{
	char line[PACK_NAME_LEN + 2];
	int fd;

	if (!r->pending_path)
		return;
	fd = open(r->pending_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
		  0600);
	if (fd < 0)
		return; /* only an optimisation */
	snprintf(line, sizeof(line), "%s\n", name);
	if (mv_write_full(fd, line, strlen(line)) == 0)
		fdatasync(fd);
	close(fd);
}

int repo_writer_begin(struct repo *r, struct repo_writer **out,
		      struct mv_err *err)
{
	struct repo_writer *w;
	int rc;

	if (!r->locked)
		return mv_err_set(err, -EPERM,
				  "repository '%s' is not open "
				  "for writing",
				  r->location);
	if (r->writer)
		return mv_err_set(err, -EBUSY,
				  "a write session is already "
				  "open");
	w = calloc(1, sizeof(*w));
	if (!w)
		return mv_err_set(err, -ENOMEM, "out of memory");
	w->r = r;
	pthread_mutex_lock(&r->ix_lock);
	rc = index_begin(r->ix, err);
	pthread_mutex_unlock(&r->ix_lock);
	if (rc) {
		free(w);
		return rc;
	}
	if (r->remote) {
		rc = adopt_pending(r, err);
		if (rc) {
			pthread_mutex_lock(&r->ix_lock);
			index_rollback(r->ix);
			pthread_mutex_unlock(&r->ix_lock);
			free(w);
			return rc;
		}
	}
	r->writer = w;
	*out = w;
	return 0;
}

bool repo_writer_has(struct repo_writer *w, const uint8_t id[MV_ID_LEN])
{
	return repo_chunk_find(w->r, id, NULL, NULL) == 0;
}

static int seal_pack(struct repo_writer *w, int k, struct mv_err *err)
{
	struct repo *r = w->r;
	uint64_t size;
	uint32_t records;
	char **p;
	int rc;

	if (!w->pw[k])
		return 0;
	size = pack_writer_size(w->pw[k]) + PACK_FOOTER_LEN;
	records = pack_writer_records(w->pw[k]);
	p = realloc(w->sealed, (w->nsealed + 1) * sizeof(*p));
	if (!p)
		return mv_err_set(err, -ENOMEM, "out of memory");
	w->sealed = p;
	w->sealed[w->nsealed] = strdup(pack_writer_name(w->pw[k]));
	if (!w->sealed[w->nsealed])
		return mv_err_set(err, -ENOMEM, "out of memory");
	w->nsealed++;
	if (r->remote)
		pending_note(r, pack_writer_name(w->pw[k]));
	rc = pack_writer_seal(w->pw[k], err);
	w->pw[k] = NULL;
	if (rc)
		return rc;
	w->stored += PACK_FOOTER_LEN;
	pthread_mutex_lock(&r->ix_lock);
	rc = index_pack_update(r->ix, w->pack_id[k], size, records, err);
	pthread_mutex_unlock(&r->ix_lock);
	return rc;
}

static int open_pack(struct repo_writer *w, int k, struct mv_err *err)
{
	struct repo *r = w->r;
	int rc;

	rc = pack_writer_open(r->be, k ? PACK_KIND_META : PACK_KIND_DATA,
			      &w->pw[k], err);
	if (rc)
		return rc;
	w->stored += PACK_HDR_LEN;
	pthread_mutex_lock(&r->ix_lock);
	rc = index_pack_add(r->ix, pack_writer_name(w->pw[k]),
			    k ? PACK_KIND_META : PACK_KIND_DATA, &w->pack_id[k],
			    err);
	pthread_mutex_unlock(&r->ix_lock);
	return rc;
}

static int writer_append(struct repo_writer *w, enum rec_type type,
			 const uint8_t id[MV_ID_LEN], size_t raw_len,
			 const void *payload, size_t stored,
			 const struct repo_comp *how, bool *out_new,
			 struct mv_err *err)
{
	struct repo *r = w->r;
	int k = type == REC_DATA ? 0 : 1;
	struct pack_rec rec;
	struct chunk_loc loc;
	uint64_t off;
	int rc;

	if (!w->pw[k]) {
		rc = open_pack(w, k, err);
		if (rc)
			return rc;
	}
	memset(&rec, 0, sizeof(rec));
	rec.type = (uint8_t)type;
	rec.comp = how->kind;
	rec.dict_id = how->dict_id;
	rec.raw_size = (uint32_t)raw_len;
	rec.stored_size = (uint32_t)stored;
	memcpy(rec.id, id, MV_ID_LEN);
	rec.checksum = hash_xxh64(payload, rec.stored_size);
	rc = pack_writer_append(w->pw[k], &rec, payload, &off, err);
	if (rc)
		return rc;
	w->stored += PACK_REC_HDR_LEN + rec.stored_size;
	loc.pack = w->pack_id[k];
	loc.offset = off;
	loc.stored_size = rec.stored_size;
	loc.raw_size = rec.raw_size;
	loc.type = rec.type;
	loc.comp = rec.comp;
	pthread_mutex_lock(&r->ix_lock);
	rc = index_chunk_add(r->ix, id, &loc, err);
	pthread_mutex_unlock(&r->ix_lock);
	if (rc)
		return rc;
	if (out_new)
		*out_new = true;
	if (pack_writer_size(w->pw[k]) >=
	    (k ? META_PACK_TARGET : DATA_PACK_TARGET))
		rc = seal_pack(w, k, err);
	return rc;
}

int repo_writer_put_comp(struct repo_writer *w, enum rec_type type,
			 const uint8_t id[MV_ID_LEN], const void *raw,
			 size_t raw_len, const void *comp, size_t comp_len,
			 const struct repo_comp *how, bool *out_new,
			 struct mv_err *err)
{
	struct repo_comp none = {PACK_COMP_NONE, 0};

	if (out_new)
		*out_new = false;
	if (raw_len > PACK_MAX_RECORD)
		return mv_err_set(err, -EMSGSIZE,
				  "record of %zu bytes is "
				  "too large",
				  raw_len);
	if (repo_writer_has(w, id))
		return 0;
	if (!how || how->kind == PACK_COMP_NONE || !comp)
		return writer_append(w, type, id, raw_len, raw, raw_len, &none,
				     out_new, err);
	return writer_append(w, type, id, raw_len, comp, comp_len, how, out_new,
			     err);
}

int repo_writer_put(struct repo_writer *w, enum rec_type type,
		    const uint8_t id[MV_ID_LEN], const void *raw,
		    size_t raw_len, const void *comp, size_t comp_len,
		    bool *out_new, struct mv_err *err)
{
	struct repo_comp how = {PACK_COMP_ZSTD, 0};

	if (comp)
		return repo_writer_put_comp(w, type, id, raw, raw_len, comp,
					    comp_len, &how, out_new, err);
	if (out_new)
		*out_new = false;
	if (repo_writer_has(w, id))
		return 0;
	how.kind = PACK_COMP_NONE;
	if (type != REC_SNAPSHOT && type != REC_DICT) {
		int rc = repo_compress(w->r, raw, raw_len, &w->cbuf, &how, err);
		if (rc)
			return rc;
	}
	return repo_writer_put_comp(w, type, id, raw, raw_len, w->cbuf.data,
				    w->cbuf.len, &how, out_new, err);
}

int repo_writer_set_dictionary(struct repo_writer *w, const void *dict,
			       size_t len, struct mv_err *err)
{
	struct repo *r = w->r;
	struct repo_dict *d;
	uint8_t id[MV_ID_LEN];
	int rc;

	d = dict_make(r, dict, len, true);
	if (!d)
		return mv_err_set(err, -EINVAL,
				  "not a usable zstd "
				  "dictionary");
	repo_chunk_id(r, dict, len, id);
	rc = repo_writer_put(w, REC_DICT, id, dict, len, NULL, 0, NULL, err);
	if (!rc) {
		pthread_mutex_lock(&r->ix_lock);
		rc = index_dict_add(r->ix, d->dict_id, id, err);
		pthread_mutex_unlock(&r->ix_lock);
	}
	if (rc) {
		ZSTD_freeCDict(d->cdict);
		ZSTD_freeDDict(d->ddict);
		free(d);
		return rc;
	}
	pthread_mutex_lock(&r->dict_lock);
	d->next = r->dicts;
	r->dicts = d;
	r->active = d;
	r->dict_probed = true;
	pthread_mutex_unlock(&r->dict_lock);
	return 0;
}

uint64_t repo_writer_stored_bytes(const struct repo_writer *w)
{
	return w->stored;
}

static void writer_free(struct repo_writer *w)
{
	size_t i;

	for (i = 0; i < w->nsealed; i++)
		free(w->sealed[i]);
	free(w->sealed);
	mv_buf_release(&w->cbuf);
	w->r->writer = NULL;
	free(w);
}

/* Commit the session's index transaction and, on a remote repository,
 * publish the index.  Called with ix_lock held. */
static int commit_locked(struct repo *r, struct mv_err *err)
{
	int rc = index_commit(r->ix, err);

	if (!rc && r->remote) {
		rc = remote_index_publish(r, err);
		/* the cached index now holds a commit the server may not
		 * have: make the next open download the server's copy */
		if (rc)
			unlink(r->stamp_path);
		else if (r->pending_path)
			unlink(r->pending_path);
	}
	if (!rc)
		index_data_version(r->ix, &r->data_version, NULL);
	return rc;
}

int repo_writer_commit(struct repo_writer *w, struct snapshot *snap,
		       struct mv_err *err)
{
	struct repo *r = w->r;
	struct mv_buf rec = MV_BUF_INIT;
	int rc;

	/* Invariant (2): data packs are durable before the snapshot
	 * record that names them is written. */
	rc = seal_pack(w, 0, err);
	if (rc)
		goto fail;
	snap->stats.stored_bytes = w->stored;
	rc = snapshot_encode(snap, &rec, err);
	if (rc)
		goto fail;
	repo_chunk_id(r, rec.data, rec.len, snap->id);
	rc = repo_writer_put(w, REC_SNAPSHOT, snap->id, rec.data, rec.len, NULL,
			     0, NULL, err);
	if (!rc)
		rc = seal_pack(w, 1, err);
	if (rc)
		goto fail;
	pthread_mutex_lock(&r->ix_lock);
	rc = index_snapshot_add(r->ix, snap->id, snap->name, snap->time_ns,
				snap->partial, rec.data, rec.len, err);
	if (!rc)
		rc = commit_locked(r, err);
	pthread_mutex_unlock(&r->ix_lock);
	if (rc)
		goto fail;
	mv_buf_release(&rec);
	writer_free(w);
	return 0;
fail:
	mv_buf_release(&rec);
	repo_writer_abort(w);
	return rc;
}

void repo_writer_abort(struct repo_writer *w)
{
	struct repo *r;
	char path[128];
	size_t i;
	int k;

	if (!w)
		return;
	r = w->r;
	for (k = 0; k < 2; k++) {
		pack_writer_abort(w->pw[k]);
		w->pw[k] = NULL;
	}
	pthread_mutex_lock(&r->ix_lock);
	index_rollback(r->ix);
	pthread_mutex_unlock(&r->ix_lock);
	/* Packs sealed by this session are referenced by nothing now.  On
	 * a remote repository they are kept: uploading them was the cost,
	 * and the next session adopts them (see adopt_pending). */
	for (i = 0; !r->remote && i < w->nsealed; i++) {
		pack_path(w->sealed[i], path, sizeof(path));
		r->be->ops->remove(r->be, path, NULL);
	}
	writer_free(w);
}

struct chunk_copy {
	uint8_t id[MV_ID_LEN];
	struct chunk_loc loc;
};

struct chunk_collect {
	struct chunk_copy *items;
	size_t n, cap;
};

static int collect_chunk(const uint8_t id[MV_ID_LEN],
			 const struct chunk_loc *loc, void *arg)
{
	struct chunk_collect *c = arg;

	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 1024;
		struct chunk_copy *p = realloc(c->items, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		c->items = p;
		c->cap = cap;
	}
	memcpy(c->items[c->n].id, id, MV_ID_LEN);
	c->items[c->n].loc = *loc;
	c->n++;
	return 0;
}

/* ---- snapshots (used by snapshot.c) ------------------------------- */

int repo_snapshot_each(struct repo *r, repo_snapshot_fn fn, void *arg,
		       struct mv_err *err)
{
	int rc;

	pthread_mutex_lock(&r->ix_lock);
	rc = index_snapshot_each(r->ix, fn, arg, err);
	pthread_mutex_unlock(&r->ix_lock);
	return rc;
}

int repo_snapshot_delete(struct repo *r, const uint8_t id[MV_ID_LEN],
			 struct mv_err *err)
{
	int rc;

	if (!r->locked)
		return mv_err_set(err, -EPERM,
				  "repository '%s' is not open "
				  "for writing",
				  r->location);
	if (r->cfg.flags & REPO_APPEND_ONLY)
		return mv_err_set(err, -EPERM,
				  "repository '%s' is "
				  "append-only: snapshots cannot be removed",
				  r->location);
	pthread_mutex_lock(&r->ix_lock);
	rc = index_snapshot_delete(r->ix, id, err);
	if (!rc && r->remote)
		rc = remote_index_publish(r, err);
	pthread_mutex_unlock(&r->ix_lock);
	return rc;
}

int repo_totals(struct repo *r, struct repo_totals *out, struct mv_err *err)
{
	struct index_totals t;
	int rc;

	pthread_mutex_lock(&r->ix_lock);
	rc = index_totals(r->ix, &t, err);
	pthread_mutex_unlock(&r->ix_lock);
	if (rc)
		return rc;
	out->chunks = t.chunks;
	out->raw = t.raw;
	out->stored = t.stored;
	out->packs = t.packs;
	out->pack_bytes = t.pack_bytes;
	return 0;
}

int repo_pack_each(struct repo *r, repo_pack_fn fn, void *arg,
		   struct mv_err *err)
{
	int rc;

	pthread_mutex_lock(&r->ix_lock);
	rc = index_pack_each(r->ix, fn, arg, err);
	pthread_mutex_unlock(&r->ix_lock);
	return rc;
}

int repo_chunk_each(struct repo *r, repo_chunk_fn fn, void *arg,
		    struct mv_err *err)
{
	int rc;

	/* fn may read chunks (check --read-data) and so must not run under
	 * the lock: the list is copied first */
	struct chunk_collect c = {NULL, 0, 0};
	size_t i;

	pthread_mutex_lock(&r->ix_lock);
	rc = index_chunk_each(r->ix, collect_chunk, &c, err);
	pthread_mutex_unlock(&r->ix_lock);
	for (i = 0; !rc && i < c.n; i++)
		rc = fn(c.items[i].id, &c.items[i].loc, arg);
	free(c.items);
	return rc;
}

/* ---- lifecycle: prune, rebuild-index, repair (src/lifecycle/) --------
 *
 * prune moves records between packs while mounts read: a reader that
 * looked a location up just before prune committed may find the old pack
 * gone, or (when a later pack reuses a deleted pack's row id) a cached
 * name that points at the wrong file.  repo_chunk_read() therefore tries
 * once more after forgetting the cached pack names and re-reading the
 * location from the index, which by then names the new pack.
 */

int repo_chunk_read(struct repo *r, const uint8_t id[MV_ID_LEN], bool verify_id,
		    struct mv_buf *out, struct mv_err *err)
{
	struct mv_err first = MV_ERR_INIT;
	int rc;

	rc = chunk_read_once(r, id, verify_id, out, &first);
	if (rc != -EIO && rc != -ENOENT) {
		if (rc)
			mv_err_set(err, rc, "%s", mv_err_msg(&first));
		return rc;
	}
	pthread_mutex_lock(&r->ix_lock);
	if (r->pack_names)
		memset(r->pack_names, 0,
		       (size_t)r->npack_names * sizeof(*r->pack_names));
	pthread_mutex_unlock(&r->ix_lock);
	return chunk_read_once(r, id, verify_id, out, err);
}

struct index *repo_index(struct repo *r)
{
	return r->ix;
}

const char *repo_index_path(const struct repo *r)
{
	return r->index_path;
}

int repo_writer_copy(struct repo_writer *w, const struct pack_rec *rec,
		     const void *payload, struct chunk_loc *out,
		     struct mv_err *err)
{
	int k = rec->type == REC_DATA ? 0 : 1;
	uint64_t off;
	int rc;

	if (!w->pw[k]) {
		rc = open_pack(w, k, err);
		if (rc)
			return rc;
	}
	rc = pack_writer_append(w->pw[k], rec, payload, &off, err);
	if (rc)
		return rc;
	w->stored += PACK_REC_HDR_LEN + rec->stored_size;
	out->pack = w->pack_id[k];
	out->offset = off;
	out->stored_size = rec->stored_size;
	out->raw_size = rec->raw_size;
	out->type = rec->type;
	out->comp = rec->comp;
	if (pack_writer_size(w->pw[k]) >=
	    (k ? META_PACK_TARGET : DATA_PACK_TARGET))
		rc = seal_pack(w, k, err);
	return rc;
}

int repo_writer_finish(struct repo_writer *w, struct mv_err *err)
{
	struct repo *r = w->r;
	int rc;

	rc = seal_pack(w, 0, err);
	if (!rc)
		rc = seal_pack(w, 1, err);
	if (rc)
		goto fail;
	pthread_mutex_lock(&r->ix_lock);
	rc = commit_locked(r, err);
	pthread_mutex_unlock(&r->ix_lock);
	if (rc)
		goto fail;
	writer_free(w);
	return 0;
fail:
	repo_writer_abort(w);
	return rc;
}

int repo_open_bare(const char *location, unsigned flags, struct repo **out,
		   struct mv_err *err)
{
	struct repo *r;
	void *text = NULL;
	size_t len;
	char where[PATH_MAX], dir[PATH_MAX];
	const char *root;
	int rc;

	r = repo_alloc();
	if (!r)
		return mv_err_set(err, -ENOMEM, "out of memory");
	r->location = strdup(location);
	rc = backend_open(location, false, &r->be, err);
	if (rc)
		goto fail;
	rc = backend_read_all(r->be, "config", CONFIG_MAX, &text, &len, err);
	if (rc == -ENOENT)
		rc = mv_err_set(err, -ENOENT,
				"'%s' is not a mailvault "
				"repository (no config)",
				location);
	if (rc)
		goto fail;
	snprintf(where, sizeof(where), "%s/config", location);
	rc = config_parse(text, where, &r->cfg, err);
	free(text);
	if (!rc)
		rc = hasher_new(r->cfg.secret, MV_SECRET_LEN, &r->hasher, err);
	if (!rc && (flags & REPO_OPEN_WRITE))
		rc = lock_take(r, flags & REPO_OPEN_WAIT, err);
	if (rc)
		goto fail;
	root = r->be->ops->local_root(r->be);
	if (root) {
		if (asprintf(&r->index_path, "%s/index.db", root) < 0)
			r->index_path = NULL;
	} else {
		rc = cache_dir(&r->cfg, dir, sizeof(dir), err);
		if (rc)
			goto fail;
		r->remote = true;
		if (asprintf(&r->index_path, "%s/index.db", dir) < 0)
			r->index_path = NULL;
		if (asprintf(&r->stamp_path, "%s/index.stamp", dir) < 0)
			r->stamp_path = NULL;
	}
	if (!r->index_path || (r->remote && !r->stamp_path)) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	*out = r;
	return 0;
fail:
	repo_close(r);
	return rc;
}

int repo_index_install(struct repo *r, const char *built, struct mv_err *err)
{
	const char *root = r->be->ops->local_root(r->be);
	char side[PATH_MAX + 8], *slash;
	int rc;

	pthread_mutex_lock(&r->ix_lock);
	if (r->ix) {
		/* an old WAL must not be replayed onto the new file */
		index_checkpoint(r->ix, NULL);
		index_close(r->ix);
		r->ix = NULL;
	}
	snprintf(side, sizeof(side), "%s-wal", r->index_path);
	unlink(side);
	snprintf(side, sizeof(side), "%s-shm", r->index_path);
	unlink(side);
	if (rename(built, r->index_path) < 0) {
		rc = mv_err_set(err, -errno, "cannot rename '%s' to '%s': %s",
				built, r->index_path, strerror(errno));
		goto out;
	}
	snprintf(side, sizeof(side), "%s", r->index_path);
	slash = strrchr(side, '/');
	if (slash) {
		*slash = '\0';
		mv_fsync_dir(side);
	}
	free(r->pack_names);
	r->pack_names = NULL;
	r->npack_names = 0;
	rc = index_open(r->index_path, false, root && is_network_fs(root),
			false, &r->ix, err);
	if (!rc && r->remote)
		rc = remote_index_publish(r, err);
	if (!rc)
		index_data_version(r->ix, &r->data_version, NULL);
out:
	pthread_mutex_unlock(&r->ix_lock);
	return rc;
}

static int chunk_read_raw(struct repo *r, const uint8_t id[MV_ID_LEN],
			  struct mv_buf *out, struct mv_err *err)
{
	return repo_chunk_read(r, id, false, out, err);
}

int repo_config_set_flags(struct repo *r, uint32_t set, uint32_t clear,
			  struct mv_err *err)
{
	struct repo_config c = r->cfg;
	char text[CONFIG_MAX];
	int n, rc;

	if (!r->locked)
		return mv_err_set(err, -EPERM,
				  "repository '%s' is not open "
				  "for writing",
				  r->location);
	c.flags = (c.flags | set) & ~clear;
	n = config_format(&c, text, sizeof(text));
	rc = backend_write_atomic(r->be, "config", text, (size_t)n, err);
	explicit_bzero(text, sizeof(text));
	if (!rc)
		r->cfg.flags = c.flags;
	explicit_bzero(&c, sizeof(c));
	return rc;
}
