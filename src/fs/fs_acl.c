/*
 * fs_acl: stored POSIX ACL text to the binary value of the
 * system.posix_acl_access / system.posix_acl_default xattrs, which is what
 * getfacl, rsync -A and tar --acls read through the mount.  libacl's
 * acl_from_text() would resolve user names against the mounting host's
 * user database, which is the wrong one for a backup of another machine,
 * so only numeric qualifiers (or libarchive's "name:perms:id") are used.
 */
#include "fs_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ACL_XATTR_VERSION 2
#define ACL_UNDEFINED 0xffffffffu
#define ACL_MAX_ENTRIES 1024

enum acl_tag {
	TAG_USER_OBJ = 0x01,
	TAG_USER = 0x02,
	TAG_GROUP_OBJ = 0x04,
	TAG_GROUP = 0x08,
	TAG_MASK = 0x10,
	TAG_OTHER = 0x20,
};

struct acl_ent {
	uint16_t tag;
	uint16_t perm;
	uint32_t id;
};

static int tag_of(const char *s, size_t n)
{
	static const struct {
		const char *name;
		int tag;
	} tags[] = {{"user", TAG_USER_OBJ},   {"u", TAG_USER_OBJ},
		    {"group", TAG_GROUP_OBJ}, {"g", TAG_GROUP_OBJ},
		    {"mask", TAG_MASK},	      {"m", TAG_MASK},
		    {"other", TAG_OTHER},     {"o", TAG_OTHER}};
	size_t i;

	for (i = 0; i < MV_ARRAY_SIZE(tags); i++)
		if (strlen(tags[i].name) == n && !memcmp(tags[i].name, s, n))
			return tags[i].tag;
	return -1;
}

static int parse_perm(const char *s, size_t n, uint16_t *out)
{
	size_t i;

	*out = 0;
	if (n == 0 || n > 3)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		switch (s[i]) {
		case 'r':
			*out |= 4;
			break;
		case 'w':
			*out |= 2;
			break;
		case 'x':
			*out |= 1;
			break;
		case '-':
			break;
		default:
			return -EINVAL;
		}
	}
	return 0;
}

static int parse_id(const char *s, size_t n, uint32_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0 || n > 10)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v >= ACL_UNDEFINED)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* One entry "tag:qualifier:perms[:id]", blanks and comments trimmed. */
static int parse_entry(const char *s, size_t n, struct acl_ent *out)
{
	const char *f[4];
	size_t fl[4], nf = 0, i, start = 0;
	int tag, rc;

	for (i = 0; i <= n; i++) {
		if (i == n || s[i] == ':') {
			if (nf == 4)
				return -EINVAL;
			f[nf] = s + start;
			fl[nf++] = i - start;
			start = i + 1;
		}
	}
	if (nf < 3)
		return -EINVAL;
	tag = tag_of(f[0], fl[0]);
	if (tag < 0)
		return -EINVAL;
	rc = parse_perm(f[2], fl[2], &out->perm);
	if (rc)
		return rc;
	out->id = ACL_UNDEFINED;
	if (fl[1] > 0) {
		if (tag == TAG_USER_OBJ)
			tag = TAG_USER;
		else if (tag == TAG_GROUP_OBJ)
			tag = TAG_GROUP;
		else
			return -EINVAL;
		/* numeric qualifier, else the id libarchive appends */
		if (parse_id(f[1], fl[1], &out->id) &&
		    (nf < 4 || parse_id(f[3], fl[3], &out->id)))
			return -EINVAL;
	}
	out->tag = (uint16_t)tag;
	return 0;
}

static int ent_cmp(const void *a, const void *b)
{
	const struct acl_ent *x = a, *y = b;

	if (x->tag != y->tag)
		return x->tag < y->tag ? -1 : 1;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return 0;
}

int fs_acl_to_xattr(const char *text, struct mv_buf *out)
{
	struct acl_ent ents[64], *e = ents, *big = NULL;
	size_t n = 0, cap = MV_ARRAY_SIZE(ents), i;
	const char *p = text;
	int rc = 0;

	while (*p) {
		const char *end = p + strcspn(p, ",\n");
		const char *a = p, *b = end, *hash;

		p = *end ? end + 1 : end;
		hash = memchr(a, '#', (size_t)(b - a));
		if (hash)
			b = hash;
		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a &&
		       (b[-1] == ' ' || b[-1] == '\t' || b[-1] == '\r'))
			b--;
		if (a == b)
			continue;
		if (n == cap) {
			struct acl_ent *nb;

			if (cap >= ACL_MAX_ENTRIES) {
				rc = -EINVAL;
				goto out;
			}
			nb = malloc(cap * 2 * sizeof(*nb));
			if (!nb) {
				rc = -ENOMEM;
				goto out;
			}
			memcpy(nb, e, n * sizeof(*nb));
			free(big);
			big = e = nb;
			cap *= 2;
		}
		rc = parse_entry(a, (size_t)(b - a), &e[n]);
		if (rc)
			goto out;
		n++;
	}
	if (n == 0) {
		rc = -EINVAL;
		goto out;
	}
	qsort(e, n, sizeof(*e), ent_cmp);
	for (i = 1; i < n; i++) {
		if (!ent_cmp(&e[i - 1], &e[i])) {
			rc = -EINVAL;
			goto out;
		}
	}
	mv_buf_reset(out);
	rc = mv_buf_put_le32(out, ACL_XATTR_VERSION);
	for (i = 0; i < n && !rc; i++) {
		uint8_t rec[8];

		rec[0] = (uint8_t)e[i].tag;
		rec[1] = (uint8_t)(e[i].tag >> 8);
		rec[2] = (uint8_t)e[i].perm;
		rec[3] = (uint8_t)(e[i].perm >> 8);
		mv_put_le32(rec + 4, e[i].id);
		rc = mv_buf_append(out, rec, sizeof(rec));
	}
out:
	free(big);
	return rc;
}
