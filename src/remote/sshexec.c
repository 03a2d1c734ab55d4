/*
 * sshexec: a remote command's stdout as a stream (see include/ssh.h).
 *
 * The session runs non-blocking here: stdout and stderr share the channel
 * window, so stderr is drained whenever stdout has nothing, or a command
 * that writes a lot of stderr would stall waiting for us.  A command may
 * legitimately be quiet for a long time (a container image being pulled),
 * so the idle limit is long (ssh_opts.io_timeout_s x 10); TCP keepalive
 * still notices a dead server within about a minute.
 */
#include "ssh.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#define STDERR_KEEP (64u << 10)

struct sshexec {
	struct ssh_session *ss; /* dedicated session */
	LIBSSH2_CHANNEL *ch;	/* the command's channel */
	char *command;		/* for messages */
	struct mv_buf err_tail; /* the last STDERR_KEEP bytes of stderr */
	bool eof;		/* stdout ended */
	int idle_ms;		/* longest wait for any data */
};

static void keep_stderr(struct sshexec *h, const char *p, size_t n)
{
	if (n >= STDERR_KEEP) {
		p += n - STDERR_KEEP;
		n = STDERR_KEEP;
	}
	if (h->err_tail.len + n > 2 * STDERR_KEEP) {
		size_t drop = h->err_tail.len + n - STDERR_KEEP;

		if (drop > h->err_tail.len)
			drop = h->err_tail.len;
		memmove(h->err_tail.data, h->err_tail.data + drop,
			h->err_tail.len - drop);
		h->err_tail.len -= drop;
	}
	mv_buf_append(&h->err_tail, p, n);
}

/* Read whatever stderr is ready; returns bytes read or a libssh2 error
 * other than EAGAIN. */
static ssize_t drain_stderr(struct sshexec *h)
{
	char buf[16384];
	ssize_t total = 0;

	for (;;) {
		ssize_t n =
			libssh2_channel_read_stderr(h->ch, buf, sizeof(buf));

		if (n == LIBSSH2_ERROR_EAGAIN || n == 0)
			return total;
		if (n < 0)
			return n;
		keep_stderr(h, buf, (size_t)n);
		total += n;
	}
}

/* Wait until the socket is ready in the direction libssh2 needs. */
static int wait_socket(struct sshexec *h, struct mv_err *err)
{
	LIBSSH2_SESSION *s = ssh_session_handle(h->ss);
	struct pollfd pfd;
	int dir = libssh2_session_block_directions(s);
	int r;

	pfd.fd = ssh_session_fd(h->ss);
	pfd.events = 0;
	if (dir & LIBSSH2_SESSION_BLOCK_INBOUND)
		pfd.events |= POLLIN;
	if (dir & LIBSSH2_SESSION_BLOCK_OUTBOUND)
		pfd.events |= POLLOUT;
	if (!pfd.events)
		pfd.events = POLLIN;
	do {
		r = poll(&pfd, 1, h->idle_ms);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return mv_err_set(err, -errno, "cannot wait for '%s': %s",
				  ssh_session_name(h->ss), strerror(errno));
	if (r == 0)
		return mv_err_set(err, -ETIMEDOUT,
				  "remote command '%s' on "
				  "'%s' sent nothing for %d s",
				  h->command, ssh_session_name(h->ss),
				  h->idle_ms / 1000);
	ssh_keepalive(h->ss);
	return 0;
}

static void free_exec(struct sshexec *h)
{
	if (h->ch)
		libssh2_channel_free(h->ch);
	ssh_close(h->ss);
	mv_buf_release(&h->err_tail);
	free(h->command);
	free(h);
}

int sshexec_open(const char *url, const char *command, const struct ssh_opts *o,
		 struct sshexec **out, struct mv_err *err)
{
	struct ssh_url u = {SSH_SCHEME_SSH_EXEC, NULL, NULL, 22, NULL};
	struct ssh_opts defaults;
	struct sshexec *h;
	int rc;

	if (!o) {
		ssh_get_default_opts(&defaults);
		o = &defaults;
	}
	rc = ssh_url_parse(url, &u, err);
	if (rc)
		return rc;
	if (u.scheme != SSH_SCHEME_SSH_EXEC) {
		ssh_url_release(&u);
		return mv_err_set(err, -EINVAL,
				  "'%s' is not an ssh-exec:// "
				  "location",
				  url);
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		ssh_url_release(&u);
		return mv_err_set(err, -ENOMEM, "out of memory");
	}
	h->idle_ms = (o->io_timeout_s > 0 ? o->io_timeout_s : 60) * 10000;
	h->command = strdup(command);
	if (!h->command) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	rc = ssh_connect(&u, o, &h->ss, err);
	if (rc)
		goto fail;
	h->ch = libssh2_channel_open_session(ssh_session_handle(h->ss));
	if (!h->ch) {
		rc = mv_err_set(err, -EIO, "cannot open a channel on '%s': %s",
				ssh_session_name(h->ss), ssh_last_error(h->ss));
		goto fail;
	}
	if (libssh2_channel_exec(h->ch, command)) {
		rc = mv_err_set(err, -EIO,
				"cannot run '%s' on '%s': %s "
				"(the account may only allow SFTP)",
				command, ssh_session_name(h->ss),
				ssh_last_error(h->ss));
		goto fail;
	}
	libssh2_session_set_blocking(ssh_session_handle(h->ss), 0);
	ssh_url_release(&u);
	*out = h;
	return 0;
fail:
	ssh_url_release(&u);
	free_exec(h);
	return rc;
}

int sshexec_read(struct sshexec *h, void *buf, size_t len, size_t *out_n,
		 struct mv_err *err)
{
	for (;;) {
		ssize_t n, e;
		int rc;

		if (h->eof) {
			*out_n = 0;
			return 0;
		}
		n = libssh2_channel_read(h->ch, buf, len);
		if (n > 0) {
			*out_n = (size_t)n;
			return 0;
		}
		if (n == 0 && libssh2_channel_eof(h->ch)) {
			h->eof = true;
			continue;
		}
		if (n < 0 && n != LIBSSH2_ERROR_EAGAIN)
			return mv_err_set(err, -EIO,
					  "cannot read the output "
					  "of '%s' on '%s': %s",
					  h->command, ssh_session_name(h->ss),
					  ssh_last_error(h->ss));
		e = drain_stderr(h);
		if (e < 0)
			return mv_err_set(err, -EIO,
					  "cannot read the errors "
					  "of '%s' on '%s': %s",
					  h->command, ssh_session_name(h->ss),
					  ssh_last_error(h->ss));
		if (e > 0)
			continue;
		if (libssh2_channel_eof(h->ch)) {
			h->eof = true;
			continue;
		}
		rc = wait_socket(h, err);
		if (rc)
			return rc;
	}
}

/* Call f until it stops saying EAGAIN, waiting on the socket. */
static int finish_step(struct sshexec *h, int (*f)(LIBSSH2_CHANNEL *),
		       struct mv_err *err)
{
	int r;

	while ((r = f(h->ch)) == LIBSSH2_ERROR_EAGAIN) {
		drain_stderr(h);
		if (wait_socket(h, err))
			return -EIO;
	}
	return r;
}

/* The last non-empty line of stderr, for the one-line message. */
static void last_line(const struct mv_buf *b, char *out, size_t n)
{
	size_t end = b->len, start;

	while (end > 0 &&
	       (b->data[end - 1] == '\n' || b->data[end - 1] == '\r'))
		end--;
	start = end;
	while (start > 0 && b->data[start - 1] != '\n')
		start--;
	if (end - start >= n)
		start = end - (n - 1);
	memcpy(out, b->data ? (const char *)b->data + start : "", end - start);
	out[end - start] = '\0';
}

int sshexec_close(struct sshexec *h, int *exit_status,
		  struct mv_buf *stderr_out, struct mv_err *err)
{
	char *signame = NULL, line[512];
	int status = -1, rc = 0;

	if (!h)
		return 0;
	if (!h->eof) {
		/* the caller stopped early: do not wait for the rest */
		libssh2_session_set_blocking(ssh_session_handle(h->ss), 1);
		libssh2_session_set_timeout(ssh_session_handle(h->ss), 2000);
		libssh2_channel_close(h->ch);
		if (exit_status)
			*exit_status = -1;
		if (stderr_out)
			mv_buf_append(stderr_out, h->err_tail.data,
				      h->err_tail.len);
		free_exec(h);
		return 0;
	}
	if (finish_step(h, libssh2_channel_close, err) ||
	    finish_step(h, libssh2_channel_wait_closed, err)) {
		rc = mv_err_set(err, -EIO, "cannot finish '%s' on '%s': %s",
				h->command, ssh_session_name(h->ss),
				ssh_last_error(h->ss));
		goto out;
	}
	drain_stderr(h);
	libssh2_channel_get_exit_signal(h->ch, &signame, NULL, NULL, NULL, NULL,
					NULL);
	if (!signame)
		status = libssh2_channel_get_exit_status(h->ch);
	last_line(&h->err_tail, line, sizeof(line));
	if (signame)
		rc = mv_err_set(err, -EIO,
				"remote command '%s' on '%s' was "
				"killed by signal %s%s%s",
				h->command, ssh_session_name(h->ss), signame,
				*line ? ": " : "", line);
	else if (status != 0)
		rc = mv_err_set(err, -EIO,
				"remote command '%s' on '%s' "
				"exited with status %d%s%s",
				h->command, ssh_session_name(h->ss), status,
				*line ? ": " : "", line);
out:
	if (exit_status)
		*exit_status = status;
	if (stderr_out && h->err_tail.len)
		mv_buf_append(stderr_out, h->err_tail.data, h->err_tail.len);
	if (signame)
		libssh2_free(ssh_session_handle(h->ss), signame);
	libssh2_session_set_blocking(ssh_session_handle(h->ss), 1);
	free_exec(h);
	return rc;
}
