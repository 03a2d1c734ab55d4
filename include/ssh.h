/*
 * ssh: SSH sessions over libssh2 - remote locations, host key checking,
 * authentication - and remote command streams (ssh-exec).
 *
 * Locations:
 *   sftp://[user@]host[:port]/path      repository on an SFTP server
 *   ssh://[user@]host[:port]/path       backup source walked over SFTP
 *   ssh-exec://[user@]host[:port]       backup source: a remote command
 * host may be a name, an IPv4 address or a bracketed IPv6 address
 * ("[::1]").  path is absolute on the server; "/~/x" names "x" relative to
 * the login directory (what a chrooted storage box account sees as "/").
 * host may also be a Host alias of the user's OpenSSH configuration: its
 * HostName, Port, User, IdentityFile, IdentitiesOnly, ProxyJump,
 * ProxyCommand, UserKnownHostsFile, HostKeyAlias apply (ssh_config.h); a
 * user or port written in the location wins.
 *
 * Host keys (there is no way to turn checking off):
 *  1. The server's key is looked up in the known hosts file (default
 *     ~/.ssh/known_hosts, or UserKnownHostsFile and GlobalKnownHostsFile
 *     of the ssh configuration; $MAILVAULT_KNOWN_HOSTS or
 *     ssh_opts.known_hosts override them), under the HostName (or
 *     HostKeyAlias), hashed entries and "[host]:port" entries included.
 *  2. An unknown host is refused with its SHA256 fingerprint, unless
 *     accept_new_host_key is set (or StrictHostKeyChecking accept-new in
 *     the ssh configuration): then the key is appended to the file.
 *  3. A key that differs from the recorded one is always refused.
 *
 * Authentication, first success wins.  With an identity named (-i, or
 * IdentityFile in the ssh configuration): those keys (signed by the agent
 * when it holds them), then the agent's other keys unless IdentitiesOnly.
 * Without: the agent's keys ($SSH_AUTH_SOCK), then ~/.ssh/id_ed25519,
 * id_ecdsa, id_rsa.  An encrypted
 * key's passphrase comes from $MAILVAULT_SSH_PASSPHRASE, the file named by
 * $MAILVAULT_SSH_PASSPHRASE_FILE, or a prompt on the terminal.  A password
 * is asked for last, on a terminal only.  Secrets typed once are kept in
 * memory for reconnections of the same process.
 *
 * Nothing waits forever: connect, handshake and every request are bounded
 * by the timeouts in struct ssh_opts, and TCP keepalive notices a dead
 * peer on an idle connection.
 */
#ifndef MV_SSH_H
#define MV_SSH_H

#include <stdbool.h>
#include <stddef.h>

#include <libssh2.h>

#include "mv_err.h"
#include "util.h"

enum ssh_scheme {
	SSH_SCHEME_SFTP,     /* sftp:// repository */
	SSH_SCHEME_SSH,	     /* ssh:// directory source */
	SSH_SCHEME_SSH_EXEC, /* ssh-exec:// command source */
};

/* A parsed remote location.  Strings are owned; release with
 * ssh_url_release(). */
struct ssh_url {
	enum ssh_scheme scheme;
	char *user; /* login name, NULL when not given */
	char *host; /* host name or address, without brackets */
	int port;   /* TCP port; 0 when not written: the ssh configuration's
		     * Port, else 22 */
	char *path; /* remote path ("" for ssh-exec); relative when "/~/" */
};

/* Parse url into out.  Errors name the part that is wrong. */
int ssh_url_parse(const char *url, struct ssh_url *out, struct mv_err *err);
void ssh_url_release(struct ssh_url *u);
/* True when s starts with sftp://, ssh:// or ssh-exec://. */
bool ssh_url_is_remote(const char *s);
/* "host" or "[host]:port" as written in known_hosts, into out. */
void ssh_url_host_key_name(const struct ssh_url *u, char *out, size_t n);

/* How to connect.  Strings are borrowed. */
struct ssh_opts {
	const char *identity;	  /* -i FILE, or NULL for the defaults */
	const char *known_hosts;  /* NULL: $MAILVAULT_KNOWN_HOSTS or
				   * ~/.ssh/known_hosts */
	bool accept_new_host_key; /* record the key of an unknown host */
	int connect_timeout_s;	  /* TCP connect + handshake + auth */
	int io_timeout_s;	  /* one SFTP request or channel read */
	int keepalive_s;	  /* SSH keepalive interval, 0 = off */
	int retries;		  /* reconnections before giving up */
	int max_connections;	  /* sessions a backend may open at once */
};

/* Fill o with defaults: 15 s connect, 60 s per request, keepalive every
 * 30 s, 3 retries (after 1, 2 and 4 s), 4 connections. */
void ssh_opts_init(struct ssh_opts *o);

/* Options used where a location is opened without explicit options
 * (backend_open() for sftp:// repositories).  The command line sets them
 * once, before opening anything; o is copied, its strings are borrowed. */
void ssh_set_default_opts(const struct ssh_opts *o);
void ssh_get_default_opts(struct ssh_opts *out);

struct ssh_session;

/* Connect, check the host key and authenticate. */
int ssh_connect(const struct ssh_url *u, const struct ssh_opts *o,
		struct ssh_session **out, struct mv_err *err);
/* Disconnect and free; accepts NULL. */
void ssh_close(struct ssh_session *s);
/* The libssh2 session (blocking mode, request timeout set). */
LIBSSH2_SESSION *ssh_session_handle(struct ssh_session *s);
/* The connected socket. */
int ssh_session_fd(struct ssh_session *s);
/* "user@host:port" for messages. */
const char *ssh_session_name(struct ssh_session *s);
/* Send a keepalive if one is due; returns 0 or -EIO. */
int ssh_keepalive(struct ssh_session *s);
/* libssh2's last error text for s, for messages. */
const char *ssh_last_error(struct ssh_session *s);
/* True when the last libssh2 error means the connection is gone (socket
 * error, timeout, channel closed), so a reconnection may help. */
bool ssh_is_connection_error(int libssh2_rc);

/* "SHA256:<base64 without padding>" of a host key blob into out (at
 * least 64 bytes), like OpenSSH prints it. */
int ssh_fingerprint_sha256(const void *key, size_t len, char *out, size_t n);

/* Wait 1, 2, 4 ... seconds before reconnection number attempt (0-based);
 * $MAILVAULT_SSH_RETRY_MS overrides the first delay (tests). */
void ssh_backoff(int attempt);

/*
 * sshexec: run a command on the server and read its standard output as a
 * stream.  Standard error is collected (the last 64 KiB) for the report.
 */
struct sshexec;

/* Connect to url (ssh-exec://[user@]host[:port]) and start command. */
int sshexec_open(const char *url, const char *command, const struct ssh_opts *o,
		 struct sshexec **out, struct mv_err *err);
/* Read up to len bytes of the command's stdout; *out_n == 0 at the end. */
int sshexec_read(struct sshexec *h, void *buf, size_t len, size_t *out_n,
		 struct mv_err *err);
/* Finish: wait for the command to exit, store its exit status (-1 when it
 * was killed by a signal or unknown) and append its stderr to stderr_out
 * (may be NULL).  A non-zero status is an error (-EIO) whose message has
 * the status and the last line of stderr.  Frees h, accepts NULL. */
int sshexec_close(struct sshexec *h, int *exit_status,
		  struct mv_buf *stderr_out, struct mv_err *err);

#endif
