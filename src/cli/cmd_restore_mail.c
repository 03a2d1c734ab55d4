/*
 * mailvault restore-mail: put messages of a snapshot's mail view back
 * into a live mailbox over IMAP (docs/RESTORE-MAIL.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "imap_client.h"
#include "mail_msg.h"
#include "repo.h"
#include "restore_mail.h"
#include "snapshot.h"
#include "tree.h"

#define PASSWORD_MAX 1024

struct rm_opts {
	const char *to;
	const char *password_file;
	const char *auth_user;
	const char *auth_sep;
	const char *ca_file;
	bool insecure, deleted, duplicates, dry_run, json, quiet;
};

struct rm_stats {
	size_t appended, skipped, failed, folders;
};

/* First line of a file or of the terminal, without its line end. */
static int first_line(FILE *f, char *out, size_t n)
{
	size_t k;

	if (!fgets(out, (int)n, f))
		return -EIO;
	k = strcspn(out, "\r\n");
	if (out[k] == '\0' && k == n - 1)
		return -EMSGSIZE;
	out[k] = '\0';
	return 0;
}

static int get_password(const struct rm_opts *o, const char *user,
			const char *host, char *out, size_t n,
			struct mv_err *err)
{
	const char *env = getenv("MAILVAULT_IMAP_PASSWORD");
	struct termios old, quiet;
	bool echo_off;
	FILE *f;
	int rc, fd;

	if (env && *env) {
		if (strlen(env) >= n)
			return mv_err_set(
				err, -EMSGSIZE,
				"MAILVAULT_IMAP_PASSWORD is too long");
		strcpy(out, env);
		return 0;
	}
	if (o->password_file) {
		f = fopen(o->password_file, "re");
		if (!f)
			return mv_err_set(err, -errno,
					  "cannot read password file '%s': %s",
					  o->password_file, strerror(errno));
		rc = first_line(f, out, n);
		fclose(f);
		if (rc || !*out)
			return mv_err_set(err, rc ? rc : -ENOKEY,
					  "password file '%s' holds no "
					  "password",
					  o->password_file);
		return 0;
	}
	fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return mv_err_set(err, -ENOKEY,
				  "no IMAP password: set "
				  "MAILVAULT_IMAP_PASSWORD, give "
				  "--password-file, or run on a terminal");
	f = fdopen(fd, "r+");
	if (!f) {
		close(fd);
		return mv_err_set(err, -ENOMEM, "out of memory");
	}
	/* echo off before the prompt, and without discarding input: what
	 * is typed once the prompt shows is the password */
	echo_off = tcgetattr(fd, &old) == 0;
	if (echo_off) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(fd, TCSANOW, &quiet);
	}
	fprintf(f, "IMAP password for %s@%s: ", user, host);
	fflush(f);
	rc = first_line(f, out, n);
	if (echo_off)
		tcsetattr(fd, TCSANOW, &old);
	fputc('\n', f);
	fclose(f);
	if (rc || !*out)
		return mv_err_set(err, -ENOKEY, "no IMAP password given");
	return 0;
}

static void flag_names(unsigned flags, const struct restore_mail_msg *m,
		       char *out, size_t n)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {{IMAP_SEEN, "\\Seen"},
		     {IMAP_ANSWERED, "\\Answered"},
		     {IMAP_FLAGGED, "\\Flagged"},
		     {IMAP_DRAFT, "\\Draft"},
		     {IMAP_DELETED, "\\Deleted"}};
	size_t at = 0;

	out[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if ((flags & names[i].bit) && at < n)
			at += (size_t)snprintf(out + at, n - at, "%s%s",
					       at ? " " : "", names[i].name);
	for (size_t i = 0; i < m->n_keywords && at < n; i++)
		at += (size_t)snprintf(out + at, n - at, "%s%s", at ? " " : "",
				       m->keywords[i]);
}

static void iso_time(int64_t t, char *out, size_t n)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (!gmtime_r(&tt, &tm))
		snprintf(out, n, "?");
	else
		strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void report(const struct rm_opts *o, const struct restore_mail_msg *m,
		   const char *folder, unsigned flags, size_t size,
		   const char *status, const char *error)
{
	char fl[1024], when[40];

	flag_names(flags, m, fl, sizeof(fl));
	iso_time(m->internal_date, when, sizeof(when));
	if (o->json) {
		fputs("{\"path\":", stdout);
		cli_json_str(m->path);
		fputs(",\"folder\":", stdout);
		cli_json_str(folder);
		printf(",\"status\":\"%s\",\"size\":%zu,\"flags\":", status,
		       size);
		cli_json_str(fl);
		printf(",\"internal_date\":\"%s\",\"matched\":%s", when,
		       m->matched ? "true" : "false");
		if (error) {
			fputs(",\"error\":", stdout);
			cli_json_str(error);
		}
		fputs("}\n", stdout);
	} else if (error) {
		fprintf(stderr, "mailvault: restore-mail: '%s' -> '%s': %s\n",
			m->path, folder, error);
	} else if (o->dry_run) {
		printf("would append  %s  <-  %s  (%zu bytes, %s, %s)\n",
		       folder, m->path, size, when, *fl ? fl : "no flags");
	}
}

/* Existing messages, sorted by size for lookups. */
static int have_cmp(const void *a, const void *b)
{
	const struct imap_have *x = a, *y = b;

	return x->size < y->size ? -1 : x->size > y->size;
}

struct folder_state {
	struct imap_have *have; /* what the folder held before, by size */
	size_t n;
};

static bool same_bytes(struct imap *c, uint32_t uid, const struct mv_buf *b)
{
	struct mv_err err = MV_ERR_INIT;
	char *data = NULL;
	size_t len = 0;
	bool same;

	if (imap_fetch_uid(c, uid, &data, &len, &err))
		return false;
	same = len == b->len && !memcmp(data, b->data, len);
	free(data);
	return same;
}

/* Message-ID of a message, or NULL. */
static char *message_id(const struct mv_buf *b)
{
	struct mail_msg mm;
	char *id = NULL;

	if (!mail_msg_parse(b->data, b->len, 0, MAIL_MSG_NO_PARTS, &mm, NULL)) {
		if (mm.message_id)
			id = strdup(mm.message_id);
		mail_msg_release(&mm);
	}
	return id;
}

/* True when the folder held the message before this run: the same
 * Message-ID and size, or, without a Message-ID, the same bytes.  Only a
 * message whose size is there is parsed. */
static bool already_there(struct imap *c, const struct folder_state *fs,
			  const struct mv_buf *b)
{
	struct imap_have key = {.size = b->len};
	const struct imap_have *h = NULL;
	char *msgid;
	bool found = false;

	if (fs->n)
		h = bsearch(&key, fs->have, fs->n, sizeof(*fs->have), have_cmp);
	if (!h)
		return false;
	while (h > fs->have && h[-1].size == b->len)
		h--;
	msgid = message_id(b);
	for (; !found && h < fs->have + fs->n && h->size == b->len; h++) {
		if (msgid)
			found = h->msgid && !strcmp(msgid, h->msgid);
		else if (!h->msgid)
			found = same_bytes(c, h->uid, b);
	}
	free(msgid);
	return found;
}

static void folder_state_release(struct folder_state *fs)
{
	imap_have_free(fs->have, fs->n);
	memset(fs, 0, sizeof(*fs));
}

static char *join_folder(const char *base, const char *rel)
{
	char *s;

	if (!*base)
		return strdup(rel);
	if (!*rel)
		return strdup(base);
	if (asprintf(&s, "%s/%s", base, rel) < 0)
		return NULL;
	return s;
}

static void progress(const struct rm_opts *o, const struct rm_stats *st,
		     size_t done, size_t total, bool last)
{
	static struct timespec prev;
	struct timespec now;

	if (o->quiet || o->json || !cli_is_tty())
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!last && (now.tv_sec - prev.tv_sec) * 1000000000L +
				     (now.tv_nsec - prev.tv_nsec) <
			     200000000L)
		return;
	prev = now;
	fprintf(stderr,
		"\rrestore-mail: %zu/%zu  appended %zu  skipped %zu"
		"  failed %zu%s",
		done, total, st->appended, st->skipped, st->failed,
		last ? "\n" : "");
}

/* Messages waiting to be appended to one folder: at most BATCH_MSGS or
 * BATCH_BYTES, one MULTIAPPEND where the server offers it. */
#define BATCH_MSGS 200
#define BATCH_BYTES (8u << 20)

struct batch {
	struct restore_mail_msg *msg[BATCH_MSGS];
	struct mv_buf data[BATCH_MSGS];
	unsigned flags[BATCH_MSGS];
	struct imap_msg am[BATCH_MSGS];
	int rcs[BATCH_MSGS];
	struct mv_err errs[BATCH_MSGS];
	size_t n, bytes;
};

static void batch_flush(struct imap *c, const char *server, const char *shown,
			struct batch *b, const struct rm_opts *o,
			struct rm_stats *st)
{
	for (size_t i = 0; i < b->n; i++) {
		const struct restore_mail_msg *m = b->msg[i];

		b->am[i] = (struct imap_msg){
			.data = (const char *)b->data[i].data,
			.len = b->data[i].len,
			.flags = b->flags[i],
			.keywords = (const char *const *)m->keywords,
			.n_keywords = m->n_keywords,
			.internal_date = m->internal_date,
		};
		mv_err_clear(&b->errs[i]);
	}
	if (!b->n || !c)
		return; /* a dry run never queues */
	imap_append_many(c, server, b->am, b->n, b->rcs, b->errs);
	for (size_t i = 0; i < b->n; i++) {
		bool okay = !b->rcs[i];

		report(o, b->msg[i], shown, b->flags[i], b->data[i].len,
		       okay ? "appended" : "failed",
		       okay ? NULL : mv_err_msg(&b->errs[i]));
		if (okay)
			st->appended++;
		else
			st->failed++;
		b->data[i].len = 0;
	}
	b->n = 0;
	b->bytes = 0;
}

static void run(struct repo *r, struct imap *c, const struct rm_opts *o,
		const struct imap_url *u, struct restore_mail_set *set,
		struct rm_stats *st)
{
	struct folder_state fs = {0};
	struct batch *bt = calloc(1, sizeof(*bt));
	char *cur = NULL, *server = NULL, *shown = NULL;
	bool folder_ok = false;
	size_t i;

	if (!bt) {
		fputs("mailvault: out of memory\n", stderr);
		st->failed = set->n;
		return;
	}
	for (i = 0; i < set->n; i++) {
		struct restore_mail_msg *m = &set->m[i];
		struct mv_err err = MV_ERR_INIT;
		unsigned flags =
			m->flags & (o->deleted ? ~0u : ~(unsigned)IMAP_DELETED);
		struct mv_buf *b;

		progress(o, st, i, set->n, false);
		if (!cur || strcmp(cur, m->folder)) {
			batch_flush(c, server, shown, bt, o, st);
			if (c && imap_is_broken(c))
				break;
			free(cur);
			free(server);
			free(shown);
			folder_state_release(&fs);
			cur = strdup(m->folder);
			/* no FOLDER: back where they were */
			shown = *u->folder ? join_folder(u->folder, m->folder)
					   : strdup(m->mailbox);
			server = shown && c ? imap_folder_name(c, shown) : NULL;
			if (!cur || !shown || (c && !server)) {
				fputs("mailvault: out of memory\n", stderr);
				break;
			}
			if (!*shown) {
				free(shown);
				shown = strdup("INBOX");
				if (!shown)
					break;
			}
			st->folders++;
			folder_ok = true;
			if (c && !o->dry_run &&
			    imap_folder_ensure(c, server, &err)) {
				folder_ok = false;
			} else if (c && !o->duplicates) {
				int rc = imap_folder_scan(c, server, &fs.have,
							  &fs.n, &err);

				if (rc == -ENOENT && o->dry_run)
					mv_err_clear(&err);
				else if (rc)
					folder_ok = false;
				else if (fs.n)
					qsort(fs.have, fs.n, sizeof(*fs.have),
					      have_cmp);
			}
			if (!folder_ok)
				fprintf(stderr,
					"mailvault: restore-mail: folder "
					"'%s': %s\n",
					shown, mv_err_msg(&err));
			mv_err_clear(&err);
		}
		if (!folder_ok) {
			report(o, m, shown, flags, 0, "failed",
			       "folder could not be opened");
			st->failed++;
			continue;
		}
		b = &bt->data[bt->n];
		b->len = 0;
		if (restore_mail_read(r, m, b, &err)) {
			report(o, m, shown, flags, 0, "failed",
			       mv_err_msg(&err));
			st->failed++;
			continue;
		}
		if (!o->duplicates && already_there(c, &fs, b)) {
			report(o, m, shown, flags, b->len, "skipped", NULL);
			st->skipped++;
		} else if (o->dry_run) {
			report(o, m, shown, flags, b->len, "would-append",
			       NULL);
			st->appended++;
		} else {
			bt->msg[bt->n] = m;
			bt->flags[bt->n] = flags;
			bt->bytes += b->len;
			bt->n++;
			if (bt->n == BATCH_MSGS || bt->bytes >= BATCH_BYTES)
				batch_flush(c, server, shown, bt, o, st);
			if (imap_is_broken(c))
				break;
		}
	}
	if (i == set->n)
		batch_flush(c, server, shown, bt, o, st);
	if (st->appended + st->skipped + st->failed < set->n) {
		size_t left = set->n - st->appended - st->skipped - st->failed;

		fprintf(stderr,
			"mailvault: restore-mail: stopped; %zu messages not "
			"tried\n",
			left);
		st->failed += left;
	}
	progress(o, st, set->n, set->n, true);
	folder_state_release(&fs);
	for (i = 0; i < BATCH_MSGS; i++)
		mv_buf_release(&bt->data[i]);
	free(bt);
	free(cur);
	free(server);
	free(shown);
}

int cmd_restore_mail(int argc, char **argv)
{
	static const struct option opts[] = {
		{"to", required_argument, NULL, 't'},
		{"password-file", required_argument, NULL, 'p'},
		{"auth-user", required_argument, NULL, 'a'},
		{"auth-separator", required_argument, NULL, 'S'},
		{"ca-file", required_argument, NULL, 'c'},
		{"insecure", no_argument, NULL, 'k'},
		{"deleted", no_argument, NULL, 'D'},
		{"duplicates", no_argument, NULL, 'd'},
		{"dry-run", no_argument, NULL, 'n'},
		{"json", no_argument, NULL, 'j'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	struct rm_opts o = {.auth_sep = "*"};
	struct mv_err err = MV_ERR_INIT;
	struct imap_url u = {0};
	struct restore_mail_set set = {0};
	struct rm_stats st = {0};
	struct snapshot snap;
	struct tree_entry e;
	struct repo *r = NULL;
	struct imap *c = NULL;
	const char *repo = NULL, *spec;
	char *path = NULL, password[PASSWORD_MAX];
	int ch, ret = MV_EXIT_OK;

	memset(&e, 0, sizeof(e));
	password[0] = '\0';
	optind = 1;
	while ((ch = getopt_long(argc, argv, "nqh", opts, NULL)) != -1) {
		switch (ch) {
		case 't':
			o.to = optarg;
			break;
		case 'p':
			o.password_file = optarg;
			break;
		case 'a':
			o.auth_user = optarg;
			break;
		case 'S':
			o.auth_sep = optarg;
			break;
		case 'c':
			o.ca_file = optarg;
			break;
		case 'k':
			o.insecure = true;
			break;
		case 'D':
			o.deleted = true;
			break;
		case 'd':
			o.duplicates = true;
			break;
		case 'n':
			o.dry_run = true;
			break;
		case 'j':
			o.json = true;
			break;
		case 'q':
			o.quiet = true;
			break;
		case 'h':
			cli_help_print("restore-mail", stdout);
			return MV_EXIT_OK;
		default:
			cli_help_print("restore-mail", stderr);
			return MV_EXIT_USAGE;
		}
	}
	if (argc - optind == 2) {
		repo = argv[optind];
		spec = argv[optind + 1];
	} else if (argc - optind == 1) {
		spec = argv[optind];
	} else {
		return cli_usage("restore-mail", "give [REPO] SNAP:PATH --to "
						 "imap://USER@HOST/FOLDER");
	}
	if (!o.to)
		return cli_usage("restore-mail",
				 "--to imap[s]://USER@HOST[:PORT]/FOLDER is "
				 "required");
	if (imap_url_parse(o.to, &u, &err))
		return cli_usage("restore-mail", "%s", mv_err_msg(&err));
	if (cli_open_entry(repo, spec, &r, &snap, &e, &path, &err)) {
		ret = cli_fail(&err);
		goto out_url;
	}
	if (restore_mail_collect(r, &snap, path, &e, &set, &err)) {
		ret = cli_fail(&err);
		goto out;
	}
	if (set.skipped_raw && !o.quiet)
		fprintf(stderr,
			"mailvault: restore-mail: %zu undecodable .raw "
			"entries left out (restore them with `restore`)\n",
			set.skipped_raw);
	if (set.unmatched && !o.quiet)
		fprintf(stderr,
			"mailvault: restore-mail: %zu of %zu messages have "
			"no raw maildir file in the snapshot: no flags, "
			"internal date = their Date\n",
			set.unmatched, set.n);
	if (!o.dry_run || getenv("MAILVAULT_IMAP_PASSWORD") ||
	    o.password_file) {
		struct imap_opts io = {
			.url = &u,
			.password = password,
			.auth_user = o.auth_user,
			.auth_sep = o.auth_sep,
			.ca_file = o.ca_file,
			.insecure = o.insecure,
		};

		if (get_password(&o, u.user, u.host, password, sizeof(password),
				 &err) ||
		    imap_open(&io, &c, &err)) {
			int rc = err.code;

			fprintf(stderr, "mailvault: %s\n", mv_err_msg(&err));
			ret = rc == -EACCES || rc == -ENOKEY ? MV_EXIT_BADKEY
							     : MV_EXIT_FAIL;
			goto out;
		}
	}
	run(r, c, &o, &u, &set, &st);
	if (o.json) {
		printf("{\"summary\":{\"messages\":%zu,\"%s\":%zu,"
		       "\"skipped\":%zu,\"failed\":%zu,\"folders\":%zu,"
		       "\"unmatched\":%zu}}\n",
		       set.n, o.dry_run ? "would_append" : "appended",
		       st.appended, st.skipped, st.failed, st.folders,
		       set.unmatched);
	} else if (!o.quiet) {
		printf("restore-mail: %zu messages in %zu folders: %zu %s, "
		       "%zu already there, %zu failed\n",
		       set.n, st.folders, st.appended,
		       o.dry_run ? "would be appended" : "appended", st.skipped,
		       st.failed);
	}
	if (st.failed)
		ret = MV_EXIT_PARTIAL;
out:
	explicit_bzero(password, sizeof(password));
	imap_close(c);
	restore_mail_set_release(&set);
	free(path);
	tree_entry_release(&e);
	snapshot_release(&snap);
	repo_close(r);
out_url:
	imap_url_release(&u);
	return ret;
}
