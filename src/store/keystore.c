/*
 * keystore: the key slot files of a repository under keys/
 * (include/keystore.h).  A handful of files of ~140 bytes each; every
 * operation lists the directory afresh, so what it decides on (room for
 * one more, the last slot) is what the repository holds now.
 */
#include "keystore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static bool is_slot_name(const char *name)
{
	size_t i;

	for (i = 0; i < KEYSTORE_NAME_LEN; i++)
		if (!((name[i] >= '0' && name[i] <= '9') ||
		      (name[i] >= 'a' && name[i] <= 'f')))
			return false;
	return name[KEYSTORE_NAME_LEN] == '\0';
}

static void slot_path(const char *name, char *out, size_t n)
{
	snprintf(out, n, "%s/%s", KEYSTORE_DIR, name);
}

/* The names of the slots, sorted; at most KEYSTORE_MAX_SLOTS. */
struct names {
	char name[KEYSTORE_MAX_SLOTS][KEYSTORE_NAME_LEN + 1];
	size_t n;
	bool too_many;
};

static int collect(const char *name, bool is_dir, uint64_t size, void *arg)
{
	struct names *nm = arg;

	(void)size;
	if (is_dir || !is_slot_name(name))
		return 0;
	if (nm->n == KEYSTORE_MAX_SLOTS) {
		nm->too_many = true;
		return 1;
	}
	memcpy(nm->name[nm->n++], name, KEYSTORE_NAME_LEN + 1);
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

static int list_names(struct backend *be, struct names *out, struct mv_err *err)
{
	int rc;

	memset(out, 0, sizeof(*out));
	rc = be->ops->list(be, KEYSTORE_DIR, collect, out, err);
	if (rc == -ENOENT)
		return 0; /* no keys/ directory: no slot */
	if (out->too_many)
		return mv_err_set(err, -EMSGSIZE,
				  "more than %d key slots in '%s/%s': refusing "
				  "to try them all",
				  KEYSTORE_MAX_SLOTS, be->url, KEYSTORE_DIR);
	if (rc < 0)
		return rc;
	qsort(out->name, out->n, sizeof(out->name[0]), cmp_name);
	return 0;
}

int keystore_read(struct backend *be, const char *name, uint8_t **out,
		  size_t *out_len, struct mv_err *err)
{
	struct keyslot_info info;
	char path[64], hex[KEYSTORE_NAME_LEN + 1];
	void *data = NULL;
	size_t len = 0;
	int rc;

	if (!is_slot_name(name))
		return mv_err_set(err, -EINVAL, "'%s' is not a key slot name",
				  name);
	slot_path(name, path, sizeof(path));
	rc = backend_read_all(be, path, KEYSLOT_MAX_LEN, &data, &len, err);
	if (rc == -EFBIG)
		rc = -EBADMSG; /* too big to be a slot */
	if (rc < 0)
		goto out;
	rc = keyslot_parse(data, len, &info, err);
	if (rc < 0) {
		mv_err_prefix(err, "'%s' in '%s'", path, be->url);
		goto out;
	}
	mv_hex(info.id, KEYSLOT_ID_LEN, hex);
	if (strcmp(hex, name) != 0) {
		rc = mv_err_set(err, -EBADMSG,
				"'%s' in '%s' holds key slot %s, not its own",
				path, be->url, hex);
		goto out;
	}
	*out = data;
	*out_len = len;
	data = NULL;
out:
	free(data);
	return rc;
}

int keystore_list(struct backend *be, struct keystore_list *out,
		  struct mv_err *err)
{
	struct names nm;
	size_t i;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = list_names(be, &nm, err);
	if (rc < 0)
		return rc;
	for (i = 0; i < nm.n; i++) {
		struct keystore_slot *s = &out->slots[out->n];

		rc = keystore_read(be, nm.name[i], &s->data, &s->len, err);
		if (rc == -ENOENT)
			continue; /* removed meanwhile */
		if (rc < 0) {
			keystore_list_release(out);
			return rc;
		}
		memcpy(s->name, nm.name[i], sizeof(s->name));
		out->n++;
	}
	return 0;
}

void keystore_list_release(struct keystore_list *l)
{
	size_t i;

	if (!l)
		return;
	for (i = 0; i < l->n; i++)
		free(l->slots[i].data);
	memset(l, 0, sizeof(*l));
}

int keystore_write(struct backend *be, const void *slot, size_t len,
		   char out_name[KEYSTORE_NAME_LEN + 1], struct mv_err *err)
{
	struct keyslot_info info;
	struct names nm;
	char name[KEYSTORE_NAME_LEN + 1], path[64];
	size_t i;
	int rc;

	rc = keyslot_parse(slot, len, &info, err);
	if (rc < 0)
		return rc;
	mv_hex(info.id, KEYSLOT_ID_LEN, name);
	rc = list_names(be, &nm, err);
	if (rc < 0)
		return rc;
	for (i = 0; i < nm.n; i++)
		if (strcmp(nm.name[i], name) == 0)
			return mv_err_set(err, -EEXIST,
					  "key slot %s exists in '%s'", name,
					  be->url);
	if (nm.n >= KEYSTORE_MAX_SLOTS)
		return mv_err_set(err, -ENOSPC,
				  "'%s' has %d key slots, the most it may "
				  "have: remove one first",
				  be->url, KEYSTORE_MAX_SLOTS);
	if (nm.n == 0) {
		/* keys/ may be new: make it durable before the slot in it */
		rc = be->ops->mkdir(be, KEYSTORE_DIR, err);
		if (rc == 0)
			rc = be->ops->sync_dir(be, ".", err);
		if (rc < 0)
			return rc;
	}
	slot_path(name, path, sizeof(path));
	rc = backend_write_atomic(be, path, slot, len, err);
	if (rc < 0)
		return rc;
	if (out_name)
		memcpy(out_name, name, sizeof(name));
	return 0;
}

int keystore_remove(struct backend *be, const char *name, struct mv_err *err)
{
	struct names nm;
	char path[64];
	bool found = false;
	size_t i;
	int rc;

	if (!is_slot_name(name))
		return mv_err_set(err, -EINVAL, "'%s' is not a key slot name",
				  name);
	rc = list_names(be, &nm, err);
	if (rc < 0)
		return rc;
	for (i = 0; i < nm.n; i++)
		found |= strcmp(nm.name[i], name) == 0;
	if (!found)
		return mv_err_set(err, -ENOENT, "no key slot %s in '%s'", name,
				  be->url);
	if (nm.n == 1)
		return mv_err_set(err, -EPERM,
				  "key slot %s is the last of '%s': without it "
				  "the repository cannot be opened",
				  name, be->url);
	slot_path(name, path, sizeof(path));
	rc = be->ops->remove(be, path, err);
	if (rc == 0)
		rc = be->ops->sync_dir(be, KEYSTORE_DIR, err);
	return rc;
}

/* One keystore_unlock(): what it opens with, and the slots that did not
 * open (rejected by the passphrase: tried; unreadable: bad). */
struct unlock {
	const uint8_t *repo_id;
	const char *pass;
	size_t pass_len;
	uint8_t **out_mk;
	char *out_name;
	size_t tried, bad;
};

/* Try slot name: 0 when it opened (*u->out_mk, u->out_name), 1 when the
 * next slot may (a damaged or vanished slot must not hide the others;
 * gone_bad: a vanished one counts as damaged), else a negative error. */
static int slot_try(struct backend *be, const char *name, bool gone_bad,
		    struct unlock *u, struct mv_err *err)
{
	struct mv_err one = MV_ERR_INIT;
	uint8_t *slot = NULL;
	size_t len = 0;
	int rc;

	rc = keystore_read(be, name, &slot, &len, &one);
	if (rc == 0)
		rc = keyslot_unwrap(slot, len, u->repo_id, u->pass, u->pass_len,
				    u->out_mk, NULL, &one);
	free(slot);
	if (rc == 0) {
		if (u->out_name)
			snprintf(u->out_name, KEYSTORE_NAME_LEN + 1, "%s",
				 name);
		return 0;
	}
	if (rc == -EKEYREJECTED)
		u->tried++;
	else if (rc == -EBADMSG || (gone_bad && rc == -ENOENT))
		u->bad++;
	else if (rc != -ENOENT)
		return mv_err_set(err, rc, "%s", one.msg);
	return 1;
}

int keystore_unlock(struct backend *be,
		    const uint8_t repo_id[KEYSLOT_REPO_ID_LEN],
		    const char *pass, size_t pass_len, const char *prefer,
		    uint8_t **out_mk, char out_name[KEYSTORE_NAME_LEN + 1],
		    struct mv_err *err)
{
	struct unlock u = {repo_id, pass, pass_len, out_mk, out_name, 0, 0};
	struct names nm;
	size_t i;
	int rc;

	/* the slot that opened last time is read without listing keys/
	 * first: a remote repository saves the listing's round trips (gone:
	 * removed by key remove, the listing tells the rest) */
	if (prefer) {
		rc = slot_try(be, prefer, false, &u, err);
		if (rc <= 0)
			return rc;
	}
	rc = list_names(be, &nm, err);
	if (rc < 0)
		return rc;
	if (nm.n == 0)
		return mv_err_set(err, -ENOKEY, "no key slot in '%s/%s'",
				  be->url, KEYSTORE_DIR);
	for (i = 0; i < nm.n; i++) {
		if (prefer && strcmp(nm.name[i], prefer) == 0)
			continue; /* tried above */
		rc = slot_try(be, nm.name[i], true, &u, err);
		if (rc <= 0)
			return rc;
	}
	if (u.tried)
		return mv_err_set(err, -EKEYREJECTED,
				  "wrong passphrase: no key slot of '%s' opens "
				  "with it (%zu tried%s)",
				  be->url, u.tried,
				  u.bad ? ", others damaged" : "");
	return mv_err_set(err, -EBADMSG,
			  "no key slot of '%s' can be read: %zu damaged",
			  be->url, u.bad);
}

int keystore_keyfile_write(const char *path, const void *data, size_t len,
			   struct mv_err *err)
{
	char tmp[4096];
	int fd = -1, rc;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return mv_err_set(err, -ENAMETOOLONG, "path too long: '%s'",
				  path);
	/* O_EXCL: a tmp left by a crash, or someone else's file, is not
	 * reused; fchmod: the umask does not widen or narrow 0600 */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0)
		return mv_err_set(err, -errno, "cannot create '%s': %s", tmp,
				  strerror(errno));
	if (fchmod(fd, 0600) < 0 || mv_write_full(fd, data, len) < 0 ||
	    fsync(fd) < 0) {
		rc = mv_err_set(err, -errno, "cannot write '%s': %s", tmp,
				strerror(errno));
		goto out_unlink;
	}
	if (close(fd) < 0) {
		fd = -1;
		rc = mv_err_set(err, -errno, "cannot write '%s': %s", tmp,
				strerror(errno));
		goto out_unlink;
	}
	fd = -1;
	/* link, not rename: an existing keyfile is never replaced */
	if (link(tmp, path) < 0) {
		rc = mv_err_set(err, -errno, "cannot create '%s': %s", path,
				strerror(errno));
		goto out_unlink;
	}
	unlink(tmp);
	/* tmp is path + ".tmp": cut it at the last slash for the directory */
	{
		char *slash = strrchr(tmp, '/');

		if (slash == tmp)
			slash[1] = '\0';
		else if (slash)
			*slash = '\0';
		else
			snprintf(tmp, sizeof(tmp), ".");
	}
	rc = mv_fsync_dir(tmp);
	if (rc < 0)
		return mv_err_set(err, rc, "cannot sync the directory of '%s'",
				  path);
	return 0;
out_unlink:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return rc;
}

int keystore_keyfile_read(const char *path, uint8_t **out, size_t *out_len,
			  struct mv_err *err)
{
	struct keyslot_info info;
	char *data = NULL;
	size_t len = 0;
	int rc;

	rc = mv_read_file(path, KEYSLOT_MAX_LEN, &data, &len, err);
	if (rc == -EFBIG)
		mv_err_prefix(err, "not a mailvault key file");
	if (rc < 0)
		goto out;
	rc = keyslot_parse(data, len, &info, err);
	if (rc < 0) {
		mv_err_prefix(err, "key file '%s'", path);
		goto out;
	}
	*out = (uint8_t *)data;
	*out_len = len;
	data = NULL;
out:
	free(data);
	return rc;
}
