/*
 * restore: file contents, directory restore with metadata, tar export.
 * Workload: whole snapshots (tens of thousands of small files), so chunks
 * are read once each in tree order, and every entry is created relative
 * to its parent's descriptor (no path walks, no symlink following).
 */
#include "restore.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/acl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "mail_view.h"
#include "util.h"

static const uint8_t zeros[65536];

/* Walk the content of e, calling put(data, len, file offset). */
typedef int (*content_fn)(const uint8_t *p, size_t n, uint64_t off, void *arg);

static int each_content(struct repo *r, const struct tree_entry *e,
			content_fn put, void *arg, struct mv_err *err)
{
	struct mv_buf chunk = MV_BUF_INIT;
	uint32_t ci, xi = 0;
	uint64_t xoff = 0, pos = 0; /* within extent xi, and plain offset */
	int rc = 0;

	if (e->xform != TREE_XFORM_NONE) {
		/* a mail view entry: the decoded message, cut at its size */
		rc = mail_view_read(r, e, &chunk, err);
		if (!rc && chunk.len)
			rc = put(chunk.data, (size_t)MV_MIN(chunk.len, e->size),
				 0, arg);
		mv_buf_release(&chunk);
		return rc;
	}
	for (ci = 0; !rc && ci < e->nchunks; ci++) {
		size_t done = 0;

		rc = repo_chunk_read(r, e->chunks[ci].id, false, &chunk, err);
		if (rc)
			break;
		if (!e->nextents) {
			rc = put(chunk.data, chunk.len, pos, arg);
			pos += chunk.len;
			continue;
		}
		while (!rc && done < chunk.len) {
			uint64_t room, n;

			if (xi >= e->nextents) {
				rc = mv_err_set(err, -EIO,
						"'%s': content "
						"longer than its extents",
						e->name);
				break;
			}
			room = e->extents[xi].len - xoff;
			n = MV_MIN(room, (uint64_t)(chunk.len - done));
			rc = put(chunk.data + done, (size_t)n,
				 e->extents[xi].offset + xoff, arg);
			done += n;
			xoff += n;
			if (xoff == e->extents[xi].len) {
				xi++;
				xoff = 0;
			}
		}
	}
	mv_buf_release(&chunk);
	return rc;
}

struct fd_put {
	int fd;
	bool seek;
	uint64_t at; /* bytes written so far (non-seek mode) */
	struct mv_err *err;
};

static int write_zeros(int fd, uint64_t n)
{
	while (n) {
		size_t k = (size_t)MV_MIN(n, sizeof(zeros));
		int rc = mv_write_full(fd, zeros, k);

		if (rc)
			return rc;
		n -= k;
	}
	return 0;
}

static int fd_put(const uint8_t *p, size_t n, uint64_t off, void *arg)
{
	struct fd_put *f = arg;
	int rc;

	if (f->seek) {
		while (n) {
			ssize_t w = pwrite(f->fd, p, n, (off_t)off);

			if (w < 0) {
				if (errno == EINTR)
					continue;
				return mv_err_set(f->err, -errno, "write: %s",
						  strerror(errno));
			}
			p += w;
			n -= (size_t)w;
			off += (uint64_t)w;
		}
		return 0;
	}
	if (off > f->at) {
		rc = write_zeros(f->fd, off - f->at);
		if (rc)
			return mv_err_set(f->err, rc, "write: %s",
					  strerror(-rc));
		f->at = off;
	}
	rc = mv_write_full(f->fd, p, n);
	if (rc)
		return mv_err_set(f->err, rc, "write: %s", strerror(-rc));
	f->at += n;
	return 0;
}

int restore_file_to_fd(struct repo *r, const struct tree_entry *e, int fd,
		       bool sparse_seek, struct mv_err *err)
{
	struct fd_put f = {fd, sparse_seek, 0, err};
	int rc;

	rc = each_content(r, e, fd_put, &f, err);
	if (rc)
		return rc;
	if (sparse_seek) {
		if (ftruncate(fd, (off_t)e->size) < 0)
			return mv_err_set(err, -errno, "truncate: %s",
					  strerror(errno));
	} else if (f.at < e->size) {
		rc = write_zeros(fd, e->size - f.at);
		if (rc)
			return mv_err_set(err, rc, "write: %s", strerror(-rc));
	}
	return 0;
}

/* ---- restore to a directory ----------------------------------------- */

struct link_map {
	uint64_t group;
	char *path; /* absolute path of the first restored member */
};

struct rctx {
	struct repo *r;
	const struct restore_opts *o;
	struct restore_stats *st;
	struct link_map *links;
	size_t nlinks, cap;
};

static bool safe_name(const struct tree_entry *e)
{
	return e->name_len && strcmp(e->name, ".") && strcmp(e->name, "..") &&
	       !strchr(e->name, '/');
}

static void report(struct rctx *c, const char *path, const struct mv_err *e)
{
	fprintf(stderr, "mailvault: cannot restore '%s': %s\n", path,
		mv_err_msg(e));
	c->st->errors++;
}

static int apply_acl(const char *path, const struct tree_entry *e,
		     struct mv_err *err)
{
	acl_t acl;

	if (e->acl_access) {
		acl = acl_from_text(e->acl_access);
		if (!acl || acl_set_file(path, ACL_TYPE_ACCESS, acl) < 0) {
			int rc = -errno;

			acl_free(acl);
			return mv_err_set(err, rc, "cannot set ACL: %s",
					  strerror(-rc));
		}
		acl_free(acl);
	}
	if (e->acl_default && e->type == TREE_DIR) {
		acl = acl_from_text(e->acl_default);
		if (!acl || acl_set_file(path, ACL_TYPE_DEFAULT, acl) < 0) {
			int rc = -errno;

			acl_free(acl);
			return mv_err_set(err, rc,
					  "cannot set default ACL: "
					  "%s",
					  strerror(-rc));
		}
		acl_free(acl);
	}
	return 0;
}

/* Xattrs mailvault keeps for itself (the mail view's key ids). */
static bool is_internal_xattr(const char *name)
{
	return !strncmp(name, MAIL_VIEW_XATTR_PREFIX,
			strlen(MAIL_VIEW_XATTR_PREFIX));
}

/* Owner, mode, xattrs, ACLs, times - in that order, since chown clears
 * set-id bits and writing content would change the times. */
static int apply_meta(int dirfd, const char *name, const char *path,
		      const struct tree_entry *e, struct mv_err *err)
{
	struct timespec ts[2];
	char proc[PATH_MAX];
	uint32_t i;
	int flags = AT_SYMLINK_NOFOLLOW;

	if (fchownat(dirfd, name, e->uid, e->gid, flags) < 0 && errno != EPERM)
		return mv_err_set(err, -errno, "cannot set owner: %s",
				  strerror(errno));
	if (e->type != TREE_LNK &&
	    fchmodat(dirfd, name, e->mode & 07777, 0) < 0)
		return mv_err_set(err, -errno, "cannot set mode: %s",
				  strerror(errno));
	snprintf(proc, sizeof(proc), "%s", path);
	for (i = 0; i < e->nxattrs; i++) {
		if (is_internal_xattr(e->xattrs[i].name))
			continue;
		if (lsetxattr(proc, e->xattrs[i].name, e->xattrs[i].value,
			      e->xattrs[i].len, 0) < 0 &&
		    errno != ENOTSUP && errno != EPERM)
			return mv_err_set(err, -errno,
					  "cannot set xattr "
					  "'%s': %s",
					  e->xattrs[i].name, strerror(errno));
	}
	if (e->type != TREE_LNK && (e->acl_access || e->acl_default)) {
		int rc = apply_acl(path, e, err);

		if (rc)
			return rc;
	}
	ts[0].tv_sec = e->mtime_sec;
	ts[0].tv_nsec = e->mtime_nsec;
	ts[1] = ts[0];
	if (utimensat(dirfd, name, ts, flags) < 0)
		return mv_err_set(err, -errno, "cannot set times: %s",
				  strerror(errno));
	return 0;
}

static int restore_entry(struct rctx *c, int dirfd, const char *dirpath,
			 const struct tree_entry *e, int depth);

static int restore_children(struct rctx *c, int fd, const char *path,
			    const struct tree_entry *e, int depth)
{
	struct mv_err err = MV_ERR_INIT;
	struct tree *t = NULL;
	uint32_t i;
	int rc;

	rc = tree_load(c->r, &e->subtree, &t, &err);
	if (rc) {
		report(c, path, &err);
		return rc;
	}
	for (i = 0; i < t->n; i++)
		restore_entry(c, fd, path, &t->entries[i], depth + 1);
	tree_free(t);
	return 0;
}

static const char *link_first(struct rctx *c, uint64_t group)
{
	size_t i;

	for (i = 0; i < c->nlinks; i++)
		if (c->links[i].group == group)
			return c->links[i].path;
	return NULL;
}

static void link_remember(struct rctx *c, uint64_t group, const char *path)
{
	if (c->nlinks == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct link_map *p = realloc(c->links, cap * sizeof(*p));

		if (!p)
			return;
		c->links = p;
		c->cap = cap;
	}
	c->links[c->nlinks].group = group;
	c->links[c->nlinks].path = strdup(path);
	if (c->links[c->nlinks].path)
		c->nlinks++;
}

static int restore_entry(struct rctx *c, int dirfd, const char *dirpath,
			 const struct tree_entry *e, int depth)
{
	struct mv_err err = MV_ERR_INIT;
	char *path = NULL;
	int fd = -1, rc = 0;

	if (asprintf(&path, "%s/%s", dirpath, e->name) < 0)
		return -ENOMEM;
	if (!safe_name(e) || depth > 4096) {
		mv_err_set(&err, -EINVAL, "unsafe name, not restored");
		report(c, path, &err);
		free(path);
		return -EINVAL;
	}
	if (e->type != TREE_DIR && unlinkat(dirfd, e->name, 0) < 0 &&
	    errno != ENOENT) {
		if (errno == EISDIR)
			unlinkat(dirfd, e->name, AT_REMOVEDIR);
	}
	switch (e->type) {
	case TREE_DIR:
		if (mkdirat(dirfd, e->name, 0700) < 0 && errno != EEXIST) {
			rc = mv_err_set(&err, -errno, "mkdir: %s",
					strerror(errno));
			break;
		}
		fd = openat(dirfd, e->name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			rc = mv_err_set(&err, -errno, "open: %s",
					strerror(errno));
			break;
		}
		c->st->dirs++;
		restore_children(c, fd, path, e, depth);
		close(fd);
		rc = apply_meta(dirfd, e->name, path, e, &err);
		break;
	case TREE_REG: {
		const char *first =
			e->link_group ? link_first(c, e->link_group) : NULL;

		if (first) {
			if (linkat(AT_FDCWD, first, dirfd, e->name, 0) < 0)
				rc = mv_err_set(&err, -errno, "link: %s",
						strerror(errno));
			c->st->files++;
			goto done; /* metadata is shared with the first */
		}
		fd = openat(dirfd, e->name,
			    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
				    O_CLOEXEC,
			    0600);
		if (fd < 0) {
			rc = mv_err_set(&err, -errno, "create: %s",
					strerror(errno));
			break;
		}
		rc = restore_file_to_fd(c->r, e, fd, true, &err);
		close(fd);
		if (!rc)
			rc = apply_meta(dirfd, e->name, path, e, &err);
		c->st->files++;
		c->st->bytes += e->size;
		if (!rc && e->link_group)
			link_remember(c, e->link_group, path);
		break;
	}
	case TREE_LNK:
		if (symlinkat(e->target ? e->target : "", dirfd, e->name) < 0)
			rc = mv_err_set(&err, -errno, "symlink: %s",
					strerror(errno));
		else
			rc = apply_meta(dirfd, e->name, path, e, &err);
		c->st->others++;
		break;
	default: {
		mode_t m = e->type == TREE_FIFO	 ? S_IFIFO
			   : e->type == TREE_CHR ? S_IFCHR
			   : e->type == TREE_BLK ? S_IFBLK
						 : S_IFSOCK;

		if (mknodat(dirfd, e->name, m | 0600,
			    makedev(e->rdev_major, e->rdev_minor)) < 0)
			rc = mv_err_set(&err, -errno, "mknod: %s",
					strerror(errno));
		else
			rc = apply_meta(dirfd, e->name, path, e, &err);
		c->st->others++;
	}
	}
done:
	if (rc)
		report(c, path, &err);
	if (c->o && c->o->verbose && !rc)
		fprintf(stderr, "%s\n", path);
	free(path);
	return rc;
}

int restore_tree(struct repo *r, const struct tree_entry *e, const char *dest,
		 const struct restore_opts *o, struct restore_stats *st,
		 struct mv_err *err)
{
	struct rctx c;
	char abs[PATH_MAX];
	size_t i;
	int dirfd, rc = 0;

	memset(&c, 0, sizeof(c));
	c.r = r;
	c.o = o;
	c.st = st;
	rc = mv_mkdir_p(dest, 0755);
	if (rc)
		return mv_err_set(err, rc, "cannot create '%s': %s", dest,
				  strerror(-rc));
	if (!realpath(dest, abs))
		return mv_err_set(err, -errno, "cannot resolve '%s': %s", dest,
				  strerror(errno));
	dirfd = open(abs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return mv_err_set(err, -errno, "cannot open '%s': %s", abs,
				  strerror(errno));
	if (e->type == TREE_DIR && !e->name_len) {
		/* the snapshot root: restore its children into dest */
		restore_children(&c, dirfd, abs, e, 0);
	} else {
		restore_entry(&c, dirfd, abs, e, 0);
	}
	close(dirfd);
	for (i = 0; i < c.nlinks; i++)
		free(c.links[i].path);
	free(c.links);
	if (st->errors)
		rc = mv_err_set(err, -EIO, "%llu entries could not be restored",
				(unsigned long long)st->errors);
	return rc;
}

/* ---- tar export ------------------------------------------------------ */

struct tctx {
	struct repo *r;
	struct archive *a;
	struct link_map *links;
	size_t nlinks, cap;
	struct mv_err *err;
	struct mv_buf data;
};

static int tar_put(const uint8_t *p, size_t n, uint64_t off, void *arg)
{
	struct tctx *t = arg;

	(void)off;
	if (archive_write_data(t->a, p, n) < 0)
		return mv_err_set(t->err, -EIO, "tar: %s",
				  archive_error_string(t->a));
	return 0;
}

/* Content including holes as zeros, in order (the pax writer drops the
 * holes again from the sparse map). */
struct tar_fill {
	struct tctx *t;
	uint64_t at;
};

static int tar_put_fill(const uint8_t *p, size_t n, uint64_t off, void *arg)
{
	struct tar_fill *f = arg;
	int rc;

	while (f->at < off) {
		size_t k = (size_t)MV_MIN(off - f->at, sizeof(zeros));

		rc = tar_put(zeros, k, 0, f->t);
		if (rc)
			return rc;
		f->at += k;
	}
	rc = tar_put(p, n, off, f->t);
	f->at += n;
	return rc;
}

static int tar_entry(struct tctx *t, const char *path,
		     const struct tree_entry *e, int depth)
{
	struct archive_entry *ae = archive_entry_new();
	uint32_t i;
	int rc = 0;

	if (!ae)
		return mv_err_set(t->err, -ENOMEM, "out of memory");
	archive_entry_set_pathname(ae, path);
	archive_entry_set_uid(ae, e->uid);
	archive_entry_set_gid(ae, e->gid);
	if (e->user)
		archive_entry_set_uname(ae, e->user);
	if (e->group)
		archive_entry_set_gname(ae, e->group);
	archive_entry_set_mtime(ae, e->mtime_sec, e->mtime_nsec);
	for (i = 0; i < e->nxattrs; i++)
		if (!is_internal_xattr(e->xattrs[i].name))
			archive_entry_xattr_add_entry(ae, e->xattrs[i].name,
						      e->xattrs[i].value,
						      e->xattrs[i].len);
	/* before the ACL: libarchive keeps the ACL's owner, group and other
	 * entries in the mode, so set_perm after it would turn the group
	 * entry into the mask (mode group bits) */
	archive_entry_set_perm(ae, e->mode & 07777);
	if (e->acl_access)
		archive_entry_acl_from_text(ae, e->acl_access,
					    ARCHIVE_ENTRY_ACL_TYPE_ACCESS);
	if (e->acl_default)
		archive_entry_acl_from_text(ae, e->acl_default,
					    ARCHIVE_ENTRY_ACL_TYPE_DEFAULT);
	switch (e->type) {
	case TREE_DIR:
		archive_entry_set_filetype(ae, AE_IFDIR);
		break;
	case TREE_LNK:
		archive_entry_set_filetype(ae, AE_IFLNK);
		archive_entry_set_symlink(ae, e->target ? e->target : "");
		break;
	case TREE_FIFO:
		archive_entry_set_filetype(ae, AE_IFIFO);
		break;
	case TREE_CHR:
	case TREE_BLK:
		archive_entry_set_filetype(ae, e->type == TREE_CHR ? AE_IFCHR
								   : AE_IFBLK);
		archive_entry_set_rdevmajor(ae, e->rdev_major);
		archive_entry_set_rdevminor(ae, e->rdev_minor);
		break;
	case TREE_SOCK:
		archive_entry_set_filetype(ae, AE_IFSOCK);
		break;
	default: {
		const char *first = NULL;

		archive_entry_set_filetype(ae, AE_IFREG);
		if (e->link_group) {
			for (i = 0; i < t->nlinks; i++)
				if (t->links[i].group == e->link_group)
					first = t->links[i].path;
		}
		if (first) {
			archive_entry_set_hardlink(ae, first);
			archive_entry_set_size(ae, 0);
		} else {
			archive_entry_set_size(ae, (la_int64_t)e->size);
			for (i = 0; i < e->nextents; i++)
				archive_entry_sparse_add_entry(
					ae, (la_int64_t)e->extents[i].offset,
					(la_int64_t)e->extents[i].len);
			if (e->link_group && t->nlinks < SIZE_MAX) {
				struct rctx tmp;

				memset(&tmp, 0, sizeof(tmp));
				tmp.links = t->links;
				tmp.nlinks = t->nlinks;
				tmp.cap = t->cap;
				link_remember(&tmp, e->link_group, path);
				t->links = tmp.links;
				t->nlinks = tmp.nlinks;
				t->cap = tmp.cap;
			}
		}
	}
	}
	if (archive_write_header(t->a, ae) < ARCHIVE_WARN) {
		rc = mv_err_set(t->err, -EIO, "tar: '%s': %s", path,
				archive_error_string(t->a));
		goto out;
	}
	if (e->type == TREE_REG && archive_entry_size(ae) > 0) {
		struct tar_fill f = {t, 0};

		rc = each_content(t->r, e, tar_put_fill, &f, t->err);
		while (!rc && f.at < e->size) {
			size_t k =
				(size_t)MV_MIN(e->size - f.at, sizeof(zeros));

			rc = tar_put(zeros, k, 0, t);
			f.at += k;
		}
		if (rc) {
			mv_err_prefix(t->err, "'%s'", path);
			goto out;
		}
	}
	if (e->type == TREE_DIR) {
		struct tree *tr = NULL;

		if (depth > 4096) {
			rc = mv_err_set(t->err, -ELOOP, "tree too deep");
			goto out;
		}
		rc = tree_load(t->r, &e->subtree, &tr, t->err);
		for (i = 0; !rc && tr && i < tr->n; i++) {
			char *sub = NULL;

			/* as restore: a ".." member escapes whoever extracts
			 * the stream with a less careful tar */
			if (!safe_name(&tr->entries[i])) {
				fprintf(stderr,
					"mailvault: unsafe name "
					"'%s' in '%s' not exported\n",
					tr->entries[i].name, path);
				continue;
			}
			if (asprintf(&sub, "%s%s%s", path,
				     path[strlen(path) - 1] == '/' ? "" : "/",
				     tr->entries[i].name) < 0) {
				rc = mv_err_set(t->err, -ENOMEM,
						"out of memory");
				break;
			}
			rc = tar_entry(t, sub, &tr->entries[i], depth + 1);
			free(sub);
		}
		tree_free(tr);
	}
out:
	archive_entry_free(ae);
	return rc;
}

int restore_export_tar(struct repo *r, const struct tree_entry *e, int fd,
		       bool gz, struct mv_err *err)
{
	struct tctx t;
	size_t i;
	int rc;

	memset(&t, 0, sizeof(t));
	t.r = r;
	t.err = err;
	t.a = archive_write_new();
	if (!t.a)
		return mv_err_set(err, -ENOMEM, "out of memory");
	archive_write_set_format_pax(t.a);
	archive_write_set_bytes_in_last_block(t.a, 1);
	if (gz)
		archive_write_add_filter_gzip(t.a);
	if (archive_write_open_fd(t.a, fd) != ARCHIVE_OK) {
		rc = mv_err_set(err, -EIO, "tar: %s",
				archive_error_string(t.a));
		goto out;
	}
	rc = tar_entry(&t, e->type == TREE_DIR ? "./" : e->name, e, 0);
	if (archive_write_close(t.a) != ARCHIVE_OK && !rc)
		rc = mv_err_set(err, -EIO, "tar: %s",
				archive_error_string(t.a));
out:
	archive_write_free(t.a);
	for (i = 0; i < t.nlinks; i++)
		free(t.links[i].path);
	free(t.links);
	mv_buf_release(&t.data);
	return rc;
}
