/*
 * source_dir: walk a local directory (never following symlinks, never
 * leaving the tree through them), entries in name order so the result is
 * deterministic.  Unchanged files are taken from the parent snapshot
 * without reading them (size, mtime, ctime and inode must all match), as
 * borg's files cache and restic's parent snapshot do.
 */
#include "source.h"

#include <dirent.h>
#include <libgen.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <acl/libacl.h>
#include <sys/acl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define READ_BLOCK (1u << 20)
#define XATTR_LIST_MAX_BYTES (64u << 10)

struct link_seen {
	dev_t dev;
	ino_t ino;
	char *path;
};

struct walk {
	struct ingest *ing;
	const struct source_dir_opts *o;
	uint8_t *buf;		 /* read buffer */
	struct link_seen *links; /* hard-linked files seen */
	size_t nlinks, caplinks;
	uid_t last_uid;
	gid_t last_gid;
	char user[64], group[64];
	bool have_user, have_group;
};

static const char *user_name(struct walk *w, uid_t uid)
{
	struct passwd pw, *res = NULL;
	char buf[1024];

	if (w->have_user && w->last_uid == uid)
		return w->user[0] ? w->user : NULL;
	w->have_user = true;
	w->last_uid = uid;
	w->user[0] = '\0';
	if (!getpwuid_r(uid, &pw, buf, sizeof(buf), &res) && res)
		snprintf(w->user, sizeof(w->user), "%s", pw.pw_name);
	return w->user[0] ? w->user : NULL;
}

static const char *group_name(struct walk *w, gid_t gid)
{
	struct group gr, *res = NULL;
	char buf[1024];

	if (w->have_group && w->last_gid == gid)
		return w->group[0] ? w->group : NULL;
	w->have_group = true;
	w->last_gid = gid;
	w->group[0] = '\0';
	if (!getgrgid_r(gid, &gr, buf, sizeof(buf), &res) && res)
		snprintf(w->group, sizeof(w->group), "%s", gr.gr_name);
	return w->group[0] ? w->group : NULL;
}

static void meta_from_stat(struct walk *w, const struct stat *st,
			   struct tree_entry *e)
{
	memset(e, 0, sizeof(*e));
	if (S_ISDIR(st->st_mode))
		e->type = TREE_DIR;
	else if (S_ISLNK(st->st_mode))
		e->type = TREE_LNK;
	else if (S_ISFIFO(st->st_mode))
		e->type = TREE_FIFO;
	else if (S_ISCHR(st->st_mode))
		e->type = TREE_CHR;
	else if (S_ISBLK(st->st_mode))
		e->type = TREE_BLK;
	else if (S_ISSOCK(st->st_mode))
		e->type = TREE_SOCK;
	else
		e->type = TREE_REG;
	e->mode = st->st_mode & 07777;
	e->uid = st->st_uid;
	e->gid = st->st_gid;
	e->user = (char *)user_name(w, st->st_uid);
	e->group = (char *)group_name(w, st->st_gid);
	e->mtime_sec = st->st_mtim.tv_sec;
	e->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
	e->ctime_sec = st->st_ctim.tv_sec;
	e->ctime_nsec = (uint32_t)st->st_ctim.tv_nsec;
	e->ino = st->st_ino;
	e->dev = st->st_dev;
	e->size = e->type == TREE_REG ? (uint64_t)st->st_size : 0;
	e->nlink = 1;
	if (e->type == TREE_CHR || e->type == TREE_BLK) {
		e->rdev_major = major(st->st_rdev);
		e->rdev_minor = minor(st->st_rdev);
	}
}

/* ACL of type as text with numeric ids (a backup is restored on other
 * hosts) into *out (malloc'ed); *out stays NULL when it has none. */
static int read_acl(const char *path, acl_type_t type, char **out)
{
	acl_t acl = acl_get_file(path, type);
	char *text;

	if (!acl)
		return 0;
	text = acl_to_any_text(acl, NULL, ',', TEXT_NUMERIC_IDS);
	acl_free(acl);
	if (!text)
		return -ENOMEM;
	free(*out);
	*out = strdup(text);
	acl_free(text);
	return *out ? 0 : -ENOMEM;
}

/* xattrs of the entry at /proc/self/fd path or name relative to dirfd;
 * allocations land in e (freed by free_meta). */
static int read_xattrs(const char *path, struct tree_entry *e,
		       struct mv_err *err)
{
	char *names = NULL, *p;
	ssize_t n;
	uint32_t count = 0;

	n = llistxattr(path, NULL, 0);
	if (n <= 0)
		return 0; /* none, or not supported here */
	if ((size_t)n > XATTR_LIST_MAX_BYTES)
		return mv_err_set(err, -EMSGSIZE, "'%s': too many xattrs",
				  path);
	names = malloc((size_t)n);
	if (!names)
		return mv_err_set(err, -ENOMEM, "out of memory");
	n = llistxattr(path, names, (size_t)n);
	if (n <= 0) {
		free(names);
		return 0;
	}
	for (p = names; p < names + n; p += strlen(p) + 1)
		count++;
	e->xattrs = calloc(count, sizeof(*e->xattrs));
	if (!e->xattrs) {
		free(names);
		return mv_err_set(err, -ENOMEM, "out of memory");
	}
	for (p = names; p < names + n; p += strlen(p) + 1) {
		ssize_t vl;
		struct tree_xattr *x;

		/* POSIX ACLs are kept as text, as tar inputs give them, so
		 * restore and export-tar (SCHILY.acl.*) carry them */
		if (!strcmp(p, "system.posix_acl_access")) {
			if (read_acl(path, ACL_TYPE_ACCESS, &e->acl_access))
				goto nomem;
			continue;
		}
		if (!strcmp(p, "system.posix_acl_default")) {
			if (read_acl(path, ACL_TYPE_DEFAULT, &e->acl_default))
				goto nomem;
			continue;
		}
		vl = lgetxattr(path, p, NULL, 0);
		if (vl < 0)
			continue;
		x = &e->xattrs[e->nxattrs];
		x->name = strdup(p);
		x->value = malloc((size_t)vl + 1);
		if (!x->name || !x->value) {
			free(x->name);
			free(x->value);
			free(names);
			return mv_err_set(err, -ENOMEM, "out of memory");
		}
		vl = lgetxattr(path, p, x->value, (size_t)vl);
		if (vl < 0) {
			free(x->name);
			free(x->value);
			continue;
		}
		x->len = (uint32_t)vl;
		e->nxattrs++;
	}
	free(names);
	return 0;
nomem:
	free(names);
	return mv_err_set(err, -ENOMEM, "out of memory");
}

static void free_meta(struct tree_entry *e)
{
	uint32_t i;

	for (i = 0; i < e->nxattrs; i++) {
		free(e->xattrs[i].name);
		free(e->xattrs[i].value);
	}
	free(e->xattrs);
	free(e->target);
	free(e->extents);
	free(e->acl_access);
	free(e->acl_default);
	e->acl_access = e->acl_default = NULL;
	e->xattrs = NULL;
	e->target = NULL;
	e->extents = NULL;
	e->nxattrs = 0;
}

/* Data extents via SEEK_DATA/SEEK_HOLE; n = 0 when not sparse. */
static int find_extents(int fd, uint64_t size, struct tree_extent **out,
			uint32_t *out_n)
{
	struct tree_extent *ext = NULL;
	uint32_t n = 0, cap = 0;
	off_t pos = 0;

	*out = NULL;
	*out_n = 0;
	for (;;) {
		off_t d = lseek(fd, pos, SEEK_DATA), h;

		if (d < 0)
			break; /* ENXIO: only a hole remains */
		h = lseek(fd, d, SEEK_HOLE);
		if (h < 0)
			h = (off_t)size;
		if (n == cap) {
			struct tree_extent *p;

			cap = cap ? cap * 2 : 8;
			p = realloc(ext, cap * sizeof(*p));
			if (!p) {
				free(ext);
				return -ENOMEM;
			}
			ext = p;
		}
		ext[n].offset = (uint64_t)d;
		ext[n].len = (uint64_t)(h - d);
		n++;
		pos = h;
		if ((uint64_t)h >= size)
			break;
	}
	lseek(fd, 0, SEEK_SET);
	if (n == 1 && ext[0].offset == 0 && ext[0].len == size) {
		free(ext);
		return 0;
	}
	if (!n && !size)
		return 0;
	*out = ext;
	*out_n = n;
	return 0;
}

static int read_regular(struct walk *w, int dirfd, const char *name,
			const char *path, struct tree_entry *e,
			struct mv_err *err)
{
	struct tree_extent *ext = NULL;
	uint32_t next = 0, i;
	int fd, rc;

	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
	if (fd < 0 && errno == EPERM)
		fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return mv_err_set(err, -errno, "cannot open '%s/%s': %s",
				  w->o->path, path, strerror(errno));
	if (find_extents(fd, e->size, &ext, &next)) {
		close(fd);
		return mv_err_set(err, -ENOMEM, "out of memory");
	}
	rc = ingest_file_begin(w->ing, path, e, err);
	if (rc)
		goto out;
	if (next) {
		for (i = 0; !rc && i < next; i++) {
			uint64_t off = ext[i].offset, left = ext[i].len;

			while (!rc && left) {
				ssize_t r = pread(fd, w->buf,
						  MV_MIN(left, READ_BLOCK),
						  (off_t)off);

				if (r <= 0) {
					rc = mv_err_set(err, r ? -errno : -EIO,
							"cannot read '%s/%s': "
							"%s",
							w->o->path, path,
							r ? strerror(errno)
							  : "file shrank");
					break;
				}
				rc = ingest_file_data(w->ing, w->buf, (size_t)r,
						      err);
				off += (uint64_t)r;
				left -= (uint64_t)r;
			}
		}
		if (!rc) {
			ingest_file_set_extents(w->ing, ext, next);
			ext = NULL;
		}
	} else {
		uint64_t got = 0;

		for (;;) {
			ssize_t r = read(fd, w->buf, READ_BLOCK);

			if (r < 0) {
				if (errno == EINTR)
					continue;
				rc = mv_err_set(err, -errno,
						"cannot read "
						"'%s/%s': %s",
						w->o->path, path,
						strerror(errno));
				break;
			}
			if (!r)
				break;
			got += (uint64_t)r;
			rc = ingest_file_data(w->ing, w->buf, (size_t)r, err);
			if (rc)
				break;
		}
		/* a file that changed size while read keeps what was read */
		(void)got;
	}
	if (!rc)
		rc = ingest_file_end(w->ing, err);
out:
	free(ext);
	close(fd);
	return rc;
}

static const char *link_seen(struct walk *w, const struct stat *st,
			     const char *path)
{
	size_t i;

	for (i = 0; i < w->nlinks; i++)
		if (w->links[i].dev == st->st_dev &&
		    w->links[i].ino == st->st_ino)
			return w->links[i].path;
	if (w->nlinks == w->caplinks) {
		size_t cap = w->caplinks ? w->caplinks * 2 : 16;
		struct link_seen *p = realloc(w->links, cap * sizeof(*p));

		if (!p)
			return NULL;
		w->links = p;
		w->caplinks = cap;
	}
	w->links[w->nlinks].dev = st->st_dev;
	w->links[w->nlinks].ino = st->st_ino;
	w->links[w->nlinks].path = strdup(path);
	if (w->links[w->nlinks].path)
		w->nlinks++;
	return NULL;
}

static int name_sort(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk_dir(struct walk *w, int dirfd, const char *path,
		    const struct tree *parent, struct mv_err *err);

static int walk_entry(struct walk *w, int dirfd, const char *name,
		      const char *path, const struct tree *parent,
		      struct mv_err *err)
{
	const struct tree_entry *old = NULL;
	struct tree_entry e;
	struct stat st;
	char proc[PATH_MAX];
	int rc = 0;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0; /* vanished while walking */
		return mv_err_set(err, -errno, "cannot stat '%s/%s': %s",
				  w->o->path, path, strerror(errno));
	}
	/* path is LABEL/REL: patterns see REL; an excluded directory is
	 * not entered */
	if (w->o->exclude &&
	    exclude_match(w->o->exclude, path + strlen(w->o->label) + 1,
			  S_ISDIR(st.st_mode)))
		return 0;
	meta_from_stat(w, &st, &e);
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d/%s", dirfd, name);
	rc = read_xattrs(proc, &e, err);
	if (rc)
		goto out;
	if (parent)
		old = tree_find(parent, name, strlen(name));
	if (e.type == TREE_LNK) {
		char buf[PATH_MAX];
		ssize_t n = readlinkat(dirfd, name, buf, sizeof(buf) - 1);

		if (n < 0) {
			rc = mv_err_set(err, -errno, "cannot read link '%s/%s'",
					w->o->path, path);
			goto out;
		}
		buf[n] = '\0';
		e.target = strdup(buf);
		rc = ingest_entry(w->ing, path, &e, err);
	} else if (e.type == TREE_DIR) {
		struct tree *sub = NULL;
		int fd;

		rc = ingest_entry(w->ing, path, &e, err);
		if (rc)
			goto out;
		fd = openat(dirfd, name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			rc = mv_err_set(err, -errno,
					"cannot open directory "
					"'%s/%s': %s",
					w->o->path, path, strerror(errno));
			goto out;
		}
		if (old && old->type == TREE_DIR &&
		    tree_load(w->o->repo, &old->subtree, &sub, NULL))
			sub = NULL;
		rc = walk_dir(w, fd, path, sub, err);
		tree_free(sub);
		close(fd);
	} else if (e.type == TREE_REG && w->o->file_filter &&
		   (rc = w->o->file_filter(w->o->filter_ctx, w->ing, dirfd,
					   name, path, &e, err)) != 0) {
		if (rc > 0)
			rc = 0; /* taken over by the filter */
	} else if (e.type == TREE_REG) {
		const char *first =
			st.st_nlink > 1 ? link_seen(w, &st, path) : NULL;

		if (first) {
			rc = ingest_link(w->ing, path, first, err);
		} else if (old && old->type == TREE_REG &&
			   old->size == e.size &&
			   old->mtime_sec == e.mtime_sec &&
			   old->mtime_nsec == e.mtime_nsec &&
			   old->ctime_sec == e.ctime_sec &&
			   old->ctime_nsec == e.ctime_nsec &&
			   old->ino == e.ino && !old->link_group &&
			   (old->nchunks || !old->size)) {
			e.nchunks = old->nchunks;
			e.chunks = old->chunks;
			e.nextents = old->nextents;
			e.extents = old->extents;
			rc = ingest_entry(w->ing, path, &e, err);
			e.chunks = NULL;
			e.nchunks = 0;
			e.extents = NULL;
			e.nextents = 0;
		} else {
			rc = read_regular(w, dirfd, name, path, &e, err);
		}
	} else {
		rc = ingest_entry(w->ing, path, &e, err);
	}
out:
	free_meta(&e);
	return rc;
}

static int walk_dir(struct walk *w, int dirfd, const char *path,
		    const struct tree *parent, struct mv_err *err)
{
	char **names = NULL, *sub = NULL;
	size_t n = 0, cap = 0, i;
	struct dirent *de;
	DIR *d;
	int fd, rc = 0;

	fd = dup(dirfd);
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return mv_err_set(err, -errno, "cannot list '%s/%s': %s",
				  w->o->path, path, strerror(errno));
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			char **p;

			cap = cap ? cap * 2 : 64;
			p = realloc(names, cap * sizeof(*p));
			if (!p) {
				rc = mv_err_set(err, -ENOMEM, "out of memory");
				goto out;
			}
			names = p;
		}
		names[n] = strdup(de->d_name);
		if (!names[n]) {
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		n++;
	}
	if (n > 1) /* qsort(NULL, 0) is undefined */
		qsort(names, n, sizeof(*names), name_sort);
	for (i = 0; !rc && i < n; i++) {
		free(sub);
		sub = NULL;
		if (asprintf(&sub, "%s/%s", path, names[i]) < 0) {
			sub = NULL;
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			break;
		}
		rc = walk_entry(w, dirfd, names[i], sub, parent, err);
	}
out:
	free(sub);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return rc;
}

int source_dir_read(struct ingest *ing, const struct source_dir_opts *o,
		    struct mv_err *err)
{
	struct tree *parent = NULL;
	struct tree_entry e;
	struct walk w;
	struct stat st;
	char proc[PATH_MAX];
	size_t i;
	int fd, rc;

	memset(&w, 0, sizeof(w));
	w.ing = ing;
	w.o = o;
	fd = open(o->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return mv_err_set(err, -errno, "cannot open directory '%s': %s",
				  o->path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		rc = mv_err_set(err, -errno, "cannot stat '%s'", o->path);
		close(fd);
		return rc;
	}
	w.buf = malloc(READ_BLOCK);
	if (!w.buf) {
		close(fd);
		return mv_err_set(err, -ENOMEM, "out of memory");
	}
	meta_from_stat(&w, &st, &e);
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	rc = read_xattrs(proc, &e, err);
	if (!rc)
		rc = ingest_entry(ing, o->label, &e, err);
	free_meta(&e);
	if (!rc && o->parent && o->repo) {
		struct tree_entry top;

		if (!tree_lookup_path(o->repo, &o->parent->root, o->label, &top,
				      NULL)) {
			if (top.type == TREE_DIR &&
			    tree_load(o->repo, &top.subtree, &parent, NULL))
				parent = NULL;
			tree_entry_release(&top);
		}
	}
	if (!rc)
		rc = walk_dir(&w, fd, o->label, parent, err);
	tree_free(parent);
	for (i = 0; i < w.nlinks; i++)
		free(w.links[i].path);
	free(w.links);
	free(w.buf);
	close(fd);
	return rc;
}

/* The parent snapshot's tree of LABEL, or NULL. */
static struct tree *label_tree(struct repo *r, const struct snapshot *parent,
			       const char *label)
{
	struct tree_entry top;
	struct tree *t = NULL;

	if (!parent || !r ||
	    tree_lookup_path(r, &parent->root, label, &top, NULL))
		return NULL;
	if (top.type != TREE_DIR || tree_load(r, &top.subtree, &t, NULL))
		t = NULL;
	tree_entry_release(&top);
	return t;
}

/* A stream: mode 0600, owned by us, modified now. */
static int read_stream(struct walk *w, const struct source_file_opts *o,
		       const char *path, struct mv_err *err)
{
	struct tree_entry e;
	struct timespec now;
	int rc;

	clock_gettime(CLOCK_REALTIME, &now);
	memset(&e, 0, sizeof(e));
	e.type = TREE_REG;
	e.mode = 0600;
	e.uid = getuid();
	e.gid = getgid();
	e.user = (char *)user_name(w, e.uid);
	e.group = (char *)group_name(w, e.gid);
	e.mtime_sec = now.tv_sec;
	e.mtime_nsec = (uint32_t)now.tv_nsec;
	e.ctime_sec = e.mtime_sec;
	e.ctime_nsec = e.mtime_nsec;
	e.nlink = 1;
	rc = ingest_file_begin(w->ing, path, &e, err);
	while (!rc) {
		ssize_t r = read(o->fd, w->buf, READ_BLOCK);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = mv_err_set(err, -errno, "cannot read '%s': %s",
					o->path ? o->path : "-",
					strerror(errno));
			break;
		}
		if (!r)
			break;
		rc = ingest_file_data(w->ing, w->buf, (size_t)r, err);
		ingest_progress(w->ing, false);
	}
	/* the size is what the stream held */
	if (!rc)
		rc = ingest_file_cut(w->ing, err);
	return rc;
}

int source_file_read(struct ingest *ing, const struct source_file_opts *o,
		     struct mv_err *err)
{
	struct source_dir_opts d;
	struct tree *parent = NULL;
	struct walk w;
	struct stat st;
	char *real = NULL, *dir = NULL, *base = NULL, *path = NULL;
	const char *dpath;
	size_t i;
	int dirfd = -1, rc;

	memset(&w, 0, sizeof(w));
	memset(&d, 0, sizeof(d));
	d.label = o->label;
	d.path = o->path ? o->path : "-";
	d.repo = o->repo;
	d.parent = o->parent;
	w.ing = ing;
	w.o = &d;
	w.buf = malloc(READ_BLOCK);
	if (!w.buf || asprintf(&path, "%s/%s", o->label, o->name) < 0) {
		path = NULL;
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (!o->path) {
		rc = read_stream(&w, o, path, err);
		goto out;
	}
	/* a symbolic link given by name is followed: the file is what the
	 * user asked for (a "latest.sql" pointing at the newest dump) */
	real = realpath(o->path, NULL);
	if (!real || stat(real, &st) < 0) {
		rc = mv_err_set(err, -errno, "cannot read source '%s': %s",
				o->path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = mv_err_set(err, -EINVAL,
				"source 'file:%s' is not a regular file",
				o->path);
		goto out;
	}
	dir = strdup(real);
	base = strdup(real);
	if (!dir || !base) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	dpath = dirname(dir);
	dirfd = open(dpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		rc = mv_err_set(err, -errno,
				"cannot open the directory of '%s': %s",
				o->path, strerror(errno));
		goto out;
	}
	d.path = dpath;
	parent = label_tree(o->repo, o->parent, o->label);
	rc = walk_entry(&w, dirfd, basename(base), path, parent, err);
out:
	tree_free(parent);
	if (dirfd >= 0)
		close(dirfd);
	for (i = 0; i < w.nlinks; i++)
		free(w.links[i].path);
	free(w.links);
	free(w.buf);
	free(path);
	free(real);
	free(dir);
	free(base);
	return rc;
}
