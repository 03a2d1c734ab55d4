/* fs_opts: the -o options of "mailvault mount" (include/fs.h). */
#include "fs.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void fs_opts_init(struct fs_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->cache_mib = FS_CACHE_DEFAULT_MIB;
	o->pack_ahead_mib = -1;
}

/* The number after "key=" of opt (n bytes) into num (32 bytes). */
static bool opt_num(const char *opt, size_t n, const char *key, char *num)
{
	size_t k = strlen(key);

	if (n <= k || n - k >= 32 || memcmp(opt, key, k))
		return false;
	memcpy(num, opt + k, n - k);
	num[n - k] = '\0';
	return true;
}

static int parse_one(struct fs_opts *o, const char *opt, size_t n,
		     struct mv_err *err)
{
	static const char cs[] = "cache_size=";
	char num[32];
	char *end;

	if (n == 0 || (n == 2 && !memcmp(opt, "ro", 2)))
		return 0;
	if (n == 11 && !memcmp(opt, "allow_other", 11)) {
		o->allow_other = true;
		o->default_permissions = true;
		return 0;
	}
	if (n == 19 && !memcmp(opt, "default_permissions", 19)) {
		o->default_permissions = true;
		return 0;
	}
	if (n == 5 && !memcmp(opt, "debug", 5)) {
		o->debug = true;
		o->foreground = true;
		return 0;
	}
	if (n > sizeof(cs) - 1 && n - (sizeof(cs) - 1) < sizeof(num) &&
	    !memcmp(opt, cs, sizeof(cs) - 1)) {
		unsigned long v;

		memcpy(num, opt + sizeof(cs) - 1, n - (sizeof(cs) - 1));
		num[n - (sizeof(cs) - 1)] = '\0';
		errno = 0;
		v = strtoul(num, &end, 10);
		if (errno || end == num || *end || v < FS_CACHE_MIN_MIB ||
		    v > 1024 * 1024)
			return mv_err_set(err, -EINVAL,
					  "cannot use cache_size '%s': give "
					  "MiB, at least %d",
					  num, FS_CACHE_MIN_MIB);
		o->cache_mib = (unsigned)v;
		return 0;
	}
	if (opt_num(opt, n, "pack_ahead=", num)) {
		unsigned long v;

		errno = 0;
		v = strtoul(num, &end, 10);
		if (errno || end == num || *end || v > FS_PACK_AHEAD_MAX_MIB)
			return mv_err_set(err, -EINVAL,
					  "cannot use pack_ahead '%s': give "
					  "MiB, 0 to %d",
					  num, FS_PACK_AHEAD_MAX_MIB);
		o->pack_ahead_mib = (int)v;
		return 0;
	}
	if (n == 2 && !memcmp(opt, "rw", 2))
		return mv_err_set(err, -EINVAL,
				  "cannot mount read-write: snapshots are "
				  "read-only");
	return mv_err_set(err, -EINVAL, "unknown mount option '%.*s'", (int)n,
			  opt);
}

int fs_opts_parse(struct fs_opts *o, const char *arg, struct mv_err *err)
{
	const char *p = arg;

	for (;;) {
		size_t n = strcspn(p, ",");
		int rc = parse_one(o, p, n, err);

		if (rc)
			return rc;
		if (!p[n])
			return 0;
		p += n + 1;
	}
}
