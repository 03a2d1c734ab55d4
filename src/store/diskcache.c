/*
 * diskcache: bounded on-disk record cache for remote repositories
 * (include/diskcache.h).  Workload: many small reads of messages through a
 * mount; a file per record keeps lookups to one open(2).  The total size
 * is counted once at open (a scan) and kept up to date on every put;
 * eviction walks the directories and removes files until the cache is
 * under 80 % of its limit.
 */
#include "diskcache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct diskcache {
	char *dir;	      /* .../chunks */
	uint64_t limit;	      /* bytes */
	uint64_t used;	      /* bytes in cache files (approximate) */
	bool scanned;	      /* used has been counted */
	pthread_mutex_t lock; /* guards used and eviction */
};

static void entry_path(const struct diskcache *c, const uint8_t id[MV_ID_LEN],
		       char *out, size_t n)
{
	char hex[2 * MV_ID_LEN + 1];

	mv_hex(id, MV_ID_LEN, hex);
	snprintf(out, n, "%s/%.2s/%s", c->dir, hex, hex);
}

/* Sum (and with evict, remove until under target) the cache files. */
static uint64_t walk(struct diskcache *c, bool evict, uint64_t target)
{
	uint64_t total = 0, removed = 0;
	DIR *top = opendir(c->dir);
	struct dirent *d;

	if (!top)
		return 0;
	while ((d = readdir(top))) {
		char sub[PATH_MAX];
		struct dirent *f;
		DIR *dd;

		if (d->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", c->dir, d->d_name);
		dd = opendir(sub);
		if (!dd)
			continue;
		while ((f = readdir(dd))) {
			struct stat st;

			if (f->d_name[0] == '.' ||
			    fstatat(dirfd(dd), f->d_name, &st, 0) < 0)
				continue;
			if (evict && c->used - removed > target &&
			    !unlinkat(dirfd(dd), f->d_name, 0)) {
				removed += (uint64_t)st.st_size;
				continue;
			}
			total += (uint64_t)st.st_size;
		}
		closedir(dd);
	}
	closedir(top);
	return total;
}

struct diskcache *diskcache_open(const char *dir, uint64_t limit_bytes)
{
	struct diskcache *c;
	const char *env = getenv("MAILVAULT_CACHE_MB");

	if (!limit_bytes)
		limit_bytes = (env && atoll(env) > 0 ? (uint64_t)atoll(env)
						     : DISKCACHE_DEFAULT_MB)
			      << 20;
	if (mv_mkdir_p(dir, 0700))
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->dir = strdup(dir);
	if (!c->dir) {
		free(c);
		return NULL;
	}
	c->limit = limit_bytes;
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

void diskcache_close(struct diskcache *c)
{
	if (!c)
		return;
	pthread_mutex_destroy(&c->lock);
	free(c->dir);
	free(c);
}

int diskcache_get(struct diskcache *c, const uint8_t id[MV_ID_LEN],
		  struct mv_buf *out)
{
	char path[PATH_MAX];
	struct stat st;
	int fd, rc;

	entry_path(c, id, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -ENOENT;
	rc = fstat(fd, &st) < 0 ? -errno : 0;
	mv_buf_reset(out);
	if (!rc && mv_buf_reserve(out, (size_t)st.st_size + 1))
		rc = -ENOMEM;
	if (!rc)
		rc = mv_pread_full(fd, out->data, (size_t)st.st_size, 0);
	close(fd);
	if (rc)
		return -ENOENT;
	out->len = (size_t)st.st_size;
	return 0;
}

void diskcache_put(struct diskcache *c, const uint8_t id[MV_ID_LEN],
		   const void *rec, size_t len)
{
	char path[PATH_MAX], tmp[PATH_MAX + 16], *slash;
	int fd;

	if (len > c->limit / 16)
		return; /* not worth a tenth of the cache */
	entry_path(c, id, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
	slash = strrchr(tmp, '/');
	*slash = '\0';
	mkdir(tmp, 0700);
	*slash = '/';
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (mv_write_full(fd, rec, len) || rename(tmp, path)) {
		close(fd);
		unlink(tmp);
		return;
	}
	close(fd);
	pthread_mutex_lock(&c->lock);
	if (!c->scanned) {
		c->used = walk(c, false, 0);
		c->scanned = true;
	} else {
		c->used += len;
	}
	if (c->used > c->limit) {
		walk(c, true, c->limit / 10 * 8);
		c->used = walk(c, false, 0);
	}
	pthread_mutex_unlock(&c->lock);
}
