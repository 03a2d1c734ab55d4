/*
 * ssh: locations, TCP connection, host key verification and
 * authentication for every remote feature (see include/ssh.h).
 *
 * A session is used by one thread at a time; callers that share one
 * (the SFTP backend's pool) serialize on their own lock.  libssh2 runs in
 * blocking mode with a request timeout, so a dead server turns into
 * LIBSSH2_ERROR_TIMEOUT rather than a hang.
 */
#include "ssh.h"
#include "ssh_config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#define SECRET_MAX 1024

struct ssh_session {
	int fd;		    /* connected TCP socket */
	LIBSSH2_SESSION *s; /* libssh2 session on fd */
	char name[320];	    /* "user@host:port" for messages */
	int io_timeout_ms;  /* request timeout after authentication */
	pid_t proxy_pid;    /* ProxyJump/ProxyCommand child, 0 when none */
};

/* Secrets typed once, reused when the same process reconnects. */
static pthread_mutex_t secret_lock = PTHREAD_MUTEX_INITIALIZER;
static char cached_passphrase[SECRET_MAX];
static bool have_passphrase;
static char cached_password[SECRET_MAX];
static bool have_password;

static pthread_mutex_t defaults_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ssh_opts default_opts;
static bool have_default_opts;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;

static void init_libssh2(void)
{
	init_rc = libssh2_init(0);
}

/* ---- locations ---- */

bool ssh_url_is_remote(const char *s)
{
	return !strncmp(s, "sftp://", 7) || !strncmp(s, "ssh://", 6) ||
	       !strncmp(s, "ssh-exec://", 11);
}

void ssh_url_release(struct ssh_url *u)
{
	if (!u)
		return;
	free(u->user);
	free(u->host);
	free(u->path);
	u->user = u->host = u->path = NULL;
}

static bool host_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

int ssh_url_parse(const char *url, struct ssh_url *out, struct mv_err *err)
{
	struct ssh_url u = {SSH_SCHEME_SFTP, NULL, NULL, 0, NULL};
	const char *p, *auth_end, *at, *host, *host_end, *port = NULL;
	size_t i;
	int rc;

	if (!strncmp(url, "sftp://", 7)) {
		p = url + 7;
	} else if (!strncmp(url, "ssh://", 6)) {
		u.scheme = SSH_SCHEME_SSH;
		p = url + 6;
	} else if (!strncmp(url, "ssh-exec://", 11)) {
		u.scheme = SSH_SCHEME_SSH_EXEC;
		p = url + 11;
	} else {
		return mv_err_set(err, -EINVAL,
				  "cannot parse '%s': unknown scheme (use "
				  "sftp://, ssh:// or ssh-exec://)",
				  url);
	}
	auth_end = strchr(p, '/');
	if (!auth_end)
		auth_end = p + strlen(p);
	/* the last '@' before the path: user names may not hold one, but a
	 * stray '@' must not end up in the host */
	at = NULL;
	for (host = p; host < auth_end; host++)
		if (*host == '@')
			at = host;
	host = p;
	if (at) {
		if (at == p)
			return mv_err_set(err, -EINVAL,
					  "cannot parse '%s': "
					  "empty user name before '@'",
					  url);
		for (i = 0; p + i < at; i++) {
			char c = p[i];

			if (c == ':' || c == '@' || c == '[' || c == ']' ||
			    (unsigned char)c < 0x21)
				return mv_err_set(err, -EINVAL,
						  "cannot parse '%s': user "
						  "name '%.*s' has '%c'",
						  url, (int)(at - p), p, c);
		}
		u.user = strndup(p, (size_t)(at - p));
		if (!u.user)
			goto nomem;
		host = at + 1;
	}
	if (*host == '[') {
		host_end = memchr(host, ']', (size_t)(auth_end - host));
		if (!host_end) {
			rc = mv_err_set(err, -EINVAL,
					"cannot parse '%s': "
					"IPv6 address has no closing ']'",
					url);
			goto fail;
		}
		host++;
		for (i = 0; host + i < host_end; i++) {
			char c = host[i];

			/* a zone ("%eth0") is a name */
			if (memchr(host, '%', i) && host_char_ok(c))
				continue;
			if (!(c == ':' || c == '.' || c == '%' ||
			      (c >= '0' && c <= '9') ||
			      (c >= 'a' && c <= 'f') ||
			      (c >= 'A' && c <= 'F'))) {
				rc = mv_err_set(err, -EINVAL,
						"cannot parse '%s': '%.*s' is "
						"not an IPv6 address",
						url, (int)(host_end - host),
						host);
				goto fail;
			}
		}
		p = host_end + 1;
		if (p < auth_end && *p != ':') {
			rc = mv_err_set(err, -EINVAL,
					"cannot parse '%s': "
					"unexpected '%c' after ']'",
					url, *p);
			goto fail;
		}
	} else {
		host_end = memchr(host, ':', (size_t)(auth_end - host));
		if (host_end && memchr(host_end + 1, ':',
				       (size_t)(auth_end - host_end - 1))) {
			rc = mv_err_set(err, -EINVAL,
					"cannot parse '%s': "
					"IPv6 addresses go in brackets "
					"(sftp://[::1]:22/path)",
					url);
			goto fail;
		}
		if (!host_end)
			host_end = auth_end;
		for (i = 0; host + i < host_end; i++) {
			if (!host_char_ok(host[i])) {
				rc = mv_err_set(err, -EINVAL,
						"cannot parse '%s': host "
						"'%.*s' has '%c' (IPv6 "
						"addresses go in brackets)",
						url, (int)(host_end - host),
						host, host[i]);
				goto fail;
			}
		}
		p = host_end;
	}
	if (host_end == host) {
		rc = mv_err_set(err, -EINVAL, "cannot parse '%s': no host",
				url);
		goto fail;
	}
	u.host = strndup(host, (size_t)(host_end - host));
	if (!u.host)
		goto nomem;
	if (p < auth_end && *p == ':') {
		unsigned long v = 0;

		port = p + 1;
		if (port == auth_end) {
			rc = mv_err_set(err, -EINVAL,
					"cannot parse '%s': "
					"empty port after ':'",
					url);
			goto fail;
		}
		for (p = port; p < auth_end; p++) {
			if (*p < '0' || *p > '9' || v > 65535) {
				rc = mv_err_set(err, -EINVAL,
						"cannot parse '%s': port "
						"'%.*s' is not a number from "
						"1 to 65535",
						url, (int)(auth_end - port),
						port);
				goto fail;
			}
			v = v * 10 + (unsigned long)(*p - '0');
		}
		if (v < 1 || v > 65535) {
			rc = mv_err_set(err, -EINVAL,
					"cannot parse '%s': port "
					"'%.*s' is not a number from 1 to "
					"65535",
					url, (int)(auth_end - port), port);
			goto fail;
		}
		u.port = (int)v;
	}
	if (u.scheme == SSH_SCHEME_SSH_EXEC) {
		if (*auth_end && strcmp(auth_end, "/")) {
			rc = mv_err_set(err, -EINVAL,
					"cannot parse '%s': "
					"ssh-exec:// takes no path ('%s'); "
					"give the command with --exec",
					url, auth_end);
			goto fail;
		}
		u.path = strdup("");
	} else {
		const char *path = auth_end;

		if (!*path) {
			rc = mv_err_set(err, -EINVAL,
					"cannot parse '%s': no "
					"path after the host (write "
					"%s/path, or /~/path for one "
					"relative to the login directory)",
					url, url);
			goto fail;
		}
		if (!strcmp(path, "/~") || !strncmp(path, "/~/", 3)) {
			path += 2;
			while (*path == '/')
				path++;
			u.path = strdup(*path ? path : ".");
		} else {
			u.path = strdup(path);
		}
		if (u.path) {
			size_t n = strlen(u.path);

			while (n > 1 && u.path[n - 1] == '/')
				u.path[--n] = '\0';
		}
	}
	if (!u.path)
		goto nomem;
	*out = u;
	return 0;
nomem:
	rc = mv_err_set(err, -ENOMEM, "out of memory parsing '%s'", url);
fail:
	ssh_url_release(&u);
	return rc;
}

void ssh_url_host_key_name(const struct ssh_url *u, char *out, size_t n)
{
	if (u->port == 22 || u->port == 0)
		snprintf(out, n, "%s", u->host);
	else
		snprintf(out, n, "[%s]:%d", u->host, u->port);
}

/* ---- options ---- */

void ssh_opts_init(struct ssh_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->connect_timeout_s = 15;
	o->io_timeout_s = 60;
	o->keepalive_s = 30;
	o->retries = 3;
	o->max_connections = 4;
}

void ssh_set_default_opts(const struct ssh_opts *o)
{
	pthread_mutex_lock(&defaults_lock);
	default_opts = *o;
	have_default_opts = true;
	pthread_mutex_unlock(&defaults_lock);
}

void ssh_get_default_opts(struct ssh_opts *out)
{
	pthread_mutex_lock(&defaults_lock);
	if (have_default_opts)
		*out = default_opts;
	else
		ssh_opts_init(out);
	pthread_mutex_unlock(&defaults_lock);
}

void ssh_backoff(int attempt)
{
	const char *env = getenv("MAILVAULT_SSH_RETRY_MS");
	long ms = 1000;
	struct timespec ts;

	if (env && *env)
		ms = strtol(env, NULL, 10);
	if (ms < 0)
		ms = 0;
	if (attempt > 10)
		attempt = 10;
	ms <<= attempt;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- small helpers ---- */

static const char *home_dir(void)
{
	const char *h = getenv("HOME");
	struct passwd *pw;

	if (h && *h)
		return h;
	pw = getpwuid(getuid());
	return pw ? pw->pw_dir : "/";
}

int ssh_fingerprint_sha256(const void *key, size_t len, char *out, size_t n)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
	unsigned int mdlen = 0;
	int blen;

	if (n < 64)
		return -ENOSPC;
	if (!EVP_Digest(key, len, md, &mdlen, EVP_sha256(), NULL))
		return -EIO;
	blen = EVP_EncodeBlock(b64, md, (int)mdlen);
	while (blen > 0 && b64[blen - 1] == '=')
		b64[--blen] = '\0';
	snprintf(out, n, "SHA256:%s", (const char *)b64);
	return 0;
}

/* Read a line from the terminal without echo.  Returns 0, or -ENOTTY when
 * there is no terminal. */
static int prompt_tty(const char *prompt, char *out, size_t n)
{
	struct termios old, quiet;
	bool restore = false;
	size_t len = 0;
	int fd, rc = 0;

	fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -ENOTTY;
	if (!isatty(fd)) {
		close(fd);
		return -ENOTTY;
	}
	if (tcgetattr(fd, &old) == 0) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		quiet.c_lflag |= ECHONL;
		restore = tcsetattr(fd, TCSAFLUSH, &quiet) == 0;
	}
	if (mv_write_full(fd, prompt, strlen(prompt)) < 0)
		rc = -EIO;
	while (!rc && len + 1 < n) {
		char c;
		ssize_t r = read(fd, &c, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = len ? 0 : -EIO;
			break;
		}
		if (c == '\n' || c == '\r')
			break;
		out[len++] = c;
	}
	out[len] = '\0';
	if (restore)
		tcsetattr(fd, TCSAFLUSH, &old);
	close(fd);
	return rc;
}

/* The passphrase for an encrypted key: cached, $MAILVAULT_SSH_PASSPHRASE,
 * $MAILVAULT_SSH_PASSPHRASE_FILE, or the terminal. */
static int get_passphrase(const char *keyfile, char *out, size_t n,
			  struct mv_err *err)
{
	const char *env, *file;
	char prompt[PATH_MAX + 64];
	int rc = 0;

	pthread_mutex_lock(&secret_lock);
	if (have_passphrase) {
		snprintf(out, n, "%s", cached_passphrase);
		goto out;
	}
	env = getenv("MAILVAULT_SSH_PASSPHRASE");
	file = getenv("MAILVAULT_SSH_PASSPHRASE_FILE");
	if (env) {
		snprintf(out, n, "%s", env);
	} else if (file && *file) {
		char *text = NULL;
		size_t len = 0;

		rc = mv_read_file(file, SECRET_MAX, &text, &len, err);
		if (rc)
			goto out;
		text[strcspn(text, "\r\n")] = '\0';
		snprintf(out, n, "%s", text);
		explicit_bzero(text, len);
		free(text);
	} else {
		snprintf(prompt, sizeof(prompt),
			 "Enter passphrase for key '%s': ", keyfile);
		rc = prompt_tty(prompt, out, n);
		if (rc) {
			rc = mv_err_set(err, -EACCES,
					"key '%s' needs a "
					"passphrase: set "
					"MAILVAULT_SSH_PASSPHRASE or "
					"MAILVAULT_SSH_PASSPHRASE_FILE, or run "
					"on a terminal",
					keyfile);
			goto out;
		}
	}
	snprintf(cached_passphrase, sizeof(cached_passphrase), "%s", out);
	have_passphrase = true;
out:
	pthread_mutex_unlock(&secret_lock);
	return rc;
}

static void forget_passphrase(void)
{
	pthread_mutex_lock(&secret_lock);
	explicit_bzero(cached_passphrase, sizeof(cached_passphrase));
	have_passphrase = false;
	pthread_mutex_unlock(&secret_lock);
}

/* ---- TCP ---- */

static void tune_socket(int fd, int io_timeout_s)
{
	int one = 1, idle = 30, intvl = 10, cnt = 3;
	unsigned int user_ms = (unsigned int)io_timeout_s * 1000u;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	if (user_ms)
		setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_ms,
			   sizeof(user_ms));
}

static int connect_one(const struct addrinfo *ai, int timeout_ms)
{
	struct pollfd pfd;
	socklen_t slen;
	int fd, e = 0, flags;

	fd = socket(ai->ai_family,
		    ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    ai->ai_protocol);
	if (fd < 0)
		return -errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS) {
			e = errno;
			goto fail;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		for (;;) {
			int r = poll(&pfd, 1, timeout_ms);

			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				e = errno;
				goto fail;
			}
			if (r == 0) {
				e = ETIMEDOUT;
				goto fail;
			}
			break;
		}
		slen = sizeof(e);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &slen) < 0)
			e = errno;
		if (e)
			goto fail;
	}
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
		e = errno;
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -e;
}

static int tcp_connect(const struct ssh_url *u, int timeout_s,
		       struct mv_err *err)
{
	struct addrinfo hints, *res = NULL, *ai;
	char port[16];
	int rc, fd = -ETIMEDOUT;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
	snprintf(port, sizeof(port), "%d", u->port);
	rc = getaddrinfo(u->host, port, &hints, &res);
	if (rc == EAI_ADDRFAMILY || rc == EAI_NONAME) {
		hints.ai_flags = AI_NUMERICSERV;
		rc = getaddrinfo(u->host, port, &hints, &res);
	}
	if (rc)
		return mv_err_set(err, -EHOSTUNREACH,
				  "cannot resolve host "
				  "'%s': %s",
				  u->host, gai_strerror(rc));
	for (ai = res; ai; ai = ai->ai_next) {
		fd = connect_one(ai, timeout_s * 1000);
		if (fd >= 0)
			break;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return mv_err_set(err, fd, "cannot connect to '%s' port %d: %s",
				  u->host, u->port, strerror(-fd));
	return fd;
}

/* ---- host keys ---- */

static int knownhost_key_bit(int type)
{
	switch (type) {
	case LIBSSH2_HOSTKEY_TYPE_RSA:
		return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
	case LIBSSH2_HOSTKEY_TYPE_DSS:
		return LIBSSH2_KNOWNHOST_KEY_SSHDSS;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
		return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
		return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
		return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
	case LIBSSH2_HOSTKEY_TYPE_ED25519:
		return LIBSSH2_KNOWNHOST_KEY_ED25519;
	default:
		return LIBSSH2_KNOWNHOST_KEY_UNKNOWN;
	}
}

static const char *key_type_name(int type)
{
	switch (type) {
	case LIBSSH2_HOSTKEY_TYPE_RSA:
		return "RSA";
	case LIBSSH2_HOSTKEY_TYPE_DSS:
		return "DSA";
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
		return "ECDSA";
	case LIBSSH2_HOSTKEY_TYPE_ED25519:
		return "ED25519";
	default:
		return "unknown";
	}
}

/* The file new keys go to, and that messages name: ssh_opts, then
 * $MAILVAULT_KNOWN_HOSTS, then the first UserKnownHostsFile of the ssh
 * configuration, then ~/.ssh/known_hosts.  Returns true when the
 * configuration's files apply (no override). */
static bool known_hosts_path(const struct ssh_opts *o,
			     const struct ssh_host_config *hc, char *out,
			     size_t n)
{
	const char *env = getenv("MAILVAULT_KNOWN_HOSTS");

	if (o->known_hosts && *o->known_hosts) {
		snprintf(out, n, "%s", o->known_hosts);
		return false;
	}
	if (env && *env) {
		snprintf(out, n, "%s", env);
		return false;
	}
	if (hc->n_known_hosts)
		snprintf(out, n, "%s", hc->known_hosts[0]);
	else
		snprintf(out, n, "%s/.ssh/known_hosts", home_dir());
	return true;
}

/* Load path line by line: libssh2_knownhost_readfile() stops at the first
 * line it cannot parse (markers, key types it does not know), which would
 * hide the entries after it. */
static int load_known_hosts(LIBSSH2_KNOWNHOSTS *kh, const char *path,
			    struct mv_err *err)
{
	char line[16384];
	FILE *f;

	f = fopen(path, "re");
	if (!f) {
		if (errno == ENOENT)
			return 0;
		return mv_err_set(err, -errno,
				  "cannot read known hosts '%s': "
				  "%s",
				  path, strerror(errno));
	}
	while (fgets(line, sizeof(line), f)) {
		const char *p = line;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '#' || *p == '\n' || *p == '\0' || *p == '@')
			continue;
		/* a line libssh2 cannot parse is skipped, as OpenSSH does */
		libssh2_knownhost_readline(kh, p, strlen(p),
					   LIBSSH2_KNOWNHOST_FILE_OPENSSH);
	}
	fclose(f);
	return 0;
}

static int append_known_host(LIBSSH2_KNOWNHOSTS *kh, const char *path,
			     const char *name, const char *key, size_t len,
			     int keybit, struct mv_err *err)
{
	struct libssh2_knownhost *entry = NULL;
	char line[16384], dir[PATH_MAX], *slash;
	const char comment[] = "added by mailvault";
	size_t outlen = 0;
	int fd, rc;

	rc = libssh2_knownhost_addc(
		kh, name, NULL, key, len, comment, sizeof(comment) - 1,
		LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
			keybit,
		&entry);
	if (!rc)
		rc = libssh2_knownhost_writeline(
			kh, entry, line, sizeof(line), &outlen,
			LIBSSH2_KNOWNHOST_FILE_OPENSSH);
	if (rc)
		return mv_err_set(err, -EIO,
				  "cannot record the host key of "
				  "'%s'",
				  name);
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		mv_mkdir_p(dir, 0700);
	}
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return mv_err_set(err, -errno,
				  "cannot write known hosts '%s': "
				  "%s",
				  path, strerror(errno));
	rc = mv_write_full(fd, line, outlen);
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	if (rc)
		return mv_err_set(err, rc, "cannot write known hosts '%s': %s",
				  path, strerror(-rc));
	return 0;
}

/* u names the host as known_hosts records it: HostName (or HostKeyAlias)
 * and port. */
static int check_host_key(struct ssh_session *ss, const struct ssh_url *u,
			  const struct ssh_opts *o,
			  const struct ssh_host_config *hc, struct mv_err *err)
{
	bool accept_new = o->accept_new_host_key || hc->accept_new_host_key;
	bool from_config;
	size_t i;
	LIBSSH2_KNOWNHOSTS *kh = NULL;
	char path[PATH_MAX], fp[80], name[300];
	const char *key;
	size_t len = 0;
	int type = 0, keybit, check, rc;

	key = libssh2_session_hostkey(ss->s, &len, &type);
	if (!key)
		return mv_err_set(err, -EPROTO, "'%s' sent no host key",
				  ss->name);
	rc = ssh_fingerprint_sha256(key, len, fp, sizeof(fp));
	if (rc)
		return mv_err_set(err, rc, "cannot hash the host key of '%s'",
				  ss->name);
	keybit = knownhost_key_bit(type);
	ssh_url_host_key_name(u, name, sizeof(name));
	from_config = known_hosts_path(o, hc, path, sizeof(path));
	kh = libssh2_knownhost_init(ss->s);
	if (!kh)
		return mv_err_set(err, -ENOMEM, "out of memory");
	rc = load_known_hosts(kh, path, err);
	if (rc)
		goto out;
	/* the configuration's other files are read, never written; one
	 * that cannot be read is skipped, as OpenSSH does */
	for (i = 1; from_config && i < hc->n_known_hosts; i++)
		(void)load_known_hosts(kh, hc->known_hosts[i], NULL);
	for (i = 0; from_config && i < hc->n_global_known_hosts; i++)
		(void)load_known_hosts(kh, hc->global_known_hosts[i], NULL);
	check = libssh2_knownhost_checkp(kh, u->host, u->port, key, len,
					 LIBSSH2_KNOWNHOST_TYPE_PLAIN |
						 LIBSSH2_KNOWNHOST_KEYENC_RAW |
						 keybit,
					 NULL);
	switch (check) {
	case LIBSSH2_KNOWNHOST_CHECK_MATCH:
		rc = 0;
		break;
	case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
		rc = mv_err_set(err, -EPERM,
				"host key of '%s' has changed: it is now %s "
				"key %s, which is not the one recorded in "
				"'%s'; someone may be intercepting the "
				"connection; if the server was reinstalled, "
				"check the new fingerprint with its "
				"administrator, then remove the old entry "
				"with: ssh-keygen -R '%s' -f '%s'",
				name, key_type_name(type), fp, path, name,
				path);
		break;
	case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
		if (accept_new) {
			rc = append_known_host(kh, path, name, key, len, keybit,
					       err);
			break;
		}
		rc = mv_err_set(err, -EPERM,
				"host '%s' is not known: its %s key "
				"fingerprint is %s; if that is the right one, "
				"run again with --accept-new-host-key to "
				"record it in '%s'",
				name, key_type_name(type), fp, path);
		break;
	default:
		rc = mv_err_set(err, -EIO,
				"cannot check the host key of '%s' "
				"against '%s'",
				name, path);
		break;
	}
out:
	libssh2_knownhost_free(kh);
	return rc;
}

/* ---- authentication ---- */

/* The agent, opened on first use; every key is offered at most once. */
struct agent_ctx {
	LIBSSH2_AGENT *a;
	bool opened;  /* open attempted */
	bool usable;  /* connected, identities listed */
	bool offered; /* at least one key was offered */
	struct libssh2_agent_publickey *used[64];
	size_t n_used;
};

static bool agent_open(struct ssh_session *ss, struct agent_ctx *ag)
{
	if (ag->opened)
		return ag->usable;
	ag->opened = true;
	if (!getenv("SSH_AUTH_SOCK"))
		return false;
	ag->a = libssh2_agent_init(ss->s);
	if (!ag->a)
		return false;
	/* local: the agent's socket, no round trip to the server */
	ag->usable = !libssh2_agent_connect(ag->a) &&
		     !libssh2_agent_list_identities(ag->a);
	return ag->usable;
}

static void agent_close(struct agent_ctx *ag)
{
	if (!ag->a)
		return;
	libssh2_agent_disconnect(ag->a);
	libssh2_agent_free(ag->a);
	ag->a = NULL;
}

static bool agent_was_used(const struct agent_ctx *ag,
			   const struct libssh2_agent_publickey *id)
{
	size_t i;

	for (i = 0; i < ag->n_used; i++)
		if (ag->used[i] == id)
			return true;
	return false;
}

/* Offer one agent key: 0 accepted, -EACCES refused, -EIO connection. */
static int agent_try(struct agent_ctx *ag, const char *user,
		     struct libssh2_agent_publickey *id)
{
	int r;

	if (ag->n_used < MV_ARRAY_SIZE(ag->used))
		ag->used[ag->n_used++] = id;
	ag->offered = true;
	r = libssh2_agent_userauth(ag->a, user, id);
	if (r == 0)
		return 0;
	return ssh_is_connection_error(r) ? -EIO : -EACCES;
}

/* Offer the agent's keys not offered yet, in its order. */
static int agent_try_rest(struct ssh_session *ss, struct agent_ctx *ag,
			  const char *user)
{
	struct libssh2_agent_publickey *id = NULL, *prev = NULL;
	int r;

	if (!agent_open(ss, ag))
		return -ENOENT;
	while (libssh2_agent_get_identity(ag->a, &id, prev) == 0) {
		prev = id;
		if (agent_was_used(ag, id))
			continue;
		r = agent_try(ag, user, id);
		if (r != -EACCES)
			return r;
	}
	return -EACCES;
}

/* The agent's entry for the key whose public half is FILE.pub, or NULL. */
static struct libssh2_agent_publickey *
agent_find_file_key(struct ssh_session *ss, struct agent_ctx *ag,
		    const char *file)
{
	struct libssh2_agent_publickey *id = NULL, *prev = NULL;
	unsigned char blob[8192];
	char path[PATH_MAX + 8], *text = NULL, *b64, *end;
	size_t len = 0, n;
	int blen;

	if (!agent_open(ss, ag))
		return NULL;
	snprintf(path, sizeof(path), "%s.pub", file);
	if (mv_read_file(path, 16384, &text, &len, NULL))
		return NULL;
	b64 = text + strcspn(text, " \t");
	b64 += strspn(b64, " \t");
	end = b64 + strcspn(b64, " \t\r\n");
	n = (size_t)(end - b64);
	blen = n && n % 4 == 0 && n / 4 * 3 <= sizeof(blob)
		       ? EVP_DecodeBlock(blob, (unsigned char *)b64, (int)n)
		       : -1;
	/* EVP_DecodeBlock counts the padding as zero bytes */
	if (blen > 0 && b64[n - 1] == '=')
		blen -= b64[n - 2] == '=' ? 2 : 1;
	free(text);
	if (blen <= 0)
		return NULL;
	while (libssh2_agent_get_identity(ag->a, &id, prev) == 0) {
		if (id->blob_len == (size_t)blen &&
		    !memcmp(id->blob, blob, (size_t)blen))
			return id;
		prev = id;
	}
	return NULL;
}

/* Try one key file.  Returns 0 when accepted, -EACCES when refused,
 * another error when the connection broke or a secret is missing. */
static int try_key_file(struct ssh_session *ss, const char *user,
			const char *file, bool explicit_id, struct mv_err *err)
{
	char pass[SECRET_MAX];
	int rc, e;

	if (access(file, R_OK) < 0) {
		if (explicit_id)
			return mv_err_set(err, -errno,
					  "cannot read identity "
					  "'%s': %s",
					  file, strerror(errno));
		return -ENOENT;
	}
	rc = libssh2_userauth_publickey_fromfile_ex(
		ss->s, user, (unsigned int)strlen(user), NULL, file, "");
	if (!rc)
		return 0;
	if (rc != LIBSSH2_ERROR_FILE)
		return ssh_is_connection_error(rc) ? -EIO : -EACCES;
	/* the key could not be loaded without a passphrase */
	e = get_passphrase(file, pass, sizeof(pass), err);
	if (e)
		return e;
	rc = libssh2_userauth_publickey_fromfile_ex(
		ss->s, user, (unsigned int)strlen(user), NULL, file, pass);
	explicit_bzero(pass, sizeof(pass));
	if (!rc)
		return 0;
	if (rc == LIBSSH2_ERROR_FILE) {
		forget_passphrase();
		return mv_err_set(err, -EACCES,
				  "cannot load key '%s': wrong "
				  "passphrase or unsupported key format",
				  file);
	}
	return ssh_is_connection_error(rc) ? -EIO : -EACCES;
}

static char kbd_password[SECRET_MAX];

static void kbd_callback(const char *name, int name_len,
			 const char *instruction, int instruction_len,
			 int num_prompts,
			 const LIBSSH2_USERAUTH_KBDINT_PROMPT *prompts,
			 LIBSSH2_USERAUTH_KBDINT_RESPONSE *responses,
			 void **abstract)
{
	int i;

	(void)name;
	(void)name_len;
	(void)instruction;
	(void)instruction_len;
	(void)prompts;
	(void)abstract;
	for (i = 0; i < num_prompts; i++) {
		responses[i].text = strdup(kbd_password);
		responses[i].length =
			responses[i].text ? (unsigned int)strlen(kbd_password)
					  : 0;
	}
}

static int try_password(struct ssh_session *ss, const char *user,
			const char *methods)
{
	char pw[SECRET_MAX], prompt[400];
	int attempt, rc = -EACCES;

	for (attempt = 0; attempt < 3 && rc == -EACCES; attempt++) {
		pthread_mutex_lock(&secret_lock);
		if (have_password) {
			snprintf(pw, sizeof(pw), "%s", cached_password);
		} else {
			snprintf(prompt, sizeof(prompt),
				 "%s's password: ", ss->name);
			if (prompt_tty(prompt, pw, sizeof(pw))) {
				pthread_mutex_unlock(&secret_lock);
				return -ENOTTY;
			}
		}
		pthread_mutex_unlock(&secret_lock);
		if (strstr(methods, "password"))
			rc = libssh2_userauth_password_ex(
				ss->s, user, (unsigned int)strlen(user), pw,
				(unsigned int)strlen(pw), NULL);
		else
			rc = -1;
		if (rc && strstr(methods, "keyboard-interactive")) {
			/* libssh2 calls back on this thread; the static
			 * buffer is guarded by secret_lock */
			pthread_mutex_lock(&secret_lock);
			snprintf(kbd_password, sizeof(kbd_password), "%s", pw);
			rc = libssh2_userauth_keyboard_interactive_ex(
				ss->s, user, (unsigned int)strlen(user),
				kbd_callback);
			explicit_bzero(kbd_password, sizeof(kbd_password));
			pthread_mutex_unlock(&secret_lock);
		}
		if (!rc) {
			pthread_mutex_lock(&secret_lock);
			snprintf(cached_password, sizeof(cached_password), "%s",
				 pw);
			have_password = true;
			pthread_mutex_unlock(&secret_lock);
		} else if (ssh_is_connection_error(rc)) {
			rc = -EIO;
		} else {
			rc = -EACCES;
			pthread_mutex_lock(&secret_lock);
			have_password = false;
			pthread_mutex_unlock(&secret_lock);
		}
	}
	explicit_bzero(pw, sizeof(pw));
	return rc;
}

static void add_tried(char *tried, size_t n, const char *what)
{
	if (strstr(tried, what))
		return;
	if (strlen(tried) + strlen(what) + 3 < n) {
		strcat(tried, what);
		strcat(tried, ", ");
	}
}

/*
 * Round trips: every key offered costs one (libssh2 asks whether the key
 * would do before signing), an accepted one a second, so the key most
 * likely to work goes first.  A named identity (-i, IdentityFile) is that
 * key: it is offered before the agent's others, signed by the agent when
 * the agent holds it.  The server's list of methods ("none" request, one
 * more round trip) is only asked for once the keys have failed.
 */
static int authenticate(struct ssh_session *ss, const char *user,
			const struct ssh_opts *o,
			const struct ssh_host_config *hc, struct mv_err *err)
{
	static const char *const defaults[] = {"id_ed25519", "id_ecdsa",
					       "id_rsa"};
	struct agent_ctx ag;
	char tried[512] = "", file[PATH_MAX];
	const char *methods;
	bool named = o->identity || hc->n_identity_files;
	bool had_err = err && err->code;
	size_t i, n_files;
	int rc;

	memset(&ag, 0, sizeof(ag));
	if (o->identity)
		n_files = 1 + hc->n_identity_files;
	else if (hc->n_identity_files)
		n_files = hc->n_identity_files;
	else
		n_files = MV_ARRAY_SIZE(defaults);
	if (!named && !hc->identities_only) {
		rc = agent_try_rest(ss, &ag, user);
		if (rc == 0 || rc == -EIO)
			goto out;
	}
	for (i = 0; i < n_files; i++) {
		struct libssh2_agent_publickey *id;
		bool explicit_id = o->identity && i == 0;

		if (o->identity)
			snprintf(file, sizeof(file), "%s",
				 i == 0 ? o->identity
					: hc->identity_files[i - 1]);
		else if (hc->n_identity_files)
			snprintf(file, sizeof(file), "%s",
				 hc->identity_files[i]);
		else
			snprintf(file, sizeof(file), "%s/.ssh/%s", home_dir(),
				 defaults[i]);
		id = agent_find_file_key(ss, &ag, file);
		if (id && !agent_was_used(&ag, id)) {
			/* the agent holds it: no passphrase needed */
			rc = agent_try(&ag, user, id);
			if (rc != -EACCES)
				goto out;
			add_tried(tried, sizeof(tried), file);
			continue;
		}
		if (id)
			continue;
		rc = try_key_file(ss, user, file, explicit_id, err);
		if (!rc)
			goto out;
		if (rc == -ENOENT)
			continue;
		if (rc != -EACCES) {
			rc = mv_err_set(err, rc,
					"cannot authenticate to '%s': %s",
					ss->name, ssh_last_error(ss));
			goto out;
		}
		add_tried(tried, sizeof(tried), file);
	}
	if (named && !hc->identities_only) {
		rc = agent_try_rest(ss, &ag, user);
		if (rc == 0 || rc == -EIO)
			goto out;
	}
	if (ag.offered)
		add_tried(tried, sizeof(tried), "ssh-agent");
	methods =
		libssh2_userauth_list(ss->s, user, (unsigned int)strlen(user));
	if (!methods) {
		rc = 0;
		if (!libssh2_userauth_authenticated(ss->s))
			rc = mv_err_set(err, -EIO,
					"cannot authenticate to '%s': %s",
					ss->name, ssh_last_error(ss));
		goto out;
	}
	if (strstr(methods, "password") ||
	    strstr(methods, "keyboard-interactive")) {
		rc = try_password(ss, user, methods);
		if (!rc)
			goto out;
		if (rc == -EIO) {
			rc = mv_err_set(err, rc,
					"cannot authenticate to "
					"'%s': %s",
					ss->name, ssh_last_error(ss));
			goto out;
		}
		if (rc == -EACCES)
			add_tried(tried, sizeof(tried), "password");
	}
	if (*tried)
		tried[strlen(tried) - 2] = '\0';
	rc = mv_err_set(
		err, -EACCES,
		"cannot authenticate to '%s': tried %s; the server "
		"accepts %s (give a key with -i FILE or IdentityFile in "
		"~/.ssh/config, load one into ssh-agent, or run on a "
		"terminal for a password)",
		ss->name, *tried ? tried : "nothing usable", methods);
out:
	if (rc == -EIO && (!err || !err->code))
		rc = mv_err_set(err, rc, "cannot authenticate to '%s': %s",
				ss->name, ssh_last_error(ss));
	/* a key that needed a passphrase nobody gave, then another key that
	 * worked: no error to report */
	if (!rc && err && !had_err)
		mv_err_clear(err);
	agent_close(&ag);
	return rc;
}

/* ---- sessions ---- */

bool ssh_is_connection_error(int rc)
{
	switch (rc) {
	case LIBSSH2_ERROR_SOCKET_NONE:
	case LIBSSH2_ERROR_BANNER_RECV:
	case LIBSSH2_ERROR_BANNER_SEND:
	case LIBSSH2_ERROR_INVALID_MAC:
	case LIBSSH2_ERROR_SOCKET_SEND:
	case LIBSSH2_ERROR_TIMEOUT:
	case LIBSSH2_ERROR_DECRYPT:
	case LIBSSH2_ERROR_SOCKET_DISCONNECT:
	case LIBSSH2_ERROR_PROTO:
	case LIBSSH2_ERROR_CHANNEL_OUTOFORDER:
	case LIBSSH2_ERROR_CHANNEL_WINDOW_EXCEEDED:
	case LIBSSH2_ERROR_CHANNEL_PACKET_EXCEEDED:
	case LIBSSH2_ERROR_CHANNEL_CLOSED:
	case LIBSSH2_ERROR_CHANNEL_EOF_SENT:
	case LIBSSH2_ERROR_SOCKET_TIMEOUT:
	case LIBSSH2_ERROR_SOCKET_RECV:
		return true;
	default:
		return false;
	}
}

const char *ssh_last_error(struct ssh_session *s)
{
	char *msg = NULL;

	if (!s || !s->s)
		return "not connected";
	libssh2_session_last_error(s->s, &msg, NULL, 0);
	return msg && *msg ? msg : "unknown error";
}

LIBSSH2_SESSION *ssh_session_handle(struct ssh_session *s)
{
	return s->s;
}

int ssh_session_fd(struct ssh_session *s)
{
	return s->fd;
}

const char *ssh_session_name(struct ssh_session *s)
{
	return s->name;
}

int ssh_keepalive(struct ssh_session *s)
{
	int next = 0;

	if (libssh2_keepalive_send(s->s, &next))
		return -EIO;
	return 0;
}

/* OpenSSH's order, so the key recorded in known_hosts by OpenSSH is the
 * one the server shows us.  Only algorithms this libssh2 has are listed:
 * libssh2 1.10 corrupts memory (overlapping memcpy) when it has to drop
 * an unknown name from the list. */
static void prefer_host_key_types(LIBSSH2_SESSION *s)
{
	static const char *const order[] = {"ssh-ed25519",
					    "ecdsa-sha2-nistp256",
					    "ecdsa-sha2-nistp384",
					    "ecdsa-sha2-nistp521",
					    "rsa-sha2-512",
					    "rsa-sha2-256",
					    "ssh-rsa"};
	const char **algs = NULL;
	char pref[256] = "";
	size_t i;
	int n, j;

	n = libssh2_session_supported_algs(s, LIBSSH2_METHOD_HOSTKEY, &algs);
	if (n <= 0)
		return;
	for (i = 0; i < MV_ARRAY_SIZE(order); i++) {
		for (j = 0; j < n; j++) {
			if (strcmp(algs[j], order[i]))
				continue;
			if (*pref)
				strcat(pref, ",");
			strcat(pref, order[i]);
			break;
		}
	}
	libssh2_free(s, algs);
	if (*pref)
		libssh2_session_method_pref(s, LIBSSH2_METHOD_HOSTKEY, pref);
}

/* Where the TCP connection goes when the configuration names no proxy;
 * a message that says which name could not be resolved and why. */
static int connect_direct(const struct ssh_url *u,
			  const struct ssh_host_config *hc, int timeout_s,
			  struct mv_err *err)
{
	struct ssh_url target = *u;
	struct mv_err e = MV_ERR_INIT;
	int fd;

	target.host = hc->hostname;
	target.port = hc->port;
	fd = tcp_connect(&target, timeout_s, &e);
	if (fd >= 0)
		return fd;
	if (fd == -EHOSTUNREACH && hc->from_openssh &&
	    !strcmp(hc->hostname, hc->host))
		return mv_err_set(err, fd,
				  "%s (not a Host in ~/.ssh/config or "
				  "/etc/ssh/ssh_config either)",
				  mv_err_msg(&e));
	if (strcmp(hc->hostname, hc->host))
		return mv_err_set(err, fd,
				  "%s (HostName of '%s' in the ssh "
				  "configuration)",
				  mv_err_msg(&e), hc->host);
	return mv_err_set(err, fd, "%s", mv_err_msg(&e));
}

int ssh_connect(const struct ssh_url *u, const struct ssh_opts *o,
		struct ssh_session **out, struct mv_err *err)
{
	struct ssh_host_config hc;
	struct ssh_session *ss = NULL;
	struct ssh_url key_name;
	const char *user;
	int rc, timeout_s = o->connect_timeout_s;

	pthread_once(&init_once, init_libssh2);
	if (init_rc)
		return mv_err_set(err, -EIO, "cannot initialize libssh2");
	rc = ssh_config_resolve(u, &hc, err);
	if (rc)
		return rc;
	user = hc.user ? hc.user : ssh_local_user();
	if (hc.connect_timeout_s > 0)
		timeout_s = hc.connect_timeout_s;
	ss = calloc(1, sizeof(*ss));
	if (!ss) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	ss->fd = -1;
	ss->io_timeout_ms = o->io_timeout_s * 1000;
	if (hc.port == 22)
		snprintf(ss->name, sizeof(ss->name), "%s@%s", user,
			 hc.hostname);
	else if (strchr(hc.hostname, ':'))
		snprintf(ss->name, sizeof(ss->name), "%s@[%s]:%d", user,
			 hc.hostname, hc.port);
	else
		snprintf(ss->name, sizeof(ss->name), "%s@%s:%d", user,
			 hc.hostname, hc.port);
	rc = ssh_proxy_start(&hc, &ss->fd, &ss->proxy_pid, err);
	if (rc == -ENOENT)
		rc = connect_direct(u, &hc, timeout_s, err);
	if (rc < 0)
		goto fail;
	if (!ss->proxy_pid)
		ss->fd = rc;
	tune_socket(ss->fd, o->io_timeout_s);
	ss->s = libssh2_session_init();
	if (!ss->s) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	libssh2_session_set_blocking(ss->s, 1);
	libssh2_session_set_timeout(ss->s, (long)timeout_s * 1000);
	prefer_host_key_types(ss->s);
	rc = libssh2_session_handshake(ss->s, ss->fd);
	if (rc && ss->proxy_pid) {
		int st;

		close(ss->fd);
		ss->fd = -1;
		st = ssh_proxy_reap(ss->proxy_pid);
		ss->proxy_pid = 0;
		rc = mv_err_set(
			err, -EIO,
			"cannot start SSH with '%s' through %s '%s': "
			"%s (the proxy exited with status %d; its "
			"messages are above)",
			ss->name, hc.proxy_jump ? "ProxyJump" : "ProxyCommand",
			hc.proxy_jump ? hc.proxy_jump : hc.proxy_command,
			ssh_last_error(ss), st);
		goto fail;
	}
	if (rc) {
		rc = mv_err_set(err, -EIO, "cannot start SSH with '%s': %s",
				ss->name, ssh_last_error(ss));
		goto fail;
	}
	/* known_hosts names the host as OpenSSH does: HostKeyAlias, else
	 * HostName and port */
	key_name = *u;
	key_name.host = hc.host_key_alias ? hc.host_key_alias : hc.hostname;
	key_name.port = hc.host_key_alias ? 22 : hc.port;
	rc = check_host_key(ss, &key_name, o, &hc, err);
	if (rc)
		goto fail;
	rc = authenticate(ss, user, o, &hc, err);
	if (rc)
		goto fail;
	libssh2_session_set_timeout(ss->s, (long)ss->io_timeout_ms);
	if (o->keepalive_s > 0)
		libssh2_keepalive_config(ss->s, 1, (unsigned)o->keepalive_s);
	*out = ss;
	rc = 0;
	goto out;
fail:
	ssh_close(ss);
out:
	ssh_host_config_release(&hc);
	return rc;
}

void ssh_close(struct ssh_session *s)
{
	if (!s)
		return;
	if (s->s) {
		/* a short timeout: the peer may be gone already */
		libssh2_session_set_timeout(s->s, 2000);
		libssh2_session_disconnect(s->s, "bye");
		libssh2_session_free(s->s);
	}
	if (s->fd >= 0)
		close(s->fd);
	/* a proxy ends once its socket is closed */
	ssh_proxy_reap(s->proxy_pid);
	free(s);
}
