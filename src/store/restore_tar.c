/*
 * restore_tar: a snapshot subtree written as a pax tar stream (the
 * export-tar command).  Hard links become link members to the first path
 * of their group, sparse files keep their map, and names that would
 * escape the extraction directory are left out with a warning.
 */
#include "restore.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail_view.h"
#include "restore_int.h"
#include "util.h"

struct tctx {
	struct repo *r;
	struct archive *a;
	struct restore_links links;
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
		size_t k = (size_t)MV_MIN(off - f->at, sizeof(restore_zeros));

		rc = tar_put(restore_zeros, k, 0, f->t);
		if (rc)
			return rc;
		f->at += k;
	}
	rc = tar_put(p, n, off, f->t);
	f->at += n;
	return rc;
}

void restore_tar_entry_fill(struct archive_entry *ae,
			    const struct tree_entry *e, const char *first)
{
	archive_entry_set_uid(ae, e->uid);
	archive_entry_set_gid(ae, e->gid);
	if (e->user)
		archive_entry_set_uname(ae, e->user);
	if (e->group)
		archive_entry_set_gname(ae, e->group);
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
	default:
		archive_entry_set_filetype(ae, AE_IFREG);
		if (first) {
			archive_entry_set_hardlink(ae, first);
			archive_entry_set_size(ae, 0);
		} else {
			archive_entry_set_size(ae, (la_int64_t)e->size);
		}
	}
}

static int tar_entry(struct tctx *t, const char *path,
		     const struct tree_entry *e, int depth)
{
	struct archive_entry *ae = archive_entry_new();
	const char *first;
	uint32_t i;
	int rc = 0;

	if (!ae)
		return mv_err_set(t->err, -ENOMEM, "out of memory");
	archive_entry_set_pathname(ae, path);
	archive_entry_set_mtime(ae, e->mtime_sec, e->mtime_nsec);
	for (i = 0; i < e->nxattrs; i++)
		if (!restore_xattr_internal(e->xattrs[i].name))
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
	first = e->link_group ? restore_links_find(&t->links, e->link_group)
			      : NULL;
	restore_tar_entry_fill(ae, e, first);
	if (archive_entry_filetype(ae) == AE_IFREG && !first) {
		for (i = 0; i < e->nextents; i++)
			archive_entry_sparse_add_entry(
				ae, (la_int64_t)e->extents[i].offset,
				(la_int64_t)e->extents[i].len);
		if (e->link_group)
			restore_links_add(&t->links, e->link_group, path);
	}
	if (archive_write_header(t->a, ae) < ARCHIVE_WARN) {
		rc = mv_err_set(t->err, -EIO, "tar: '%s': %s", path,
				archive_error_string(t->a));
		goto out;
	}
	if (e->type == TREE_REG && archive_entry_size(ae) > 0) {
		struct tar_fill f = {t, 0};

		rc = restore_each_content(t->r, e, tar_put_fill, &f, t->err);
		while (!rc && f.at < e->size) {
			size_t k = (size_t)MV_MIN(e->size - f.at,
						  sizeof(restore_zeros));

			rc = tar_put(restore_zeros, k, 0, t);
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
			if (!restore_name_safe(&tr->entries[i])) {
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
	restore_links_free(&t.links);
	mv_buf_release(&t.data);
	return rc;
}
