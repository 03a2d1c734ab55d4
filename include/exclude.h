/*
 * exclude: the --exclude PATTERN and --exclude-from FILE lists of backup,
 * matched against the path of an entry inside its source ("cur/1.eml" for
 * LABEL/cur/1.eml), as restic matches its excludes:
 *
 *  - a pattern is split at '/' and matched component by component with
 *    fnmatch(3) ('*', '?', '[...]' stay inside one component; a leading
 *    '.' is not special); "**" matches any number of components;
 *  - a pattern starting with '/' is anchored at the top of the source
 *    ("/tmp" is the source's own tmp); any other pattern matches at any
 *    depth ("*.tmp", "cache/ *.db" without the space);
 *  - a pattern that matches a directory excludes its whole subtree, so a
 *    path is excluded when it or any of its parent directories matches;
 *  - a pattern ending in '/' matches directories only.
 *
 * An exclude file holds one pattern a line; blank lines and lines
 * starting with '#' are ignored, trailing spaces are not part of the
 * pattern.  Matching is case-sensitive.  Immutable once built: sources on
 * any thread may match against it.
 */
#ifndef MV_EXCLUDE_H
#define MV_EXCLUDE_H

#include <stdbool.h>
#include <stddef.h>

#include "mv_err.h"

struct exclude;

/* An empty list (which excludes nothing). */
int exclude_new(struct exclude **out, struct mv_err *err);
void exclude_free(struct exclude *ex);
/* Add one pattern; -EINVAL for an empty one ("" or "/"). */
int exclude_add(struct exclude *ex, const char *pattern, struct mv_err *err);
/* Add every pattern of a file ("-": stdin is not accepted: -EINVAL). */
int exclude_add_file(struct exclude *ex, const char *path, struct mv_err *err);
/* Number of patterns. */
size_t exclude_count(const struct exclude *ex);
/* True when path (relative to the source, no leading '/', components
 * separated by single '/') is excluded; is_dir tells whether path itself
 * is a directory.  NULL ex excludes nothing. */
bool exclude_match(const struct exclude *ex, const char *path, bool is_dir);

#endif
