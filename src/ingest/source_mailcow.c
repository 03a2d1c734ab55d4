/*
 * source_mailcow: expand the archives of mailcow backup folders while a
 * directory source is read, and write them back for a restore (see
 * include/source_mailcow.h).
 *
 * Reading goes through source_tar (libarchive over gzstream), so absolute
 * and relative member names, GNU LongLink names, hard links and sparse
 * members are handled there.  Writing uses libarchive's GNU tar writer and
 * its zstd/gzip filters, as GNU tar 1.34 with zstd or pigz does for
 * mailcow.
 */
#include "source_mailcow.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "restore.h"
#include "source.h"
#include "util.h"

#define MARKER_MAX 4096
#define MARKER_MAGIC "mailvault mailcow archive 1"

/* What the marker of an expanded archive records. */
struct marker {
	char name[256]; /* archive file name */
	char comp[16];	/* "zstd" or "gzip" */
	bool absolute;	/* member names start with '/' */
	char top[256];	/* first member's top-level name, e.g. "vmail" */
	bool complete;	/* expanded to its end */
};

bool source_mailcow_is_folder(const char *name)
{
	static const char shape[] = "mailcow-dddd-dd-dd-dd-dd-dd";
	size_t i;

	if (strlen(name) != sizeof(shape) - 1)
		return false;
	for (i = 0; shape[i]; i++) {
		if (shape[i] == 'd' ? (name[i] < '0' || name[i] > '9')
				    : name[i] != shape[i])
			return false;
	}
	return true;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && !strcmp(s + n - k, suffix);
}

static bool is_archive_name(const char *name)
{
	return !strncmp(name, "backup_", 7) &&
	       (ends_with(name, ".tar.zst") || ends_with(name, ".tar.gz"));
}

/* The directory holding path is a mailcow folder: by its name, or, when
 * the folder itself is the source (its name is then the label), by its
 * mailcow.conf. */
static bool in_folder(int dirfd, const char *path)
{
	const char *end = strrchr(path, '/'), *start;
	char dir[64];

	if (!end)
		return false;
	for (start = end; start > path && start[-1] != '/'; start--)
		;
	if ((size_t)(end - start) < sizeof(dir)) {
		memcpy(dir, start, (size_t)(end - start));
		dir[end - start] = '\0';
		if (source_mailcow_is_folder(dir))
			return true;
	}
	return faccessat(dirfd, "mailcow.conf", F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Compression and name style from the first member. */
static int probe(int fd, struct marker *mk)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ae;
	const char *p;
	size_t n;
	int rc = -EBADMSG;

	if (!a)
		return -ENOMEM;
	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	if (archive_read_open_fd(a, fd, 65536) != ARCHIVE_OK ||
	    archive_read_next_header(a, &ae) < ARCHIVE_WARN)
		goto out;
	snprintf(mk->comp, sizeof(mk->comp), "%s",
		 archive_filter_code(a, 0) == ARCHIVE_FILTER_ZSTD ? "zstd"
								  : "gzip");
	p = archive_entry_pathname(ae);
	if (!p)
		goto out;
	mk->absolute = p[0] == '/';
	while (*p == '/' || (p[0] == '.' && p[1] == '/'))
		p += *p == '/' ? 1 : 2;
	n = strcspn(p, "/");
	if (!n || n >= sizeof(mk->top))
		goto out;
	memcpy(mk->top, p, n);
	mk->top[n] = '\0';
	rc = 0;
out:
	archive_read_free(a);
	return rc;
}

static int add_marker(struct ingest *ing, const char *path,
		      const struct tree_entry *meta, const struct marker *mk,
		      struct mv_err *err)
{
	struct tree_entry e = *meta;
	char text[MARKER_MAX], *mpath = NULL;
	int n, rc;

	n = snprintf(text, sizeof(text),
		     "%s\nname %s\ncompression %s\nnames %s\nformat gnu\n"
		     "top %s\nstatus %s\n",
		     MARKER_MAGIC, mk->name, mk->comp,
		     mk->absolute ? "absolute" : "relative", mk->top,
		     mk->complete ? "complete" : "partial");
	if (n < 0 || (size_t)n >= sizeof(text))
		return mv_err_set(err, -ENAMETOOLONG, "'%s': name too long",
				  path);
	if (asprintf(&mpath, "%s%s", path, SOURCE_MAILCOW_MARKER) < 0)
		return mv_err_set(err, -ENOMEM, "out of memory");
	e.size = (uint64_t)n;
	e.nxattrs = 0;
	e.xattrs = NULL;
	e.nextents = 0;
	e.extents = NULL;
	e.nchunks = 0;
	e.chunks = NULL;
	e.ino = 0;
	rc = ingest_file_begin(ing, mpath, &e, err);
	if (!rc)
		rc = ingest_file_data(ing, text, (size_t)n, err);
	if (!rc)
		rc = ingest_file_end(ing, err);
	free(mpath);
	return rc;
}

/* Errors of a damaged archive (rather than of the repository). */
static bool bad_input(int rc)
{
	return rc == -EBADMSG || rc == -ENODATA || rc == -EPROTO ||
	       rc == -EILSEQ || rc == -EINVAL || rc == -EIO;
}

static int expand(struct source_mailcow *mc, struct ingest *ing, int dirfd,
		  const char *name, const char *path,
		  const struct tree_entry *meta, struct mv_err *err)
{
	struct marker mk;
	struct source_tar_opts o;
	struct mv_err terr = MV_ERR_INIT;
	char *parent = NULL;
	const char *slash = strrchr(path, '/');
	int fd, rc;

	memset(&mk, 0, sizeof(mk));
	memset(&o, 0, sizeof(o)); /* options added later default to off */
	snprintf(mk.name, sizeof(mk.name), "%s", name);
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0; /* source_dir reports it */
	rc = probe(fd, &mk);
	if (rc == -ENOMEM) {
		close(fd);
		return mv_err_set(err, rc, "out of memory");
	}
	if (rc || lseek(fd, 0, SEEK_SET) != 0) {
		/* not a readable tar: keep the file as it is */
		close(fd);
		mc->failed++;
		return 0;
	}
	parent = strndup(path, (size_t)(slash - path));
	if (!parent) {
		close(fd);
		return mv_err_set(err, -ENOMEM, "out of memory");
	}
	ingest_set_current(ing, path);
	o.label = parent;
	o.name = path;
	o.fd = fd;
	/* mailcow writes /vmail/... on purpose (tar -P); the marker keeps it */
	o.absolute_names = true;
	rc = source_tar_read(ing, &o, &terr);
	close(fd);
	mk.complete = rc == 0;
	if (rc && rc != -EINTR && bad_input(rc)) {
		fprintf(stderr,
			"mailvault: warning: %s; the archive is kept as it "
			"is\n",
			mv_err_msg(&terr));
		mc->failed++;
		rc = ingest_file_cut(ing, err);
	} else if (rc) {
		rc = mv_err_set(err, rc, "%s", mv_err_msg(&terr));
	}
	if (!rc)
		rc = add_marker(ing, path, meta, &mk, err);
	free(parent);
	if (rc)
		return rc;
	if (!mk.complete)
		return 0;
	mc->archives++;
	return 1;
}

int source_mailcow_filter(void *ctx, struct ingest *ing, int dirfd,
			  const char *name, const char *path,
			  const struct tree_entry *meta, struct mv_err *err)
{
	struct source_mailcow *mc = ctx;

	if (!is_archive_name(name) || !in_folder(dirfd, path))
		return 0;
	return expand(mc, ing, dirfd, name, path, meta, err);
}

/* ---- export ----------------------------------------------------------- */

static int marker_parse(const char *text, size_t len, struct marker *mk)
{
	char buf[MARKER_MAX + 1], *line, *save = NULL;

	if (len > MARKER_MAX || len < sizeof(MARKER_MAGIC) ||
	    memcmp(text, MARKER_MAGIC "\n", sizeof(MARKER_MAGIC)))
		return -EINVAL;
	memcpy(buf, text, len);
	buf[len] = '\0';
	memset(mk, 0, sizeof(*mk));
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *sp = strchr(line, ' ');

		if (!sp)
			continue;
		*sp++ = '\0';
		if (!strcmp(line, "name"))
			snprintf(mk->name, sizeof(mk->name), "%s", sp);
		else if (!strcmp(line, "compression"))
			snprintf(mk->comp, sizeof(mk->comp), "%s", sp);
		else if (!strcmp(line, "names"))
			mk->absolute = !strcmp(sp, "absolute");
		else if (!strcmp(line, "top"))
			snprintf(mk->top, sizeof(mk->top), "%s", sp);
		else if (!strcmp(line, "status"))
			mk->complete = !strcmp(sp, "complete");
	}
	if (!mk->name[0] || !mk->top[0] || strchr(mk->name, '/') ||
	    strchr(mk->top, '/') || mk->name[0] == '.')
		return -EINVAL;
	return 0;
}

static int read_all(struct repo *r, const struct tree_entry *e,
		    struct mv_buf *out, struct mv_err *err)
{
	struct mv_buf chunk = MV_BUF_INIT;
	uint32_t i;
	int rc = 0;

	for (i = 0; !rc && i < e->nchunks; i++) {
		rc = repo_chunk_read(r, e->chunks[i].id, true, &chunk, err);
		if (!rc && mv_buf_append(out, chunk.data, chunk.len))
			rc = mv_err_set(err, -ENOMEM, "out of memory");
	}
	mv_buf_release(&chunk);
	return rc;
}

/* Hard-link groups written so far: group -> first member name. */
struct linkname {
	uint64_t group;
	char *name;
};

struct writer {
	struct repo *r;
	struct archive *a;
	struct linkname *links;
	size_t nlinks;
	uint8_t zeros[65536];
};

static int ar_fail(struct writer *w, const char *what, struct mv_err *err)
{
	const char *m = archive_error_string(w->a);

	return mv_err_set(err, -EIO, "cannot write archive: %s: %s", what,
			  m ? m : "error");
}

static int write_zeros(struct writer *w, uint64_t n, struct mv_err *err)
{
	while (n) {
		size_t k = (size_t)MV_MIN(n, sizeof(w->zeros));

		if (archive_write_data(w->a, w->zeros, k) < 0)
			return ar_fail(w, "data", err);
		n -= k;
	}
	return 0;
}

/* A regular file's bytes, holes of a sparse file as zeros. */
static int write_content(struct writer *w, const struct tree_entry *e,
			 struct mv_err *err)
{
	struct mv_buf chunk = MV_BUF_INIT;
	uint64_t pos = 0, ext_left = 0;
	uint32_t i, x = 0;
	int rc = 0;

	if (e->nextents) {
		rc = write_zeros(w, e->extents[0].offset, err);
		pos = e->extents[0].offset;
		ext_left = e->extents[0].len;
	}
	for (i = 0; !rc && i < e->nchunks; i++) {
		size_t off = 0;

		rc = repo_chunk_read(w->r, e->chunks[i].id, true, &chunk, err);
		while (!rc && off < chunk.len) {
			size_t k = chunk.len - off;

			if (e->nextents) {
				while (!ext_left && x + 1 < e->nextents) {
					x++;
					rc = write_zeros(
						w, e->extents[x].offset - pos,
						err);
					pos = e->extents[x].offset;
					ext_left = e->extents[x].len;
				}
				if (rc)
					break;
				k = (size_t)MV_MIN(k, ext_left);
				if (!k)
					break;
				ext_left -= k;
			}
			if (archive_write_data(w->a, chunk.data + off, k) < 0)
				rc = ar_fail(w, e->name, err);
			off += k;
			pos += k;
		}
	}
	if (!rc && pos < e->size)
		rc = write_zeros(w, e->size - pos, err);
	mv_buf_release(&chunk);
	return rc;
}

static int write_entry(struct writer *w, const struct tree_entry *e,
		       const char *member, struct mv_err *err);

static int write_dir(struct writer *w, const struct tree_entry *e,
		     const char *member, struct mv_err *err)
{
	struct tree *t = NULL;
	uint32_t i;
	int rc;

	if (!e->subtree.n)
		return 0;
	rc = tree_load(w->r, &e->subtree, &t, err);
	for (i = 0; !rc && i < t->n; i++) {
		char *sub = NULL;

		if (asprintf(&sub, "%s/%s", member, t->entries[i].name) < 0)
			return mv_err_set(err, -ENOMEM, "out of memory");
		rc = write_entry(w, &t->entries[i], sub, err);
		free(sub);
	}
	tree_free(t);
	return rc;
}

static int write_entry(struct writer *w, const struct tree_entry *e,
		       const char *member, struct mv_err *err)
{
	struct archive_entry *ae = archive_entry_new();
	const char *first = NULL;
	char *dirname = NULL;
	size_t i;
	int rc = 0;

	if (!ae)
		return mv_err_set(err, -ENOMEM, "out of memory");
	if (e->type == TREE_DIR) {
		if (asprintf(&dirname, "%s/", member) < 0) {
			archive_entry_free(ae);
			return mv_err_set(err, -ENOMEM, "out of memory");
		}
		archive_entry_set_pathname(ae, dirname);
	} else {
		archive_entry_set_pathname(ae, member);
	}
	archive_entry_set_perm(ae, e->mode & 07777);
	archive_entry_set_mtime(ae, e->mtime_sec, 0);
	for (i = 0; e->link_group && i < w->nlinks; i++)
		if (w->links[i].group == e->link_group)
			first = w->links[i].name;
	/* tar cannot hold sockets; GNU tar skips them too */
	if (e->type == TREE_SOCK)
		goto out;
	restore_tar_entry_fill(ae, e, first);
	if (archive_write_header(w->a, ae) < ARCHIVE_WARN) {
		rc = ar_fail(w, member, err);
		goto out;
	}
	if (e->type == TREE_REG && !first) {
		rc = write_content(w, e, err);
		if (!rc && e->link_group) {
			struct linkname *l =
				realloc(w->links, (w->nlinks + 1) * sizeof(*l));

			if (!l) {
				rc = mv_err_set(err, -ENOMEM, "out of memory");
				goto out;
			}
			w->links = l;
			l[w->nlinks].group = e->link_group;
			l[w->nlinks].name = strdup(member);
			if (!l[w->nlinks].name) {
				rc = mv_err_set(err, -ENOMEM, "out of memory");
				goto out;
			}
			w->nlinks++;
		}
	}
	if (!rc && e->type == TREE_DIR)
		rc = write_dir(w, e, member, err);
out:
	free(dirname);
	archive_entry_free(ae);
	return rc;
}

/* Write archive dir/<mk->name> from the subtree top of the folder. */
static int write_archive(struct repo *r, const struct tree_entry *top,
			 const struct tree_entry *marker_e,
			 const struct marker *mk, int dirfd, struct mv_err *err)
{
	struct writer *w = calloc(1, sizeof(*w));
	struct timespec ts[2];
	char member[300];
	size_t i;
	int fd = -1, rc = 0;

	if (!w)
		return mv_err_set(err, -ENOMEM, "out of memory");
	w->r = r;
	fd = openat(dirfd, mk->name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0600);
	if (fd < 0) {
		rc = mv_err_set(err, -errno, "cannot create '%s': %s", mk->name,
				strerror(errno));
		goto out;
	}
	w->a = archive_write_new();
	if (!w->a) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (archive_write_set_format_gnutar(w->a) != ARCHIVE_OK ||
	    (!strcmp(mk->comp, "zstd")
		     ? archive_write_add_filter_zstd(w->a)
		     : archive_write_add_filter_gzip(w->a)) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(w->a, 1) != ARCHIVE_OK ||
	    archive_write_open_fd(w->a, fd) != ARCHIVE_OK) {
		rc = ar_fail(w, mk->name, err);
		goto out;
	}
	snprintf(member, sizeof(member), "%s%s", mk->absolute ? "/" : "",
		 mk->top);
	rc = write_entry(w, top, member, err);
	if (!rc && archive_write_close(w->a) != ARCHIVE_OK)
		rc = ar_fail(w, mk->name, err);
	if (!rc) {
		ts[0].tv_sec = ts[1].tv_sec = marker_e->mtime_sec;
		ts[0].tv_nsec = ts[1].tv_nsec = marker_e->mtime_nsec;
		if (fchmod(fd, marker_e->mode & 07777) < 0 ||
		    futimens(fd, ts) < 0)
			rc = mv_err_set(err, -errno, "'%s': %s", mk->name,
					strerror(errno));
		if (!rc && geteuid() == 0 &&
		    fchown(fd, marker_e->uid, marker_e->gid) < 0)
			rc = mv_err_set(err, -errno, "'%s': %s", mk->name,
					strerror(errno));
	}
out:
	if (w->a)
		archive_write_free(w->a);
	for (i = 0; i < w->nlinks; i++)
		free(w->links[i].name);
	free(w->links);
	free(w);
	if (fd >= 0)
		close(fd);
	return rc;
}

int source_mailcow_export(struct repo *r, const struct tree_entry *e,
			  const char *outdir, unsigned *archives,
			  struct mv_err *err)
{
	struct restore_opts ro;
	struct restore_stats rs;
	struct marker *mks = NULL;
	struct tree *t = NULL;
	char *dir = NULL;
	bool *skip = NULL;
	uint32_t i, k;
	int dirfd = -1, rc;

	*archives = 0;
	if (e->type != TREE_DIR)
		return mv_err_set(err, -ENOTDIR, "'%s' is not a directory",
				  e->name);
	rc = tree_load(r, &e->subtree, &t, err);
	if (rc)
		return rc;
	mks = calloc(t->n + 1, sizeof(*mks));
	skip = calloc(t->n + 1, sizeof(*skip));
	if (!mks || !skip || asprintf(&dir, "%s/%s", outdir, e->name) < 0) {
		dir = NULL;
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		rc = mv_err_set(err, -errno, "cannot create '%s': %s", dir,
				strerror(errno));
		goto out;
	}
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		rc = mv_err_set(err, -errno, "cannot open '%s': %s", dir,
				strerror(errno));
		goto out;
	}
	/* markers of complete expansions: their subtree becomes the
	 * archive again, the marker itself is not restored */
	for (i = 0; !rc && i < t->n; i++) {
		const struct tree_entry *m = &t->entries[i];
		struct mv_buf text = MV_BUF_INIT;

		if (m->type != TREE_REG ||
		    !ends_with(m->name, SOURCE_MAILCOW_MARKER))
			continue;
		skip[i] = true;
		if (m->size > MARKER_MAX)
			continue;
		rc = read_all(r, m, &text, err);
		if (rc ||
		    marker_parse((const char *)text.data, text.len, &mks[i])) {
			mv_buf_release(&text);
			continue;
		}
		for (k = 0; k < t->n; k++) {
			if (strcmp(t->entries[k].name, mks[i].top) ||
			    t->entries[k].type != TREE_DIR)
				continue;
			/* a partly read archive was stored as it is too:
			 * that copy is restored, not the members read */
			skip[k] = true;
			if (mks[i].complete)
				rc = write_archive(r, &t->entries[k], m,
						   &mks[i], dirfd, err);
			if (!rc && mks[i].complete)
				(*archives)++;
			break;
		}
		mv_buf_release(&text);
	}
	memset(&ro, 0, sizeof(ro));
	memset(&rs, 0, sizeof(rs));
	for (i = 0; !rc && i < t->n; i++)
		if (!skip[i])
			rc = restore_tree(r, &t->entries[i], dir, &ro, &rs,
					  err);
	if (!rc) {
		struct timespec ts[2];

		ts[0].tv_sec = ts[1].tv_sec = e->mtime_sec;
		ts[0].tv_nsec = ts[1].tv_nsec = e->mtime_nsec;
		if (fchmod(dirfd, e->mode & 07777) < 0 || futimens(dirfd, ts))
			rc = mv_err_set(err, -errno, "'%s': %s", dir,
					strerror(errno));
	}
out:
	if (dirfd >= 0)
		close(dirfd);
	free(dir);
	free(skip);
	free(mks);
	tree_free(t);
	return rc;
}
