/*
 * policy_eval: apply a retention policy to a list of snapshot times, for
 * comparing mailvault's decisions with `borg prune --dry-run --list`.
 *
 * usage: policy_eval [--now TIME] [--keep-last N] [--keep-minutely N]
 *                    [--keep-hourly N] [--keep-daily N] [--keep-weekly N]
 *                    [--keep-monthly N] [--keep-yearly N]
 *                    [--keep-within DURATION] < LIST
 *
 * LIST holds one snapshot per line, "TIME" or "TIME partial", TIME in UTC
 * as mv_time_parse() reads it ("2021-01-01T12:00:00", "@1609502400");
 * blank lines and lines starting with '#' are skipped.  Output: one line
 * per snapshot in input order, "TIME keep RULE #N" or "TIME remove".
 * Periods use the local time zone ($TZ).  Exit 0, 1 on bad input, 2 on
 * usage errors.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mv_err.h"
#include "policy.h"
#include "util.h"

#define LINE_MAX_LEN 256

struct input {
	struct policy_item *items;
	char (*names)[64];
	size_t n, cap;
};

static int usage(void)
{
	fprintf(stderr, "usage: policy_eval [--now TIME] [--keep-last N] "
			"[--keep-minutely N] [--keep-hourly N]\n"
			"                   [--keep-daily N] [--keep-weekly N] "
			"[--keep-monthly N] [--keep-yearly N]\n"
			"                   [--keep-within DURATION] < LIST\n");
	return 2;
}

static int input_add(struct input *in, const char *name, int64_t ns,
		     bool partial)
{
	if (in->n == in->cap) {
		size_t cap = in->cap ? in->cap * 2 : 64;
		struct policy_item *items;
		char(*names)[64];

		items = realloc(in->items, cap * sizeof(*items));
		if (!items)
			return -ENOMEM;
		in->items = items;
		names = realloc(in->names, cap * sizeof(*names));
		if (!names)
			return -ENOMEM;
		in->names = names;
		in->cap = cap;
	}
	memset(&in->items[in->n], 0, sizeof(in->items[in->n]));
	in->items[in->n].time_ns = ns;
	in->items[in->n].partial = partial;
	snprintf(in->names[in->n], sizeof(in->names[in->n]), "%s", name);
	in->n++;
	return 0;
}

static int read_input(FILE *f, struct input *in, struct mv_err *err)
{
	char line[LINE_MAX_LEN], time_s[64], flag[64];
	unsigned long lineno = 0;
	int64_t ns;

	while (fgets(line, sizeof(line), f)) {
		int fields;

		lineno++;
		flag[0] = '\0';
		fields = sscanf(line, "%63s %63s", time_s, flag);
		if (fields < 1 || time_s[0] == '#')
			continue;
		if (mv_time_parse(time_s, &ns) < 0)
			return mv_err_set(err, -EINVAL,
					  "line %lu: cannot parse time '%s'",
					  lineno, time_s);
		if (fields == 2 && strcmp(flag, "partial"))
			return mv_err_set(err, -EINVAL,
					  "line %lu: unexpected '%s', expected "
					  "'partial' or nothing",
					  lineno, flag);
		if (input_add(in, time_s, ns, fields == 2) < 0)
			return mv_err_set(err, -ENOMEM, "out of memory");
	}
	if (ferror(f))
		return mv_err_set(err, -EIO, "cannot read standard input");
	return 0;
}

int main(int argc, char **argv)
{
	struct mv_err err = MV_ERR_INIT;
	struct policy pol = POLICY_INIT;
	struct input in = {NULL, NULL, 0, 0};
	char reason[64];
	int64_t now = mv_now_ns();
	int i, rc, status = 1;
	size_t k;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage();
			return 0;
		}
		if (i + 1 >= argc)
			return usage();
		if (!strcmp(argv[i], "--now")) {
			if (mv_time_parse(argv[i + 1], &now) < 0) {
				fprintf(stderr,
					"policy_eval: cannot parse time '%s'\n",
					argv[i + 1]);
				return 2;
			}
		} else {
			rc = policy_set_option(&pol, argv[i], argv[i + 1],
					       &err);
			if (rc == -ENOENT) {
				fprintf(stderr,
					"policy_eval: unknown option '%s'\n",
					argv[i]);
				return usage();
			}
			if (rc < 0) {
				fprintf(stderr, "policy_eval: %s\n",
					mv_err_msg(&err));
				return 2;
			}
		}
		i++;
	}
	if (read_input(stdin, &in, &err) < 0 ||
	    policy_apply(&pol, in.items, in.n, now, &err) < 0) {
		fprintf(stderr, "policy_eval: %s\n", mv_err_msg(&err));
		goto out;
	}
	for (k = 0; k < in.n; k++) {
		policy_item_reason(&in.items[k], reason, sizeof(reason));
		printf("%s %s%s\n", in.names[k],
		       in.items[k].kept_by ? "keep " : "", reason);
	}
	status = fflush(stdout) ? 1 : 0;
out:
	free(in.items);
	free(in.names);
	return status;
}
