/*
 * fs_name: the names the mount shows for stored names.  A stored name is
 * any byte string without NUL; a name the kernel accepts is 1..255 bytes
 * without '/' and is neither "." nor "..".  Plain names pass unchanged;
 * the rest are escaped so that no stored name can ever be followed as a
 * path, and so that no two stored names share a shown name.
 */
#include "fs_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#define LONG_CUT 236 /* bytes of escaped text kept in a long form */

static bool is_plain(const char *name, size_t len)
{
	if (len == 0 || len > FS_NAME_MAX)
		return false;
	if ((len == 1 && name[0] == '.') ||
	    (len == 2 && name[0] == '.' && name[1] == '.'))
		return false;
	return memchr(name, '/', len) == NULL;
}

bool fs_name_is_hostile(const char *name, size_t len)
{
	return !is_plain(name, len);
}

static bool needs_pct(char c)
{
	return c == '%' || c == '/';
}

size_t fs_name_show(const char *name, size_t len, bool force_long, char *out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, o = 0, need = 1;

	if (is_plain(name, len) && !force_long) {
		memcpy(out, name, len);
		out[len] = '\0';
		return len;
	}
	for (i = 0; i < len; i++)
		need += needs_pct(name[i]) ? 3 : 1;
	if (force_long)
		need = FS_NAME_MAX + 1;
	out[o++] = '%';
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		size_t w = needs_pct(name[i]) ? 3 : 1;

		if (need > FS_NAME_MAX && o + w > LONG_CUT)
			break;
		if (w == 3) {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			out[o++] = (char)c;
		}
	}
	if (need > FS_NAME_MAX) {
		o += (size_t)snprintf(
			out + o, FS_NAME_MAX + 1 - o, "%%~%016llx",
			(unsigned long long)XXH3_64bits(name, len));
	}
	out[o] = '\0';
	return o;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int fs_name_parse(const char *shown, char *out, size_t *out_len)
{
	char check[FS_NAME_MAX + 1];
	size_t slen = strlen(shown), i, o = 0;

	if (slen == 0 || slen > FS_NAME_MAX)
		return -ENOENT;
	if (shown[0] != '%')
		return -ENOENT;
	if (strstr(shown, "%~"))
		return -ENAMETOOLONG;
	for (i = 1; i < slen; i++) {
		if (shown[i] == '%') {
			int hi, lo;

			if (i + 2 >= slen)
				return -ENOENT;
			hi = hexval(shown[i + 1]);
			lo = hexval(shown[i + 2]);
			if (hi < 0 || lo < 0)
				return -ENOENT;
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[o++] = shown[i];
		}
	}
	out[o] = '\0';
	/* Only the canonical form of a hostile name names it: "%abc" is not
	 * how "abc" is shown, nor "%%41" how "%A" is. */
	if (memchr(out, '\0', o) || is_plain(out, o))
		return -ENOENT;
	fs_name_show(out, o, false, check);
	if (strcmp(check, shown))
		return -ENOENT;
	*out_len = o;
	return 0;
}
