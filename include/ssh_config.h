/*
 * ssh_config: what the user's OpenSSH configuration says about a host.
 *
 * OpenSSH itself is asked: `ssh -G [-F FILE] [-p PORT] [-l USER] HOST`
 * prints the configuration it would use for HOST after every Include,
 * Match, Host pattern and default of ~/.ssh/config and
 * /etc/ssh/ssh_config.  No configuration file is parsed here; only that
 * output is read (docs/REMOTE.md, "ssh_config").  Ports and users written
 * in the location are passed as -p/-l, so they win over the configuration
 * as on OpenSSH's command line.
 *
 * ProxyJump and ProxyCommand run as a child process (`ssh -W HOST:PORT
 * JUMP`, or `sh -c COMMAND`) connected to a socketpair: libssh2 then
 * speaks SSH over that socket instead of a TCP connection.
 *
 * When there is no ssh binary ($MAILVAULT_SSH, else ssh on PATH), or the
 * configuration is turned off (--ssh-config none, $MAILVAULT_SSH_CONFIG=
 * none), the location's own fields are used as they are;
 * $MAILVAULT_SSH_DEBUG=1 prints which way was taken.
 */
#ifndef MV_SSH_CONFIG_H
#define MV_SSH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "mv_err.h"
#include "ssh.h"

/* The configuration of one host.  Strings are owned; release with
 * ssh_host_config_release(). */
struct ssh_host_config {
	char *host;		 /* the name as written in the location */
	char *hostname;		 /* where to connect (HostName) */
	int port;		 /* Port */
	char *user;		 /* User (NULL: the local user) */
	char **identity_files;	 /* IdentityFile, ~ and %-tokens expanded */
	size_t n_identity_files; /* 0 when none was configured */
	bool identities_only;	 /* IdentitiesOnly yes */
	char *proxy_jump;	 /* ProxyJump, NULL when none */
	char *proxy_command;	 /* ProxyCommand (tokens expanded), or NULL */
	char **known_hosts;	 /* UserKnownHostsFile when configured, the
				  * first one is where new keys go; NULL
				  * when OpenSSH's default */
	size_t n_known_hosts;
	char **global_known_hosts; /* GlobalKnownHostsFile (read only) */
	size_t n_global_known_hosts;
	char *host_key_alias;	  /* HostKeyAlias, or NULL */
	int connect_timeout_s;	  /* ConnectTimeout, 0 when not set */
	bool accept_new_host_key; /* StrictHostKeyChecking accept-new (or
				   * no/off: changed keys are refused anyway) */
	bool from_openssh;	  /* false: ssh was not asked (no binary, or
				   * turned off): only the location's fields */
};

/* The configuration file to use: NULL for OpenSSH's own choice
 * (~/.ssh/config and /etc/ssh/ssh_config), "none" for no configuration at
 * all, or a file (like ssh -F).  Set once by the command line
 * (--ssh-config); $MAILVAULT_SSH_CONFIG is read when it was not set.
 * s is copied. */
void ssh_config_set_file(const char *s);

/* Resolve u's host through OpenSSH into out (the location's user and port
 * win).  Results are cached per process, so the reconnections and the
 * pooled sessions of one command ask ssh once.  An error of ssh itself (a
 * configuration file with a mistake) is returned with ssh's message. */
int ssh_config_resolve(const struct ssh_url *u, struct ssh_host_config *out,
		       struct mv_err *err);

/* Fill out from the text `ssh -G` printed for u (exposed for tests).
 * home and local_user expand ~, %d and %u. */
int ssh_config_parse(const char *text, const struct ssh_url *u,
		     const char *home, const char *local_user,
		     struct ssh_host_config *out, struct mv_err *err);

void ssh_host_config_release(struct ssh_host_config *c);

/* Start c's ProxyJump or ProxyCommand as a child connected to a socket;
 * *fd is our end (close it, then ssh_proxy_reap()).  Returns 0, or
 * -ENOENT when c has no proxy, or an error. */
int ssh_proxy_start(const struct ssh_host_config *c, int *fd, pid_t *pid,
		    struct mv_err *err);

/* Wait for a proxy child whose socket was closed (SIGTERM after 2 s).
 * Returns its exit status, -1 when killed.  Accepts pid <= 0. */
int ssh_proxy_reap(pid_t pid);

/* Print a debug line on stderr when $MAILVAULT_SSH_DEBUG is set. */
void ssh_debug(const char *fmt, ...) MV_PRINTF(1, 2);

/* The local user's name: $USER, else the password database's. */
const char *ssh_local_user(void);

#endif
