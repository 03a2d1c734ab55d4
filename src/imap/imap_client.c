/*
 * imap_client: restore-mail's side of an IMAP session, on libetpan.
 *
 * We open the TCP connection ourselves (getaddrinfo + connect, so an
 * unreachable server is reported with the system's reason) and hand the
 * descriptor to libetpan as a plain or a TLS stream; libetpan does the
 * rest of the protocol.  Debian builds libetpan with GnuTLS and it does not
 * check certificates, so after the handshake we take the peer's chain
 * (mailstream_get_certificate_chain: DER) and verify it with OpenSSL:
 * X509_verify_cert against the default store (SSL_CERT_FILE and
 * SSL_CERT_DIR are honoured) plus --ca-file, and the host name with
 * X509_VERIFY_PARAM_set1_host (an address with set1_ip_asc).  Nothing is
 * sent before that check has passed: not even the login name.
 */
#include "imap_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <libetpan/libetpan.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "mail_msg.h"
#include "util.h"

#define IMAP_FOLDER_MAX 4096

struct imap {
	mailimap *s;	  /* libetpan session */
	char delim;	  /* hierarchy delimiter */
	bool broken;	  /* the stream failed */
	bool multi;	  /* MULTIAPPEND and LITERAL+ offered */
	char *selected;	  /* server name of the selected folder */
	const char *host; /* borrowed from the url, for messages */
};

/* ---- URL --------------------------------------------------------------- */

/* Percent-decode s[0..n) into a new string; NULL on a bad escape, a NUL
 * or no memory. */
static char *pct_decode(const char *s, size_t n)
{
	char *out = malloc(n + 1);
	size_t i, k = 0;

	if (!out)
		return NULL;
	for (i = 0; i < n; i++) {
		int c = (unsigned char)s[i];

		if (c == '%') {
			if (i + 2 >= n || mv_hexval(s[i + 1]) < 0 ||
			    mv_hexval(s[i + 2]) < 0) {
				free(out);
				return NULL;
			}
			c = mv_hexval(s[i + 1]) * 16 + mv_hexval(s[i + 2]);
			i += 2;
		}
		if (c == 0) {
			free(out);
			return NULL;
		}
		out[k++] = (char)c;
	}
	out[k] = '\0';
	return out;
}

int imap_url_parse(const char *s, struct imap_url *out, struct mv_err *err)
{
	struct imap_url u = {0};
	const char *p, *auth_end, *at, *host, *host_end, *port = NULL;
	size_t hlen;

	if (!strncmp(s, "imaps://", 8)) {
		u.implicit_tls = true;
		p = s + 8;
	} else if (!strncmp(s, "imap://", 7)) {
		p = s + 7;
	} else {
		return mv_err_set(err, -EINVAL,
				  "'%s' is not an imap:// or imaps:// URL", s);
	}
	auth_end = strchr(p, '/');
	if (!auth_end)
		auth_end = p + strlen(p);
	at = NULL;
	for (const char *q = p; q < auth_end; q++)
		if (*q == '@')
			at = q;
	if (!at || at == p)
		return mv_err_set(err, -EINVAL,
				  "'%s' names no user: imap://USER@HOST/FOLDER",
				  s);
	host = at + 1;
	if (*host == '[') {
		host_end = memchr(host, ']', (size_t)(auth_end - host));
		if (!host_end)
			return mv_err_set(err, -EINVAL,
					  "'%s': unclosed '[' in the host", s);
		if (host_end + 1 < auth_end && host_end[1] == ':')
			port = host_end + 2;
		host++;
	} else {
		host_end = memchr(host, ':', (size_t)(auth_end - host));
		if (host_end)
			port = host_end + 1;
		else
			host_end = auth_end;
	}
	hlen = (size_t)(host_end - host);
	if (!hlen)
		return mv_err_set(err, -EINVAL, "'%s' names no host", s);
	u.port = u.implicit_tls ? 993 : 143;
	if (port && port < auth_end) {
		char *end;
		unsigned long v;

		errno = 0;
		v = strtoul(port, &end, 10);
		if (end != auth_end || !v || v > 65535 || errno)
			return mv_err_set(err, -EINVAL, "'%s': bad port '%.*s'",
					  s, (int)(auth_end - port), port);
		u.port = (uint16_t)v;
	}
	u.user = pct_decode(p, (size_t)(at - p));
	u.host = strndup(host, hlen);
	u.folder = *auth_end ? pct_decode(auth_end + 1, strlen(auth_end + 1))
			     : strdup("");
	if (!u.user || !u.host || !u.folder) {
		imap_url_release(&u);
		return mv_err_set(err, -EINVAL,
				  "'%s': bad percent escape in the URL", s);
	}
	/* "INBOX/" and "/a//b/" mean what they say without the slashes */
	{
		char *f = u.folder, *w = u.folder;

		for (; *f; f++)
			if (*f != '/' || (w > u.folder && w[-1] != '/'))
				*w++ = *f;
		if (w > u.folder && w[-1] == '/')
			w--;
		*w = '\0';
	}
	*out = u;
	return 0;
}

void imap_url_release(struct imap_url *u)
{
	if (!u)
		return;
	free(u->user);
	free(u->host);
	free(u->folder);
	memset(u, 0, sizeof(*u));
}

/* ---- errors ------------------------------------------------------------ */

/* The server's last response text, for messages. */
static const char *resp(const struct imap *c)
{
	const char *r = c->s ? c->s->imap_response : NULL;

	return r && *r ? r : "no response text";
}

static bool is_stream_error(int r)
{
	return r == MAILIMAP_ERROR_STREAM || r == MAILIMAP_ERROR_PARSE ||
	       r == MAILIMAP_ERROR_FATAL || r == MAILIMAP_ERROR_SSL;
}

/* Record a failed libetpan call: what we did, and the server's words. */
static int fail(struct imap *c, int r, struct mv_err *err, const char *what)
{
	if (r == MAILIMAP_ERROR_MEMORY)
		return mv_err_set(err, -ENOMEM, "%s: out of memory", what);
	if (is_stream_error(r)) {
		c->broken = true;
		return mv_err_set(err, -EPROTO,
				  "%s: connection to '%s' lost or unreadable "
				  "(libetpan error %d)",
				  what, c->host, r);
	}
	return mv_err_set(err, -EPROTO, "%s: server said: %s", what, resp(c));
}

/* ---- connection -------------------------------------------------------- */

static int tcp_connect(const char *host, uint16_t port, int timeout,
		       int *out_fd, struct mv_err *err)
{
	struct addrinfo hints = {0}, *ai = NULL, *a;
	struct timeval tv = {.tv_sec = timeout};
	char sport[8];
	int fd = -1, rc, saved = 0;

	hints.ai_socktype = SOCK_STREAM;
	hints.ai_family = AF_UNSPEC;
	snprintf(sport, sizeof(sport), "%u", (unsigned)port);
	rc = getaddrinfo(host, sport, &hints, &ai);
	if (rc)
		return mv_err_set(err, -EHOSTUNREACH,
				  "cannot connect to IMAP server '%s': %s",
				  host, gai_strerror(rc));
	for (a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC,
			    a->ai_protocol);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		/* connect() honours the send timeout on Linux */
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (!connect(fd, a->ai_addr, a->ai_addrlen)) {
			int one = 1;

			/* a command, its literal and the next command are
			 * small writes that must not wait for an ACK */
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
				   sizeof(one));
			break;
		}
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		if (saved == EINPROGRESS || saved == EAGAIN)
			saved = ETIMEDOUT;
		return mv_err_set(err,
				  saved == ECONNREFUSED ? -ECONNREFUSED
							: -EHOSTUNREACH,
				  "cannot connect to IMAP server '%s' port "
				  "%u: %s",
				  host, (unsigned)port, strerror(saved));
	}
	*out_fd = fd;
	return 0;
}

struct tls_arg {
	const char *host;
};

static void tls_setup(struct mailstream_ssl_context *ctx, void *data)
{
	const struct tls_arg *t = data;

	/* SNI: the name the certificate is checked against */
	mailstream_ssl_set_server_name(ctx, (char *)(uintptr_t)t->host);
}

static bool is_address(const char *host)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, host, buf) == 1 ||
	       inet_pton(AF_INET6, host, buf) == 1;
}

/* Verify the peer's chain and name with OpenSSL. */
static int verify_peer(struct imap *c, const struct imap_opts *o,
		       struct mv_err *err)
{
	carray *chain = mailstream_get_certificate_chain(c->s->imap_stream);
	STACK_OF(X509) *untrusted = NULL;
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;
	X509 *leaf = NULL;
	X509_VERIFY_PARAM *param;
	const char *host = o->url->host;
	unsigned i;
	int rc = 0;

	if (!chain || carray_count(chain) == 0) {
		rc = mv_err_set(err, -EKEYREJECTED,
				"TLS to '%s': the server sent no certificate",
				host);
		goto out;
	}
	untrusted = sk_X509_new_null();
	store = X509_STORE_new();
	ctx = X509_STORE_CTX_new();
	if (!untrusted || !store || !ctx) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < carray_count(chain); i++) {
		MMAPString *der = carray_get(chain, i);
		const unsigned char *p = (const unsigned char *)der->str;
		X509 *x = d2i_X509(NULL, &p, (long)der->len);

		if (!x) {
			rc = mv_err_set(err, -EKEYREJECTED,
					"TLS to '%s': certificate %u of the "
					"server's chain does not parse",
					host, i);
			goto out;
		}
		if (!leaf)
			leaf = x;
		else if (!sk_X509_push(untrusted, x)) {
			X509_free(x);
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
	}
	if (o->ca_file) {
		if (X509_STORE_load_file(store, o->ca_file) != 1) {
			rc = mv_err_set(err, -EINVAL,
					"cannot read CA file '%s'", o->ca_file);
			goto out;
		}
	}
	X509_STORE_set_default_paths(store);
	if (X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	param = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
	if (is_address(host))
		X509_VERIFY_PARAM_set1_ip_asc(param, host);
	else
		X509_VERIFY_PARAM_set1_host(param, host, 0);
	if (X509_verify_cert(ctx) != 1) {
		int e = X509_STORE_CTX_get_error(ctx);

		rc = mv_err_set(err, -EKEYREJECTED,
				"certificate of IMAP server '%s' not trusted: "
				"%s (give its CA with --ca-file, or "
				"--insecure)",
				host, X509_verify_cert_error_string(e));
	}
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	sk_X509_pop_free(untrusted, X509_free);
	X509_free(leaf);
	if (chain)
		mailstream_certificate_chain_free(chain);
	return rc;
}

static bool ok(int r)
{
	return r == MAILIMAP_NO_ERROR || r == MAILIMAP_NO_ERROR_AUTHENTICATED ||
	       r == MAILIMAP_NO_ERROR_NON_AUTHENTICATED;
}

static int find_delimiter(struct imap *c, struct mv_err *err)
{
	clist *list = NULL;
	int r = mailimap_list(c->s, "", "", &list);

	if (!ok(r))
		return fail(c, r, err, "LIST of the hierarchy delimiter");
	c->delim = '/';
	if (list && clist_begin(list)) {
		struct mailimap_mailbox_list *mb =
			clist_content(clist_begin(list));

		if (mb->mb_delimiter)
			c->delim = mb->mb_delimiter;
	}
	if (list)
		mailimap_list_result_free(list);
	return 0;
}

int imap_open(const struct imap_opts *o, struct imap **out, struct mv_err *err)
{
	const struct imap_url *u = o->url;
	struct tls_arg targ = {u->host};
	struct imap *c = calloc(1, sizeof(*c));
	mailstream *st = NULL;
	char *login = NULL;
	int fd = -1, r, rc, timeout = o->timeout > 0 ? o->timeout : 60;

	if (!c)
		return mv_err_set(err, -ENOMEM, "out of memory");
	c->host = u->host;
	c->delim = '/';
	c->s = mailimap_new(0, NULL);
	if (!c->s) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto fail_out;
	}
	mailimap_set_timeout(c->s, timeout);
	rc = tcp_connect(u->host, u->port, timeout, &fd, err);
	if (rc)
		goto fail_out;
	st = u->implicit_tls ? mailstream_ssl_open_with_callback_timeout(
				       fd, timeout, tls_setup, &targ)
			     : mailstream_socket_open_timeout(fd, timeout);
	if (!st) {
		close(fd);
		rc = mv_err_set(err, -EPROTO,
				"TLS handshake with IMAP server '%s' port %u "
				"failed (is it imaps://, or imap:// with "
				"STARTTLS?)",
				u->host, (unsigned)u->port);
		goto fail_out;
	}
	r = mailimap_connect(c->s, st);
	if (!ok(r)) {
		rc = mv_err_set(err, -EPROTO,
				"IMAP server '%s' port %u did not greet: %s",
				u->host, (unsigned)u->port,
				r == MAILIMAP_ERROR_DONT_ACCEPT_CONNECTION
					? resp(c)
					: "no IMAP greeting");
		goto fail_out;
	}
	if (!u->implicit_tls) {
		struct mailimap_capability_data *cap = NULL;

		r = mailimap_capability(c->s, &cap);
		if (cap)
			mailimap_capability_data_free(cap);
		if (!ok(r)) {
			rc = fail(c, r, err, "CAPABILITY");
			goto fail_out;
		}
		if (mailimap_has_extension(c->s, "STARTTLS")) {
			r = mailimap_socket_starttls_with_callback(
				c->s, tls_setup, &targ);
			if (!ok(r)) {
				rc = mv_err_set(err, -EPROTO,
						"STARTTLS with '%s' failed: %s",
						u->host, resp(c));
				goto fail_out;
			}
		} else if (!o->insecure) {
			rc = mv_err_set(err, -ENOTSUP,
					"IMAP server '%s' offers no STARTTLS: "
					"use imaps://, or --insecure to send "
					"the password in plain text",
					u->host);
			goto fail_out;
		}
	}
	if (!o->insecure) {
		rc = verify_peer(c, o, err);
		if (rc)
			goto fail_out;
	}
	if (o->auth_user && *o->auth_user) {
		const char *sep = o->auth_sep ? o->auth_sep : "*";

		if (asprintf(&login, "%s%s%s", u->user, sep, o->auth_user) <
		    0) {
			login = NULL;
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			goto fail_out;
		}
	}
	r = mailimap_login(c->s, login ? login : u->user, o->password);
	if (!ok(r)) {
		if (is_stream_error(r))
			rc = fail(c, r, err, "LOGIN");
		else
			rc = mv_err_set(err, -EACCES,
					"IMAP login as '%s' on '%s' refused: "
					"%s",
					login ? login : u->user, u->host,
					resp(c));
		goto fail_out;
	}
	{
		/* the capabilities may change with the login */
		struct mailimap_capability_data *cap = NULL;

		r = mailimap_capability(c->s, &cap);
		if (cap)
			mailimap_capability_data_free(cap);
		if (!ok(r)) {
			rc = fail(c, r, err, "CAPABILITY");
			goto fail_out;
		}
		c->multi = mailimap_has_extension(c->s, "MULTIAPPEND") &&
			   mailimap_has_extension(c->s, "LITERAL+") &&
			   !getenv("MAILVAULT_IMAP_NO_MULTIAPPEND");
	}
	rc = find_delimiter(c, err);
	if (rc)
		goto fail_out;
	free(login);
	*out = c;
	return 0;
fail_out:
	free(login);
	imap_close(c);
	return rc;
}

void imap_close(struct imap *c)
{
	if (!c)
		return;
	if (c->s) {
		if (!c->broken && c->s->imap_stream)
			mailimap_logout(c->s);
		mailimap_free(c->s);
	}
	free(c->selected);
	free(c);
}

char imap_delimiter(const struct imap *c)
{
	return c->delim;
}

bool imap_is_broken(const struct imap *c)
{
	return c->broken;
}

bool imap_has_capability(struct imap *c, const char *name)
{
	return mailimap_has_extension(c->s, (char *)(uintptr_t)name) != 0;
}

/* ---- folder names ------------------------------------------------------ */

static const char b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/* Decode one UTF-8 code point at s (n bytes left); 0xFFFD for bad bytes.
 * *adv is the number of bytes used. */
static uint32_t utf8_next(const unsigned char *s, size_t n, size_t *adv)
{
	uint32_t cp;
	size_t k, i;

	if (s[0] < 0x80) {
		*adv = 1;
		return s[0];
	}
	if ((s[0] & 0xe0) == 0xc0) {
		k = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		k = 3;
		cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		k = 4;
		cp = s[0] & 0x07;
	} else {
		*adv = 1;
		return 0xfffd;
	}
	if (k > n) {
		*adv = 1;
		return 0xfffd;
	}
	for (i = 1; i < k; i++) {
		if ((s[i] & 0xc0) != 0x80) {
			*adv = 1;
			return 0xfffd;
		}
		cp = cp << 6 | (s[i] & 0x3f);
	}
	*adv = k;
	return cp > 0x10ffff ? 0xfffd : cp;
}

/* Append component s (UTF-8) to out in modified UTF-7; the delimiter
 * becomes '_'.  out has room (8 bytes per input byte). */
static size_t mutf7_put(const char *s, char delim, char *out)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), at = 0;
	uint32_t bits = 0;
	int nbits = 0;
	bool in_b64 = false;

	while (n) {
		size_t adv;
		uint32_t cp = utf8_next(p, n, &adv);

		p += adv;
		n -= adv;
		if (cp < 0x20 || cp == 0x7f)
			cp = '_'; /* control characters are not sent */
		if (cp >= 0x20 && cp < 0x7f) {
			if (in_b64) {
				if (nbits)
					out[at++] = b64[(bits << (6 - nbits)) &
							0x3f];
				out[at++] = '-';
				in_b64 = false;
				nbits = 0;
				bits = 0;
			}
			if (cp == (unsigned char)delim)
				cp = '_';
			out[at++] = (char)cp;
			if (cp == '&')
				out[at++] = '-';
			continue;
		}
		if (!in_b64) {
			out[at++] = '&';
			in_b64 = true;
		}
		{
			uint16_t units[2];
			int nu = 1, u;

			if (cp >= 0x10000) {
				cp -= 0x10000;
				units[0] = (uint16_t)(0xd800 + (cp >> 10));
				units[1] = (uint16_t)(0xdc00 + (cp & 0x3ff));
				nu = 2;
			} else {
				units[0] = (uint16_t)cp;
			}
			for (u = 0; u < nu; u++) {
				bits = bits << 16 | units[u];
				nbits += 16;
				while (nbits >= 6) {
					nbits -= 6;
					out[at++] = b64[(bits >> nbits) & 0x3f];
				}
				bits &= (1u << nbits) - 1;
			}
		}
	}
	if (in_b64) {
		if (nbits)
			out[at++] = b64[(bits << (6 - nbits)) & 0x3f];
		out[at++] = '-';
	}
	return at;
}

char *imap_folder_name_with(const char *path, char delim)
{
	size_t n = strlen(path);
	char *out = malloc(n * 8 + 8), *comp = strdup(path);
	size_t at = 0;
	char *save = NULL, *tok;

	if (!out || !comp) {
		free(out);
		free(comp);
		return NULL;
	}
	for (tok = strtok_r(comp, "/", &save); tok;
	     tok = strtok_r(NULL, "/", &save)) {
		if (at)
			out[at++] = delim;
		at += mutf7_put(tok, delim, out + at);
	}
	out[at] = '\0';
	free(comp);
	if (!at) {
		free(out);
		return strdup("INBOX");
	}
	return out;
}

char *imap_folder_name(const struct imap *c, const char *path)
{
	return imap_folder_name_with(path, c->delim);
}

static int folder_exists(struct imap *c, const char *name, bool *out,
			 struct mv_err *err)
{
	clist *list = NULL;
	int r = mailimap_list(c->s, "", name, &list);

	if (!ok(r))
		return fail(c, r, err, "LIST");
	*out = false;
	if (list) {
		for (clistiter *it = clist_begin(list); it;
		     it = clist_next(it)) {
			struct mailimap_mailbox_list *mb = clist_content(it);

			if (!strcmp(mb->mb_name, name) ||
			    (!strcasecmp(name, "INBOX") &&
			     !strcasecmp(mb->mb_name, "INBOX")))
				*out = true;
		}
		mailimap_list_result_free(list);
	}
	return 0;
}

int imap_folder_ensure(struct imap *c, const char *name, struct mv_err *err)
{
	bool have = false;
	char *buf;
	int rc;
	size_t i, n = strlen(name);

	rc = folder_exists(c, name, &have, err);
	if (rc || have)
		return rc;
	buf = strdup(name);
	if (!buf)
		return mv_err_set(err, -ENOMEM, "out of memory");
	/* parents first: not every server creates them */
	for (i = 0; i <= n; i++) {
		if (buf[i] != c->delim && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		rc = folder_exists(c, buf, &have, err);
		if (!rc && !have) {
			int r = mailimap_create(c->s, buf);

			if (!ok(r)) {
				char what[IMAP_FOLDER_MAX + 32];

				snprintf(what, sizeof(what),
					 "cannot create folder '%s'", buf);
				rc = fail(c, r, err, what);
			}
		}
		if (rc)
			break;
		if (i < n)
			buf[i] = c->delim;
	}
	free(buf);
	return rc;
}

/* ---- reading a folder -------------------------------------------------- */

static int select_folder(struct imap *c, const char *name, struct mv_err *err)
{
	int r;

	if (c->selected && !strcmp(c->selected, name))
		return 0;
	free(c->selected);
	c->selected = NULL;
	r = mailimap_select(c->s, name);
	if (!ok(r)) {
		char what[IMAP_FOLDER_MAX + 32];

		if (is_stream_error(r))
			return fail(c, r, err, "SELECT");
		snprintf(what, sizeof(what), "cannot open folder '%s'", name);
		fail(c, r, err, what);
		return -ENOENT;
	}
	c->selected = strdup(name);
	return c->selected ? 0 : mv_err_set(err, -ENOMEM, "out of memory");
}

/* Message-ID of a header block, through the same parser the view uses. */
static char *header_msgid(const char *p, size_t n)
{
	struct mail_msg m;
	char *id = NULL;

	if (!p || !n)
		return NULL;
	if (mail_msg_parse(p, n, 0, MAIL_MSG_NO_PARTS, &m, NULL))
		return NULL;
	if (m.message_id)
		id = strdup(m.message_id);
	mail_msg_release(&m);
	return id;
}

void imap_have_free(struct imap_have *h, size_t n)
{
	for (size_t i = 0; h && i < n; i++)
		free(h[i].msgid);
	free(h);
}

int imap_folder_scan(struct imap *c, const char *name, struct imap_have **out,
		     size_t *out_n, struct mv_err *err)
{
	struct mailimap_fetch_type *ft = NULL;
	struct mailimap_set *set = NULL;
	struct imap_have *have = NULL;
	clist *hdrs = NULL, *res = NULL;
	size_t n = 0, cap;
	uint32_t exists;
	char *field = NULL;
	int rc, r;

	rc = select_folder(c, name, err);
	if (rc)
		return rc;
	exists = c->s->imap_selection_info
			 ? c->s->imap_selection_info->sel_exists
			 : 0;
	if (!exists) {
		*out = NULL;
		*out_n = 0;
		return 0;
	}
	ft = mailimap_fetch_type_new_fetch_att_list_empty();
	hdrs = clist_new();
	field = strdup("Message-ID");
	set = mailimap_set_new_interval(1, 0);
	if (!ft || !hdrs || !field || !set || clist_append(hdrs, field) < 0) {
		free(field);
		if (hdrs)
			clist_free(hdrs);
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	{
		struct mailimap_header_list *hl =
			mailimap_header_list_new(hdrs);
		struct mailimap_section *sec =
			hl ? mailimap_section_new_header_fields(hl) : NULL;
		struct mailimap_fetch_att *att =
			sec ? mailimap_fetch_att_new_body_peek_section(sec)
			    : NULL;

		if (!att ||
		    mailimap_fetch_type_new_fetch_att_list_add(ft, att) !=
			    MAILIMAP_NO_ERROR ||
		    mailimap_fetch_type_new_fetch_att_list_add(
			    ft, mailimap_fetch_att_new_uid()) !=
			    MAILIMAP_NO_ERROR ||
		    mailimap_fetch_type_new_fetch_att_list_add(
			    ft, mailimap_fetch_att_new_rfc822_size()) !=
			    MAILIMAP_NO_ERROR) {
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
	}
	r = mailimap_fetch(c->s, set, ft, &res);
	if (!ok(r)) {
		rc = fail(c, r, err, "FETCH of the folder's Message-IDs");
		goto out;
	}
	cap = (size_t)clist_count(res) + 1;
	have = calloc(cap, sizeof(*have));
	if (!have) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (clistiter *it = clist_begin(res); it; it = clist_next(it)) {
		struct mailimap_msg_att *ma = clist_content(it);
		struct imap_have *h = &have[n++];

		for (clistiter *j = clist_begin(ma->att_list); j;
		     j = clist_next(j)) {
			struct mailimap_msg_att_item *item = clist_content(j);
			struct mailimap_msg_att_static *st;

			if (item->att_type != MAILIMAP_MSG_ATT_ITEM_STATIC)
				continue;
			st = item->att_data.att_static;
			switch (st->att_type) {
			case MAILIMAP_MSG_ATT_UID:
				h->uid = st->att_data.att_uid;
				break;
			case MAILIMAP_MSG_ATT_RFC822_SIZE:
				h->size = st->att_data.att_rfc822_size;
				break;
			case MAILIMAP_MSG_ATT_BODY_SECTION:
				if (st->att_data.att_body_section)
					h->msgid = header_msgid(
						st->att_data.att_body_section
							->sec_body_part,
						st->att_data.att_body_section
							->sec_length);
				break;
			default:
				break;
			}
		}
	}
	*out = have;
	*out_n = n;
	have = NULL;
out:
	imap_have_free(have, n);
	if (res)
		mailimap_fetch_list_free(res);
	if (set)
		mailimap_set_free(set);
	if (ft)
		mailimap_fetch_type_free(ft);
	return rc;
}

int imap_fetch_uid(struct imap *c, uint32_t uid, char **out, size_t *out_len,
		   struct mv_err *err)
{
	struct mailimap_fetch_type *ft = NULL;
	struct mailimap_set *set = mailimap_set_new_single(uid);
	struct mailimap_section *sec = mailimap_section_new(NULL);
	struct mailimap_fetch_att *att =
		sec ? mailimap_fetch_att_new_body_peek_section(sec) : NULL;
	clist *res = NULL;
	int rc = -ENOENT, r;

	ft = att ? mailimap_fetch_type_new_fetch_att(att) : NULL;
	if (!set || !ft) {
		if (!ft && att)
			mailimap_fetch_att_free(att);
		else if (!att && sec)
			mailimap_section_free(sec);
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	r = mailimap_uid_fetch(c->s, set, ft, &res);
	if (!ok(r)) {
		rc = fail(c, r, err, "UID FETCH");
		goto out;
	}
	for (clistiter *it = clist_begin(res); it && rc; it = clist_next(it)) {
		struct mailimap_msg_att *ma = clist_content(it);

		for (clistiter *j = clist_begin(ma->att_list); j;
		     j = clist_next(j)) {
			struct mailimap_msg_att_item *item = clist_content(j);
			struct mailimap_msg_att_body_section *bs;

			if (item->att_type != MAILIMAP_MSG_ATT_ITEM_STATIC ||
			    item->att_data.att_static->att_type !=
				    MAILIMAP_MSG_ATT_BODY_SECTION)
				continue;
			bs = item->att_data.att_static->att_data
				     .att_body_section;
			if (!bs || !bs->sec_body_part)
				continue;
			*out = malloc(bs->sec_length + 1);
			if (!*out) {
				rc = mv_err_set(err, -ENOMEM, "out of memory");
				goto out;
			}
			memcpy(*out, bs->sec_body_part, bs->sec_length);
			(*out)[bs->sec_length] = '\0';
			*out_len = bs->sec_length;
			rc = 0;
			break;
		}
	}
	if (rc == -ENOENT)
		mv_err_set(err, rc, "message UID %u is gone", (unsigned)uid);
out:
	if (res)
		mailimap_fetch_list_free(res);
	if (set)
		mailimap_set_free(set);
	if (ft)
		mailimap_fetch_type_free(ft);
	return rc;
}

/* ---- APPEND ------------------------------------------------------------ */

/* A keyword the command can carry as an atom (RFC 3501 atom-char). */
static bool is_atom(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch <= 0x20 || ch >= 0x7f || strchr("(){%*\"\\]", ch))
			return false;
	}
	return true;
}

static int add_flag(struct mailimap_flag_list *fl, struct mailimap_flag *f)
{
	if (!f)
		return -ENOMEM;
	if (mailimap_flag_list_add(fl, f) != MAILIMAP_NO_ERROR) {
		mailimap_flag_free(f);
		return -ENOMEM;
	}
	return 0;
}

int imap_append(struct imap *c, const char *name, const struct imap_msg *m,
		struct mv_err *err)
{
	struct mailimap_flag_list *fl = mailimap_flag_list_new_empty();
	struct mailimap_date_time *dt = NULL;
	int rc = 0, r;

	if (!fl)
		return mv_err_set(err, -ENOMEM, "out of memory");
	if (m->flags & IMAP_SEEN)
		rc = rc ? rc : add_flag(fl, mailimap_flag_new_seen());
	if (m->flags & IMAP_ANSWERED)
		rc = rc ? rc : add_flag(fl, mailimap_flag_new_answered());
	if (m->flags & IMAP_FLAGGED)
		rc = rc ? rc : add_flag(fl, mailimap_flag_new_flagged());
	if (m->flags & IMAP_DRAFT)
		rc = rc ? rc : add_flag(fl, mailimap_flag_new_draft());
	if (m->flags & IMAP_DELETED)
		rc = rc ? rc : add_flag(fl, mailimap_flag_new_deleted());
	for (size_t i = 0; !rc && i < m->n_keywords; i++) {
		char *kw;

		if (!is_atom(m->keywords[i]))
			continue; /* not sendable as a flag */
		kw = strdup(m->keywords[i]);

		rc = kw ? add_flag(fl, mailimap_flag_new_flag_keyword(kw))
			: -ENOMEM;
		if (rc && kw && rc != -ENOMEM)
			free(kw);
	}
	if (rc) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (m->internal_date >= 0) {
		struct tm tm;
		time_t t = (time_t)m->internal_date;

		if (!gmtime_r(&t, &tm)) {
			rc = mv_err_set(err, -EINVAL, "bad internal date");
			goto out;
		}
		dt = mailimap_date_time_new(tm.tm_mday, tm.tm_mon + 1,
					    tm.tm_year + 1900, tm.tm_hour,
					    tm.tm_min, tm.tm_sec, 0);
		if (!dt) {
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
	}
	r = mailimap_append(c->s, name, fl, dt, m->data, m->len);
	if (!ok(r))
		rc = fail(c, r, err, "APPEND");
out:
	if (dt)
		mailimap_date_time_free(dt);
	mailimap_flag_list_free(fl);
	return rc;
}

/* ---- MULTIAPPEND ------------------------------------------------------- */

bool imap_can_multiappend(const struct imap *c)
{
	return c->multi;
}

static int put_str(struct mv_buf *b, const char *s)
{
	return mv_buf_append(b, s, strlen(s));
}

/* One message's part of the command: (flags) "date" {n+}CRLF bytes. */
static int put_message(struct mv_buf *b, const struct imap_msg *m)
{
	static const char *const names[] = {"\\Seen", "\\Answered", "\\Flagged",
					    "\\Draft", "\\Deleted"};
	char tmp[64];
	const char *sep = "";
	int rc = put_str(b, " (");

	for (unsigned i = 0; !rc && i < 5; i++) {
		if (!(m->flags & (1u << i)))
			continue;
		rc = put_str(b, sep);
		if (!rc)
			rc = put_str(b, names[i]);
		sep = " ";
	}
	for (size_t i = 0; !rc && i < m->n_keywords; i++) {
		if (!is_atom(m->keywords[i]))
			continue;
		rc = put_str(b, sep);
		if (!rc)
			rc = put_str(b, m->keywords[i]);
		sep = " ";
	}
	if (!rc)
		rc = put_str(b, ")");
	if (!rc && m->internal_date >= 0) {
		struct tm tm;
		time_t t = (time_t)m->internal_date;

		if (!gmtime_r(&t, &tm) ||
		    !strftime(tmp, sizeof(tmp), " \"%d-%b-%Y %H:%M:%S +0000\"",
			      &tm))
			return -EINVAL;
		rc = put_str(b, tmp);
	}
	snprintf(tmp, sizeof(tmp), " {%zu+}\r\n", m->len);
	if (!rc)
		rc = put_str(b, tmp);
	if (!rc)
		rc = mv_buf_append(b, m->data, m->len);
	return rc;
}

/* The folder name as a quoted string. */
static int put_quoted(struct mv_buf *b, const char *s)
{
	int rc = put_str(b, "\"");

	for (; !rc && *s; s++) {
		if (*s == '"' || *s == '\\')
			rc = put_str(b, "\\");
		if (!rc)
			rc = mv_buf_append(b, s, 1);
	}
	if (!rc)
		rc = put_str(b, "\"");
	return rc;
}

/* Every message in one MULTIAPPEND; 0, or the command's error. */
static int multiappend(struct imap *c, const char *name,
		       const struct imap_msg *m, size_t n, struct mv_err *err)
{
	struct mv_buf b = MV_BUF_INIT;
	int rc, r;

	rc = put_str(&b, "APPEND ");
	if (!rc)
		rc = put_quoted(&b, name);
	for (size_t i = 0; !rc && i < n; i++) {
		if (memchr(m[i].data, '\0', m[i].len)) {
			rc = -EINVAL; /* the command is a C string */
			break;
		}
		rc = put_message(&b, &m[i]);
	}
	if (!rc)
		rc = mv_buf_append(&b, "", 1);
	if (rc) {
		mv_buf_release(&b);
		return rc == -ENOMEM ? mv_err_set(err, rc, "out of memory")
				     : rc;
	}
	r = mailimap_custom_command(c->s, (const char *)b.data);
	mv_buf_release(&b);
	if (!ok(r))
		return fail(c, r, err, "MULTIAPPEND");
	return 0;
}

size_t imap_append_many(struct imap *c, const char *name,
			const struct imap_msg *m, size_t n, int *rcs,
			struct mv_err *errs)
{
	size_t failed = 0;

	if (c->multi && n > 1 && !c->broken) {
		struct mv_err e = MV_ERR_INIT;
		int rc = multiappend(c, name, m, n, &e);

		if (!rc) {
			for (size_t i = 0; i < n; i++)
				rcs[i] = 0;
			return 0;
		}
		if (c->broken || rc == -ENOMEM) {
			for (size_t i = 0; i < n; i++) {
				rcs[i] = rc;
				errs[i] = e;
			}
			return n;
		}
		/* refused as a whole: find the one the server will not take */
	}
	for (size_t i = 0; i < n; i++) {
		if (c->broken) {
			rcs[i] = mv_err_set(&errs[i], -EPROTO,
					    "APPEND: connection to '%s' lost",
					    c->host);
		} else {
			rcs[i] = imap_append(c, name, &m[i], &errs[i]);
		}
		failed += rcs[i] != 0;
	}
	return failed;
}
