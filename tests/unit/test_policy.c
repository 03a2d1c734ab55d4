/*
 * Unit tests for policy: snapshot times in, kept set and rule out, for
 * every borg prune 1.2 behaviour users rely on - month and year ends, DST
 * changes in Europe/Berlin, ISO week 53, equal times, --keep-within,
 * partial snapshots, the "keep the oldest" rule and the worked example of
 * borg's documentation - plus option parsing and bad policies.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy.h"

#define NS 1000000000LL

/* One snapshot of a table: UTC time, partial flag, expected reason as
 * policy_item_reason() prints it ("daily #1", "partial", "remove"). */
struct snap {
	const char *time;
	bool partial;
	const char *want;
};

static void set_tz(const char *tz)
{
	assert_int_equal(setenv("TZ", tz, 1), 0);
	tzset();
}

/* "2021-03-28T01:30:00" as UTC -> ns */
static int64_t utc(const char *s)
{
	struct tm tm;
	int y, mo, d, h, mi, se;

	memset(&tm, 0, sizeof(tm));
	assert_int_equal(
		sscanf(s, "%d-%d-%dT%d:%d:%d", &y, &mo, &d, &h, &mi, &se), 6);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	return (int64_t)timegm(&tm) * NS;
}

static size_t count_snaps(const struct snap *s)
{
	size_t n = 0;

	while (s[n].time)
		n++;
	return n;
}

/* Apply p to the table in TZ tz and compare every decision. */
static void check_table(const char *tz, const struct policy *p, const char *now,
			const struct snap *snaps)
{
	struct mv_err err = MV_ERR_INIT;
	struct policy_item *items;
	size_t n = count_snaps(snaps), i;
	char got[64];
	int bad = 0;

	set_tz(tz);
	items = calloc(n ? n : 1, sizeof(*items));
	assert_non_null(items);
	for (i = 0; i < n; i++) {
		items[i].time_ns = utc(snaps[i].time);
		items[i].partial = snaps[i].partial;
	}
	if (policy_apply(p, items, n, now ? utc(now) : 0, &err) < 0)
		fail_msg("TZ=%s: %s", tz, mv_err_msg(&err));
	for (i = 0; i < n; i++) {
		policy_item_reason(&items[i], got, sizeof(got));
		if (strcmp(got, snaps[i].want)) {
			print_error("TZ=%s %s%s: want '%s', got '%s'\n", tz,
				    snaps[i].time,
				    snaps[i].partial ? " partial" : "",
				    snaps[i].want, got);
			bad++;
		}
	}
	free(items);
	assert_int_equal(bad, 0);
}

static void test_policy_parse_duration(void **state)
{
	static const struct {
		const char *s;
		int64_t sec;
	} good[] = {
		{"36H", 36 * 3600LL},	    {"1H", 3600LL},
		{"7d", 7 * 86400LL},	    {"2w", 14 * 86400LL},
		{"12m", 12 * 31 * 86400LL}, {"1m", 31 * 86400LL},
		{"1y", 365 * 86400LL},	    {"100y", 100 * 365 * 86400LL},
	};
	static const char *const bad[] = {
		"",   "d",   "7",   "7x",  "-1d", "0d",	  "1.5d",
		"7D", "36h", "7 d", "+7d", "d7",  "101y", "99999999999999999d",
	};
	struct mv_err err = MV_ERR_INIT;
	int64_t sec;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		sec = -1;
		assert_int_equal(policy_parse_duration(good[i].s, &sec, &err),
				 0);
		assert_int_equal(sec, good[i].sec);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mv_err_clear(&err);
		sec = 42;
		assert_int_equal(policy_parse_duration(bad[i], &sec, &err),
				 -EINVAL);
		assert_int_equal(sec, 42);
		assert_non_null(strstr(err.msg, "invalid duration"));
		assert_non_null(strstr(err.msg, bad[i]));
	}
	mv_err_clear(&err);
	policy_parse_duration("7x", &sec, &err);
	assert_non_null(strstr(err.msg, "unknown unit 'x'"));
}

static void test_policy_set_option(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct policy p = POLICY_INIT;

	(void)state;
	assert_int_equal(policy_set_option(&p, "--keep-last", "3", &err), 0);
	assert_int_equal(policy_set_option(&p, "keep-minutely", "4", &err), 0);
	assert_int_equal(policy_set_option(&p, "--keep-hourly", "5", &err), 0);
	assert_int_equal(policy_set_option(&p, "--keep-daily", "7", &err), 0);
	assert_int_equal(policy_set_option(&p, "--keep-weekly", "4", &err), 0);
	assert_int_equal(policy_set_option(&p, "--keep-monthly", "12", &err),
			 0);
	assert_int_equal(policy_set_option(&p, "--keep-yearly", "-1", &err), 0);
	assert_int_equal(policy_set_option(&p, "--keep-within", "2d", &err), 0);
	assert_int_equal(p.keep_last, 3);
	assert_int_equal(p.keep_minutely, 4);
	assert_int_equal(p.keep_hourly, 5);
	assert_int_equal(p.keep_daily, 7);
	assert_int_equal(p.keep_weekly, 4);
	assert_int_equal(p.keep_monthly, 12);
	assert_int_equal(p.keep_yearly, POLICY_UNLIMITED);
	assert_int_equal(p.keep_within_sec, 2 * 86400);
	/* borg's name for --keep-last */
	assert_int_equal(policy_set_option(&p, "--keep-secondly", "9", &err),
			 0);
	assert_int_equal(p.keep_last, 9);
	assert_string_equal(err.msg, "");

	assert_int_equal(policy_set_option(&p, "--keep-dayly", "1", &err),
			 -ENOENT);
	assert_int_equal(err.code, 0);
	assert_int_equal(policy_set_option(&p, "--name", "x", &err), -ENOENT);

	assert_int_equal(policy_set_option(&p, "--keep-daily", "-2", &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "--keep-daily"));
	assert_non_null(strstr(err.msg, "-1 for no limit"));
	assert_int_equal(p.keep_daily, 7);
	mv_err_clear(&err);
	assert_int_equal(policy_set_option(&p, "--keep-daily", "7x", &err),
			 -EINVAL);
	mv_err_clear(&err);
	assert_int_equal(policy_set_option(&p, "--keep-daily", "", &err),
			 -EINVAL);
	mv_err_clear(&err);
	assert_int_equal(
		policy_set_option(&p, "--keep-daily", "99999999999", &err),
		-EINVAL);
	mv_err_clear(&err);
	assert_int_equal(policy_set_option(&p, "--keep-within", "3q", &err),
			 -EINVAL);
	assert_int_equal(p.keep_within_sec, 2 * 86400);
}

static void test_policy_validate(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct policy p = POLICY_INIT;
	struct policy_item item = {0, false, "x", 7};

	(void)state;
	assert_true(policy_is_empty(&p));
	assert_int_equal(policy_validate(&p, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "refusing to remove every snapshot"));
	/* an empty policy never removes anything: items stay untouched */
	mv_err_clear(&err);
	assert_int_equal(policy_apply(&p, &item, 1, 0, &err), -EINVAL);
	assert_string_equal(item.kept_by, "x");
	assert_int_equal(item.kept_num, 7);

	p.keep_within_sec = 3600;
	assert_false(policy_is_empty(&p));
	mv_err_clear(&err);
	assert_int_equal(policy_validate(&p, &err), 0);

	p.keep_weekly = -3;
	assert_int_equal(policy_validate(&p, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "--keep-weekly -3"));
	mv_err_clear(&err);
	assert_int_equal(policy_apply(&p, &item, 1, 0, &err), -EINVAL);
	assert_string_equal(item.kept_by, "x");

	p.keep_weekly = POLICY_UNLIMITED;
	mv_err_clear(&err);
	assert_int_equal(policy_validate(&p, &err), 0);
	p.keep_within_sec = -1;
	assert_int_equal(policy_validate(&p, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "--keep-within"));

	/* no snapshots at all is fine */
	p.keep_within_sec = 0;
	mv_err_clear(&err);
	assert_int_equal(policy_apply(&p, NULL, 0, 0, &err), 0);
}

static void test_policy_describe(void **state)
{
	struct policy p = POLICY_INIT;
	char out[256], tiny[12];

	(void)state;
	policy_describe(&p, out, sizeof(out));
	assert_string_equal(out, "");
	p.keep_daily = 7;
	p.keep_weekly = 4;
	p.keep_yearly = -1;
	p.keep_within_sec = 2 * 86400;
	policy_describe(&p, out, sizeof(out));
	assert_string_equal(out, "--keep-daily 7 --keep-weekly 4 "
				 "--keep-yearly -1 --keep-within 2d");
	p.keep_within_sec = 62 * 86400;
	p.keep_daily = 0;
	p.keep_weekly = 0;
	p.keep_yearly = 0;
	p.keep_last = 1;
	policy_describe(&p, out, sizeof(out));
	assert_string_equal(out, "--keep-last 1 --keep-within 2m");
	p.keep_within_sec = 36 * 3600;
	policy_describe(&p, out, sizeof(out));
	assert_string_equal(out, "--keep-last 1 --keep-within 36H");
	policy_describe(&p, tiny, sizeof(tiny));
	assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
}

/*
 * The worked example of borg's docs (docs/misc/prune-example.txt): a
 * backup every day of 2015 except 2015-12-19, pruned on 2016-01-01 with
 * --keep-daily 14 --keep-monthly 6 --keep-yearly 1.
 */
static void test_policy_borg_docs_example(void **state)
{
	static const char *const daily[] = {
		"2015-12-31", "2015-12-30", "2015-12-29", "2015-12-28",
		"2015-12-27", "2015-12-26", "2015-12-25", "2015-12-24",
		"2015-12-23", "2015-12-22", "2015-12-21", "2015-12-20",
		"2015-12-18", "2015-12-17",
	};
	static const char *const monthly[] = {
		"2015-11-30", "2015-10-31", "2015-09-30",
		"2015-08-31", "2015-07-31", "2015-06-30",
	};
	struct mv_err err = MV_ERR_INIT;
	struct policy p = POLICY_INIT;
	struct policy_item items[366];
	char day[16], want[64], got[64];
	int64_t t0, start = utc("2015-01-01T10:00:00");
	size_t n = 0, i, j, kept = 0;
	struct tm tm;
	time_t sec;

	(void)state;
	set_tz("UTC");
	for (t0 = start; t0 < utc("2016-01-01T00:00:00"); t0 += 86400 * NS) {
		if (t0 == utc("2015-12-19T10:00:00"))
			continue;
		memset(&items[n], 0, sizeof(items[n]));
		items[n++].time_ns = t0;
	}
	assert_int_equal(n, 364);
	p.keep_daily = 14;
	p.keep_monthly = 6;
	p.keep_yearly = 1;
	assert_int_equal(
		policy_apply(&p, items, n, utc("2016-01-01T00:00:00"), &err),
		0);
	for (i = 0; i < n; i++) {
		sec = (time_t)(items[i].time_ns / NS);
		gmtime_r(&sec, &tm);
		strftime(day, sizeof(day), "%Y-%m-%d", &tm);
		strcpy(want, "remove");
		for (j = 0; j < sizeof(daily) / sizeof(daily[0]); j++)
			if (!strcmp(day, daily[j]))
				snprintf(want, sizeof(want), "daily #%zu",
					 j + 1);
		for (j = 0; j < sizeof(monthly) / sizeof(monthly[0]); j++)
			if (!strcmp(day, monthly[j]))
				snprintf(want, sizeof(want), "monthly #%zu",
					 j + 1);
		if (!strcmp(day, "2015-01-01"))
			strcpy(want, "yearly[oldest] #1");
		policy_item_reason(&items[i], got, sizeof(got));
		if (strcmp(want, got))
			print_error("%s: want '%s', got '%s'\n", day, want,
				    got);
		assert_string_equal(got, want);
		kept += items[i].kept_by != NULL;
	}
	assert_int_equal(kept, 14 + 6 + 1);
}

/* Month and year ends are local: 23:30 UTC on Jan 31 is February in
 * Berlin; the yearly rule skips a year whose newest snapshot another rule
 * already kept. */
static void test_policy_month_year_boundaries(void **state)
{
	static const struct snap berlin[] = {
		{"2020-12-31T22:30:00", false, "monthly #3"}, /* Dec 23:30 */
		{"2020-12-31T23:30:00", false, "remove"},     /* Jan 00:30 */
		{"2021-01-31T22:30:00", false, "monthly #2"}, /* Jan 23:30 */
		{"2021-01-31T23:30:00", false, "remove"},     /* Feb 00:30 */
		{"2021-02-27T12:00:00", false, "monthly #1"},
		{NULL, false, NULL},
	};
	static const struct snap utc_tz[] = {
		{"2020-12-31T22:30:00", false, "monthly[oldest] #4"},
		{"2020-12-31T23:30:00", false, "monthly #3"},
		{"2021-01-31T22:30:00", false, "remove"},
		{"2021-01-31T23:30:00", false, "monthly #2"},
		{"2021-02-27T12:00:00", false, "monthly #1"},
		{NULL, false, NULL},
	};
	static const struct snap years[] = {
		{"2019-06-01T12:00:00", false, "yearly[oldest] #3"},
		{"2019-12-31T12:00:00", false, "yearly #2"},
		{"2020-06-01T12:00:00", false, "remove"},
		{"2020-12-31T12:00:00", false, "yearly #1"},
		{"2021-01-01T12:00:00", false, "monthly #1"},
		{NULL, false, NULL},
	};
	struct policy p = POLICY_INIT;

	(void)state;
	p.keep_monthly = 4;
	check_table("Europe/Berlin", &p, NULL, berlin);
	p.keep_monthly = 5;
	check_table("UTC", &p, NULL, utc_tz);
	p.keep_monthly = 1;
	p.keep_yearly = 5;
	check_table("UTC", &p, NULL, years);
}

/* Europe/Berlin: 2021-03-28 02:00 CET -> 03:00 CEST (no local 02:xx),
 * 2021-10-31 03:00 CEST -> 02:00 CET (local 02:xx twice). */
static void test_policy_dst_berlin(void **state)
{
	static const struct snap spring[] = {
		{"2021-03-28T00:30:00", false, "hourly[oldest] #4"}, /* 01:30 */
		{"2021-03-28T00:59:59", false, "hourly #3"}, /* 01:59:59 CET */
		{"2021-03-28T01:00:00", false, "remove"},    /* 03:00 CEST */
		{"2021-03-28T01:30:00", false, "remove"},    /* 03:30 CEST */
		{"2021-03-28T01:59:59", false, "hourly #2"}, /* 03:59:59 */
		{"2021-03-28T02:00:00", false, "hourly #1"}, /* 04:00 CEST */
		{NULL, false, NULL},
	};
	static const struct snap autumn[] = {
		{"2021-10-30T23:30:00", false, "hourly #3"}, /* 01:30 CEST */
		{"2021-10-31T00:30:00", false, "remove"},    /* 02:30 CEST */
		{"2021-10-31T01:30:00", false, "hourly #2"}, /* 02:30 CET */
		{"2021-10-31T02:30:00", false, "hourly #1"}, /* 03:30 CET */
		{NULL, false, NULL},
	};
	/* the same instants in UTC are four different hours */
	static const struct snap autumn_utc[] = {
		{"2021-10-30T23:30:00", false, "hourly #4"},
		{"2021-10-31T00:30:00", false, "hourly #3"},
		{"2021-10-31T01:30:00", false, "hourly #2"},
		{"2021-10-31T02:30:00", false, "hourly #1"},
		{NULL, false, NULL},
	};
	/* the short day still is one day */
	static const struct snap days[] = {
		{"2021-03-26T23:00:00", false, "daily[oldest] #3"}, /* 27th */
		{"2021-03-27T22:59:59", false, "daily #2"}, /* 27th 23:59 */
		{"2021-03-27T23:00:00", false, "remove"},   /* 28th 00:00 */
		{"2021-03-28T21:59:59", false,
		 "daily #1"}, /* 28th 23:59, == cutoff */
		{"2021-03-28T22:00:00", false, "within #1"}, /* 29th 00:00 */
		{NULL, false, NULL},
	};
	struct policy p = POLICY_INIT;

	(void)state;
	p.keep_hourly = 10;
	check_table("Europe/Berlin", &p, NULL, spring);
	p.keep_hourly = 3;
	check_table("Europe/Berlin", &p, NULL, autumn);
	p.keep_hourly = 10;
	check_table("UTC", &p, NULL, autumn_utc);
	p.keep_hourly = 0;
	p.keep_daily = 3;
	p.keep_within_sec = 3600;
	check_table("Europe/Berlin", &p, "2021-03-28T22:59:59", days);
}

/* A zone given as a POSIX TZ string needs no zone file: Berlin's rules
 * written out give the same periods as Europe/Berlin. */
static void test_policy_dst_posix_string(void **state)
{
	static const struct snap autumn[] = {
		{"2021-10-30T23:30:00", false, "hourly #3"}, /* 01:30 CEST */
		{"2021-10-31T00:30:00", false, "remove"},    /* 02:30 CEST */
		{"2021-10-31T01:30:00", false, "hourly #2"}, /* 02:30 CET */
		{"2021-10-31T02:30:00", false, "hourly #1"}, /* 03:30 CET */
		{NULL, false, NULL},
	};
	struct policy p = POLICY_INIT;

	(void)state;
	p.keep_hourly = 3;
	check_table("CET-1CEST,M3.5.0,M10.5.0/3", &p, NULL, autumn);
}

/* Write n bytes of data to dir/name, creating dir/name's parent. */
static void write_file(const char *dir, const char *sub, const char *name,
		       const char *data, size_t n)
{
	char path[512];
	FILE *f;

	if (sub) {
		snprintf(path, sizeof(path), "%s/%s", dir, sub);
		assert_int_equal(mkdir(path, 0700), 0);
		snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
	} else {
		snprintf(path, sizeof(path), "%s/%s", dir, name);
	}
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

/* policy_check_tz under TZ=tz: want 0, or an error whose message holds
 * every string of want_msg. */
static void check_tz(const char *tz, int want, const char *want_msg1,
		     const char *want_msg2)
{
	struct mv_err err = MV_ERR_INIT;
	int rc;

	set_tz(tz);
	rc = policy_check_tz(&err);
	if (rc != want)
		print_error("TZ='%s': want %d, got %d (%s)\n", tz, want, rc,
			    mv_err_msg(&err));
	assert_int_equal(rc, want);
	if (want_msg1)
		assert_non_null(strstr(mv_err_msg(&err), want_msg1));
	if (want_msg2)
		assert_non_null(strstr(mv_err_msg(&err), want_msg2));
}

/* A zone that cannot be loaded is refused, not counted in UTC as the C
 * library silently does: a missing tzdata, a misspelt name, a file that
 * is no zone file.  POSIX TZ strings and the names of UTC need no file. */
static void test_policy_tz_unloadable(void **state)
{
	char dir[] = "/tmp/mv-test-tz.XXXXXX", path[600];
	struct mv_err err = MV_ERR_INIT;
	struct policy p = POLICY_INIT;
	struct policy_item items[2];
	const char *old_tzdir = getenv("TZDIR");
	char *saved = old_tzdir ? strdup(old_tzdir) : NULL;

	(void)state;
	assert_non_null(mkdtemp(dir));
	/* an empty zone directory is a machine without tzdata */
	assert_int_equal(setenv("TZDIR", dir, 1), 0);
	check_tz("Europe/Berlin", -ENOENT, "'Europe/Berlin'", "tzdata");
	check_tz(":Europe/Berlin", -ENOENT, "'Europe/Berlin'", dir);
	check_tz("UTC", 0, NULL, NULL);
	check_tz("Etc/UTC", 0, NULL, NULL);
	check_tz("", 0, NULL, NULL);
	check_tz("CET-1CEST,M3.5.0,M10.5.0/3", 0, NULL, NULL);
	check_tz("<+0330>-3:30", 0, NULL, NULL);
	check_tz("EST5EDT", 0, NULL, NULL);
	check_tz("CET-1CEST,M3.5.0", -ENOENT, "'CET-1CEST,M3.5.0'", NULL);
	check_tz("Berlin", -ENOENT, "'Berlin'", NULL);

	/* a zone file in $TZDIR is found there; one that is not TZif is not
	 * a zone */
	write_file(dir, "Europe", "Berlin", "TZif2\0\0\0", 8);
	check_tz("Europe/Berlin", 0, NULL, NULL);
	write_file(dir, NULL, "Junk", "# not a zone\n", 13);
	check_tz("Junk", -EINVAL, "'Junk'", "not a time zone file");
	snprintf(path, sizeof(path), "%s/Europe/Berlin", dir);
	check_tz(path, 0, NULL, NULL);
	snprintf(path, sizeof(path), "%s/Europe/Paris", dir);
	check_tz(path, -ENOENT, path, NULL);

	/* without $TZDIR: the system's zone directory */
	assert_int_equal(unsetenv("TZDIR"), 0);
	check_tz("Nowhere/Atlantis", -ENOENT, "'Nowhere/Atlantis'",
		 "/usr/share/zoneinfo/Nowhere/Atlantis");

	/* policy_apply refuses too, and leaves the items alone */
	memset(items, 0, sizeof(items));
	items[0].time_ns = utc("2021-01-01T00:00:00");
	items[1].time_ns = utc("2021-02-01T00:00:00");
	items[0].kept_num = items[1].kept_num = 7;
	p.keep_daily = 1;
	set_tz("Nowhere/Atlantis");
	assert_int_equal(policy_apply(&p, items, 2, 0, &err), -ENOENT);
	assert_non_null(strstr(mv_err_msg(&err), "'Nowhere/Atlantis'"));
	assert_null(items[0].kept_by);
	assert_int_equal(items[0].kept_num, 7);

	snprintf(path, sizeof(path), "%s/Europe/Berlin", dir);
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/Europe", dir);
	assert_int_equal(rmdir(path), 0);
	snprintf(path, sizeof(path), "%s/Junk", dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
	if (saved)
		assert_int_equal(setenv("TZDIR", saved, 1), 0);
	free(saved);
	set_tz("UTC");
}

/* ISO weeks: 2020 has a week 53 that ends on Sunday 2021-01-03; week 1
 * of 2025 starts on Monday 2024-12-30; 2026-W53 ends on 2027-01-03. */
static void test_policy_iso_weeks(void **state)
{
	static const struct snap w53[] = {
		{"2020-12-20T12:00:00", false, "weekly #5"}, /* W51 */
		{"2020-12-27T12:00:00", false, "weekly #4"}, /* W52 */
		{"2020-12-28T12:00:00", false, "remove"},    /* W53 */
		{"2020-12-31T12:00:00", false, "remove"},    /* W53 */
		{"2021-01-01T12:00:00", false, "remove"},    /* W53 */
		{"2021-01-03T12:00:00", false, "weekly #3"}, /* W53 */
		{"2021-01-04T12:00:00", false, "remove"},    /* W01 */
		{"2021-01-10T12:00:00", false, "weekly #2"}, /* W01 */
		{"2021-01-11T12:00:00", false, "weekly #1"}, /* W02 */
		{NULL, false, NULL},
	};
	static const struct snap w1[] = {
		{"2024-12-29T12:00:00", false, "remove"},    /* 2024-W52 */
		{"2024-12-30T12:00:00", false, "remove"},    /* 2025-W01 */
		{"2025-01-05T12:00:00", false, "weekly #3"}, /* 2025-W01 */
		{"2025-12-28T12:00:00", false, "weekly #2"}, /* 2025-W52 */
		{"2025-12-29T12:00:00", false, "remove"},    /* 2026-W01 */
		{"2026-01-01T12:00:00", false, "weekly #1"}, /* 2026-W01 */
		{NULL, false, NULL},
	};
	static const struct snap w53b[] = {
		{"2026-12-28T12:00:00", false, "remove"},    /* 2026-W53 */
		{"2027-01-03T12:00:00", false, "weekly #2"}, /* 2026-W53 */
		{"2027-01-04T12:00:00", false, "weekly #1"}, /* 2027-W01 */
		{NULL, false, NULL},
	};
	struct policy p = POLICY_INIT;

	(void)state;
	p.keep_weekly = 5;
	check_table("UTC", &p, NULL, w53);
	p.keep_weekly = 3;
	check_table("Europe/Berlin", &p, NULL, w1);
	p.keep_weekly = 2;
	check_table("UTC", &p, NULL, w53b);
}

/* Equal times: the later item is the newer one; --keep-last groups
 * snapshots of the same second as borg's --keep-secondly does. */
static void test_policy_equal_times(void **state)
{
	static const struct snap same[] = {
		{"2021-01-01T12:00:00", false, "secondly[oldest] #4"},
		{"2021-01-02T12:00:00", false, "secondly #2"},
		{"2021-01-03T12:00:00", false, "secondly #1"},
		{"2021-01-01T12:00:00", false, "remove"},
		{"2021-01-01T12:00:00", false, "secondly #3"},
		{NULL, false, NULL},
	};
	static const struct snap last2[] = {
		{"2021-01-01T12:00:00", false, "remove"},
		{"2021-01-02T12:00:00", false, "secondly #2"},
		{"2021-01-03T12:00:00", false, "remove"},
		{"2021-01-03T12:00:00", false, "secondly #1"},
		{NULL, false, NULL},
	};
	struct mv_err err = MV_ERR_INIT;
	struct policy p = POLICY_INIT;
	struct policy_item items[2];

	(void)state;
	p.keep_last = 10;
	check_table("UTC", &p, NULL, same);
	p.keep_last = 2;
	check_table("UTC", &p, NULL, last2);

	/* sub-second differences: the same borg second */
	memset(items, 0, sizeof(items));
	items[0].time_ns = utc("2021-01-01T12:00:00") + 900000000;
	items[1].time_ns = utc("2021-01-01T12:00:00") + 100000000;
	assert_int_equal(policy_apply(&p, items, 2, 0, &err), 0);
	assert_string_equal(items[0].kept_by, "secondly");
	assert_int_equal(items[0].kept_num, 1);
	assert_string_equal(items[1].kept_by, "secondly[oldest]");
}

/* --keep-within: strictly newer than now - duration, newest first, not
 * counted by the other rules; the hour before now is not a period. */
static void test_policy_keep_within(void **state)
{
	/* the 13th is used up by a within snapshot: daily goes on at the
	 * 12th; a snapshot in the future (clock skew) is within too */
	static const struct snap within[] = {
		{"2021-06-10T12:00:00", false, "daily #2"},
		{"2021-06-12T12:00:00", false, "daily #1"},
		{"2021-06-13T11:59:59", false, "remove"},
		{"2021-06-13T12:00:00", false, "remove"}, /* == cutoff */
		{"2021-06-13T12:00:01", false, "within #4"},
		{"2021-06-14T08:00:00", false, "within #3"},
		{"2021-06-15T11:00:00", false, "within #2"},
		{"2021-06-16T12:00:00", false, "within #1"},
		{NULL, false, NULL},
	};
	static const struct snap only[] = {
		{"2021-06-01T12:00:00", false, "remove"},
		{"2021-06-14T12:00:00", false, "within #2"},
		{"2021-06-15T11:00:00", false, "within #1"},
		{"2021-06-15T11:30:00", true, "partial"},
		{NULL, false, NULL},
	};
	struct policy p = POLICY_INIT;

	(void)state;
	p.keep_within_sec = 2 * 86400;
	p.keep_daily = 2;
	check_table("UTC", &p, "2021-06-15T12:00:00", within);
	p.keep_daily = 0;
	check_table("UTC", &p, "2021-06-15T12:00:00", only);
}

/* Partial snapshots never count and are kept only while no complete
 * snapshot is as new. */
static void test_policy_partial(void **state)
{
	static const struct snap mixed[] = {
		{"2021-01-01T12:00:00", false, "daily #3"},
		{"2021-01-02T03:00:00", true, "remove"},
		{"2021-01-02T12:00:00", false, "daily #2"},
		{"2021-01-03T11:00:00", true, "remove"}, /* newer than #1 */
		{"2021-01-03T10:00:00", false, "remove"},
		{"2021-01-03T12:00:00", false, "daily #1"},
		{"2021-01-04T01:00:00", true, "partial"},
		{"2021-01-04T02:00:00", true, "partial"},
		{NULL, false, NULL},
	};
	static const struct snap tie[] = {
		{"2021-01-02T12:00:00", false, "secondly #1"},
		{"2021-01-02T12:00:00", true, "remove"},
		{"2021-01-01T12:00:00", false, "secondly #2"},
		{NULL, false, NULL},
	};
	static const struct snap all_partial[] = {
		{"2021-01-01T12:00:00", true, "partial"},
		{"2021-01-02T12:00:00", true, "partial"},
		{NULL, false, NULL},
	};
	struct policy p = POLICY_INIT;

	(void)state;
	p.keep_daily = 3;
	check_table("UTC", &p, NULL, mixed);
	p.keep_daily = 0;
	p.keep_last = 2;
	check_table("UTC", &p, NULL, tie);
	check_table("UTC", &p, NULL, all_partial);
}

/* A rule that runs short keeps the oldest snapshot, even from a period it
 * already used; unlimited counts never do. */
static void test_policy_oldest_and_unlimited(void **state)
{
	static const struct snap short_rule[] = {
		{"2021-01-01T08:00:00", false, "daily[oldest] #3"},
		{"2021-01-01T20:00:00", false, "daily #2"},
		{"2021-01-02T09:00:00", false, "remove"},
		{"2021-01-02T20:00:00", false, "daily #1"},
		{NULL, false, NULL},
	};
	static const struct snap full_rule[] = {
		{"2021-01-01T08:00:00", false, "remove"},
		{"2021-01-01T20:00:00", false, "daily #2"},
		{"2021-01-02T20:00:00", false, "daily #1"},
		{NULL, false, NULL},
	};
	static const struct snap unlimited[] = {
		{"2021-01-01T08:00:00", false, "remove"},
		{"2021-01-01T20:00:00", false, "daily #3"},
		{"2021-01-02T20:00:00", false, "daily #2"},
		{"2021-01-05T20:00:00", false, "daily #1"},
		{NULL, false, NULL},
	};
	/* oldest already kept by an earlier rule: nothing more */
	static const struct snap oldest_kept[] = {
		{"2021-01-01T08:00:00", false, "secondly #2"},
		{"2021-01-02T20:00:00", false, "secondly #1"},
		{NULL, false, NULL},
	};
	struct policy p = POLICY_INIT;

	(void)state;
	p.keep_daily = 5;
	check_table("UTC", &p, NULL, short_rule);
	p.keep_daily = 2;
	check_table("UTC", &p, NULL, full_rule);
	p.keep_daily = POLICY_UNLIMITED;
	check_table("UTC", &p, NULL, unlimited);
	p.keep_daily = 0;
	p.keep_last = 2;
	p.keep_yearly = 3;
	check_table("UTC", &p, NULL, oldest_kept);
}

/* The whole ladder at once, applied finest to coarsest: the newest
 * snapshot uses up its minute, hour, day, week, month and year, so each
 * coarser rule starts one period further back. */
static void test_policy_all_rules(void **state)
{
	static const struct snap ladder[] = {
		{"2019-05-01T00:00:00", false, "monthly #2"},
		{"2019-07-01T00:00:00", false, "monthly #1"},
		{"2020-11-15T00:00:00", false, "weekly #2"},
		{"2020-12-01T00:00:00", false, "remove"},
		{"2020-12-02T00:00:00", false, "remove"},
		{"2020-12-03T00:00:00", false, "weekly #1"},
		{"2020-12-16T00:00:00", false, "daily #2"},
		{"2020-12-30T00:00:00", false, "daily #1"},
		{"2020-12-31T10:00:00", false, "remove"},
		{"2020-12-31T11:00:00", false, "hourly #1"},
		{"2020-12-31T12:00:00", false, "minutely #1"},
		{"2020-12-31T12:01:00", false, "secondly #2"},
		{"2020-12-31T12:01:30", false, "secondly #1"},
		{NULL, false, NULL},
	};
	struct policy p = {2, 1, 1, 2, 2, 2, 2, 0};

	(void)state;
	check_table("UTC", &p, NULL, ladder);
}

/* The order of the input does not matter (except among equal times). */
static void test_policy_input_order(void **state)
{
	struct mv_err err = MV_ERR_INIT;
	struct policy p = POLICY_INIT;
	struct policy_item a[64], b[64];
	uint32_t x = 12345;
	size_t i, j;

	(void)state;
	set_tz("Europe/Berlin");
	for (i = 0; i < 64; i++) {
		memset(&a[i], 0, sizeof(a[i]));
		a[i].time_ns =
			utc("2020-12-01T00:00:00") + (int64_t)i * 7 * 3600 * NS;
		a[i].partial = i % 11 == 5;
	}
	for (i = 0; i < 64; i++)
		b[i] = a[63 - i];
	for (i = 63; i > 0; i--) {
		struct policy_item t;

		x = x * 1103515245u + 12345u;
		j = (x >> 16) % (i + 1);
		t = b[i];
		b[i] = b[j];
		b[j] = t;
	}
	p.keep_hourly = 3;
	p.keep_daily = 5;
	p.keep_weekly = 2;
	p.keep_monthly = 3;
	assert_int_equal(policy_apply(&p, a, 64, 0, &err), 0);
	assert_int_equal(policy_apply(&p, b, 64, 0, &err), 0);
	for (i = 0; i < 64; i++)
		for (j = 0; j < 64; j++)
			if (a[i].time_ns == b[j].time_ns) {
				assert_ptr_equal(a[i].kept_by, b[j].kept_by);
				assert_int_equal(a[i].kept_num, b[j].kept_num);
			}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_parse_duration),
		cmocka_unit_test(test_policy_set_option),
		cmocka_unit_test(test_policy_validate),
		cmocka_unit_test(test_policy_describe),
		cmocka_unit_test(test_policy_borg_docs_example),
		cmocka_unit_test(test_policy_month_year_boundaries),
		cmocka_unit_test(test_policy_dst_berlin),
		cmocka_unit_test(test_policy_dst_posix_string),
		cmocka_unit_test(test_policy_tz_unloadable),
		cmocka_unit_test(test_policy_iso_weeks),
		cmocka_unit_test(test_policy_equal_times),
		cmocka_unit_test(test_policy_keep_within),
		cmocka_unit_test(test_policy_partial),
		cmocka_unit_test(test_policy_oldest_and_unlimited),
		cmocka_unit_test(test_policy_all_rules),
		cmocka_unit_test(test_policy_input_order),
	};

	return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
