/* exclude: restic-style exclude patterns (include/exclude.h). */
#include "exclude.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXCLUDE_LINE_MAX 4096

struct pattern {
	char *buf;    /* the components, NUL-separated */
	char **comp;  /* pointers into buf */
	size_t ncomp; /* at least one */
	bool anchored;
	bool dir_only;
};

struct exclude {
	struct pattern *pats;
	size_t n, cap;
};

int exclude_new(struct exclude **out, struct mv_err *err)
{
	struct exclude *ex = calloc(1, sizeof(*ex));

	if (!ex)
		return mv_err_set(err, -ENOMEM, "out of memory");
	*out = ex;
	return 0;
}

void exclude_free(struct exclude *ex)
{
	size_t i;

	if (!ex)
		return;
	for (i = 0; i < ex->n; i++) {
		free(ex->pats[i].buf);
		free(ex->pats[i].comp);
	}
	free(ex->pats);
	free(ex);
}

size_t exclude_count(const struct exclude *ex)
{
	return ex ? ex->n : 0;
}

/* Split s at '/' in place, dropping empty components; comp has room for
 * strlen(s) / 2 + 1 pointers. */
static size_t split(char *s, char **comp)
{
	size_t n = 0;
	char *p = s;

	while (*p) {
		char *slash = strchr(p, '/');

		if (slash)
			*slash = '\0';
		if (*p)
			comp[n++] = p;
		if (!slash)
			break;
		p = slash + 1;
	}
	return n;
}

int exclude_add(struct exclude *ex, const char *pattern, struct mv_err *err)
{
	struct pattern p;
	size_t len = strlen(pattern);

	memset(&p, 0, sizeof(p));
	p.anchored = pattern[0] == '/';
	p.dir_only = len > 0 && pattern[len - 1] == '/';
	p.buf = strdup(pattern);
	p.comp = calloc(len / 2 + 1, sizeof(*p.comp));
	if (!p.buf || !p.comp)
		goto nomem;
	p.ncomp = split(p.buf, p.comp);
	if (!p.ncomp) {
		free(p.buf);
		free(p.comp);
		return mv_err_set(err, -EINVAL,
				  "exclude pattern '%s' names nothing",
				  pattern);
	}
	if (ex->n == ex->cap) {
		size_t cap = ex->cap ? ex->cap * 2 : 8;
		struct pattern *np = realloc(ex->pats, cap * sizeof(*np));

		if (!np)
			goto nomem;
		ex->pats = np;
		ex->cap = cap;
	}
	ex->pats[ex->n++] = p;
	return 0;
nomem:
	free(p.buf);
	free(p.comp);
	return mv_err_set(err, -ENOMEM, "out of memory");
}

int exclude_add_file(struct exclude *ex, const char *path, struct mv_err *err)
{
	char line[EXCLUDE_LINE_MAX];
	unsigned long lineno = 0;
	FILE *f;
	int rc = 0;

	if (!strcmp(path, "-"))
		return mv_err_set(err, -EINVAL,
				  "--exclude-from wants a file, not stdin");
	f = fopen(path, "re");
	if (!f)
		return mv_err_set(err, -errno,
				  "cannot open exclude file '%s': %s", path,
				  strerror(errno));
	while (!rc && fgets(line, sizeof(line), f)) {
		size_t n = strlen(line);

		lineno++;
		if (n == sizeof(line) - 1 && line[n - 1] != '\n') {
			rc = mv_err_set(err, -EMSGSIZE,
					"exclude file '%s': line %lu is longer "
					"than %d bytes",
					path, lineno, EXCLUDE_LINE_MAX - 2);
			break;
		}
		while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' ||
			     line[n - 1] == ' ' || line[n - 1] == '\t'))
			line[--n] = '\0';
		if (!n || line[0] == '#')
			continue;
		rc = exclude_add(ex, line, err);
		if (rc)
			mv_err_prefix(err, "exclude file '%s' line %lu", path,
				      lineno);
	}
	if (!rc && ferror(f))
		rc = mv_err_set(err, -EIO, "cannot read exclude file '%s'",
				path);
	fclose(f);
	return rc;
}

/* Does p->comp[pi..] match a leading run of s[si..ns)?  Matching fewer
 * components than the path has means a parent directory matched. */
static bool match_from(const struct pattern *p, size_t pi, char **s, size_t si,
		       size_t ns, bool is_dir)
{
	if (pi == p->ncomp)
		return si > 0 && (si < ns || !p->dir_only || is_dir);
	if (!strcmp(p->comp[pi], "**")) {
		size_t k;

		for (k = si; k <= ns; k++)
			if (match_from(p, pi + 1, s, k, ns, is_dir))
				return true;
		return false;
	}
	if (si == ns || fnmatch(p->comp[pi], s[si], 0))
		return false;
	return match_from(p, pi + 1, s, si + 1, ns, is_dir);
}

bool exclude_match(const struct exclude *ex, const char *path, bool is_dir)
{
	char *buf, **comp;
	size_t ns, i, start;
	bool hit = false;

	if (!ex || !ex->n)
		return false;
	buf = strdup(path);
	comp = calloc(strlen(path) / 2 + 1, sizeof(*comp));
	if (!buf || !comp) {
		free(buf);
		free(comp);
		return false;
	}
	ns = split(buf, comp);
	for (i = 0; !hit && i < ex->n; i++) {
		const struct pattern *p = &ex->pats[i];

		for (start = 0; !hit && start < ns; start++) {
			hit = match_from(p, 0, comp + start, 0, ns - start,
					 is_dir);
			if (p->anchored)
				break;
		}
	}
	free(buf);
	free(comp);
	return hit;
}
