/*
 * job: read and validate job files (include/job.h, mailvault-job(5)).
 *
 * libinih does the INI syntax; this file owns the meaning.  inih calls us
 * once per "key = value" without a line number (Debian builds it without
 * INI_HANDLER_LINENO), so the lines are read through our own reader, which
 * counts them and also turns inih's two traps into errors: a line longer
 * than INI_MAX_LINE would be split silently, and " ;" would start an
 * inline comment in the middle of a shell command.
 */
#include "job.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct parse {
	struct job *j;
	const char *file; /* for messages: the path given */
	FILE *f;
	int line;	    /* the line just read */
	bool cont;	    /* it starts with blanks: continues a value */
	char sec[128];	    /* the section of the last key */
	char key[64];	    /* the last key */
	int job_line;	    /* where [job] starts, for missing keys */
	int err_line;	    /* the line of the first error */
	struct mv_err *err; /* the first error */
};

const char *job_dir(void)
{
	const char *d = getenv("MAILVAULT_JOB_DIR");

	return d && *d ? d : JOB_DIR_DEFAULT;
}

const char *job_state_dir(void)
{
	const char *d = getenv("MAILVAULT_STATE_DIR");

	return d && *d ? d : JOB_STATE_DIR_DEFAULT;
}

int job_parse_duration(const char *s, int64_t *out)
{
	char *end;
	long long v;
	int64_t mul = 1;

	if (!strcmp(s, "never")) {
		*out = -1;
		return 0;
	}
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || v < 0 || v > (1LL << 40))
		return -EINVAL;
	if (!strcmp(end, "") || !strcmp(end, "s"))
		mul = 1;
	else if (!strcmp(end, "m"))
		mul = 60;
	else if (!strcmp(end, "h"))
		mul = 3600;
	else if (!strcmp(end, "d"))
		mul = 86400;
	else if (!strcmp(end, "w"))
		mul = 7 * 86400;
	else
		return -EINVAL;
	*out = (int64_t)v * mul;
	return 0;
}

static int perr(struct parse *p, const char *sec, const char *key,
		const char *fmt, ...) MV_PRINTF(4, 5);

/* Record "FILE:LINE: [SECTION] KEY: what" as the first error. */
static int perr(struct parse *p, const char *sec, const char *key,
		const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (!p->err->code)
		p->err_line = p->line;
	if (sec && key)
		mv_err_set(p->err, -EINVAL, "%s:%d: [%s] %s: %s", p->file,
			   p->line, sec, key, what);
	else
		mv_err_set(p->err, -EINVAL, "%s:%d: %s", p->file, p->line,
			   what);
	return 0; /* inih: stop treating this line as good */
}

static char *reader(char *str, int num, void *stream)
{
	struct parse *p = stream;
	const char *s;
	size_t n;

	if (p->err->code)
		return NULL; /* stop at the first error */
	if (!fgets(str, num, p->f))
		return NULL;
	p->line++;
	n = strlen(str);
	if (n == (size_t)num - 1 && str[n - 1] != '\n' && !feof(p->f)) {
		perr(p, NULL, NULL,
		     "line longer than %d characters: continue a long value "
		     "on the next line, indented",
		     num - 2);
		return NULL;
	}
	for (s = str; *s == ' ' || *s == '\t'; s++)
		;
	p->cont = s != str && *s && *s != '\n' && *s != '\r';
	if (*s != ';' && *s != '#' && (strstr(s, " ;") || strstr(s, "\t;"))) {
		perr(p, NULL, NULL,
		     "' ;' would start a comment in the middle of this "
		     "value: write ';' without the space before it, or put "
		     "the comment on a line of its own");
		return NULL;
	}
	return str;
}

static int set_str(struct parse *p, const char *sec, const char *key,
		   char **dst, const char *value)
{
	if (*dst && p->cont && !strcmp(p->sec, sec) && !strcmp(p->key, key)) {
		/* an indented line continues the value */
		char *s;

		if (asprintf(&s, "%s %s", *dst, value) < 0)
			return perr(p, sec, key, "out of memory");
		free(*dst);
		*dst = s;
		return 1;
	}
	if (*dst)
		return perr(p, sec, key, "given twice");
	if (!*value)
		return perr(p, sec, key, "empty value");
	*dst = strdup(value);
	return *dst ? 1 : perr(p, sec, key, "out of memory");
}

static int set_duration(struct parse *p, const char *sec, const char *key,
			int64_t *dst, const char *value)
{
	if (job_parse_duration(value, dst))
		return perr(p, sec, key,
			    "invalid duration '%s' (use 90, 30s, 10m, 2h, 7d, "
			    "1w or never)",
			    value);
	return 1;
}

static int add_list(struct parse *p, const char *sec, const char *key,
		    char **arr, size_t *n, size_t max, const char *value)
{
	if (*n >= max)
		return perr(p, sec, key, "more than %zu values", max);
	if (!*value)
		return perr(p, sec, key, "empty value");
	arr[*n] = strdup(value);
	if (!arr[*n])
		return perr(p, sec, key, "out of memory");
	(*n)++;
	return 1;
}

static bool label_ok(const char *l)
{
	return *l && !strchr(l, '/') && !strchr(l, '=') && strcmp(l, ".") &&
	       strcmp(l, "..") && !strchr(l, ' ');
}

static struct job_source *source_get(struct parse *p, const char *label)
{
	struct job *j = p->j;
	size_t i;

	for (i = 0; i < j->nsources; i++)
		if (!strcmp(j->sources[i].label, label))
			return &j->sources[i];
	if (j->nsources >= JOB_MAX_SOURCES)
		return NULL;
	j->sources[j->nsources].label = strdup(label);
	if (!j->sources[j->nsources].label)
		return NULL;
	j->sources[j->nsources].kind = (enum job_source_kind) - 1;
	j->sources[j->nsources].line = p->line;
	return &j->sources[j->nsources++];
}

static int on_source(struct parse *p, const char *sec, const char *label,
		     const char *key, const char *value)
{
	static const char *const kinds[] = {"path", "stream", "command",
					    "file"};
	struct job_source *s;
	size_t k;

	if (!label_ok(label))
		return perr(p, sec, key,
			    "bad source label '%s' (one word, no '/', not "
			    "'.' or '..')",
			    label);
	s = source_get(p, label);
	if (!s)
		return perr(p, sec, key, "more than %d sources",
			    JOB_MAX_SOURCES);
	if (!strcmp(key, "file-name")) {
		if (strchr(value, '/') || !strcmp(value, ".") ||
		    !strcmp(value, ".."))
			return perr(p, sec, key, "'%s' is not a file name",
				    value);
		return set_str(p, sec, key, &s->file_name, value);
	}
	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
		if (!strcmp(key, kinds[k]))
			break;
	if (k == sizeof(kinds) / sizeof(kinds[0]))
		return perr(p, sec, key,
			    "unknown key (a source takes path, stream, "
			    "command or file, and file-name)");
	if (s->value && (size_t)s->kind != k)
		return perr(p, sec, key,
			    "a source is one of path, stream, command or "
			    "file; this one already has %s",
			    kinds[s->kind]);
	s->kind = (enum job_source_kind)k;
	return set_str(p, sec, key, &s->value, value);
}

static int on_retention(struct parse *p, const char *sec, const char *key,
			const char *value)
{
	static const char *const counts[] = {"keep-last",    "keep-hourly",
					     "keep-daily",   "keep-weekly",
					     "keep-monthly", "keep-yearly"};
	struct job *j = p->j;
	char *opt;
	size_t k;

	for (k = 0; k < j->nkeep; k++)
		if (!strncmp(j->keep[k] + 2, key, strlen(key)) &&
		    j->keep[k][2 + strlen(key)] == '=')
			return perr(p, sec, key, "given twice");
	if (!strcmp(key, "keep-within")) {
		size_t n = strlen(value);

		if (n < 2 || !strchr("Hdwmy", value[n - 1]) ||
		    strspn(value, "0123456789") != n - 1 || value[0] == '0')
			return perr(p, sec, key,
				    "invalid duration '%s' (<N>H, d, w, m or "
				    "y, as forget takes it)",
				    value);
	} else {
		char *end;
		long v;

		for (k = 0; k < sizeof(counts) / sizeof(counts[0]); k++)
			if (!strcmp(key, counts[k]))
				break;
		if (k == sizeof(counts) / sizeof(counts[0]))
			return perr(p, sec, key,
				    "unknown key (keep-last, keep-hourly, "
				    "keep-daily, keep-weekly, keep-monthly, "
				    "keep-yearly, keep-within)");
		errno = 0;
		v = strtol(value, &end, 10);
		if (errno || !*value || *end || v < -1 || v > 1000000)
			return perr(p, sec, key,
				    "'%s' is not a count (a number, -1 for "
				    "no limit)",
				    value);
	}
	if (j->nkeep >= sizeof(j->keep) / sizeof(j->keep[0]))
		return perr(p, sec, key, "too many keys");
	if (asprintf(&opt, "--%s=%s", key, value) < 0)
		return perr(p, sec, key, "out of memory");
	j->keep[j->nkeep++] = opt;
	return 1;
}

static int on_hook(struct parse *p, const char *sec, const char *which,
		   const char *key, const char *value)
{
	static const char *const names[] = {"before", "after", "on-error"};
	struct job_hook *h = NULL;
	size_t k;

	for (k = 0; k < JOB_NHOOKS; k++)
		if (!strcmp(which, names[k]))
			h = &p->j->hooks[k];
	if (!h)
		return perr(p, sec, key,
			    "unknown hook '%s' (before, after or on-error)",
			    which);
	if (!strcmp(key, "command"))
		return set_str(p, sec, key, &h->command, value);
	if (!strcmp(key, "timeout"))
		return set_duration(p, sec, key, &h->timeout, value);
	return perr(p, sec, key, "unknown key (command, timeout)");
}

static int on_key(struct parse *p, const char *sec, const char *key,
		  const char *value)
{
	struct job *j = p->j;

	if (!strcmp(sec, "job")) {
		if (!p->job_line)
			p->job_line = p->line;
		if (!strcmp(key, "repository"))
			return set_str(p, sec, key, &j->repository, value);
		if (!strcmp(key, "snapshot")) {
			if (strchr(value, '/'))
				return perr(p, sec, key,
					    "a snapshot name has no '/'");
			return set_str(p, sec, key, &j->snapshot, value);
		}
		if (!strcmp(key, "tag")) {
			if (!strchr(value, '=') || *value == '=')
				return perr(p, sec, key,
					    "a tag is K=V, not '%s'", value);
			return add_list(p, sec, key, j->tags, &j->ntags,
					JOB_MAX_TAGS, value);
		}
		if (!strcmp(key, "wait"))
			return set_duration(p, sec, key, &j->wait, value);
		return perr(p, sec, key,
			    "unknown key (repository, snapshot, tag, wait)");
	}
	if (!strncmp(sec, "source ", 7))
		return on_source(p, sec, sec + 7, key, value);
	if (!strcmp(sec, "retention"))
		return on_retention(p, sec, key, value);
	if (!strcmp(sec, "prune")) {
		if (!strcmp(key, "every"))
			return set_duration(p, sec, key, &j->prune_every,
					    value);
		return perr(p, sec, key, "unknown key (every)");
	}
	if (!strcmp(sec, "check")) {
		char *end;
		long v;

		if (!strcmp(key, "every"))
			return set_duration(p, sec, key, &j->check_every,
					    value);
		if (strcmp(key, "read-data-parts"))
			return perr(p, sec, key,
				    "unknown key (every, read-data-parts)");
		errno = 0;
		v = strtol(value, &end, 10);
		if (errno || !*value || *end || v < 0 || v > 10000)
			return perr(p, sec, key,
				    "'%s' is not a number of parts (0 reads "
				    "no data, 7 reads a seventh each time)",
				    value);
		j->check_parts = (uint32_t)v;
		return 1;
	}
	if (!strncmp(sec, "hook ", 5))
		return on_hook(p, sec, sec + 5, key, value);
	if (!strcmp(sec, "notify")) {
		if (!strcmp(key, "healthcheck")) {
			if (strncmp(value, "http://", 7) &&
			    strncmp(value, "https://", 8))
				return perr(p, sec, key,
					    "'%s' is not an http:// or "
					    "https:// URL",
					    value);
			return set_str(p, sec, key, &j->healthcheck, value);
		}
		if (!strcmp(key, "mail-to")) {
			if (!strchr(value, '@') || strpbrk(value, " \t\r\n,"))
				return perr(p, sec, key,
					    "'%s' is not one mail address",
					    value);
			return add_list(p, sec, key, j->mail_to, &j->nmail_to,
					JOB_MAX_MAILTO, value);
		}
		if (!strcmp(key, "mail-from")) {
			if (strpbrk(value, "\r\n"))
				return perr(p, sec, key, "one line only");
			return set_str(p, sec, key, &j->mail_from, value);
		}
		if (!strcmp(key, "mail-on")) {
			if (strcmp(value, "failure") && strcmp(value, "always"))
				return perr(p, sec, key,
					    "'%s': failure or always", value);
			j->mail_always = !strcmp(value, "always");
			return 1;
		}
		if (!strcmp(key, "textfile")) {
			size_t n = strlen(value);

			if (n < 5 || strcmp(value + n - 5, ".prom"))
				return perr(p, sec, key,
					    "node-exporter reads only files "
					    "ending in .prom");
			return set_str(p, sec, key, &j->textfile, value);
		}
		return perr(p, sec, key,
			    "unknown key (healthcheck, mail-to, mail-from, "
			    "mail-on, textfile)");
	}
	if (!*sec)
		return perr(p, NULL, NULL,
			    "'%s' outside a section: start with [job]", key);
	return perr(p, NULL, NULL,
		    "unknown section [%s] (job, source LABEL, retention, "
		    "prune, check, hook before|after|on-error, notify)",
		    sec);
}

static int handler(void *user, const char *sec, const char *key,
		   const char *value)
{
	struct parse *p = user;
	int rc;

	if (p->err->code)
		return 0;
	rc = on_key(p, sec, key, value);
	snprintf(p->sec, sizeof(p->sec), "%s", sec);
	snprintf(p->key, sizeof(p->key), "%s", key);
	return rc;
}

/* What the keys cannot say one at a time. */
static int validate(struct parse *p)
{
	struct job *j = p->j;
	size_t i;

	p->line = p->job_line ? p->job_line : 1;
	if (!j->repository)
		return mv_err_set(p->err, -EINVAL,
				  "%s:%d: [job] repository: missing (a "
				  "directory or sftp://user@host/path)",
				  p->file, p->line);
	if (!j->nsources)
		return mv_err_set(p->err, -EINVAL,
				  "%s:%d: [source LABEL]: no source (path, "
				  "stream, command or file)",
				  p->file, p->line);
	for (i = 0; i < j->nsources; i++) {
		struct job_source *s = &j->sources[i];

		if (!s->value)
			return mv_err_set(p->err, -EINVAL,
					  "%s:%d: [source %s] path: missing "
					  "(one of path, stream, command, "
					  "file)",
					  p->file, s->line, s->label);
		if (s->file_name && s->kind != JOB_SRC_COMMAND)
			return mv_err_set(p->err, -EINVAL,
					  "%s:%d: [source %s] file-name: only "
					  "for a command source",
					  p->file, s->line, s->label);
	}
	if (j->prune_every >= 0 && !j->nkeep && j->prune_every != INT64_MAX)
		return mv_err_set(p->err, -EINVAL,
				  "%s:%d: [prune] every: prune without "
				  "[retention] reclaims nothing",
				  p->file, p->line);
	return 0;
}

int job_load(const char *path, struct job **out, struct mv_err *err)
{
	struct parse p;
	struct job *j;
	const char *base;
	size_t n, i;
	int rc;

	memset(&p, 0, sizeof(p));
	j = calloc(1, sizeof(*j));
	if (!j)
		return mv_err_set(err, -ENOMEM, "out of memory");
	p.j = j;
	p.file = path;
	p.err = err;
	j->path = strdup(path);
	base = strrchr(path, '/');
	base = base ? base + 1 : path;
	n = strlen(base);
	if (n > 5 && !strcmp(base + n - 5, ".conf"))
		n -= 5;
	j->name = strndup(base, n);
	j->prune_every = INT64_MAX; /* not given: decided below */
	j->wait = 3600; /* two jobs of one repository at 03:00 take turns */
	j->check_every = 86400;
	j->check_parts = 7;
	for (i = 0; i < JOB_NHOOKS; i++)
		j->hooks[i].timeout = 15 * 60;
	if (!j->path || !j->name) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	/* the name goes into snapshot names, state files and metric labels */
	if (!*j->name || strspn(j->name, "abcdefghijklmnopqrstuvwxyz"
					 "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
					 "0123456789._@-") != strlen(j->name)) {
		rc = mv_err_set(err, -EINVAL,
				"%s: a job's name (the file name without "
				".conf) is letters, digits and . _ @ - only",
				path);
		goto out;
	}
	p.f = fopen(path, "re");
	if (!p.f) {
		rc = mv_err_set(err, -errno, "cannot read job file '%s': %s",
				path, strerror(errno));
		goto out;
	}
	rc = ini_parse_stream(reader, &p, handler, &p);
	fclose(p.f);
	/* inih goes on after a syntax error: the first error is the one
	 * to show, the syntax error's when it comes first */
	if (rc > 0 && err->code && rc < p.err_line)
		mv_err_clear(err);
	if (err->code) {
		rc = err->code;
		goto out;
	}
	if (rc > 0) {
		rc = mv_err_set(err, -EINVAL,
				"%s:%d: syntax error (expected '[section]' "
				"or 'key = value')",
				path, rc);
		goto out;
	}
	if (rc < 0) {
		rc = mv_err_set(err, -EIO, "cannot read job file '%s'", path);
		goto out;
	}
	rc = validate(&p);
	if (rc)
		goto out;
	/* retention without a prune schedule prunes weekly */
	if (j->prune_every == INT64_MAX)
		j->prune_every = j->nkeep ? 7 * 86400 : -1;
	if (!j->snapshot)
		j->snapshot = strdup(j->name);
	if (!j->snapshot) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	*out = j;
	return 0;
out:
	job_free(j);
	return rc;
}

int job_load_named(const char *name_or_path, struct job **out,
		   struct mv_err *err)
{
	char *path;
	int rc;

	if (strchr(name_or_path, '/'))
		return job_load(name_or_path, out, err);
	if (asprintf(&path, "%s/%s.conf", job_dir(), name_or_path) < 0)
		return mv_err_set(err, -ENOMEM, "out of memory");
	rc = job_load(path, out, err);
	free(path);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int job_list(char ***out, size_t *out_n, struct mv_err *err)
{
	const char *dir = job_dir();
	char **v = NULL, **nv;
	size_t n = 0, len;
	struct dirent *de;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return mv_err_set(err, -errno,
				  "cannot read job directory '%s': "
				  "%s",
				  dir, strerror(errno));
	while ((de = readdir(d))) {
		len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len <= 5 ||
		    strcmp(de->d_name + len - 5, ".conf"))
			continue;
		nv = realloc(v, (n + 1) * sizeof(*v));
		if (!nv)
			goto oom;
		v = nv;
		if (asprintf(&v[n], "%s/%s", dir, de->d_name) < 0)
			goto oom;
		n++;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), cmp_str);
	*out = v;
	*out_n = n;
	return 0;
oom:
	closedir(d);
	job_paths_free(v, n);
	return mv_err_set(err, -ENOMEM, "out of memory");
}

void job_paths_free(char **paths, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
}

void job_free(struct job *j)
{
	size_t i;

	if (!j)
		return;
	free(j->name);
	free(j->path);
	free(j->repository);
	free(j->snapshot);
	for (i = 0; i < j->ntags; i++)
		free(j->tags[i]);
	for (i = 0; i < j->nsources; i++) {
		free(j->sources[i].label);
		free(j->sources[i].value);
		free(j->sources[i].file_name);
	}
	for (i = 0; i < j->nkeep; i++)
		free(j->keep[i]);
	for (i = 0; i < JOB_NHOOKS; i++)
		free(j->hooks[i].command);
	free(j->healthcheck);
	for (i = 0; i < j->nmail_to; i++)
		free(j->mail_to[i]);
	free(j->mail_from);
	free(j->textfile);
	free(j);
}

/* The state file is INI too, written by us: [state] with four keys. */
static int state_handler(void *user, const char *sec, const char *key,
			 const char *value)
{
	struct job_state *s = user;
	long long v = strtoll(value, NULL, 10);

	if (strcmp(sec, "state"))
		return 1;
	if (!strcmp(key, "last-prune"))
		s->last_prune = v;
	else if (!strcmp(key, "last-check"))
		s->last_check = v;
	else if (!strcmp(key, "next-part"))
		s->next_part = v > 0 ? (uint32_t)v : 1;
	else if (!strcmp(key, "last-success"))
		s->last_success = v;
	return 1;
}

int job_state_load(const char *job, struct job_state *out, struct mv_err *err)
{
	char *path;
	int rc;

	memset(out, 0, sizeof(*out));
	out->next_part = 1;
	if (asprintf(&path, "%s/%s.state", job_state_dir(), job) < 0)
		return mv_err_set(err, -ENOMEM, "out of memory");
	rc = ini_parse(path, state_handler, out);
	if (rc == -1)
		rc = 0; /* no state yet: nothing ran */
	else if (rc)
		rc = mv_err_set(err, -EINVAL, "%s:%d: damaged state file", path,
				rc);
	free(path);
	return rc;
}

int job_state_save(const char *job, const struct job_state *s,
		   struct mv_err *err)
{
	char *path = NULL, buf[512];
	int n, rc;

	rc = mv_mkdir_p(job_state_dir(), 0700);
	if (rc)
		return mv_err_set(err, rc, "cannot create '%s': %s",
				  job_state_dir(), strerror(-rc));
	if (asprintf(&path, "%s/%s.state", job_state_dir(), job) < 0)
		return mv_err_set(err, -ENOMEM, "out of memory");
	n = snprintf(buf, sizeof(buf),
		     "# mailvault run %s: when prune and check last ran\n"
		     "[state]\nlast-prune = %lld\nlast-check = %lld\n"
		     "next-part = %u\nlast-success = %lld\n",
		     job, (long long)s->last_prune, (long long)s->last_check,
		     s->next_part, (long long)s->last_success);
	rc = mv_write_file_atomic(path, buf, (size_t)n, err);
	free(path);
	return rc;
}
