/*
 * policy: which snapshots of one job a retention policy keeps.
 *
 * The rules mean exactly what `borg prune` 1.2 means by the same options,
 * so a policy moves over from borg (or restic's --keep-* subset) unchanged:
 *
 *  1. --keep-within keeps every complete snapshot newer than now minus the
 *     duration ("within #N", newest first).
 *  2. The count rules run in order secondly (= --keep-last), minutely,
 *     hourly, daily, weekly, monthly, yearly.  Each walks the complete
 *     snapshots from newest to oldest and takes the newest snapshot of each
 *     period it has not seen yet; a snapshot that an earlier rule already
 *     kept uses up its period but does not count towards this rule.
 *  3. A rule that runs out of snapshots before reaching its count also
 *     keeps the oldest snapshot, unless that one is already kept
 *     ("daily[oldest] #N").
 *  4. Periods are calendar periods in local time ($TZ): second, minute,
 *     hour, day, ISO 8601 week (Monday to Sunday, week-based year), month,
 *     year.  A count of -1 means no limit; 0 turns the rule off.
 *  5. Partial snapshots never count towards a rule.  A partial snapshot is
 *     kept while no complete snapshot of the job has the same or a later
 *     time, and removed as soon as one has.
 *
 * Snapshots with equal times are ordered by their position in the input:
 * the later item counts as the newer one.
 *
 * Workload: a few thousand snapshots per job; one sort and one pass per
 * rule, O(n log n), one allocation.
 */
#ifndef MV_POLICY_H
#define MV_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mv_err.h"

/* Count value meaning "no limit" (borg: any negative number). */
#define POLICY_UNLIMITED (-1)

struct policy {
	int keep_last;		 /* borg --keep-secondly; 0 off, -1 no limit */
	int keep_minutely;	 /* newest snapshot of each of N minutes */
	int keep_hourly;	 /* ... of each of N hours */
	int keep_daily;		 /* ... of each of N days */
	int keep_weekly;	 /* ... of each of N ISO weeks */
	int keep_monthly;	 /* ... of each of N months */
	int keep_yearly;	 /* ... of each of N years */
	int64_t keep_within_sec; /* keep all newer than now - this; 0 off */
};

#define POLICY_INIT                    \
	{                              \
		0, 0, 0, 0, 0, 0, 0, 0 \
	}

/* One snapshot of the job being pruned.  The caller fills time_ns and
 * partial; policy_apply() fills kept_by and kept_num. */
struct policy_item {
	int64_t time_ns;     /* snapshot time, UTC ns since the epoch */
	bool partial;	     /* committed after an error, never counted */
	const char *kept_by; /* static rule name ("daily", "daily[oldest]",
				"within", "partial"), NULL = remove */
	int kept_num;	     /* 1-based position within that rule */
};

/* Parse a --keep-within duration "<N><unit>", unit H (hours), d (days),
 * w (weeks), m (31 days) or y (365 days), N > 0, as borg does.  Returns 0
 * or -EINVAL with a message naming the value. */
int policy_parse_duration(const char *s, int64_t *out_sec, struct mv_err *err);

/* Set the field for one option name, with or without leading dashes:
 * "keep-last", "keep-secondly" (borg's name for it), "keep-minutely",
 * "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly",
 * "keep-yearly" take a count (N >= 0 or -1), "keep-within" a duration.
 * Returns 0, -ENOENT when name is not a policy option (nothing recorded in
 * err), or -EINVAL for a bad value. */
int policy_set_option(struct policy *p, const char *name, const char *value,
		      struct mv_err *err);

/* True when no rule is set: applying it would remove every snapshot. */
bool policy_is_empty(const struct policy *p);

/* Check counts (>= -1), the duration (>= 0) and that at least one rule is
 * set.  Returns 0 or -EINVAL with a message naming the option. */
int policy_validate(const struct policy *p, struct mv_err *err);

/* Check that the local time zone the periods are counted in can be
 * loaded.  The C library silently counts in UTC when it cannot, and the
 * policy would then keep other snapshots than asked.  $TZ (a leading ':'
 * ignored) must be empty, a name of UTC ("UTC", "Etc/UTC", "GMT", ...), a
 * complete POSIX TZ string ("CET-1CEST,M3.5.0,M10.5.0/3"), or name a TZif
 * file: an absolute path, or a path under $TZDIR (default
 * /usr/share/zoneinfo).  Without $TZ, /etc/localtime is used when it
 * exists (no /etc/localtime means UTC, as for the C library).  Returns 0,
 * -ENOENT (no such zone file) or -EINVAL (not a zone file) with a message
 * naming the zone and the file looked for. */
int policy_check_tz(struct mv_err *err);

/* Decide for n snapshots of ONE job, in any order, which ones p keeps;
 * now_ns is the reference for --keep-within.  Fills kept_by/kept_num of
 * every item.  Uses the local time zone ($TZ, read again on every call),
 * which must load (policy_check_tz).  Returns 0, -EINVAL (invalid policy
 * or zone file), -ENOENT (no zone file) or -ENOMEM; items are unchanged
 * on error. */
int policy_apply(const struct policy *p, struct policy_item *items, size_t n,
		 int64_t now_ns, struct mv_err *err);

/* "daily #3", "daily[oldest] #5", "partial" or "remove" into out. */
void policy_item_reason(const struct policy_item *it, char *out, size_t n);

/* The policy as options, e.g. "--keep-daily 7 --keep-within 2d", into
 * out ("" for an empty policy). */
void policy_describe(const struct policy *p, char *out, size_t n);

#endif
