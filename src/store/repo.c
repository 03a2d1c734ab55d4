/*
 * repo: open/create repositories, the writer lock, chunk reads and the
 * write session (include/repo.h holds the crash-safety design notes).
 *
 * Workload: reads come from many FUSE threads at once (small messages,
 * one pread each); writes come from one ingest thread that appends records
 * in order.  The SQLite handle is shared under ix_lock; zstd contexts come
 * from small pools so no thread shares one.
 */
#include "repo_int.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <zstd.h>

#include "backend.h"
#include "chunker.h"
#include "crypt.h"
#include "diskcache.h"
#include "hash.h"
#include "index.h"
#include "keyslot.h"
#include "keystore.h"
#include "pack.h"

void repo_default_chunker(struct chunker_params *out)
{
	/* See docs/CHUNKING.md for the bake-off behind these numbers. */
	out->min_size = 16 << 10;
	out->avg_size = 64 << 10;
	out->max_size = 256 << 10;
	out->small_file = 256 << 10;
}

int repo_random_bytes(void *p, size_t n, struct mv_err *err)
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

static bool config_encrypted(const struct repo_config *c)
{
	return strcmp(c->encryption, "none") != 0;
}

/* The readable config.  An encrypted repository's holds no secret: its
 * hashing root comes from the master key (docs/FORMAT-2.md section 4);
 * the key mode and pack format lines come before the chunker's. */
static int config_format(const struct repo_config *c, char *out, size_t n)
{
	char id[2 * MV_REPO_ID_LEN + 1];
	char extra[96] = "", tail[80] = "";
	int len;

	mv_hex(c->id, MV_REPO_ID_LEN, id);
	if (config_encrypted(c))
		snprintf(extra, sizeof(extra), "key = %s\n", c->key_mode);
	if (c->packs > 1)
		snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra),
			 "packs = %u\n", c->packs);
	if (!config_encrypted(c)) {
		char secret[2 * MV_SECRET_LEN + 1];

		mv_hex(c->secret, MV_SECRET_LEN, secret);
		snprintf(tail, sizeof(tail), "secret = %s\n", secret);
		explicit_bzero(secret, sizeof(secret));
	}
	len = snprintf(out, n,
		       "# mailvault repository - see mailvault-format(5)\n"
		       "format = mailvault\n"
		       "version = %u\n"
		       "id = %s\n"
		       "encryption = %s\n"
		       "%s"
		       "chunker = fastcdc\n"
		       "chunk-min = %u\n"
		       "chunk-avg = %u\n"
		       "chunk-max = %u\n"
		       "small-file = %u\n"
		       "compression = zstd\n"
		       "zstd-level = %d\n"
		       "append-only = %s\n"
		       "%s",
		       c->version, id, c->encryption, extra,
		       c->chunker.min_size, c->chunker.avg_size,
		       c->chunker.max_size, c->chunker.small_file,
		       c->zstd_level,
		       (c->flags & REPO_APPEND_ONLY) ? "yes" : "no", tail);
	explicit_bzero(tail, sizeof(tail));
	return len;
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
		} else if (!strcmp(key, "key")) {
			bad = strcmp(val, "repokey") && strcmp(val, "keyfile");
			snprintf(c->key_mode, sizeof(c->key_mode), "%s", val);
		} else if (!strcmp(key, "packs")) {
			bad = parse_u32(val, &c->packs) != 0 || c->packs < 1 ||
			      c->packs > 2;
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
	if (!c->packs)
		c->packs = 1;
	/* an encrypted repository's secret comes from its master key */
	if (strcmp(c->encryption, "none") == 0 || !c->encryption[0])
		seen |= 16;
	else
		seen |= 8 | 16;
	if ((seen & 31) != 31)
		return mv_err_set(err, -EBADMSG,
				  "%s: not a mailvault "
				  "repository config (format, version, id "
				  "or secret missing)",
				  where);
	/* version 1 differs only in its directory encoding, which is still
	 * read; a writer moves the config to MV_FORMAT_VERSION (repo_open) */
	if (c->version < 1 || c->version > MV_FORMAT_VERSION)
		return mv_err_set(err, -EPROTONOSUPPORT,
				  "%s: format version "
				  "%u is not supported (this mailvault reads "
				  "versions 1 to %d)",
				  where, c->version, MV_FORMAT_VERSION);
	if (!c->encryption[0])
		snprintf(c->encryption, sizeof(c->encryption), "none");
	if (strcmp(c->encryption, "none") &&
	    strcmp(c->encryption, REPO_ENCRYPTION))
		return mv_err_set(err, -EPROTONOSUPPORT,
				  "%s: encryption '%s' "
				  "is not supported by this version",
				  where, c->encryption);
	if (config_encrypted(c) && (!c->key_mode[0] || c->packs < 2))
		return mv_err_set(err, -EBADMSG,
				  "%s: an encrypted repository needs "
				  "'key = repokey|keyfile' and 'packs = 2'",
				  where);
	return chunker_params_check(&c->chunker, err);
}

/* ---- open / init / close ------------------------------------------- */

/* repo_refresh() right after repo_open() asks the server nothing. */
#define REFRESH_AFTER_OPEN_NS (1000 * 1000000LL)

static int64_t mono_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

bool repo_is_network_fs(const char *path)
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
	r->lock_fd = -1;
	r->cache_lock_fd = -1;
	pthread_mutex_init(&r->ix_lock, NULL);
	pthread_mutex_init(&r->cctx.lock, NULL);
	pthread_mutex_init(&r->dctx.lock, NULL);
	pthread_mutex_init(&r->dict_lock, NULL);
	return r;
}

/* ---- keys (docs/FORMAT-2.md section 4) ------------------------------ */

static struct repo_unlock unlock_hook;
static bool unlock_refused; /* an unlock failed for want of the key */

/* Master keys opened by this process, by repository id: a second open of
 * the same repository (the mount after it daemonizes, a command that
 * opens twice) costs neither a question nor an Argon2id. */
#define MK_KEPT_MAX 4
static struct {
	uint8_t id[MV_REPO_ID_LEN];
	uint8_t *mk; /* sodium_malloc'ed */
	char slot[KEYSTORE_NAME_LEN + 1];
} mk_kept[MK_KEPT_MAX];
static pthread_mutex_t mk_kept_lock = PTHREAD_MUTEX_INITIALIZER;

void repo_set_unlock(const struct repo_unlock *u)
{
	if (u)
		unlock_hook = *u;
	else
		memset(&unlock_hook, 0, sizeof(unlock_hook));
}

bool repo_unlock_refused(void)
{
	return unlock_refused;
}

void repo_unlock_forget(void)
{
	size_t i;

	pthread_mutex_lock(&mk_kept_lock);
	for (i = 0; i < MK_KEPT_MAX; i++) {
		keyslot_key_free(mk_kept[i].mk);
		memset(&mk_kept[i], 0, sizeof(mk_kept[i]));
	}
	pthread_mutex_unlock(&mk_kept_lock);
}

static uint8_t *mk_dup(const uint8_t *mk)
{
	uint8_t *p = sodium_malloc(KEYSLOT_MK_LEN);

	if (p)
		memcpy(p, mk, KEYSLOT_MK_LEN);
	return p;
}

static void mk_keep(const uint8_t id[MV_REPO_ID_LEN], const uint8_t *mk,
		    const char *slot)
{
	size_t i, at = MK_KEPT_MAX - 1;

	pthread_mutex_lock(&mk_kept_lock);
	for (i = 0; i < MK_KEPT_MAX; i++)
		if (!mk_kept[i].mk ||
		    !memcmp(mk_kept[i].id, id, MV_REPO_ID_LEN)) {
			at = i;
			break;
		}
	keyslot_key_free(mk_kept[at].mk);
	memcpy(mk_kept[at].id, id, MV_REPO_ID_LEN);
	mk_kept[at].mk = mk_dup(mk);
	snprintf(mk_kept[at].slot, sizeof(mk_kept[at].slot), "%s", slot);
	pthread_mutex_unlock(&mk_kept_lock);
}

static uint8_t *mk_find(const uint8_t id[MV_REPO_ID_LEN], char *slot)
{
	uint8_t *mk = NULL;
	size_t i;

	pthread_mutex_lock(&mk_kept_lock);
	for (i = 0; i < MK_KEPT_MAX && !mk; i++)
		if (mk_kept[i].mk &&
		    !memcmp(mk_kept[i].id, id, MV_REPO_ID_LEN)) {
			mk = mk_dup(mk_kept[i].mk);
			memcpy(slot, mk_kept[i].slot, KEYSTORE_NAME_LEN + 1);
		}
	pthread_mutex_unlock(&mk_kept_lock);
	return mk;
}

/* The keys of an encrypted repository from its master key: the hashing
 * root (ids, Gear table, ptree boundary key derive from cfg.secret) and
 * the record keys of epoch 0.  Takes mk. */
static int repo_keys_set(struct repo *r, uint8_t *mk, struct mv_err *err)
{
	uint8_t k[CRYPT_KEY_LEN];
	int rc;

	r->mk = mk;
	r->pack_format = 2;
	r->key_epoch = 0;
	rc = crypt_derive(mk, CRYPT_SK_ID, 0, r->cfg.secret);
	if (!rc)
		rc = crypt_derive(mk, CRYPT_SK_DATA, r->key_epoch, k);
	if (!rc)
		rc = crypt_key_new(CRYPT_XCHACHA20, k, &r->key_data, err);
	if (!rc)
		rc = crypt_derive(mk, CRYPT_SK_META, r->key_epoch, k);
	if (!rc)
		rc = crypt_key_new(CRYPT_XCHACHA20, k, &r->key_meta, err);
	crypt_wipe(k, sizeof(k));
	if (rc)
		return mv_err_set(err, rc, "cannot derive the keys of '%s'",
				  r->location);
	return 0;
}

/* The pack format of new packs from the config and, for format 2 without
 * encryption, the CRYPT_NONE record keys (XXH3-128 tags: bit-rot caught,
 * nothing secret).  An encrypted repository's keys come from
 * repo_keys_set instead; format 1 packs need no key. */
static int repo_keys_none(struct repo *r, struct mv_err *err)
{
	int rc;

	if (config_encrypted(&r->cfg))
		return 0;
	r->pack_format = r->cfg.packs == 2 ? 2 : 1;
	r->key_epoch = 0;
	if (r->pack_format != 2 || r->key_data)
		return 0;
	rc = crypt_init(err);
	if (!rc)
		rc = crypt_key_new(CRYPT_NONE, NULL, &r->key_data, err);
	if (!rc)
		rc = crypt_key_new(CRYPT_NONE, NULL, &r->key_meta, err);
	return rc;
}

static int get_pass(const char *location, const char **pass, size_t *len,
		    struct mv_err *err)
{
	if (!unlock_hook.get_pass)
		return mv_err_set(err, -ENOKEY,
				  "'%s' is encrypted and no passphrase was "
				  "given",
				  location);
	return unlock_hook.get_pass(unlock_hook.arg, location, pass, len, err);
}

/* Open the master key of an encrypted repository: before the lock is
 * taken and before anything is written, so a wrong key changes nothing. */
static int repo_unlock_key(struct repo *r, struct mv_err *err);

/* The key slot that opened this repository last time on this machine,
 * tried first (FORMAT-2 section 5.4): each slot tried costs an Argon2id.
 * path gets the cache file's name ("" without a cache directory). */
static void slot_remembered(struct repo *r, char *path, size_t n,
			    char out[KEYSTORE_NAME_LEN + 1])
{
	char dir[PATH_MAX], *text = NULL;
	size_t len = 0;

	path[0] = '\0';
	if (repo_cache_dir(&r->cfg, dir, sizeof(dir), NULL))
		return;
	snprintf(path, n, "%s/key-slot", dir);
	if (mv_read_file(path, 64, &text, &len, NULL))
		return;
	if (len == KEYSTORE_NAME_LEN &&
	    strspn(text, "0123456789abcdef") == KEYSTORE_NAME_LEN)
		memcpy(out, text, KEYSTORE_NAME_LEN + 1);
	free(text);
}

static int repo_unlock(struct repo *r, struct mv_err *err)
{
	int rc = repo_unlock_key(r, err);

	if (rc == -ENOKEY || rc == -EKEYREJECTED)
		unlock_refused = true;
	return rc;
}

static int repo_unlock_key(struct repo *r, struct mv_err *err)
{
	const char *pass = NULL;
	uint8_t *mk = NULL, *slot = NULL;
	size_t pass_len = 0, slot_len = 0;
	char name[KEYSTORE_NAME_LEN + 1] = "";
	int rc;

	if (!config_encrypted(&r->cfg))
		return 0;
	crypt_init(NULL);
	mk = mk_find(r->cfg.id, name);
	if (mk)
		goto found;
	if (!strcmp(r->cfg.key_mode, "keyfile")) {
		const char *path = unlock_hook.keyfile;

		if (!path || !*path)
			return mv_err_set(err, -ENOKEY,
					  "'%s' keeps its key in a key file: "
					  "name it with MAILVAULT_KEYFILE",
					  r->location);
		rc = keystore_keyfile_read(path, &slot, &slot_len, err);
		if (rc)
			return rc;
		rc = get_pass(r->location, &pass, &pass_len, err);
		if (!rc)
			rc = keyslot_unwrap(slot, slot_len, r->cfg.id, pass,
					    pass_len, &mk, NULL, err);
		free(slot);
		if (rc == -EKEYREJECTED) {
			mv_err_clear(err);
			return mv_err_set(err, rc,
					  "wrong passphrase: the key file "
					  "'%s' of '%s' does not open with it",
					  path, r->location);
		}
		if (rc)
			return rc;
	} else {
		char prefer[KEYSTORE_NAME_LEN + 1] = "";
		char remember[PATH_MAX + 16];

		slot_remembered(r, remember, sizeof(remember), prefer);
		rc = get_pass(r->location, &pass, &pass_len, err);
		if (!rc)
			rc = keystore_unlock(r->be, r->cfg.id, pass, pass_len,
					     prefer[0] ? prefer : NULL, &mk,
					     name, err);
		if (rc)
			return rc;
		/* best effort: a cache that cannot be written costs time */
		if (remember[0] && strcmp(prefer, name))
			(void)mv_write_file_atomic_mode(
				remember, name, strlen(name), 0600, NULL);
	}
	mk_keep(r->cfg.id, mk, name);
found:
	snprintf(r->slot_name, sizeof(r->slot_name), "%s", name);
	return repo_keys_set(r, mk, err);
}

const uint8_t *repo_master_key(const struct repo *r, const char **out_slot)
{
	if (out_slot)
		*out_slot = r->slot_name;
	return r->mk;
}

/* init of an encrypted repository: a new master key wrapped in its first
 * slot, written to the key file (which must not exist) or kept in
 * slot_out for keys/ - all before any file of the repository exists. */
static int repo_init_key(struct repo *r, const struct repo_init_opts *o,
			 struct mv_buf *slot_out, struct mv_err *err)
{
	struct keyslot_params kp;
	uint8_t *mk;
	int rc;

	if (!o->pass || !o->pass_len)
		return mv_err_set(err, -ENOKEY,
				  "an encrypted repository needs a passphrase");
	rc = crypt_init(err);
	if (rc)
		return rc;
	if (o->kdf)
		kp = *o->kdf;
	else if ((rc = keyslot_calibrate(&kp, NULL, err)))
		return rc;
	mk = sodium_malloc(KEYSLOT_MK_LEN);
	if (!mk)
		return mv_err_set(err, -ENOMEM, "out of memory");
	crypt_random(mk, KEYSLOT_MK_LEN);
	rc = keyslot_wrap(mk, r->cfg.id, o->pass, o->pass_len, &kp, slot_out,
			  NULL, err);
	if (!rc && o->keyfile)
		rc = keystore_keyfile_write(o->keyfile, slot_out->data,
					    slot_out->len, err);
	if (rc) {
		keyslot_key_free(mk);
		return rc;
	}
	snprintf(r->cfg.encryption, sizeof(r->cfg.encryption), "%s",
		 REPO_ENCRYPTION);
	snprintf(r->cfg.key_mode, sizeof(r->cfg.key_mode), "%s",
		 o->keyfile ? "keyfile" : "repokey");
	r->cfg.packs = 2;
	mk_keep(r->cfg.id, mk, "");
	return repo_keys_set(r, mk, err);
}

/* Open the cached index.db of a segment repository, made afresh when it
 * is missing or does not open (it is only a cache of index/). */
static int open_cached(struct repo *r, bool create, struct mv_err *err)
{
	char side[PATH_MAX + 8];
	int rc = -ENOENT;

	if (!create && access(r->index_path, F_OK) == 0) {
		struct mv_err e = MV_ERR_INIT;

		rc = index_open(r->index_path, false, false, false, &r->ix, &e);
		if (!rc)
			rc = repo_segment_schema(r, &e);
		if (rc) {
			index_close(r->ix);
			r->ix = NULL;
		}
	}
	if (!rc)
		return 0;
	unlink(r->index_path);
	snprintf(side, sizeof(side), "%s-wal", r->index_path);
	unlink(side);
	snprintf(side, sizeof(side), "%s-shm", r->index_path);
	unlink(side);
	rc = index_open(r->index_path, true, false, false, &r->ix, err);
	if (!rc)
		rc = repo_segment_schema(r, err);
	return rc;
}

/* Bring the cached index up to date with index/, again when a segment
 * went away while it was read (a prune replaced it). */
static int segments_sync(struct repo *r, bool *out_changed, struct mv_err *err)
{
	int i, rc = 0;

	for (i = 0; i < 4; i++) {
		struct mv_err e = MV_ERR_INIT;

		rc = repo_segment_sync(r, out_changed, &e);
		if (rc == -EAGAIN && i < 3)
			continue;
		if (rc && e.damaged)
			mv_err_set_damaged(err, rc, "%s", mv_err_msg(&e));
		else if (rc)
			mv_err_set(err, rc, "%s", mv_err_msg(&e));
		break;
	}
	return rc;
}

/* The index of an encrypted repository: commit segments under index/
 * replayed into the cache, or, for a repository written before segments
 * existed, index.sealed until the first write replaces it. */
static int open_segments(struct repo *r, bool create, struct mv_err *err)
{
	size_t n = 0;
	uint64_t size;
	int rc;

	r->segments = true;
	if (create) {
		rc = open_cached(r, true, err);
		if (!rc)
			rc = index_begin(r->ix, err);
		if (rc)
			return rc;
		rc = repo_segment_publish(r, true, NULL, err);
		if (!rc)
			return index_commit(r->ix, err);
		index_rollback(r->ix);
		return rc;
	}
	rc = repo_segment_count(r, &n, true, err);
	if (rc)
		return rc;
	if (!n && !r->be->ops->stat(r->be, "index.sealed", &size, NULL, NULL)) {
		repo_segment_unkeep(r);
		r->seg_legacy = true;
		rc = repo_remote_index_fetch(r, err);
		if (!rc)
			rc = index_open(r->index_path, false, false, false,
					&r->ix, err);
		if (!rc)
			rc = repo_segment_schema(r, err);
		if (!rc)
			repo_stamp_remember(r);
		return rc;
	}
	rc = open_cached(r, false, err);
	if (!rc)
		rc = segments_sync(r, NULL, err); /* uses the listing kept */
	repo_segment_unkeep(r);
	if (!rc && !n)
		rc = mv_err_set_damaged(err, -ENOENT,
					"repository '%s' has no index: "
					"'index/' holds no segment",
					r->location);
	return rc;
}

static int open_index(struct repo *r, bool create, bool writable,
		      struct mv_err *err)
{
	const char *root = r->be->ops->local_root(r->be);
	bool netfs = false;
	int rc;

	if (!repo_index_is_cached(r)) {
		if (asprintf(&r->index_path, "%s/index.db", root) < 0)
			return mv_err_set(err, -ENOMEM, "out of memory");
		netfs = repo_is_network_fs(root);
	} else {
		char dir[PATH_MAX];

		rc = repo_cache_dir(&r->cfg, dir, sizeof(dir), err);
		if (rc)
			return rc;
		if (asprintf(&r->index_path, "%s/index.db", dir) < 0 ||
		    asprintf(&r->stamp_path, "%s/index.stamp", dir) < 0 ||
		    asprintf(&r->pending_path, "%s/pending-packs", dir) < 0)
			return mv_err_set(err, -ENOMEM, "out of memory");
		r->remote = true;
		/* records already fetched over the network; a local
		 * repository (encrypted, so its index is cached) reads its
		 * packs directly and would only double every read here */
		if (!root) {
			char chunks[PATH_MAX + 8];

			snprintf(chunks, sizeof(chunks), "%s/chunks", dir);
			r->dcache = diskcache_open(chunks, 0);
		}
		if (repo_uses_segments(r))
			return open_segments(r, create, err);
		if (create) {
			unlink(r->index_path);
		} else {
			rc = repo_remote_index_fetch(r, err);
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
		repo_stamp_remember(r);
	if (create && r->remote)
		rc = repo_remote_index_publish(r, err);
	return rc;
}

int repo_init(const char *location, const struct repo_init_opts *opts,
	      struct mv_err *err)
{
	char text[CONFIG_MAX];
	struct mv_buf slot = MV_BUF_INIT;
	struct repo *r = NULL;
	bool keyfile_made = false;
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
	r->cfg.packs = 2; /* new repositories: format 2 packs */
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
	rc = repo_random_bytes(r->cfg.id, MV_REPO_ID_LEN, err);
	/* an encrypted repository's hashing root is its master key's: a
	 * copy cannot share another's (and must not write it in clear) */
	if (!rc && opts && opts->copy_from &&
	    (opts->encrypt || config_encrypted(opts->copy_from)))
		rc = mv_err_set(err, -EINVAL,
				"--copy-chunker-params works between "
				"unencrypted repositories only");
	if (rc)
		goto out;
	if (opts && opts->encrypt) {
		rc = repo_init_key(r, opts, &slot, err);
		keyfile_made = !rc && opts->keyfile;
	} else if (opts && opts->copy_from) {
		memcpy(r->cfg.secret, opts->copy_from->secret, MV_SECRET_LEN);
	} else {
		rc = repo_random_bytes(r->cfg.secret, MV_SECRET_LEN, err);
	}
	if (!rc && opts && opts->encrypt && !opts->keyfile)
		rc = keystore_write(r->be, slot.data, slot.len, NULL, err);
	if (!rc)
		rc = repo_keys_none(r, err);
	if (!rc)
		rc = r->be->ops->mkdir(r->be, "packs", err);
	if (!rc)
		rc = open_index(r, true, true, err);
	if (rc)
		goto out;
	n = config_format(&r->cfg, text, sizeof(text));
	/* the config goes last: its presence means the repository exists */
	rc = backend_write_atomic(r->be, "config", text, (size_t)n, err);
	explicit_bzero(text, sizeof(text));
out:
	/* a key file whose repository was not made opens nothing */
	if (rc && keyfile_made)
		unlink(opts->keyfile);
	mv_buf_release(&slot);
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
	/* a plain remote repository's index is asked next (an encrypted
	 * one has none: the open then fails at no cost) */
	if (r->be->ops->open_ahead)
		r->be->ops->open_ahead(r->be, "index.db");
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
	rc = repo_unlock(r, err);
	if (!rc)
		rc = repo_keys_none(r, err);
	if (rc)
		goto fail;
	rc = hasher_new(r->cfg.secret, MV_SECRET_LEN, &r->hasher, err);
	if (rc)
		goto fail;
	if (flags & REPO_OPEN_WRITE) {
		rc = repo_lock_take(r, flags & REPO_OPEN_WAIT,
				    (flags & REPO_OPEN_SHARED) &&
					    repo_uses_segments(r),
				    err);
		if (rc)
			goto fail;
	}
	/* what a writer adds (ptree directories) an older binary cannot
	 * read: say so in the config before writing anything */
	if ((flags & REPO_OPEN_WRITE) && r->cfg.version < MV_FORMAT_VERSION) {
		char cfg[CONFIG_MAX];
		int n;

		r->cfg.version = MV_FORMAT_VERSION;
		n = config_format(&r->cfg, cfg, sizeof(cfg));
		rc = backend_write_atomic(r->be, "config", cfg, (size_t)n, err);
		explicit_bzero(cfg, sizeof(cfg));
		if (rc)
			goto fail;
	}
	rc = open_index(r, false, flags & REPO_OPEN_WRITE, err);
	if (rc)
		goto fail;
	index_data_version(r->ix, &r->data_version, NULL);
	r->opened_ns = mono_now_ns();
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
	repo_segment_unkeep(r);
	repo_lock_release(r);
	backend_close(r->be);
	hasher_free(r->hasher);
	for (i = 0; i < r->cctx.n; i++)
		ZSTD_freeCCtx(r->cctx.items[i]);
	for (i = 0; i < r->dctx.n; i++)
		ZSTD_freeDCtx(r->dctx.items[i]);
	while (r->dicts) {
		struct repo_dict *d = r->dicts;

		r->dicts = d->next;
		repo_dict_free(d);
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
	crypt_key_free(r->key_data);
	crypt_key_free(r->key_meta);
	keyslot_key_free(r->mk);
	explicit_bzero(&r->cfg, sizeof(r->cfg));
	free(r);
}

int repo_before_fork(struct repo *r, struct mv_err *err)
{
	if (r->writer || r->locked)
		return mv_err_set(err, -EBUSY,
				  "'%s' is open for writing: it cannot be "
				  "handed to another process",
				  r->location);
	diskcache_settle(r->dcache);
	diskcache_settle(r->dcache_parked);
	pthread_mutex_lock(&r->ix_lock);
	index_close(r->ix);
	r->ix = NULL;
	pthread_mutex_unlock(&r->ix_lock);
	return 0;
}

int repo_after_fork(struct repo *r, struct mv_err *err)
{
	const char *root = r->be->ops->local_root(r->be);
	bool netfs = !r->remote && root && repo_is_network_fs(root);
	int rc;

	pthread_mutex_lock(&r->ix_lock);
	rc = index_open(r->index_path, false, netfs, false, &r->ix, err);
	if (rc == -EROFS || (rc && access(r->index_path, W_OK))) {
		mv_err_clear(err);
		rc = index_open(r->index_path, false, netfs, true, &r->ix, err);
	}
	if (!rc && r->segments)
		rc = repo_segment_schema(r, err);
	if (!rc)
		rc = index_data_version(r->ix, &r->data_version, err);
	pthread_mutex_unlock(&r->ix_lock);
	return rc;
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
	/* what repo_open() validated a moment ago needs no request (a
	 * mount's first listing follows its open) */
	if (r->remote && !r->writer &&
	    mono_now_ns() - r->opened_ns < REFRESH_AFTER_OPEN_NS)
		return 0;
	pthread_mutex_lock(&r->ix_lock);
	if (r->segments && r->seg_legacy && !r->writer) {
		size_t n = 0;

		/* another machine's first write replaced index.sealed */
		if (!repo_segment_count(r, &n, false, NULL) && n)
			r->seg_legacy = false;
	}
	if (r->segments && !r->seg_legacy && !r->writer) {
		bool applied = false;

		rc = segments_sync(r, &applied, err);
		if (!rc)
			rc = index_data_version(r->ix, &v, err);
		if (!rc && (applied || v != r->data_version)) {
			r->data_version = v;
			*out_changed = true;
			if (r->pack_names)
				memset(r->pack_names, 0,
				       (size_t)r->npack_names *
					       sizeof(*r->pack_names));
		}
		pthread_mutex_unlock(&r->ix_lock);
		return rc;
	}
	if (r->remote && !r->writer) {
		char *s = NULL;

		rc = repo_remote_index_fetch(r, err);
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
	if (r->segments) {
		/* one segment naming the snapshot deleted */
		rc = index_begin(r->ix, err);
		if (!rc)
			rc = index_snapshot_delete(r->ix, id, err);
		if (!rc)
			rc = repo_segment_publish(r, false, NULL, err);
		if (!rc)
			rc = index_commit(r->ix, err);
		else
			index_rollback(r->ix);
		pthread_mutex_unlock(&r->ix_lock);
		return rc;
	}
	rc = index_snapshot_delete(r->ix, id, err);
	if (!rc && r->remote)
		rc = repo_remote_index_publish(r, err);
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

struct index *repo_index(struct repo *r)
{
	return r->ix;
}

const char *repo_index_path(const struct repo *r)
{
	return r->index_path;
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
	if (!rc && !(flags & REPO_OPEN_NO_KEY))
		rc = repo_unlock(r, err);
	if (!rc)
		rc = repo_keys_none(r, err);
	if (!rc)
		rc = hasher_new(r->cfg.secret, MV_SECRET_LEN, &r->hasher, err);
	if (!rc && (flags & REPO_OPEN_WRITE))
		rc = repo_lock_take(r, flags & REPO_OPEN_WAIT, false, err);
	if (rc)
		goto fail;
	root = r->be->ops->local_root(r->be);
	if (!repo_index_is_cached(r)) {
		if (asprintf(&r->index_path, "%s/index.db", root) < 0)
			r->index_path = NULL;
	} else {
		rc = repo_cache_dir(&r->cfg, dir, sizeof(dir), err);
		if (rc)
			goto fail;
		r->remote = true;
		r->segments = repo_uses_segments(r);
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
	rc = index_open(r->index_path, false, root && repo_is_network_fs(root),
			false, &r->ix, err);
	if (!rc && r->segments) {
		/* a base segment of the new index, replacing every segment
		 * listed (and index.sealed) */
		r->seg_legacy = false;
		rc = repo_segment_schema(r, err);
		if (!rc)
			rc = index_begin(r->ix, err);
		if (!rc) {
			rc = repo_segment_publish(r, true, NULL, err);
			if (!rc)
				rc = index_commit(r->ix, err);
			else
				index_rollback(r->ix);
		}
	} else if (!rc && r->remote) {
		rc = repo_remote_index_publish(r, err);
	}
	if (!rc)
		index_data_version(r->ix, &r->data_version, NULL);
out:
	pthread_mutex_unlock(&r->ix_lock);
	return rc;
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
