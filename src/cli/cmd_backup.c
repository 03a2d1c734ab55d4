/* mailvault backup: store sources as one snapshot. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "exclude.h"
#include "formats.h"
#include "ingest.h"
#include "mail_view.h"
#include "repo.h"
#include "snapshot.h"
#include "source.h"
#include "source_mailcow.h"
#include "tree.h"

static volatile int stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

struct source_arg {
	char *label;
	const char *src;
	const char *exec; /* ssh-exec: the command */
};

/* What every source shares. */
struct source_ctx {
	struct repo *r;
	const struct snapshot *parent;
	struct source_mailcow *mc;
	const struct exclude *ex;
	const char *stdin_name; /* --stdin-name: "-" is one file */
};

static int read_one_file(struct ingest *ing, const struct source_ctx *c,
			 const char *label, const char *path,
			 struct mv_err *err)
{
	const char *base = strrchr(path, '/');
	struct source_file_opts o = {label, base && base[1] ? base + 1 : path,
				     path,  -1,
				     c->r,  c->parent};

	return source_file_read(ing, &o, err);
}

static int check_label(const char *l)
{
	return *l && !strchr(l, '/') && strcmp(l, ".") && strcmp(l, "..");
}

/* A source by its kind: ssh:// and ssh-exec://, "-" (a tar stream, or
 * one file with --stdin-name), file:PATH (one file), a directory, else a
 * file that is read as a tar archive when it is one and stored as one
 * file when it is not (as borg and restic store any file). */
static int run_source(struct ingest *ing, const struct source_ctx *c,
		      const struct source_arg *s, struct mv_err *err)
{
	struct stat st;
	int fd, rc;

	if (!strncmp(s->src, "ssh://", 6) ||
	    !strncmp(s->src, "ssh-exec://", 11)) {
		struct source_remote_opts o = {s->label, s->src,    s->exec,
					       c->r,	 c->parent, c->ex};

		return source_remote_read(ing, &o, err);
	}
	if (!strcmp(s->src, "-") && c->stdin_name) {
		struct source_file_opts o = {s->label, c->stdin_name, NULL, 0,
					     c->r,     c->parent};

		return source_file_read(ing, &o, err);
	}
	if (!strcmp(s->src, "-")) {
		struct source_tar_opts o = {s->label, "-", 0, false, c->ex};
		char name[256];

		snprintf(name, sizeof(name), "%s=-", s->label);
		o.name = name;
		rc = source_tar_read(ing, &o, err);
		if (rc == -EMEDIUMTYPE) {
			char msg[sizeof(err->msg)];

			snprintf(msg, sizeof(msg),
				 "%s; to store a stream that is not a tar "
				 "archive as one file, give --stdin-name NAME",
				 mv_err_msg(err));
			mv_err_clear(err);
			mv_err_set(err, rc, "%s", msg);
		}
		return rc;
	}
	if (!strncmp(s->src, "file:", 5))
		return read_one_file(ing, c, s->label, s->src + 5, err);
	if (stat(s->src, &st) < 0)
		return mv_err_set(err, -errno, "cannot read source '%s': %s",
				  s->src, strerror(errno));
	if (S_ISDIR(st.st_mode)) {
		struct source_dir_opts o = {s->label,
					    s->src,
					    c->r,
					    c->parent,
					    source_mailcow_filter,
					    c->mc,
					    c->ex};

		return source_dir_read(ing, &o, err);
	}
	fd = open(s->src, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mv_err_set(err, -errno, "cannot open '%s': %s", s->src,
				  strerror(errno));
	{
		struct source_tar_opts o = {s->label, s->src, fd, false, c->ex};

		rc = source_tar_read(ing, &o, err);
	}
	close(fd);
	/* not an archive (nothing was stored from it): a plain file such
	 * as a database dump, kept as LABEL/NAME */
	if (rc == -EMEDIUMTYPE && S_ISREG(st.st_mode)) {
		mv_err_clear(err);
		rc = read_one_file(ing, c, s->label, s->src, err);
	}
	return rc;
}

/* --wait (for ever, -1) or --wait=SECONDS. */
static int parse_wait(const char *arg, int64_t *out)
{
	char *end;
	long long v;

	if (!arg) {
		*out = -1;
		return 0;
	}
	errno = 0;
	v = strtoll(arg, &end, 10);
	if (errno || !*arg || *end || v < 0)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Open for writing; while another writer holds the lock, try again each
 * second for up to wait seconds (-1: as forget and prune --wait do). */
static int open_wait(const char *repo, unsigned flags, int64_t wait,
		     const volatile int *stop, struct repo **out,
		     struct mv_err *err)
{
	time_t deadline = time(NULL) + (time_t)wait;

	if (wait < 0)
		return repo_open(repo, flags | REPO_OPEN_WAIT, out, err);
	for (;;) {
		int rc = repo_open(repo, flags, out, err);

		if (rc != -EBUSY || time(NULL) >= deadline || *stop)
			return rc;
		mv_err_clear(err);
		sleep(1);
	}
}

static const struct snapshot *find_parent(struct snapshot *list, size_t n,
					  const char *name)
{
	const struct snapshot *p = NULL;
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(list[i].name, name) && !list[i].partial)
			p = &list[i];
	return p;
}

/* The mail view's counts: a JSON member (with its trailing comma) or
 * text lines. */
static void print_mail(const struct mail_view_stats *m, bool json)
{
	unsigned long long problems = m->no_key + m->corrupt + m->bad_headers +
				      m->missing_blobs + m->bad_exports +
				      m->dump_errors;

	if (json) {
		printf("\"mail\":{\"messages\":%llu,\"parsed\":%llu,"
		       "\"known\":%llu,\"decoded\":%llu,\"no_key\":%llu,"
		       "\"corrupt\":%llu,\"bad_headers\":%llu,"
		       "\"large\":%llu,\"keys\":%llu,\"accounts\":%llu,"
		       "\"folders\":%llu,\"exports\":%llu,\"stalwart\":%llu,"
		       "\"missing_blobs\":%llu,\"bad_exports\":%llu,"
		       "\"loose\":%llu,\"dumps\":%llu,\"dump_messages\":%llu,"
		       "\"dump_errors\":%llu,\"catalogue\":%s},",
		       (unsigned long long)m->messages,
		       (unsigned long long)m->parsed,
		       (unsigned long long)m->known,
		       (unsigned long long)m->decoded,
		       (unsigned long long)m->no_key,
		       (unsigned long long)m->corrupt,
		       (unsigned long long)m->bad_headers,
		       (unsigned long long)m->large,
		       (unsigned long long)m->keys,
		       (unsigned long long)m->accounts,
		       (unsigned long long)m->folders,
		       (unsigned long long)m->exports,
		       (unsigned long long)m->stalwart,
		       (unsigned long long)m->missing_blobs,
		       (unsigned long long)m->bad_exports,
		       (unsigned long long)m->loose,
		       (unsigned long long)m->dumps,
		       (unsigned long long)m->dump_messages,
		       (unsigned long long)m->dump_errors,
		       m->catalog ? "true" : "false");
		return;
	}
	if (!m->messages)
		return;
	printf("  mail      %llu messages in %llu folders of %llu accounts "
	       "(%llu new parsed, %llu known, %llu decrypted/decompressed)\n",
	       (unsigned long long)m->messages, (unsigned long long)m->folders,
	       (unsigned long long)m->accounts, (unsigned long long)m->parsed,
	       (unsigned long long)m->known, (unsigned long long)m->decoded);
	if (m->exports || m->loose || m->dumps)
		printf("  sources   %llu Stalwart exports (%llu messages), "
		       "%llu Stalwart dumps (%llu messages), %llu loose .eml "
		       "files\n",
		       (unsigned long long)m->exports,
		       (unsigned long long)m->stalwart,
		       (unsigned long long)m->dumps,
		       (unsigned long long)m->dump_messages,
		       (unsigned long long)m->loose);
	if (problems || m->large)
		printf("  problems  %llu without key, %llu corrupt, %llu with "
		       "bad headers, %llu too large to parse, %llu missing "
		       "blobs, %llu cut exports, %llu damaged dumps\n",
		       (unsigned long long)m->no_key,
		       (unsigned long long)m->corrupt,
		       (unsigned long long)m->bad_headers,
		       (unsigned long long)m->large,
		       (unsigned long long)m->missing_blobs,
		       (unsigned long long)m->bad_exports,
		       (unsigned long long)m->dump_errors);
}

/* s on stderr with control characters as \n, \t or \xNN: member names
 * come from the archive and must not drive the terminal. */
static void put_safe(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	for (; *p; p++) {
		if (*p == '\n')
			fputs("\\n", stderr);
		else if (*p == '\t')
			fputs("\\t", stderr);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(stderr, "\\x%02x", *p);
		else
			fputc(*p, stderr);
	}
}

/* One line per source and kind of problem met in the input:
 * "mailvault: warning: SOURCE: COUNT KIND (first: CASE)". */
static void print_warnings(const struct ingest_warning *w, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++, w++) {
		fputs("mailvault: warning: ", stderr);
		put_safe(w->source);
		fputs(": ", stderr);
		if (w->count > 1 || w->first)
			fprintf(stderr, "%llu ", (unsigned long long)w->count);
		put_safe(w->count == 1 ? w->one : w->many);
		if (w->first) {
			fputs(w->count == 1 ? " (" : " (first: ", stderr);
			put_safe(w->first);
			fputc(')', stderr);
		}
		fputc('\n', stderr);
	}
}

/* The same as a JSON member, with its trailing comma. */
static void print_warnings_json(const struct ingest_warning *w, size_t n)
{
	size_t i;

	printf("\"warnings\":[");
	for (i = 0; i < n; i++, w++) {
		printf("%s{\"source\":", i ? "," : "");
		cli_json_str(w->source);
		printf(",\"count\":%llu,\"what\":",
		       (unsigned long long)w->count);
		cli_json_str(w->count == 1 ? w->one : w->many);
		printf(",\"first\":");
		if (w->first)
			cli_json_str(w->first);
		else
			printf("null");
		printf("}");
	}
	printf("],");
}

/* The snapshot's name as snapshots, find and the mount show it: with
 * "-2"... when another of the job falls in the same second. */
static void shown_dir(struct repo *r, const struct snapshot *s, char *out,
		      size_t n)
{
	struct mv_err err = MV_ERR_INIT;
	struct snapshot *list = NULL;
	size_t cnt = 0, i;

	snapshot_dir_name(s, out, n);
	if (snapshot_list(r, &list, &cnt, &err))
		return;
	for (i = 0; i < cnt; i++)
		if (!memcmp(list[i].id, s->id, MV_ID_LEN))
			snapshot_shown_name(list, i, out, n);
	snapshot_list_free(list, cnt);
}

static void print_entries(const struct ingest_stats *st)
{
	printf("  entries   %llu files (%llu unchanged), %llu dirs, %llu "
	       "other\n",
	       (unsigned long long)st->files,
	       (unsigned long long)st->files_reused,
	       (unsigned long long)st->dirs, (unsigned long long)st->others);
}

/*
 * What was read and what was (or, in a dry run, would be) added: the
 * JSON members from "files" to the end of the object, or the data and
 * time lines.  stored is the snapshot's stored size, NULL in a dry run,
 * which stores nothing and so counts the new bytes before compression.
 */
static void print_counts(const struct ingest_stats *st, const uint64_t *stored,
			 double secs, bool json)
{
	char a[32], b[32], c[32];

	if (json) {
		printf("\"files\":%llu,\"dirs\":%llu,\"others\":%llu,"
		       "\"files_unchanged\":%llu,\"bytes_read\":%llu,"
		       "\"bytes_new\":%llu,",
		       (unsigned long long)st->files,
		       (unsigned long long)st->dirs,
		       (unsigned long long)st->others,
		       (unsigned long long)st->files_reused,
		       (unsigned long long)st->bytes_in,
		       (unsigned long long)st->bytes_new);
		if (stored)
			printf("\"bytes_stored\":%llu,",
			       (unsigned long long)*stored);
		printf("\"chunks\":%llu,\"chunks_new\":%llu,"
		       "\"seconds\":%.3f}\n",
		       (unsigned long long)st->chunks,
		       (unsigned long long)st->chunks_new, secs);
		return;
	}
	mv_human_size(st->bytes_in, a, sizeof(a));
	mv_human_size(st->bytes_new, b, sizeof(b));
	if (!stored) {
		printf("  data      %s read, %s new before compression "
		       "(%llu of %llu chunks)\n",
		       a, b, (unsigned long long)st->chunks_new,
		       (unsigned long long)st->chunks);
		printf("  time      %.2f s\n", secs);
		return;
	}
	mv_human_size(*stored, c, sizeof(c));
	printf("  data      %s read, %s new, %s stored", a, b, c);
	if (*stored && (double)st->bytes_in / (double)*stored >= 1.05)
		printf(" (%.1fx less than read)",
		       (double)st->bytes_in / (double)*stored);
	printf("\n  time      %.2f s", secs);
	if (secs > 0)
		printf(" (%.0f MiB/s)", (double)st->bytes_in / 1048576 / secs);
	printf("\n");
}

static void print_summary(struct repo *r, const struct snapshot *s,
			  const struct ingest_stats *st,
			  const struct ingest_warning *warns, size_t nwarns,
			  const struct mail_view_stats *ms,
			  const struct source_mailcow *mc, double secs,
			  bool json)
{
	char id[2 * MV_ID_LEN + 1], dir[64];

	mv_hex(s->id, MV_ID_LEN, id);
	shown_dir(r, s, dir, sizeof(dir));
	if (json) {
		printf("{\"snapshot\":\"%s/%s\",\"id\":\"%s\",\"partial\":%s,",
		       s->name, dir, id, s->partial ? "true" : "false");
		if (ms)
			print_mail(ms, true);
		printf("\"mailcow\":{\"archives\":%llu,\"kept\":%llu},",
		       (unsigned long long)mc->archives,
		       (unsigned long long)mc->failed);
		print_warnings_json(warns, nwarns);
		print_counts(st, &s->stats.stored_bytes, secs, true);
		return;
	}
	printf("snapshot %s/%s%s  id %.12s\n", s->name, dir,
	       s->partial ? " (PARTIAL)" : "", id);
	print_entries(st);
	if (ms)
		print_mail(ms, false);
	if (mc->archives || mc->failed)
		printf("  mailcow   %llu archives expanded, %llu unreadable "
		       "kept as they are\n",
		       (unsigned long long)mc->archives,
		       (unsigned long long)mc->failed);
	print_counts(st, &s->stats.stored_bytes, secs, false);
}

/* --dry-run: what the backup would have added. */
static void print_dry_run(const char *name, const struct ingest_stats *st,
			  double secs, bool json)
{
	if (json) {
		printf("{\"dry_run\":true,\"name\":");
		cli_json_str(name);
		putchar(',');
		print_counts(st, NULL, secs, true);
		return;
	}
	printf("dry run of %s: nothing was written\n", name);
	print_entries(st);
	print_counts(st, NULL, secs, false);
}

int cmd_backup(int argc, char **argv)
{
	static const struct option opts[] = {
		{"name", required_argument, NULL, 'n'},
		{"time", required_argument, NULL, 't'},
		{"tag", required_argument, NULL, 'g'},
		{"partial", no_argument, NULL, 'p'},
		{"json", no_argument, NULL, 'j'},
		{"quiet", no_argument, NULL, 'q'},
		{"exec", required_argument, NULL, 'x'},
		{"no-mail", no_argument, NULL, 'M'},
		{"mailcow-keys", required_argument, NULL, 'K'},
		{"index-body", no_argument, NULL, 'B'},
		{"wait", optional_argument, NULL, 'w'},
		{"exclude", required_argument, NULL, 'e'},
		{"exclude-from", required_argument, NULL, 'E'},
		{"dry-run", no_argument, NULL, 'N'},
		{"stdin-name", required_argument, NULL, 'S'},
		{"threads", required_argument, NULL, 'T'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct mv_err err = MV_ERR_INIT, serr = MV_ERR_INIT;
	struct source_ctx sc;
	struct exclude *ex = NULL;
	bool dry_run = false;
	struct source_arg *srcs = NULL;
	struct snapshot snap, *list = NULL;
	struct snapshot_tag *tags = NULL;
	struct repo *r = NULL;
	struct repo_writer *w = NULL;
	struct tree_builder *tb = NULL;
	struct ingest *ing = NULL;
	struct ingest_opts io;
	struct mail_view *mv = NULL;
	struct mail_view_opts mvo;
	struct source_mailcow mc;
	struct tree_entry root;
	struct timespec t0, t1;
	const char *name = NULL, *repo = NULL, **execs = NULL;
	const struct snapshot *parent;
	bool partial_ok = false, json = false, quiet = false, failed = false;
	bool no_mail = false, warned = false;
	const struct ingest_warning *warns = NULL;
	size_t nwarns = 0;
	int64_t when = 0, wait = 0; /* --wait: seconds, -1 for ever */
	size_t nsrcs = 0, ntags = 0, nlist = 0, nexecs = 0, i, j;
	char host[256] = "";
	int c, rc, ret = MV_EXIT_FAIL, threads = 0;

	memset(&sc, 0, sizeof(sc));
	memset(&mvo, 0, sizeof(mvo));
	memset(&mc, 0, sizeof(mc));
	memset(&snap, 0, sizeof(snap));
	memset(&root, 0, sizeof(root));
	srcs = calloc((size_t)argc, sizeof(*srcs));
	tags = calloc((size_t)argc, sizeof(*tags));
	execs = calloc((size_t)argc, sizeof(*execs));
	if (!srcs || !tags || !execs) {
		free(srcs);
		free(tags);
		free(execs);
		return cli_fail(&err);
	}
	/* A backup allocates and frees buffers of up to a few MiB per file
	 * (chunks, message prefixes) on several threads; glibc's defaults
	 * give them back to the kernel and fault them in again, file after
	 * file.  Keep them in the heap: the ingest's memory is bounded by its
	 * queues, not by what free() returns. */
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 128 << 20);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			name = optarg;
			break;
		case 't':
			if (mv_time_parse(optarg, &when)) {
				ret = cli_usage(
					"backup",
					"cannot parse --time "
					"'%s' (use 2024-05-01T12:00:00Z "
					"or @SECONDS)",
					optarg);
				goto out;
			}
			break;
		case 'g': {
			char *eq = strchr(optarg, '=');

			if (!eq || eq == optarg) {
				ret = cli_usage("backup",
						"--tag wants K=V, "
						"not '%s'",
						optarg);
				goto out;
			}
			tags[ntags].key =
				strndup(optarg, (size_t)(eq - optarg));
			tags[ntags].value = strdup(eq + 1);
			ntags++;
			break;
		}
		case 'p':
			partial_ok = true;
			break;
		case 'j':
			json = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 'x':
			execs[nexecs++] = optarg;
			break;
		case 'M':
			no_mail = true;
			break;
		case 'K':
			mvo.keys_dir = optarg;
			break;
		case 'B':
			mvo.index_body = true;
			break;
		case 'T': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*end || end == optarg || v < 1 ||
			    v > INGEST_MAX_WORKERS) {
				ret = cli_usage("backup",
						"--threads wants 1 to %d, not "
						"'%s'",
						INGEST_MAX_WORKERS, optarg);
				goto out;
			}
			threads = (int)v;
			break;
		}
		case 'w':
			if (parse_wait(optarg, &wait)) {
				ret = cli_usage("backup",
						"--wait=SECONDS wants a "
						"number, not '%s'",
						optarg);
				goto out;
			}
			break;
		case 'e':
		case 'E':
			if (!ex && exclude_new(&ex, &err)) {
				ret = cli_fail(&err);
				goto out;
			}
			rc = c == 'e' ? exclude_add(ex, optarg, &err)
				      : exclude_add_file(ex, optarg, &err);
			if (rc) {
				ret = cli_usage("backup", "%s",
						mv_err_msg(&err));
				goto out;
			}
			break;
		case 'N':
			dry_run = true;
			break;
		case 'S':
			if (!check_label(optarg)) {
				ret = cli_usage("backup",
						"bad --stdin-name '%s' (a "
						"file name: no '/', not "
						"empty, '.' or '..')",
						optarg);
				goto out;
			}
			sc.stdin_name = optarg;
			break;
		case 'h':
			cli_help_print("backup", stdout);
			ret = MV_EXIT_OK;
			goto out;
		default:
			ret = cli_usage("backup", "unknown option");
			goto out;
		}
	}
	for (i = (size_t)optind; i < (size_t)argc; i++) {
		char *eq = strchr(argv[i], '=');

		if (!eq && !repo && i == (size_t)optind) {
			repo = argv[i];
			continue;
		}
		if (!eq) {
			ret = cli_usage("backup",
					"source '%s' needs a label: "
					"LABEL=SOURCE (e.g. volume=-)",
					argv[i]);
			goto out;
		}
		srcs[nsrcs].label = strndup(argv[i], (size_t)(eq - argv[i]));
		srcs[nsrcs].src = eq + 1;
		if (!check_label(srcs[nsrcs].label)) {
			ret = cli_usage("backup",
					"bad label '%s' (no '/', "
					"not empty, '.' or '..')",
					srcs[nsrcs].label);
			nsrcs++;
			goto out;
		}
		for (j = 0; j < nsrcs; j++)
			if (!strcmp(srcs[j].label, srcs[nsrcs].label)) {
				ret = cli_usage("backup",
						"label '%s' given "
						"twice",
						srcs[j].label);
				nsrcs++;
				goto out;
			}
		nsrcs++;
	}
	repo = cli_repo_arg(repo);
	if (!repo) {
		ret = cli_usage("backup", "no repository given (argument or "
					  "MAILVAULT_REPO)");
		goto out;
	}
	if (!name || !*name || strchr(name, '/')) {
		ret = cli_usage("backup", "--name NAME is required (a job "
					  "name without '/', e.g. stalwart)");
		goto out;
	}
	if (!nsrcs) {
		ret = cli_usage("backup", "no sources given (LABEL=SOURCE)");
		goto out;
	}
	/* the Nth --exec goes with the Nth ssh-exec:// source */
	for (i = 0, j = 0; i < nsrcs; i++) {
		if (strncmp(srcs[i].src, "ssh-exec://", 11))
			continue;
		if (j < nexecs)
			srcs[i].exec = execs[j];
		j++;
	}
	if (j != nexecs) {
		ret = cli_usage("backup",
				"give one --exec 'COMMAND' per "
				"ssh-exec:// source, in the same order");
		goto out;
	}
	for (i = 0, j = 0; i < nsrcs; i++)
		j += !strcmp(srcs[i].src, "-");
	if (j > 1) {
		ret = cli_usage("backup", "only one source can read stdin");
		goto out;
	}
	if (sc.stdin_name && !j) {
		ret = cli_usage("backup", "--stdin-name names the file read "
					  "from stdin: give a LABEL=- source");
		goto out;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* tar sources and the mail view need the formats plugin: load it
	 * now, before any thread starts and before the repository changes */
	rc = formats_require(&err);
	/* a dry run reads the repository only: no lock, no pack, nothing
	 * left behind */
	if (!rc && dry_run)
		rc = repo_open(repo, REPO_OPEN_READ, &r, &err);
	else if (!rc)
		rc = open_wait(repo, REPO_OPEN_WRITE | REPO_OPEN_SHARED, wait,
			       &stop_flag, &r, &err);
	if (!rc)
		rc = snapshot_list(r, &list, &nlist, &err);
	if (!rc && !dry_run)
		rc = repo_writer_begin(r, &w, &err);
	if (!rc)
		rc = tree_builder_new(&tb, &err);
	if (rc)
		goto fail;
	memset(&io, 0, sizeof(io));
	io.progress = !quiet && !json && cli_is_tty();
	io.stop = &stop_flag;
	io.dry_run = dry_run;
	io.workers = threads;
	if (!no_mail && !dry_run) {
		mvo.job = name;
		for (i = 0; i < nsrcs; i++)
			if (!strcmp(srcs[i].label, MAIL_VIEW_DIR) ||
			    !strcmp(srcs[i].label, MAIL_VIEW_MAILDIR_DIR)) {
				rc = mv_err_set(&err, -EINVAL,
						"label '%s' is "
						"the mail view's directory: "
						"choose another or use "
						"--no-mail",
						srcs[i].label);
				goto fail;
			}
		rc = mail_view_new(r, &mvo, &mv, &err);
		if (rc)
			goto fail;
		io.hook = mail_view_hook(mv);
	}
	rc = ingest_new(r, w, tb, &io, &ing, &err);
	if (rc)
		goto fail;
	parent = find_parent(list, nlist, name);
	sc.r = r;
	sc.parent = parent;
	sc.mc = &mc;
	sc.ex = ex;
	if (!when)
		when = mv_now_ns();
	/* the snapshot root takes the backup time */
	root.type = TREE_DIR;
	root.mode = 0755;
	root.mtime_sec = when / 1000000000;
	rc = tree_builder_add(tb, "", &root, &err);
	for (i = 0; !rc && i < nsrcs; i++) {
		/* a label directory exists even when its source is empty */
		rc = tree_builder_add(tb, srcs[i].label, &root, &err);
		if (!rc)
			rc = run_source(ing, &sc, &srcs[i], &err);
		if (rc && partial_ok && rc != -EINTR) {
			serr = err;
			mv_err_clear(&err);
			failed = true;
			rc = ingest_file_cut(ing, &err);
			break;
		}
	}
	if (!rc)
		rc = ingest_finish(ing, &err);
	if (rc)
		goto fail;
	ingest_progress(ing, true);
	if (dry_run) {
		ingest_progress_end(ing);
		warns = ingest_get_warnings(ing, &nwarns);
		print_warnings(warns, nwarns);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		print_dry_run(name, ingest_get_stats(ing),
			      (double)(t1.tv_sec - t0.tv_sec) +
				      (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
			      json);
		ret = nwarns || mc.failed ? MV_EXIT_WARN : MV_EXIT_OK;
		goto out;
	}
	snap.name = strdup(name);
	gethostname(host, sizeof(host) - 1);
	snap.host = strdup(host);
	snap.time_ns = when;
	snap.partial = failed;
	snap.ntags = (uint32_t)ntags;
	snap.tags = tags;
	if (mv)
		rc = mail_view_finish(mv, tb, w, when, &err);
	if (!rc)
		rc = tree_builder_write(tb, r, w, &snap.root, NULL, &err);
	if (rc)
		goto fail;
	{
		const struct ingest_stats *st = ingest_get_stats(ing);

		snap.stats.files = st->files;
		snap.stats.dirs = st->dirs;
		snap.stats.others = st->others;
		snap.stats.logical = st->logical;
		snap.stats.new_bytes = st->bytes_new;
	}
	rc = repo_writer_commit(w, &snap, &err);
	w = NULL;
	if (rc)
		goto fail;
	/* what follows starts a line of its own, not the progress line's */
	ingest_progress_end(ing);
	warns = ingest_get_warnings(ing, &nwarns);
	print_warnings(warns, nwarns);
	warned = nwarns || mc.failed;
	if (mv && mail_view_commit(mv, &snap, &err)) {
		/* the snapshot is safe; only search lags behind */
		fprintf(stderr,
			"mailvault: warning: %s: the catalogue misses "
			"this snapshot\n",
			mv_err_msg(&err));
		mv_err_clear(&err);
		warned = true;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	{
		const struct ingest_stats *st = ingest_get_stats(ing);
		double secs = (double)(t1.tv_sec - t0.tv_sec) +
			      (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

		if (!quiet || json)
			print_summary(r, &snap, st, warns, nwarns,
				      mv ? mail_view_get_stats(mv) : NULL, &mc,
				      secs, json);
	}
	goto done;
fail:
	if (ing) {
		/* the problems met before the failure explain it too */
		ingest_progress_end(ing);
		warns = ingest_get_warnings(ing, &nwarns);
		print_warnings(warns, nwarns);
	}
	ingest_free(ing);
	ing = NULL;
	repo_writer_abort(w);
	w = NULL;
	if (rc == -EINTR)
		fprintf(stderr, "mailvault: backup interrupted; no snapshot "
				"was written\n");
	else if (r && repo_commit_outcome_unknown(r))
		fprintf(stderr,
			"mailvault: %s\nmailvault: backup failed; the "
			"snapshot may have been written all the same "
			"('mailvault snapshots' shows it)\n",
			mv_err_msg(&err));
	else
		fprintf(stderr,
			"mailvault: %s\nmailvault: backup failed; no "
			"snapshot was written\n",
			mv_err_msg(&err));
	if (rc == -EBUSY)
		ret = MV_EXIT_LOCKED; /* another writer holds the repository */
	goto out;
done:
	ret = MV_EXIT_OK;
	if (failed) {
		fprintf(stderr,
			"mailvault: %s\nmailvault: committed a PARTIAL "
			"snapshot of what was read (--partial)\n",
			mv_err_msg(&serr));
		ret = MV_EXIT_FAIL;
	} else if (warned) {
		fflush(stdout);
		fprintf(stderr, "mailvault: backup completed with warnings; "
				"the snapshot was written\n");
		ret = MV_EXIT_WARN;
	}
out:
	ingest_free(ing);
	exclude_free(ex);
	mail_view_free(mv);
	tree_builder_free(tb);
	repo_writer_abort(w);
	repo_close(r);
	snapshot_list_free(list, nlist);
	snap.tags = NULL;
	snap.ntags = 0;
	snapshot_release(&snap);
	for (i = 0; i < ntags; i++) {
		free(tags[i].key);
		free(tags[i].value);
	}
	free(tags);
	free(execs);
	for (i = 0; i < nsrcs; i++)
		free(srcs[i].label);
	free(srcs);
	return ret;
}
