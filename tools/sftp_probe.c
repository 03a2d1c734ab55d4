/*
 * sftp_probe: drive the SFTP backend, ssh-exec and the remote walker from
 * the shell, one operation per run (used by tests/integration/t3*.sh).
 *
 *   sftp_probe [-i FILE] [--accept-new-host-key] URL COMMAND [ARGS]
 *
 * sftp:// URL:  check | put REL (stdin) | cat REL [OFF LEN] | ls DIR |
 *               stat REL | mv FROM TO | rm REL | mkdir REL |
 *               excl REL TEXT | preads REL THREADS |
 *               ahead REL NEXT (read_all REL with NEXT opened ahead,
 *               then stat_read NEXT whole: both printed, NEXT's size
 *               on a line of its own between them) | ahead0 REL NEXT
 *               (the same without opening NEXT ahead)
 * ssh-exec://:  exec COMMAND      (stdout to stdout)
 * ssh://:       walk              (one line per entry, sha256 of files)
 *
 * Exit status: 0 ok, 1 failure (message on stderr), 2 usage, 3 EEXIST,
 * 4 ENOENT.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "backend.h"
#include "sftp.h"
#include "ssh.h"
#include "util.h"

#define BLOCK (256u << 10)

static int fail(const struct mv_err *err, int rc)
{
	fprintf(stderr, "sftp_probe: %s\n",
		err->code ? mv_err_msg(err) : strerror(-rc));
	if (rc == -EEXIST)
		return 3;
	if (rc == -ENOENT)
		return 4;
	return 1;
}

static int usage(void)
{
	fprintf(stderr, "usage: sftp_probe [-i FILE] [--accept-new-host-key] "
			"URL COMMAND [ARGS]\n");
	return 2;
}

static int list_cb(const char *name, bool is_dir, uint64_t size, void *arg)
{
	(void)arg;
	printf("%s %c %llu\n", name, is_dir ? 'd' : 'f',
	       (unsigned long long)size);
	return 0;
}

static int do_put(struct backend *be, const char *rel, struct mv_err *err)
{
	struct backend_file *f = NULL;
	static char buf[BLOCK];
	size_t n;
	int rc;

	rc = be->ops->file_create(be, rel, &f, err);
	if (rc)
		return rc;
	while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0) {
		rc = be->ops->file_write(f, buf, n, err);
		if (rc) {
			be->ops->file_abort(f);
			return rc;
		}
	}
	return be->ops->file_commit(f, err);
}

static int do_cat(struct backend *be, const char *rel, uint64_t off,
		  uint64_t len, struct mv_err *err)
{
	static char buf[4u << 20];
	int rc = 0;

	while (len) {
		size_t want = (size_t)MV_MIN(len, (uint64_t)sizeof(buf));
		size_t got = 0;

		rc = be->ops->read_at(be, rel, off, buf, want, &got, err);
		if (rc || !got)
			break;
		fwrite(buf, 1, got, stdout);
		off += got;
		len -= got;
	}
	return rc;
}

static int do_ahead(struct backend *be, const char *rel, const char *next,
		    bool ahead, struct mv_err *err)
{
	static uint8_t buf[1u << 20];
	uint64_t size = 0;
	size_t len = 0, got = 0;
	void *all = NULL;
	int rc;

	if (ahead && be->ops->open_ahead)
		be->ops->open_ahead(be, next);
	rc = backend_read_all(be, rel, 1u << 20, &all, &len, err);
	if (rc)
		return rc;
	fwrite(all, 1, len, stdout);
	free(all);
	rc = backend_stat_read(be, next, &size, NULL, buf, 16, sizeof(buf),
			       &got, err);
	if (rc)
		return rc;
	printf("%llu\n", (unsigned long long)size);
	fwrite(buf, 1, got, stdout);
	return 0;
}

struct pread_job {
	struct backend *be;
	const char *rel;
	const uint8_t *want; /* the whole file, read sequentially */
	uint64_t size;
	int index, n; /* this thread reads blocks index, index+n... */
	int rc;
	struct mv_err err;
};

static void *pread_thread(void *arg)
{
	struct pread_job *j = arg;
	uint8_t *buf = malloc(BLOCK);
	uint64_t off;

	if (!buf) {
		j->rc = -ENOMEM;
		return NULL;
	}
	for (off = (uint64_t)j->index * BLOCK; off < j->size && !j->rc;
	     off += (uint64_t)j->n * BLOCK) {
		size_t want = (size_t)MV_MIN((uint64_t)BLOCK, j->size - off);
		size_t got = 0;

		j->rc = j->be->ops->read_at(j->be, j->rel, off, buf, want, &got,
					    &j->err);
		if (!j->rc && (got != want || memcmp(buf, j->want + off, want)))
			j->rc = mv_err_set(&j->err, -EIO,
					   "block at %llu "
					   "differs",
					   (unsigned long long)off);
	}
	free(buf);
	return NULL;
}

static int do_preads(struct backend *be, const char *rel, int threads,
		     struct mv_err *err)
{
	struct pread_job jobs[64];
	pthread_t tid[64];
	void *all = NULL;
	size_t len = 0;
	int i, rc;

	if (threads < 1 || threads > 64)
		return mv_err_set(err, -EINVAL, "1 to 64 threads");
	rc = backend_read_all(be, rel, (size_t)1 << 32, &all, &len, err);
	if (rc)
		return rc;
	for (i = 0; i < threads; i++) {
		memset(&jobs[i], 0, sizeof(jobs[i]));
		jobs[i].be = be;
		jobs[i].rel = rel;
		jobs[i].want = all;
		jobs[i].size = len;
		jobs[i].index = i;
		jobs[i].n = threads;
		pthread_create(&tid[i], NULL, pread_thread, &jobs[i]);
	}
	for (i = 0; i < threads; i++) {
		pthread_join(tid[i], NULL);
		if (jobs[i].rc && !rc) {
			rc = jobs[i].rc;
			mv_err_set(err, rc, "thread %d: %s", i,
				   mv_err_msg(&jobs[i].err));
		}
	}
	free(all);
	if (!rc)
		printf("ok %d threads %zu bytes\n", threads, len);
	return rc;
}

static int do_exec(const char *url, const char *cmd, const struct ssh_opts *o,
		   struct mv_err *err)
{
	struct mv_buf errtext = MV_BUF_INIT;
	struct sshexec *h = NULL;
	static char buf[BLOCK];
	int rc, status = -1;

	rc = sshexec_open(url, cmd, o, &h, err);
	if (rc)
		return rc;
	for (;;) {
		size_t n = 0;

		rc = sshexec_read(h, buf, sizeof(buf), &n, err);
		if (rc || !n)
			break;
		fwrite(buf, 1, n, stdout);
	}
	if (rc) {
		sshexec_close(h, &status, NULL, NULL);
		return rc;
	}
	rc = sshexec_close(h, &status, &errtext, err);
	fprintf(stderr, "exit status %d\n", status);
	if (errtext.len)
		fprintf(stderr, "remote stderr: %.*s", (int)errtext.len,
			(const char *)errtext.data);
	mv_buf_release(&errtext);
	return rc;
}

static int walk_cb(struct sftp_walk *w, const struct sftp_entry *e, void *arg)
{
	struct mv_err *err = arg;
	char hex[2 * EVP_MAX_MD_SIZE + 1] = "-";

	if ((e->mode & 0170000) == 0100000) {
		static char buf[BLOCK];
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned int mdlen = 0;
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		int rc = 0;

		EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
		for (;;) {
			size_t n = 0;

			rc = sftp_walk_read(w, buf, sizeof(buf), &n, err);
			if (rc || !n)
				break;
			EVP_DigestUpdate(ctx, buf, n);
		}
		EVP_DigestFinal_ex(ctx, md, &mdlen);
		EVP_MD_CTX_free(ctx);
		if (rc)
			return rc;
		mv_hex(md, mdlen, hex);
	}
	printf("%06o %u %u %llu %lld %s %s%s%s\n", (unsigned)e->mode, e->uid,
	       e->gid, (unsigned long long)e->size,
	       (long long)(e->mtime_ns / 1000000000), hex,
	       *e->path ? e->path : ".", e->link_target ? " -> " : "",
	       e->link_target ? e->link_target : "");
	return 0;
}

static int run_backend(const char *url, int argc, char **argv,
		       struct mv_err *err)
{
	struct backend *be = NULL;
	const char *cmd = argv[0];
	int rc;

	rc = backend_sftp_open(url, !strcmp(cmd, "init"), &be, err);
	if (rc)
		return rc;
	if ((!strcmp(cmd, "check") || !strcmp(cmd, "init")) && argc == 1) {
		printf("ok\n");
	} else if (!strcmp(cmd, "put") && argc == 2) {
		rc = do_put(be, argv[1], err);
	} else if (!strcmp(cmd, "cat") && (argc == 2 || argc == 4)) {
		uint64_t off = argc == 4 ? strtoull(argv[2], NULL, 10) : 0;
		uint64_t len =
			argc == 4 ? strtoull(argv[3], NULL, 10) : UINT64_MAX;

		rc = do_cat(be, argv[1], off, len, err);
	} else if (!strncmp(cmd, "ahead", 5) && argc == 3) {
		rc = do_ahead(be, argv[1], argv[2], !strcmp(cmd, "ahead"), err);
	} else if (!strcmp(cmd, "ls") && argc == 2) {
		rc = be->ops->list(be, argv[1], list_cb, NULL, err);
	} else if (!strcmp(cmd, "stat") && argc == 2) {
		uint64_t size = 0;
		int64_t mtime = 0;

		rc = be->ops->stat(be, argv[1], &size, &mtime, err);
		if (!rc)
			printf("%llu %lld\n", (unsigned long long)size,
			       (long long)(mtime / 1000000000));
	} else if (!strcmp(cmd, "mv") && argc == 3) {
		rc = be->ops->rename(be, argv[1], argv[2], err);
	} else if (!strcmp(cmd, "rm") && argc == 2) {
		rc = be->ops->remove(be, argv[1], err);
	} else if (!strcmp(cmd, "mkdir") && argc == 2) {
		rc = be->ops->mkdir(be, argv[1], err);
	} else if (!strcmp(cmd, "excl") && argc == 3) {
		rc = be->ops->create_excl(be, argv[1], argv[2], strlen(argv[2]),
					  err);
	} else if (!strcmp(cmd, "preads") && argc == 3) {
		rc = do_preads(be, argv[1], atoi(argv[2]), err);
	} else {
		backend_close(be);
		return -EINVAL;
	}
	if (!rc && be->ops->local_root(be))
		rc = mv_err_set(err, -EIO, "remote backend has a local root");
	backend_close(be);
	return rc;
}

int main(int argc, char **argv)
{
	struct mv_err err = MV_ERR_INIT;
	struct ssh_opts o;
	const char *url;
	int i = 1, rc;

	ssh_opts_init(&o);
	while (i + 2 < argc && argv[i][0] == '-') {
		if (!strcmp(argv[i], "-i") && i + 1 < argc) {
			o.identity = argv[i + 1];
			i += 2;
		} else if (!strcmp(argv[i], "--accept-new-host-key")) {
			o.accept_new_host_key = true;
			i++;
		} else {
			return usage();
		}
	}
	if (i + 2 > argc || argv[i][0] == '-')
		return usage();
	ssh_set_default_opts(&o);
	url = argv[i++];
	if (!strncmp(url, "ssh-exec://", 11)) {
		if (argc - i != 2 || strcmp(argv[i], "exec"))
			return usage();
		rc = do_exec(url, argv[i + 1], &o, &err);
	} else if (!strncmp(url, "ssh://", 6)) {
		if (argc - i != 1 || strcmp(argv[i], "walk"))
			return usage();
		rc = sftp_walk(url, &o, walk_cb, &err, &err);
	} else {
		rc = run_backend(url, argc - i, argv + i, &err);
		if (rc == -EINVAL && !err.code)
			return usage();
	}
	fflush(stdout);
	return rc ? fail(&err, rc) : 0;
}
