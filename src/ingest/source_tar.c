/*
 * source_tar: libarchive over a gzstream.  Gzip input is inflated by
 * ISA-L on its own thread (gzstream); libarchive sees plain tar and only
 * parses headers, so the data path is inflate -> parse -> chunk workers.
 */
#include "source.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gzstream.h"
#include "util.h"

#define TAR_BLOCK (1u << 20)

struct tar_ctx {
	struct gzstream *gz;
	struct mv_err gzerr; /* error from the stream, if any */
};

static la_ssize_t tar_read_cb(struct archive *a, void *arg, const void **out)
{
	struct tar_ctx *c = arg;
	size_t n = 0;
	int rc;

	rc = gzstream_next_block(c->gz, out, &n, &c->gzerr);
	if (rc) {
		archive_set_error(a, -rc, "%s", mv_err_msg(&c->gzerr));
		return -1;
	}
	return (la_ssize_t)n;
}

unsigned source_tar_clean_name(const char *name, char *out)
{
	const char *p, *start = name;
	unsigned flags = 0;
	char *o = out;

	/* GNU tar: the name begins after its last ".." component */
	for (p = name; *p;) {
		if (p[0] == '.' && p[1] == '.' && (p[2] == '/' || !p[2])) {
			start = p + 2;
			flags |= SOURCE_NAME_DOTDOT;
		}
		while (*p && *p != '/')
			p++;
		while (*p == '/')
			p++;
	}
	if (!flags && *start == '/')
		flags |= SOURCE_NAME_ABS;
	for (p = start; *p;) {
		const char *c;
		size_t n;

		while (*p == '/')
			p++;
		c = p;
		while (*p && *p != '/')
			p++;
		n = (size_t)(p - c);
		if (!n || (n == 1 && c[0] == '.'))
			continue;
		if (o != out)
			*o++ = '/';
		memcpy(o, c, n);
		o += n;
	}
	*o = '\0';
	return flags;
}

static const char *name_or(const char *p)
{
	return p ? p : "?";
}

/* libarchive's message for its last warning, without a full stop. */
static void la_message(struct archive *a, char *buf, size_t len)
{
	const char *m = archive_error_string(a);
	size_t n;

	snprintf(buf, len, "%s", m && *m ? m : "no reason given");
	n = strlen(buf);
	while (n && (buf[n - 1] == '.' || buf[n - 1] == '\n'))
		buf[--n] = '\0';
}

/* Names are stored as the archive's bytes, never converted: a name that
 * the C locale cannot represent loses nothing. */
static bool harmless(const char *msg)
{
	return strstr(msg, "can't be converted") != NULL;
}

static int warn(struct ingest *ing, const struct source_tar_opts *o,
		const char *one, const char *many, struct mv_err *err,
		const char *fmt, ...) MV_PRINTF(6, 7);

/* Record a problem of kind one/many; fmt describes the case. */
static int warn(struct ingest *ing, const struct source_tar_opts *o,
		const char *one, const char *many, struct mv_err *err,
		const char *fmt, ...)
{
	char *first = NULL;
	va_list ap;
	int rc, n;

	va_start(ap, fmt);
	n = vasprintf(&first, fmt, ap);
	va_end(ap);
	if (n < 0)
		return mv_err_set(err, -ENOMEM, "out of memory");
	rc = ingest_warn(ing, o->label, one, many, first, err);
	free(first);
	return rc;
}

/* A member libarchive read with a warning: its kind carries the reason. */
static int warn_damaged(struct ingest *ing, const struct source_tar_opts *o,
			bool data, const char *why, const char *name,
			struct mv_err *err)
{
	char *one = NULL, *many = NULL;
	int rc;

	if (data)
		rc = asprintf(&one,
			      "member's data had a problem (%s); stored as "
			      "read",
			      why) < 0 ||
		     asprintf(&many,
			      "members' data had problems (%s); stored as "
			      "read",
			      why) < 0;
	else
		rc = asprintf(&one,
			      "member had a damaged header (%s); stored "
			      "with the fields that could be read",
			      why) < 0 ||
		     asprintf(&many,
			      "members had damaged headers (%s); stored "
			      "with the fields that could be read",
			      why) < 0;
	if (rc)
		rc = mv_err_set(err, -ENOMEM, "out of memory");
	else
		rc = warn(ing, o, one, many, err, "'%s'", name);
	free(one);
	free(many);
	return rc;
}

static int join(const char *label, const char *rel, char **out,
		struct mv_err *err)
{
	size_t n = strlen(rel);

	while (n && rel[n - 1] == '/')
		n--;
	if (asprintf(out, "%s%s%.*s", label, n ? "/" : "", (int)n, rel) < 0)
		return mv_err_set(err, -ENOMEM, "out of memory");
	return 0;
}

static int fill_meta(struct archive_entry *ae, struct tree_entry *e)
{
	mode_t m = archive_entry_filetype(ae);
	const char *s;
	const void *val;
	size_t len;
	int n;

	memset(e, 0, sizeof(*e));
	switch (m) {
	case AE_IFDIR:
		e->type = TREE_DIR;
		break;
	case AE_IFLNK:
		e->type = TREE_LNK;
		break;
	case AE_IFIFO:
		e->type = TREE_FIFO;
		break;
	case AE_IFCHR:
		e->type = TREE_CHR;
		break;
	case AE_IFBLK:
		e->type = TREE_BLK;
		break;
	case AE_IFSOCK:
		e->type = TREE_SOCK;
		break;
	default:
		e->type = TREE_REG;
	}
	e->mode = archive_entry_perm(ae) & 07777;
	e->uid = (uint32_t)archive_entry_uid(ae);
	e->gid = (uint32_t)archive_entry_gid(ae);
	e->user = (char *)archive_entry_uname(ae);
	e->group = (char *)archive_entry_gname(ae);
	e->mtime_sec = archive_entry_mtime(ae);
	e->mtime_nsec = (uint32_t)archive_entry_mtime_nsec(ae);
	e->size = e->type == TREE_REG ? (uint64_t)archive_entry_size(ae) : 0;
	e->nlink = 1;
	if (e->type == TREE_CHR || e->type == TREE_BLK) {
		e->rdev_major = (uint32_t)archive_entry_rdevmajor(ae);
		e->rdev_minor = (uint32_t)archive_entry_rdevminor(ae);
	}
	if (e->type == TREE_LNK) {
		s = archive_entry_symlink(ae);
		e->target = (char *)(s ? s : "");
	}
	n = archive_entry_xattr_reset(ae);
	if (n > 0) {
		uint32_t i = 0;

		e->xattrs = calloc((size_t)n, sizeof(*e->xattrs));
		if (!e->xattrs)
			return -ENOMEM;
		while (i < (uint32_t)n &&
		       archive_entry_xattr_next(ae, &s, &val, &len) ==
			       ARCHIVE_OK) {
			e->xattrs[i].name = (char *)s;
			e->xattrs[i].value = (uint8_t *)val;
			e->xattrs[i].len = (uint32_t)len;
			i++;
		}
		e->nxattrs = i;
	}
	if (archive_entry_acl_types(ae) & ARCHIVE_ENTRY_ACL_TYPE_ACCESS)
		e->acl_access = archive_entry_acl_to_text(
			ae, NULL, ARCHIVE_ENTRY_ACL_TYPE_ACCESS);
	if (archive_entry_acl_types(ae) & ARCHIVE_ENTRY_ACL_TYPE_DEFAULT)
		e->acl_default = archive_entry_acl_to_text(
			ae, NULL, ARCHIVE_ENTRY_ACL_TYPE_DEFAULT);
	return 0;
}

/* Frees only what fill_meta allocated itself. */
static void drop_meta(struct tree_entry *e)
{
	free(e->xattrs);
	free(e->acl_access);
	free(e->acl_default);
	free(e->extents);
}

/* Stream one regular file's data; holes of sparse members become extents
 * (the data bytes are passed back to back). */
static int read_file(struct archive *a, struct ingest *ing,
		     const struct source_tar_opts *o, const char *name,
		     const char *path, const struct tree_entry *e,
		     struct mv_err *err)
{
	char why[256] = "";
	struct tree_extent *ext = NULL;
	uint32_t n = 0, cap = 0;
	uint64_t expect = 0;
	bool holes = false;
	const void *buf;
	size_t len;
	la_int64_t off;
	int rc, r;

	rc = ingest_file_begin(ing, path, e, err);
	if (rc)
		return rc;
	for (;;) {
		r = archive_read_data_block(a, &buf, &len, &off);
		if (r == ARCHIVE_EOF)
			break;
		/* ARCHIVE_RETRY (damaged data) is above ARCHIVE_WARN */
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
			const char *m = archive_error_string(a);

			rc = mv_err_set(err,
					archive_errno(a) == EPIPE ? -EPIPE
								  : -EBADMSG,
					"%s", m ? m : "read error");
			goto out;
		}
		if (r == ARCHIVE_WARN && !why[0]) {
			la_message(a, why, sizeof(why));
			if (!harmless(why)) {
				rc = warn_damaged(ing, o, true, why, name, err);
				if (rc)
					goto out;
			}
		}
		if (!len)
			continue;
		if ((uint64_t)off != expect)
			holes = true;
		if (n && ext[n - 1].offset + ext[n - 1].len == (uint64_t)off) {
			ext[n - 1].len += len;
		} else {
			if (n == cap) {
				struct tree_extent *p;

				cap = cap ? cap * 2 : 8;
				p = realloc(ext, cap * sizeof(*p));
				if (!p) {
					rc = mv_err_set(err, -ENOMEM,
							"out of memory");
					goto out;
				}
				ext = p;
			}
			ext[n].offset = (uint64_t)off;
			ext[n].len = len;
			n++;
		}
		expect = (uint64_t)off + len;
		rc = ingest_file_data(ing, buf, len, err);
		if (rc)
			goto out;
	}
	if (expect != e->size)
		holes = true;
	if (holes) {
		ingest_file_set_extents(ing, ext, n);
		ext = NULL;
	}
	rc = ingest_file_end(ing, err);
out:
	free(ext);
	return rc;
}

/* Kinds of warnings about names, singular and plural. */
#define W_ABS "member name had leading '/' removed"
#define W_ABS_N "member names had leading '/' removed"
#define W_DOTDOT "member name had everything up to its last '..' removed"
#define W_DOTDOT_N "member names had everything up to their last '..' removed"
#define W_EMPTY "member had no name left once cleaned and was skipped"
#define W_EMPTY_N "members had no name left once cleaned and were skipped"
#define W_LABS "hard link target had leading '/' removed"
#define W_LABS_N "hard link targets had leading '/' removed"
#define W_LDOTDOT "hard link target had everything up to its last '..' removed"
#define W_LDOTDOT_N \
	"hard link targets had everything up to their last '..' removed"
#define W_LMISS "hard link to a member the archive does not hold was skipped"
#define W_LMISS_N "hard links to members the archive does not hold were skipped"

/* Clean name into a new string (*out), recording what was removed. */
static int clean(struct ingest *ing, const struct source_tar_opts *o,
		 const char *name, bool link, char **out, struct mv_err *err)
{
	unsigned flags;
	char *c;
	int rc = 0;

	c = malloc(strlen(name) + 1);
	if (!c)
		return mv_err_set(err, -ENOMEM, "out of memory");
	flags = source_tar_clean_name(name, c);
	if (flags & SOURCE_NAME_ABS && !o->absolute_names)
		rc = warn(ing, o, link ? W_LABS : W_ABS,
			  link ? W_LABS_N : W_ABS_N, err, "'%s'", name);
	else if (flags & SOURCE_NAME_DOTDOT && *c)
		rc = warn(ing, o, link ? W_LDOTDOT : W_DOTDOT,
			  link ? W_LDOTDOT_N : W_DOTDOT_N, err,
			  "'%s' stored as '%s'", name, c);
	if (rc) {
		free(c);
		return rc;
	}
	*out = c;
	return (int)flags;
}

static int read_archive(struct archive *a, struct tar_ctx *c,
			struct ingest *ing, const struct source_tar_opts *o,
			struct mv_err *err)
{
	struct archive_entry *ae;
	uint64_t count = 0;
	char *path = NULL, *target = NULL, *rel = NULL, *trel = NULL;
	int rc = 0, r;

	for (;;) {
		const char *name, *hl;
		char why[256] = "";
		struct tree_entry e;
		int flags;

		r = archive_read_next_header(a, &ae);
		if (r == ARCHIVE_EOF)
			break;
		/* ARCHIVE_RETRY is a damaged header: the entry is garbage */
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
			const char *m = archive_error_string(a);

			if (c->gzerr.code)
				rc = mv_err_set(err, c->gzerr.code, "%s",
						c->gzerr.msg);
			else if (!count && !gzstream_total_out(c->gz))
				rc = mv_err_set(err, -ENODATA,
						"cannot read "
						"'%s': input is empty",
						o->name);
			else if (!count && m &&
				 strstr(m, "Unrecognized archive format"))
				/* not damaged: not a tar archive at all */
				rc = mv_err_set(err, -EMEDIUMTYPE,
						"cannot read '%s': not a tar "
						"archive (%s)",
						o->name, m);
			else
				rc = mv_err_set(
					err, -EBADMSG,
					"cannot read "
					"'%s': %s after %llu entries "
					"(archive byte %lld)",
					o->name, m ? m : "bad archive",
					(unsigned long long)count,
					(long long)archive_filter_bytes(a, 0));
			goto out;
		}
		/* ARCHIVE_WARN: the entry is what could be read (GNU tar
		 * and bsdtar extract it too, and complain) */
		if (r == ARCHIVE_WARN)
			la_message(a, why, sizeof(why));
		name = archive_entry_pathname(ae);
		if (!name)
			name = "";
		count++;
		if (why[0] && !harmless(why)) {
			rc = warn_damaged(ing, o, false, why, name, err);
			if (rc)
				goto out;
		}
		free(rel);
		rel = NULL;
		flags = clean(ing, o, name, false, &rel, err);
		if (flags < 0) {
			rc = flags;
			goto out;
		}
		hl = archive_entry_hardlink(ae);
		/* Nothing left of the name: the archive's own top ("./",
		 * "/") gives the label its metadata; anything else ("..", a
		 * file named "/") would replace the label's directory. */
		if (!*rel && (flags & SOURCE_NAME_DOTDOT || hl ||
			      archive_entry_filetype(ae) != AE_IFDIR)) {
			rc = warn(ing, o, W_EMPTY, W_EMPTY_N, err, "'%s'",
				  name);
			if (rc)
				goto out;
			continue;
		}
		/* an excluded member, or one inside an excluded directory
		 * (members come in any order) */
		if (o->exclude &&
		    exclude_match(o->exclude, rel,
				  archive_entry_filetype(ae) == AE_IFDIR))
			continue;
		free(path);
		path = NULL;
		rc = join(o->label, rel, &path, err);
		if (rc)
			goto out;
		if (hl) {
			free(trel);
			trel = NULL;
			free(target);
			target = NULL;
			flags = clean(ing, o, hl, true, &trel, err);
			if (flags < 0) {
				rc = flags;
				goto out;
			}
			/* the link's target was left out: so is the link */
			if (*trel && o->exclude &&
			    exclude_match(o->exclude, trel, false))
				continue;
			rc = *trel ? join(o->label, trel, &target, err)
				   : -ENOENT;
			if (!rc)
				rc = ingest_link(ing, path, target, err);
			if (rc == -ENOENT) {
				/* a link to a member the archive does not
				 * hold (outside it, or cut by the archiver)
				 * has no content to store: not fatal */
				mv_err_clear(err);
				rc = warn(ing, o, W_LMISS, W_LMISS_N, err,
					  "'%s' -> '%s'", name, hl);
			}
			if (rc)
				goto entry_err;
			continue;
		}
		rc = fill_meta(ae, &e);
		if (rc) {
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		if (e.type == TREE_REG)
			rc = read_file(a, ing, o, name, path, &e, err);
		else
			rc = ingest_entry(ing, path, &e, err);
		drop_meta(&e);
		if (rc)
			goto entry_err;
		ingest_progress(ing, false);
	}
	if (!count && !c->gzerr.code) {
		rc = mv_err_set(err, -ENODATA, "cannot read '%s': %s", o->name,
				gzstream_total_out(c->gz)
					? "archive contains no entries"
					: "input is empty");
		goto out;
	}
	goto out;
entry_err:
	if (c->gzerr.code) {
		mv_err_clear(err);
		rc = mv_err_set(err, c->gzerr.code, "%s: entry '%s'",
				c->gzerr.msg, name_or(path));
	} else if (rc != -EINTR) {
		mv_err_prefix(err,
			      "cannot read '%s': entry '%s' (archive byte "
			      "%lld)",
			      o->name, path,
			      (long long)archive_filter_bytes(a, 0));
	}
out:
	free(path);
	free(target);
	free(rel);
	free(trel);
	return rc;
}

/* Read the input to its end after the tar end-of-archive marker: only
 * then is the last gzip member's CRC-32 checked (a corrupt byte in file
 * data is otherwise never noticed), and a pipe's writer is not cut off. */
static int drain(struct tar_ctx *c, struct mv_err *err)
{
	const void *p;
	size_t n;

	do {
		int rc = gzstream_next_block(c->gz, &p, &n, &c->gzerr);
		if (rc)
			return mv_err_set(err, rc, "%s", c->gzerr.msg);
	} while (n);
	return 0;
}

int source_tar_read(struct ingest *ing, const struct source_tar_opts *o,
		    struct mv_err *err)
{
	struct tar_ctx c;
	struct archive *a = NULL;
	const char *gzwarn;
	int rc;

	memset(&c, 0, sizeof(c));
	rc = gzstream_open(o->fd, o->name, &c.gz, err);
	if (rc)
		return rc;
	a = archive_read_new();
	if (!a) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	if (archive_read_open(a, &c, NULL, tar_read_cb, NULL) != ARCHIVE_OK) {
		const char *m = archive_error_string(a);

		if (c.gzerr.code)
			rc = mv_err_set(err, c.gzerr.code, "%s", c.gzerr.msg);
		else if (m && strstr(m, "Unrecognized archive format"))
			/* not damaged: not a tar archive at all */
			rc = mv_err_set(err, -EMEDIUMTYPE,
					"cannot read '%s': not a tar archive "
					"(%s)",
					o->name, m);
		else
			rc = mv_err_set(err, -EBADMSG, "cannot read '%s': %s",
					o->name, m ? m : "not an archive");
		goto out;
	}
	rc = read_archive(a, &c, ing, o, err);
	if (!rc)
		rc = drain(&c, err);
	gzwarn = gzstream_warning(c.gz);
	if (!rc && gzwarn)
		rc = ingest_warn(ing, o->label, gzwarn, gzwarn, NULL, err);
out:
	if (a)
		archive_read_free(a);
	gzstream_close(c.gz);
	return rc;
}
