/*
 * formats_plugin: the mailvault binary's side of mailvault-formats.so.
 *
 * Each function the rest of mailvault calls in the plugin has a forwarding
 * function of the same name and type here.  The first call loads the
 * plugin (once, under pthread_once; RTLD_NOW so a broken install fails at
 * load, not in the middle of a backup) and resolves every entry point;
 * later calls are one indirect jump.  The plugin in turn calls the rest of
 * mailvault through the binary's exported symbols (-rdynamic), and is
 * linked -Bsymbolic so the calls between its own functions stay inside
 * it.  See include/formats.h for why the split exists.
 */
#include "formats.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../cli/cli.h"
#include "mail_crypt.h"
#include "mail_msg.h"
#include "restore.h"
#include "source.h"
#include "source_mailcow.h"

#ifndef MV_PLUGIN_DIR
#define MV_PLUGIN_DIR "/usr/local/lib/mailvault"
#endif

/* The plugin's entry points, typed from the declarations their callers
 * use, so a mismatch is a compile error. */
static struct {
	__typeof__(source_tar_read) *source_tar_read;
	__typeof__(source_mailcow_filter) *source_mailcow_filter;
	__typeof__(source_mailcow_export) *source_mailcow_export;
	__typeof__(restore_export_tar) *restore_export_tar;
	__typeof__(mail_msg_parse) *mail_msg_parse;
	__typeof__(mail_msg_release) *mail_msg_release;
	__typeof__(mail_crypt_zlib_decode) *mail_crypt_zlib_decode;
	__typeof__(cmd_restore_mail) *cmd_restore_mail;
} api;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static void *handle;
static char load_error[768];

/* Append to load_error (vsnprintf: a long path is cut, never overrun). */
static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void note(const char *fmt, ...)
{
	size_t used = strlen(load_error);
	va_list ap;

	if (used + 1 >= sizeof(load_error))
		return;
	va_start(ap, fmt);
	vsnprintf(load_error + used, sizeof(load_error) - used, fmt, ap);
	va_end(ap);
}

static void *try_open(const char *path)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);

	if (!h)
		note("%s%s", *load_error ? "; " : "", dlerror());
	return h;
}

/* dlsym returns an object pointer; POSIX guarantees it converts to the
 * function pointer it is, and memcpy says so without a cast. */
#define RESOLVE(name)                                                     \
	do {                                                              \
		void *sym_ = dlsym(h, #name);                             \
		if (!sym_) {                                              \
			note("%s: no symbol '%s' (a plugin from another " \
			     "mailvault version?)",                       \
			     path, #name);                                \
			goto fail;                                        \
		}                                                         \
		memcpy(&api.name, &sym_, sizeof(sym_));                   \
	} while (0)

/* Build dir/name in path; false when it does not fit. */
static bool join(char *path, size_t size, const char *dir, const char *name)
{
	int n = snprintf(path, size, "%s/%s", dir, name);

	return n > 0 && (size_t)n < size;
}

static void load(void)
{
	const char *env = getenv("MAILVAULT_PLUGIN");
	char path[PATH_MAX], self[PATH_MAX];
	ssize_t n;
	void *h = NULL;

	if (env && *env) {
		snprintf(path, sizeof(path), "%s", env);
		h = try_open(path);
	} else {
		n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n > 0) {
			char *slash;

			self[n] = '\0';
			slash = strrchr(self, '/');
			if (slash)
				*slash = '\0';
			if (join(path, sizeof(path), self, FORMATS_PLUGIN_NAME))
				h = try_open(path);
		}
		if (!h && join(path, sizeof(path), MV_PLUGIN_DIR,
			       FORMATS_PLUGIN_NAME))
			h = try_open(path);
	}
	if (!h)
		return;
	RESOLVE(source_tar_read);
	RESOLVE(source_mailcow_filter);
	RESOLVE(source_mailcow_export);
	RESOLVE(restore_export_tar);
	RESOLVE(mail_msg_parse);
	RESOLVE(mail_msg_release);
	RESOLVE(mail_crypt_zlib_decode);
	RESOLVE(cmd_restore_mail);
	handle = h;
	return;
fail:
	memset(&api, 0, sizeof(api));
	dlclose(h);
}

int formats_require(struct mv_err *err)
{
	pthread_once(&load_once, load);
	if (handle)
		return 0;
	return mv_err_set(
		err, -ELIBACC,
		"cannot load the formats plugin (tar, MIME, "
		"gzip, IMAP): %s; reinstall mailvault ('make install' "
		"puts it in %s)",
		load_error, MV_PLUGIN_DIR);
}

int source_tar_read(struct ingest *ing, const struct source_tar_opts *o,
		    struct mv_err *err)
{
	int rc = formats_require(err);

	return rc ? rc : api.source_tar_read(ing, o, err);
}

int source_mailcow_filter(void *ctx, struct ingest *ing, int dirfd,
			  const char *name, const char *path,
			  const struct tree_entry *meta, struct mv_err *err)
{
	int rc = formats_require(err);

	return rc ? rc
		  : api.source_mailcow_filter(ctx, ing, dirfd, name, path, meta,
					      err);
}

int source_mailcow_export(struct repo *r, const struct tree_entry *e,
			  const char *outdir, unsigned *archives,
			  struct mv_err *err)
{
	int rc = formats_require(err);

	return rc ? rc : api.source_mailcow_export(r, e, outdir, archives, err);
}

int restore_export_tar(struct repo *r, const struct tree_entry *e, int fd,
		       bool gz, struct mv_err *err)
{
	int rc = formats_require(err);

	return rc ? rc : api.restore_export_tar(r, e, fd, gz, err);
}

int mail_msg_parse(const void *p, size_t n, int64_t fallback_date,
		   unsigned opts, struct mail_msg *out, struct mv_err *err)
{
	int rc = formats_require(err);

	return rc ? rc
		  : api.mail_msg_parse(p, n, fallback_date, opts, out, err);
}

void mail_msg_release(struct mail_msg *m)
{
	/* without the plugin no message was parsed: nothing to free */
	if (formats_require(NULL) == 0)
		api.mail_msg_release(m);
}

int mail_crypt_zlib_decode(const uint8_t *p, size_t n, size_t max_out,
			   struct mv_buf *out, struct mv_err *err)
{
	int rc = formats_require(err);

	return rc ? rc : api.mail_crypt_zlib_decode(p, n, max_out, out, err);
}

/* restore-mail is IMAP from its first step to its last: the whole command
 * lives in the plugin, with libetpan and what it brings. */
int cmd_restore_mail(int argc, char **argv)
{
	struct mv_err err = MV_ERR_INIT;

	if (formats_require(&err))
		return cli_fail(&err);
	return api.cmd_restore_mail(argc, argv);
}
