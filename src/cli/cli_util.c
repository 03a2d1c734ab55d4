/* cli_util: what every command shares (src/cli/cli.h). */
#include "cli.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli_pass.h"
#include "repo.h"
#include "tree.h"

int cli_fail(const struct mv_err *err)
{
	fprintf(stderr, "mailvault: %s\n", mv_err_msg(err));
	if (err->code == -ENOKEY || err->code == -EKEYREJECTED)
		return MV_EXIT_BADKEY;
	if (err->damaged)
		return MV_EXIT_DAMAGED;
	/* -EBUSY: the writer lock, or an index another process held */
	return err->code == -EBUSY ? MV_EXIT_LOCKED : MV_EXIT_FAIL;
}

static struct cli_pass unlock_pass = CLI_PASS_INIT;

static int unlock_get_pass(void *arg, const char *location, const char **pass,
			   size_t *pass_len, struct mv_err *err)
{
	(void)arg;
	if (!unlock_pass.text) {
		char prompt[512];
		int rc;

		snprintf(prompt, sizeof(prompt),
			 "mailvault: passphrase for '%s': ", location);
		rc = cli_pass_get(&unlock_pass, prompt, 0, err);
		if (rc)
			return rc;
	}
	*pass = unlock_pass.text;
	*pass_len = unlock_pass.len;
	return 0;
}

void cli_unlock_setup(void)
{
	const char *kf = getenv("MAILVAULT_KEYFILE");
	struct repo_unlock u = {unlock_get_pass, NULL, kf && *kf ? kf : NULL};

	repo_set_unlock(&u);
}

void cli_unlock_release(void)
{
	cli_pass_release(&unlock_pass);
	repo_unlock_forget();
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "mailvault %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(see 'mailvault %s --help' or mailvault(1))\n", cmd);
	return MV_EXIT_USAGE;
}

const char *cli_repo_arg(const char *given)
{
	const char *env;

	if (given)
		return given;
	env = getenv("MAILVAULT_REPO");
	return env && *env ? env : NULL;
}

bool cli_is_tty(void)
{
	return isatty(2) != 0;
}

void cli_json_str(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

void cli_json_out(json_t *j)
{
	char *text = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

	puts(text ? text : "null");
	free(text);
	json_decref(j);
}

json_t *cli_json_entry(const struct tree_entry *e, const char *name)
{
	static const char *const types[] = {"unknown", "file", "dir", "symlink",
					    "fifo",    "chr",  "blk", "sock"};
	char when[48];
	struct tm tm;
	time_t t = (time_t)e->mtime_sec;

	gmtime_r(&t, &tm);
	strftime(when, 24, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + strlen(when), sizeof(when) - strlen(when), ".%09uZ",
		 (unsigned)e->mtime_nsec);
	return json_pack("{s:s?, s:s, s:i, s:I, s:I, s:s?, s:s?, s:I, s:s, "
			 "s:s?}",
			 "name", name, "type", types[e->type < 8 ? e->type : 0],
			 "mode", (int)(e->mode & 07777), "uid",
			 (json_int_t)e->uid, "gid", (json_int_t)e->gid, "user",
			 e->user, "group", e->group, "size",
			 (json_int_t)e->size, "mtime", when, "target",
			 e->type == TREE_LNK ? e->target : NULL);
}
