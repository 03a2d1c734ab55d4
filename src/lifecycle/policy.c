/*
 * policy: borg-prune-compatible retention decisions (see include/policy.h).
 *
 * Each rule is a walk over the complete snapshots sorted newest first; a
 * period key is computed from the local broken-down time, and a snapshot
 * starts a new period when its key differs from the previous one.  Sorting
 * is stable on input position so equal times give the same answer every
 * run.
 */
#include "policy.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define NS_PER_SEC 1000000000LL
#define SEC_PER_HOUR 3600LL
/* 100 years of hours: larger durations are surely typos */
#define DURATION_MAX_HOURS (100LL * 365 * 24)

enum period {
	PERIOD_SECOND,
	PERIOD_MINUTE,
	PERIOD_HOUR,
	PERIOD_DAY,
	PERIOD_WEEK,
	PERIOD_MONTH,
	PERIOD_YEAR,
};

struct rule {
	const char *option; /* "keep-daily" */
	const char *name;   /* "daily", shown as the reason */
	const char *oldest; /* "daily[oldest]" */
	enum period period;
};

/* Finest to coarsest: the order rules are applied in. */
static const struct rule rules[] = {
	{"keep-last", "secondly", "secondly[oldest]", PERIOD_SECOND},
	{"keep-minutely", "minutely", "minutely[oldest]", PERIOD_MINUTE},
	{"keep-hourly", "hourly", "hourly[oldest]", PERIOD_HOUR},
	{"keep-daily", "daily", "daily[oldest]", PERIOD_DAY},
	{"keep-weekly", "weekly", "weekly[oldest]", PERIOD_WEEK},
	{"keep-monthly", "monthly", "monthly[oldest]", PERIOD_MONTH},
	{"keep-yearly", "yearly", "yearly[oldest]", PERIOD_YEAR},
};

static const char rule_within[] = "within";
static const char rule_partial[] = "partial";

/* A complete snapshot on the sorted list. */
struct entry {
	int64_t time_ns;
	size_t index;	/* into the caller's items */
	int64_t key[7]; /* period key per enum period */
};

static int *count_ptr(struct policy *p, enum period period)
{
	switch (period) {
	case PERIOD_SECOND:
		return &p->keep_last;
	case PERIOD_MINUTE:
		return &p->keep_minutely;
	case PERIOD_HOUR:
		return &p->keep_hourly;
	case PERIOD_DAY:
		return &p->keep_daily;
	case PERIOD_WEEK:
		return &p->keep_weekly;
	case PERIOD_MONTH:
		return &p->keep_monthly;
	case PERIOD_YEAR:
		break;
	}
	return &p->keep_yearly;
}

static int rule_count(const struct policy *p, const struct rule *r)
{
	struct policy copy = *p;

	return *count_ptr(&copy, r->period);
}

int policy_parse_duration(const char *s, int64_t *out_sec, struct mv_err *err)
{
	static const struct {
		char unit;
		int64_t hours;
	} units[] = {
		{'H', 1},	{'d', 24},	 {'w', 24 * 7},
		{'m', 24 * 31}, {'y', 24 * 365},
	};
	size_t len, i;
	int64_t num = 0, hours = 0;
	const char *p;

	len = s ? strlen(s) : 0;
	if (len < 2)
		return mv_err_set(err, -EINVAL,
				  "invalid duration '%s': expected a number "
				  "and a unit H, d, w, m or y, e.g. '7d'",
				  s ? s : "");
	for (i = 0; i < MV_ARRAY_SIZE(units); i++)
		if (s[len - 1] == units[i].unit)
			hours = units[i].hours;
	if (!hours)
		return mv_err_set(err, -EINVAL,
				  "invalid duration '%s': unknown unit '%c', "
				  "expected H, d, w, m (31 days) or y (365 "
				  "days)",
				  s, s[len - 1]);
	for (p = s; p < s + len - 1; p++) {
		if (*p < '0' || *p > '9')
			return mv_err_set(err, -EINVAL,
					  "invalid duration '%s': expected a "
					  "whole number greater than 0 before "
					  "the unit",
					  s);
		num = num * 10 + (*p - '0');
		if (num * hours > DURATION_MAX_HOURS)
			return mv_err_set(err, -EINVAL,
					  "invalid duration '%s': longer than "
					  "100 years",
					  s);
	}
	if (num == 0)
		return mv_err_set(err, -EINVAL,
				  "invalid duration '%s': expected a whole "
				  "number greater than 0 before the unit",
				  s);
	*out_sec = num * hours * SEC_PER_HOUR;
	return 0;
}

static int parse_count(const char *name, const char *s, int *out,
		       struct mv_err *err)
{
	char *end;
	long v;

	errno = 0;
	v = s && *s ? strtol(s, &end, 10) : 0;
	if (!s || !*s || *end || errno || v > INT_MAX)
		return mv_err_set(err, -EINVAL,
				  "invalid --%s '%s': expected a count", name,
				  s ? s : "");
	if (v < POLICY_UNLIMITED)
		return mv_err_set(err, -EINVAL,
				  "invalid --%s '%s': expected a count >= 0, "
				  "or -1 for no limit",
				  name, s);
	*out = (int)v;
	return 0;
}

int policy_set_option(struct policy *p, const char *name, const char *value,
		      struct mv_err *err)
{
	size_t i;

	while (*name == '-')
		name++;
	if (!strcmp(name, "keep-within"))
		return policy_parse_duration(value, &p->keep_within_sec, err);
	if (!strcmp(name, "keep-secondly"))
		name = "keep-last";
	for (i = 0; i < MV_ARRAY_SIZE(rules); i++)
		if (!strcmp(name, rules[i].option))
			return parse_count(name, value,
					   count_ptr(p, rules[i].period), err);
	return -ENOENT;
}

bool policy_is_empty(const struct policy *p)
{
	size_t i;

	for (i = 0; i < MV_ARRAY_SIZE(rules); i++)
		if (rule_count(p, &rules[i]))
			return false;
	return p->keep_within_sec == 0;
}

int policy_validate(const struct policy *p, struct mv_err *err)
{
	size_t i;

	for (i = 0; i < MV_ARRAY_SIZE(rules); i++) {
		int v = rule_count(p, &rules[i]);

		if (v < POLICY_UNLIMITED)
			return mv_err_set(err, -EINVAL,
					  "invalid --%s %d: expected a count "
					  ">= 0, or -1 for no limit",
					  rules[i].option, v);
	}
	if (p->keep_within_sec < 0 ||
	    p->keep_within_sec > DURATION_MAX_HOURS * SEC_PER_HOUR)
		return mv_err_set(err, -EINVAL,
				  "invalid --keep-within of %" PRId64
				  " seconds: expected 0 to 100 years",
				  p->keep_within_sec);
	if (policy_is_empty(p))
		return mv_err_set(
			err, -EINVAL,
			"no retention rule given: refusing to remove "
			"every snapshot; give at least one of "
			"--keep-last, --keep-hourly, --keep-daily, "
			"--keep-weekly, --keep-monthly, --keep-yearly "
			"or --keep-within");
	return 0;
}

/* ISO 8601 week-based year and week of a broken-down time. */
static void iso_week(const struct tm *tm, int *out_year, int *out_week)
{
	int year = tm->tm_year + 1900;
	int wday = (tm->tm_wday + 6) % 7; /* Monday 0 */
	int thursday = tm->tm_yday - wday + 3;
	int len;

	if (thursday < 0) {
		year--;
		len = (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0))
			      ? 366
			      : 365;
		thursday += len;
	} else {
		len = (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0))
			      ? 366
			      : 365;
		if (thursday >= len) {
			thursday -= len;
			year++;
		}
	}
	*out_year = year;
	*out_week = thursday / 7 + 1;
}

static int entry_keys(struct entry *e, struct mv_err *err)
{
	int64_t sec = e->time_ns / NS_PER_SEC;
	int64_t y, mo, d, h, mi, s;
	int wy, wk;
	struct tm tm;
	time_t t;

	if (e->time_ns % NS_PER_SEC < 0)
		sec--;
	t = (time_t)sec;
	if (!localtime_r(&t, &tm))
		return mv_err_set(err, -EINVAL,
				  "cannot convert snapshot time %" PRId64
				  " to local time",
				  e->time_ns);
	y = tm.tm_year + 1900;
	mo = tm.tm_mon + 1;
	d = tm.tm_mday;
	h = tm.tm_hour;
	mi = tm.tm_min;
	s = tm.tm_sec;
	iso_week(&tm, &wy, &wk);
	e->key[PERIOD_YEAR] = y;
	e->key[PERIOD_MONTH] = y * 100 + mo;
	e->key[PERIOD_DAY] = e->key[PERIOD_MONTH] * 100 + d;
	e->key[PERIOD_HOUR] = e->key[PERIOD_DAY] * 100 + h;
	e->key[PERIOD_MINUTE] = e->key[PERIOD_HOUR] * 100 + mi;
	e->key[PERIOD_SECOND] = e->key[PERIOD_MINUTE] * 100 + s;
	e->key[PERIOD_WEEK] = (int64_t)wy * 100 + wk;
	return 0;
}

/* Newest first; on equal times the later input item first. */
static int entry_cmp(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	if (x->time_ns != y->time_ns)
		return x->time_ns > y->time_ns ? -1 : 1;
	if (x->index != y->index)
		return x->index > y->index ? -1 : 1;
	return 0;
}

struct decision {
	const char *by;
	int num;
};

static void apply_rule(const struct rule *r, int count,
		       const struct entry *list, size_t m, struct decision *dec)
{
	int64_t last = 0;
	bool have_last = false;
	int kept = 0;
	size_t i;

	if (count == 0 || m == 0)
		return;
	for (i = 0; i < m; i++) {
		const struct entry *e = &list[i];

		if (have_last && e->key[r->period] == last)
			continue;
		have_last = true;
		last = e->key[r->period];
		if (dec[e->index].by)
			continue;
		dec[e->index].by = r->name;
		dec[e->index].num = ++kept;
		if (kept == count)
			return;
	}
	/* ran out before reaching count: keep the oldest as well */
	if (count > 0 && kept < count && !dec[list[m - 1].index].by) {
		dec[list[m - 1].index].by = r->oldest;
		dec[list[m - 1].index].num = ++kept;
	}
}

/*
 * Time zone check.  glibc's tzset() tries the zone file $TZ names and,
 * when that fails, parses $TZ as a POSIX string; when that fails too it
 * counts in UTC without a word.  So a machine without tzdata, or a
 * misspelt zone, would make forget keep other snapshots than the policy
 * asks for.  The check follows the C library's lookup and refuses
 * whatever it would not load.
 */
#define TZ_DEFAULT_DIR "/usr/share/zoneinfo"
#define TZ_SYSTEM "/etc/localtime"

/* Names that mean UTC even with no zone file: the C library's fallback
 * is then the zone asked for. */
static bool tz_is_utc_name(const char *name)
{
	static const char *const utc_names[] = {
		"UTC",	 "UCT",	      "GMT",	   "GMT0", "GMT+0",
		"GMT-0", "Greenwich", "Universal", "Zulu",
	};
	size_t i;

	if (!strncmp(name, "Etc/", 4))
		name += 4;
	for (i = 0; i < MV_ARRAY_SIZE(utc_names); i++)
		if (!strcmp(name, utc_names[i]))
			return true;
	return false;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* POSIX TZ pieces: each returns the end of what it read, NULL if bad. */
static const char *tz_name(const char *s)
{
	const char *p = s;

	if (*p == '<') {
		for (p++;
		     is_alpha(*p) || is_digit(*p) || *p == '+' || *p == '-';
		     p++)
			;
		return *p == '>' && p - s - 1 >= 3 ? p + 1 : NULL;
	}
	while (is_alpha(*p))
		p++;
	return p - s >= 3 ? p : NULL;
}

/* [+-]hh[h][:mm[:ss]] */
static const char *tz_time(const char *p)
{
	int n, i;

	if (!p)
		return NULL;
	if (*p == '+' || *p == '-')
		p++;
	for (n = 0; n < 3 && is_digit(*p); n++)
		p++;
	if (n == 0)
		return NULL;
	for (i = 0; i < 2 && *p == ':'; i++) {
		if (!is_digit(p[1]) || !is_digit(p[2]))
			return NULL;
		p += 3;
	}
	return p;
}

/* Jn, n or Mm.w.d, then an optional /time */
static const char *tz_date(const char *p)
{
	if (*p == 'M') {
		p++;
		for (int i = 0; i < 3; i++) {
			if (i > 0 && *p++ != '.')
				return NULL;
			if (!is_digit(*p))
				return NULL;
			while (is_digit(*p))
				p++;
		}
	} else {
		if (*p == 'J')
			p++;
		if (!is_digit(*p))
			return NULL;
		while (is_digit(*p))
			p++;
	}
	return *p == '/' ? tz_time(p + 1) : p;
}

/* std offset [dst [offset] [,start[/time],end[/time]]], all of it. */
static bool tz_is_posix(const char *s)
{
	const char *p = tz_time(tz_name(s));

	if (!p)
		return false;
	if (!*p)
		return true;
	if (!(p = tz_name(p)))
		return false;
	if (*p && *p != ',' && !(p = tz_time(p)))
		return false;
	if (!*p)
		return true;
	if (*p++ != ',' || !(p = tz_date(p)) || *p++ != ',' ||
	    !(p = tz_date(p)))
		return false;
	return !*p;
}

/* The zone file at path must open and start with the TZif magic. */
static int tz_file_check(const char *zone, const char *path, struct mv_err *err)
{
	char magic[4];
	size_t got;
	FILE *f;

	f = fopen(path, "rbe");
	if (!f) {
		int e = errno;

		return mv_err_set(err, -e,
				  "time zone '%s' cannot be loaded: %s: %s; "
				  "install tzdata or set TZ to a zone that "
				  "exists: retention periods are counted in it",
				  zone, path, strerror(e));
	}
	got = fread(magic, 1, sizeof(magic), f);
	fclose(f);
	if (got != sizeof(magic) || memcmp(magic, "TZif", sizeof(magic)))
		return mv_err_set(err, -EINVAL,
				  "time zone '%s' cannot be loaded: %s is not "
				  "a time zone file",
				  zone, path);
	return 0;
}

/* No $TZ: the system's zone, /etc/localtime, when there is one. */
static int tz_check_system(struct mv_err *err)
{
	char target[PATH_MAX];
	const char *zone = TZ_SYSTEM, *z;
	struct stat st;
	ssize_t n;

	if (lstat(TZ_SYSTEM, &st) < 0)
		return 0; /* no zone configured: UTC, as documented */
	n = S_ISLNK(st.st_mode)
		    ? readlink(TZ_SYSTEM, target, sizeof(target) - 1)
		    : -1;
	if (n > 0) {
		target[n] = '\0';
		z = strstr(target, "zoneinfo/");
		zone = z ? z + strlen("zoneinfo/") : target;
		/* Debian's images link Etc/UTC without shipping tzdata */
		if (tz_is_utc_name(zone) && stat(TZ_SYSTEM, &st) < 0)
			return 0;
	}
	return tz_file_check(zone, TZ_SYSTEM, err);
}

int policy_check_tz(struct mv_err *err)
{
	struct mv_err file_err = MV_ERR_INIT;
	const char *tz = getenv("TZ");
	int rc;

	if (!tz)
		return tz_check_system(err);
	if (!*tz)
		return 0; /* the C library's UTC */
	if (*tz == ':')
		tz++;
	if (!*tz)
		return tz_check_system(err);
	if (*tz == '/') {
		rc = tz_file_check(tz, tz, &file_err);
	} else {
		const char *dir = getenv("TZDIR");
		char path[PATH_MAX];

		if (!dir || !*dir)
			dir = TZ_DEFAULT_DIR;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, tz) >=
		    sizeof(path))
			return mv_err_set(err, -ENAMETOOLONG,
					  "time zone '%s': name too long", tz);
		rc = tz_file_check(tz, path, &file_err);
	}
	/* As the C library: a file wins; without one, a POSIX string or a
	 * name of UTC means what it says. */
	if (rc < 0 && !tz_is_posix(tz) && !tz_is_utc_name(tz))
		return mv_err_set(err, rc, "%s", mv_err_msg(&file_err));
	return 0;
}

int policy_apply(const struct policy *p, struct policy_item *items, size_t n,
		 int64_t now_ns, struct mv_err *err)
{
	struct entry *list = NULL;
	struct decision *dec = NULL;
	int64_t newest_complete = INT64_MIN, cutoff;
	bool have_complete = false;
	size_t i, m = 0;
	int rc, within = 0;

	rc = policy_validate(p, err);
	if (rc < 0)
		return rc;
	rc = policy_check_tz(err);
	if (rc < 0)
		return rc;
	if (n == 0)
		return 0;
	if (n > SIZE_MAX / sizeof(*list))
		return mv_err_set(err, -ENOMEM, "too many snapshots: %zu", n);
	list = calloc(n, sizeof(*list));
	dec = calloc(n, sizeof(*dec));
	if (!list || !dec) {
		rc = mv_err_set(err, -ENOMEM, "out of memory for %zu snapshots",
				n);
		goto out;
	}
	tzset();
	for (i = 0; i < n; i++) {
		if (items[i].partial)
			continue;
		list[m].time_ns = items[i].time_ns;
		list[m].index = i;
		rc = entry_keys(&list[m], err);
		if (rc < 0)
			goto out;
		if (!have_complete || items[i].time_ns > newest_complete)
			newest_complete = items[i].time_ns;
		have_complete = true;
		m++;
	}
	qsort(list, m, sizeof(*list), entry_cmp);

	if (p->keep_within_sec > 0) {
		int64_t span = p->keep_within_sec * NS_PER_SEC;

		cutoff = now_ns < INT64_MIN + span ? INT64_MIN : now_ns - span;
		for (i = 0; i < m; i++) {
			if (list[i].time_ns <= cutoff)
				break;
			dec[list[i].index].by = rule_within;
			dec[list[i].index].num = ++within;
		}
	}
	for (i = 0; i < MV_ARRAY_SIZE(rules); i++)
		apply_rule(&rules[i], rule_count(p, &rules[i]), list, m, dec);

	for (i = 0; i < n; i++) {
		if (items[i].partial &&
		    (!have_complete || items[i].time_ns > newest_complete)) {
			dec[i].by = rule_partial;
			dec[i].num = 1;
		}
		items[i].kept_by = dec[i].by;
		items[i].kept_num = dec[i].by ? dec[i].num : 0;
	}
	rc = 0;
out:
	free(dec);
	free(list);
	return rc;
}

void policy_item_reason(const struct policy_item *it, char *out, size_t n)
{
	if (!it->kept_by)
		snprintf(out, n, "remove");
	else if (it->kept_by == rule_partial)
		snprintf(out, n, "%s", it->kept_by);
	else
		snprintf(out, n, "%s #%d", it->kept_by, it->kept_num);
}

static size_t describe_append(char *out, size_t n, size_t used, const char *opt,
			      const char *val)
{
	int w;

	if (used >= n)
		return used;
	w = snprintf(out + used, n - used, "%s--%s %s", used ? " " : "", opt,
		     val);
	return w < 0 ? n : used + (size_t)w;
}

void policy_describe(const struct policy *p, char *out, size_t n)
{
	static const struct {
		char unit;
		int64_t sec;
	} units[] = {
		{'y', 365 * 86400LL}, {'m', 31 * 86400LL}, {'w', 7 * 86400LL},
		{'d', 86400LL},	      {'H', 3600LL},
	};
	char val[32];
	size_t used = 0, i;

	if (n)
		out[0] = '\0';
	for (i = 0; i < MV_ARRAY_SIZE(rules); i++) {
		int v = rule_count(p, &rules[i]);

		if (!v)
			continue;
		snprintf(val, sizeof(val), "%d", v);
		used = describe_append(out, n, used, rules[i].option, val);
	}
	if (p->keep_within_sec <= 0)
		return;
	for (i = 0; i < MV_ARRAY_SIZE(units); i++)
		if (p->keep_within_sec % units[i].sec == 0)
			break;
	if (i == MV_ARRAY_SIZE(units))
		snprintf(val, sizeof(val), "%" PRId64 "s", p->keep_within_sec);
	else
		snprintf(val, sizeof(val), "%" PRId64 "%c",
			 p->keep_within_sec / units[i].sec, units[i].unit);
	describe_append(out, n, used, "keep-within", val);
}
