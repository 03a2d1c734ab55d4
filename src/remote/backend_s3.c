/*
 * backend_s3: a repository as the objects of an S3 bucket (include/s3.h).
 *
 * Every request is signed by libcurl's SigV4 signer (CURLOPT_AWS_SIGV4).
 * curl 7.88 neither adds x-amz-content-sha256 nor sorts the query, so we
 * set the header (the payload's SHA-256) and build every query string
 * sorted and URI-encoded.  Files are buffered in memory until
 * file_commit(), then sent in one PUT (multipart above a size limit), so
 * an object appears complete or not at all.  Design and cost model:
 * docs/S3.md.
 *
 * Workload: a backup writes a few packs of 16-64 MiB and small index and
 * snapshot objects; a restore or a mount reads ranges of packs.  A small
 * pool of curl handles keeps connections alive; read_at may run on many
 * threads at once, each takes a handle from the pool.
 */
#include "s3.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <ini.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define S3_POOL 16	      /* curl handles kept for reuse */
#define S3_INFLIGHT 8	      /* GETs one read_many has in flight */
#define S3_GET_PART_MIB 8     /* a larger range is read in parts at once */
#define S3_TRIES 6	      /* attempts of one request */
#define S3_XML_MAX (8u << 20) /* largest XML reply we accept */
#define S3_MULTIPART_MIB 100  /* default size above which we use multipart */
#define S3_PART_MIB 32	      /* part size of a multipart upload */
#define S3_PACKS_TTL 60	      /* seconds a flat listing of packs/ serves */

struct s3_backend {
	struct backend base;  /* must be first */
	char *endpoint;	      /* scheme://host[:port], no trailing '/' */
	char *host;	      /* host[:port] of the endpoint */
	char *scheme;	      /* "http" or "https" */
	char *bucket;	      /* bucket name */
	char *prefix;	      /* "" or "some/prefix/" */
	char *region;	      /* signing region */
	char *sigv4;	      /* "aws:amz:REGION:s3" */
	char *access_key;     /* AWS_ACCESS_KEY_ID */
	char *secret_key;     /* AWS_SECRET_ACCESS_KEY */
	char *token;	      /* AWS_SESSION_TOKEN or NULL */
	bool path_style;      /* https://host/bucket/key */
	size_t multipart_min; /* bytes above which to upload in parts */
	pthread_mutex_t lock; /* guards pool */
	CURLSH *share;	      /* connections and DNS, shared by all handles */
	pthread_mutex_t share_lock[CURL_LOCK_DATA_LAST]; /* for share */
	size_t get_part;      /* bytes of one part of a large ranged GET */
	struct s3_obj *packs; /* flat listing of packs/, names below it */
	size_t npacks;	      /* entries in packs */
	size_t packs_cap;     /* entries allocated */
	bool packs_valid;     /* no write under packs/ since the listing */
	time_t packs_time;    /* when it was taken */
	CURL *pool[S3_POOL];  /* idle handles */
	int npool;	      /* how many of pool are set */
};

/* One object of a flat listing. */
struct s3_obj {
	char *name;    /* key below the listed prefix */
	uint64_t size; /* bytes */
};

struct s3_file {
	struct s3_backend *sb; /* owner */
	char *path;	       /* relative path */
	unsigned char *buf;    /* content so far */
	size_t len;	       /* bytes in buf */
	size_t cap;	       /* bytes allocated */
};

/* Process-wide request counts. */
static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static struct s3_stats stats;
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

/* One request and what came back. */
struct s3_req {
	const char *method;	 /* GET HEAD PUT POST DELETE */
	enum s3_class cls;	 /* for the counts */
	const char *path;	 /* relative path, NULL for the bucket */
	const char *query;	 /* sorted and encoded, or NULL */
	const void *body;	 /* request body or NULL */
	size_t body_len;	 /* its length */
	const char *hdr[6];	 /* extra headers, NULL-terminated */
	unsigned char *out;	 /* fixed sink (ranged GET) or NULL */
	size_t out_cap;		 /* its size */
	char *dyn;		 /* growing sink (XML), NUL-terminated */
	size_t dyn_len;		 /* bytes in dyn */
	size_t dyn_max;		 /* its limit, 0: S3_XML_MAX */
	bool too_big;		 /* the body passed dyn_max */
	size_t got;		 /* body bytes stored */
	size_t sent;		 /* body bytes sent */
	long status;		 /* HTTP status */
	uint64_t content_length; /* Content-Length of the reply */
	bool have_length;	 /* it was there */
	int64_t last_modified;	 /* Last-Modified, seconds */
	char etag[80];		 /* ETag without quotes */
	int tries;		 /* attempts made */
};

static void stats_add(enum s3_class cls, bool retry, size_t up, size_t down)
{
	pthread_mutex_lock(&stats_lock);
	stats.requests[cls]++;
	if (retry)
		stats.retries++;
	stats.bytes_up += up;
	stats.bytes_down += down;
	pthread_mutex_unlock(&stats_lock);
}

void s3_stats_get(struct s3_stats *out)
{
	pthread_mutex_lock(&stats_lock);
	*out = stats;
	pthread_mutex_unlock(&stats_lock);
}

bool s3_is_url(const char *location)
{
	return !strncmp(location, "s3://", 5);
}

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

/* Append the URI encoding of s (RFC 3986 unreserved kept; '/' kept when
 * keep_slash) to out, which has room for 3 * strlen(s) + 1. */
static void uri_encode(const char *s, bool keep_slash, char *out)
{
	static const char hex[] = "0123456789ABCDEF";
	char *o = out + strlen(out);

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (isalnum(c) || c == '-' || c == '_' || c == '.' ||
		    c == '~' || (keep_slash && c == '/')) {
			*o++ = (char)c;
		} else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = '\0';
}

static void sha256_hex(const void *buf, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;
	int i;

	EVP_Digest(buf ? buf : "", len, md, &n, EVP_sha256(), NULL);
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void md5_hex(const void *buf, size_t len, char out[33])
{
	unsigned char md[16];
	unsigned int n = 0;
	int i;

	EVP_Digest(buf ? buf : "", len, md, &n, EVP_md5(), NULL);
	for (i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* ---- curl callbacks ---- */

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct s3_req *q = arg;
	size_t len = size * n;

	if (q->out) {
		size_t room = q->out_cap - q->got;
		size_t take = len < room ? len : room;

		memcpy(q->out + q->got, data, take);
		q->got += take;
		return len;
	}
	if (q->dyn_len + len > (q->dyn_max ? q->dyn_max : S3_XML_MAX) ||
	    (q->dyn_max && q->have_length && q->content_length > q->dyn_max)) {
		q->too_big = true;
		return 0;
	}
	{
		char *p = realloc(q->dyn, q->dyn_len + len + 1);

		if (!p)
			return 0;
		q->dyn = p;
	}
	memcpy(q->dyn + q->dyn_len, data, len);
	q->dyn_len += len;
	q->dyn[q->dyn_len] = '\0';
	q->got += len;
	return len;
}

static size_t on_read(char *data, size_t size, size_t n, void *arg)
{
	struct s3_req *q = arg;
	size_t room = size * n, left = q->body_len - q->sent;
	size_t take = left < room ? left : room;

	memcpy(data, (const char *)q->body + q->sent, take);
	q->sent += take;
	return take;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
	struct s3_req *q = arg;
	size_t len = size * n;
	char line[512];
	char *v;

	if (len >= sizeof(line))
		return len;
	memcpy(line, data, len);
	line[len] = '\0';
	while (len && (line[len - 1] == '\r' || line[len - 1] == '\n'))
		line[--len] = '\0';
	v = strchr(line, ':');
	if (!v)
		return size * n;
	*v++ = '\0';
	while (*v == ' ')
		v++;
	if (!strcasecmp(line, "content-length")) {
		q->content_length = strtoull(v, NULL, 10);
		q->have_length = true;
	} else if (!strcasecmp(line, "etag")) {
		size_t l;

		if (*v == '"')
			v++;
		l = strcspn(v, "\"");
		if (l >= sizeof(q->etag))
			l = sizeof(q->etag) - 1;
		memcpy(q->etag, v, l);
		q->etag[l] = '\0';
	} else if (!strcasecmp(line, "last-modified")) {
		q->last_modified = (int64_t)curl_getdate(v, NULL);
	}
	return size * n;
}

/* ---- handles ---- */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access,
		       void *arg)
{
	struct s3_backend *sb = arg;

	(void)h;
	(void)access;
	pthread_mutex_lock(&sb->share_lock[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *arg)
{
	struct s3_backend *sb = arg;

	(void)h;
	pthread_mutex_unlock(&sb->share_lock[data]);
}

/* One connection cache for every handle of the backend: connections to
 * the endpoint stay open between requests, whichever thread or multi
 * handle sends them.  Without it each read_many() would connect anew.
 * NULL (each handle keeps its own connection) when curl cannot share. */
static void share_init(struct s3_backend *sb)
{
	int i;

	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&sb->share_lock[i], NULL);
	sb->share = curl_share_init();
	if (!sb->share)
		return;
	if (curl_share_setopt(sb->share, CURLSHOPT_LOCKFUNC, share_lock) ||
	    curl_share_setopt(sb->share, CURLSHOPT_UNLOCKFUNC, share_unlock) ||
	    curl_share_setopt(sb->share, CURLSHOPT_USERDATA, sb) ||
	    curl_share_setopt(sb->share, CURLSHOPT_SHARE,
			      CURL_LOCK_DATA_CONNECT) ||
	    curl_share_setopt(sb->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS)) {
		curl_share_cleanup(sb->share);
		sb->share = NULL;
	}
}

static CURL *handle_get(struct s3_backend *sb)
{
	CURL *h = NULL;

	pthread_mutex_lock(&sb->lock);
	if (sb->npool)
		h = sb->pool[--sb->npool];
	pthread_mutex_unlock(&sb->lock);
	if (!h)
		h = curl_easy_init();
	return h;
}

static void handle_put(struct s3_backend *sb, CURL *h)
{
	pthread_mutex_lock(&sb->lock);
	if (sb->npool < S3_POOL) {
		sb->pool[sb->npool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&sb->lock);
	if (h)
		curl_easy_cleanup(h);
}

/* The text of <tag>...</tag> after from in xml, XML entities decoded,
 * into out; NULL when absent.  Returns the position after the element. */
static const char *xml_get(const char *xml, const char *tag, char *out,
			   size_t cap)
{
	char open[64], close[64];
	const char *a, *b;
	size_t o = 0;

	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	a = xml ? strstr(xml, open) : NULL;
	if (!a)
		return NULL;
	a += strlen(open);
	b = strstr(a, close);
	if (!b)
		return NULL;
	while (a < b && o + 1 < cap) {
		static const struct {
			const char *e;
			char c;
		} ent[] = {{"&amp;", '&'},
			   {"&lt;", '<'},
			   {"&gt;", '>'},
			   {"&quot;", '"'},
			   {"&apos;", '\''}};
		size_t i;
		bool done = false;

		for (i = 0; *a == '&' && i < sizeof(ent) / sizeof(ent[0]);
		     i++) {
			size_t l = strlen(ent[i].e);

			if (!strncmp(a, ent[i].e, l)) {
				out[o++] = ent[i].c;
				a += l;
				done = true;
				break;
			}
		}
		if (!done)
			out[o++] = *a++;
	}
	out[o] = '\0';
	return b + strlen(close);
}

/* ---- one request, with retries ---- */

static bool retryable_status(long st)
{
	return st == 500 || st == 502 || st == 503 || st == 504;
}

static bool retryable_curl(CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
		return true;
	default:
		return false;
	}
}

static int build_url(struct s3_backend *sb, const struct s3_req *q, char **out)
{
	size_t plen = q->path ? strlen(q->path) : 0;
	size_t cap = strlen(sb->endpoint) + strlen(sb->bucket) * 3 +
		     strlen(sb->prefix) * 3 + plen * 3 +
		     (q->query ? strlen(q->query) : 0) + 16;
	char *url = malloc(cap);

	if (!url)
		return -ENOMEM;
	if (sb->path_style)
		snprintf(url, cap, "%s/%s/", sb->endpoint, sb->bucket);
	else
		snprintf(url, cap, "%s://%s.%s/", sb->scheme, sb->bucket,
			 sb->host);
	if (q->path) {
		char *k = malloc(strlen(sb->prefix) + plen + 1);

		if (!k) {
			free(url);
			return -ENOMEM;
		}
		strcpy(k, sb->prefix);
		strcat(k, q->path);
		uri_encode(k, true, url);
		free(k);
	}
	if (q->query) {
		strcat(url, "?");
		strcat(url, q->query);
	}
	*out = url;
	return 0;
}

/* Set h up to send q; the header list to free after the transfer goes
 * to *out_hl. */
static int setup(struct s3_backend *sb, CURL *h, struct s3_req *q,
		 const char *url, char *cerr, struct curl_slist **out_hl)
{
	struct curl_slist *hl = NULL, *t;
	char sha[65], line[160];
	int i;

	curl_easy_reset(h);
	q->got = 0;
	q->sent = 0;
	q->dyn_len = 0;
	q->too_big = false;
	if (q->dyn)
		q->dyn[0] = '\0';
	q->status = 0;
	q->have_length = false;
	q->etag[0] = '\0';
	sha256_hex(q->body, q->body_len, sha);
	snprintf(line, sizeof(line), "x-amz-content-sha256: %s", sha);
	t = curl_slist_append(hl, line);
	if (!t)
		goto oom;
	hl = t;
	if (sb->token) {
		char *tok = malloc(strlen(sb->token) + 32);

		if (!tok)
			goto oom;
		sprintf(tok, "x-amz-security-token: %s", sb->token);
		t = curl_slist_append(hl, tok);
		free(tok);
		if (!t)
			goto oom;
		hl = t;
	}
	for (i = 0; q->hdr[i]; i++) {
		t = curl_slist_append(hl, q->hdr[i]);
		if (!t)
			goto oom;
		hl = t;
	}
	if (q->body) {
		t = curl_slist_append(hl,
				      "Content-Type: application/octet-stream");
		if (!t)
			goto oom;
		hl = t;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sb->sigv4);
	curl_easy_setopt(h, CURLOPT_USERNAME, sb->access_key);
	curl_easy_setopt(h, CURLOPT_PASSWORD, sb->secret_key);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	if (sb->share)
		curl_easy_setopt(h, CURLOPT_SHARE, sb->share);
	/* curl signs every header it is given, an empty "Expect:" too (and
	 * then leaves it out): keep its own 100-continue, but short */
	curl_easy_setopt(h, CURLOPT_EXPECT_100_TIMEOUT_MS, 300L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, q);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, q);
	if (env("MAILVAULT_S3_DEBUG"))
		curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
	if (!strcmp(q->method, "HEAD")) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (!strcmp(q->method, "PUT")) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, q);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE,
				 (curl_off_t)q->body_len);
	} else if (!strcmp(q->method, "POST")) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS,
				 q->body ? (const char *)q->body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)q->body_len);
	} else if (strcmp(q->method, "GET")) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, q->method);
	}
	cerr[0] = '\0';
	*out_hl = hl;
	return 0;
oom:
	curl_slist_free_all(hl);
	return -ENOMEM;
}

/* Send q once on h; 0 or a curl failure in *cc. */
static int perform(struct s3_backend *sb, CURL *h, struct s3_req *q,
		   const char *url, CURLcode *cc, char *cerr)
{
	struct curl_slist *hl = NULL;
	int rc = setup(sb, h, q, url, cerr, &hl);

	if (rc)
		return rc;
	*cc = curl_easy_perform(h);
	if (*cc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &q->status);
	curl_slist_free_all(hl);
	return 0;
}

/* The S3 error code of a reply (<Code>), or "". */
static void reply_code(const struct s3_req *q, char *out, size_t cap)
{
	out[0] = '\0';
	if (q->dyn)
		xml_get(q->dyn, "Code", out, cap);
}

/* What a failed status means, as an errno and a message. */
static int status_error(struct s3_backend *sb, struct s3_req *q,
			struct mv_err *err)
{
	char code[80];
	const char *what = q->path ? q->path : "";

	reply_code(q, code, sizeof(code));
	if (q->status == 403 || q->status == 401)
		return mv_err_set(
			err, -EACCES,
			"access denied to bucket '%s' at '%s'%s%s%s: check "
			"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the "
			"profile in ~/.aws/credentials) and the bucket's "
			"policy",
			sb->bucket, sb->endpoint, code[0] ? " (" : "", code,
			code[0] ? ")" : "");
	if (q->status == 404 && (!strcmp(code, "NoSuchBucket") || !q->path))
		return mv_err_set(err, -ENOENT,
				  "bucket '%s' does not exist at '%s' (create "
				  "it first, e.g. aws s3 mb s3://%s)",
				  sb->bucket, sb->endpoint, sb->bucket);
	if (q->status == 404)
		return mv_err_set(err, -ENOENT, "'%s' not found in '%s'", what,
				  sb->base.url);
	if (q->status == 412)
		return mv_err_set(err, -EEXIST, "'%s' already exists in '%s'",
				  what, sb->base.url);
	return mv_err_set(err, -EIO, "%s '%s' in '%s' failed: HTTP %ld%s%s",
			  q->method, what, sb->base.url, q->status,
			  code[0] ? " " : "", code);
}

/*
 * Send q, retrying a 5xx reply and a dropped or refused connection with
 * backoff (0.2, 0.4, 0.8, 1.6, 3.2 s).  Returns 0 for any reply that is
 * not retried (the caller reads q->status), else -EIO or -ENOMEM.
 */
static int request(struct s3_backend *sb, struct s3_req *q, struct mv_err *err)
{
	char cerr[CURL_ERROR_SIZE];
	CURLcode cc = CURLE_OK;
	char *url = NULL;
	CURL *h;
	int rc, i;
	useconds_t delay = 200000;

	rc = build_url(sb, q, &url);
	if (rc)
		return mv_err_set(err, rc, "out of memory");
	h = handle_get(sb);
	if (!h) {
		free(url);
		return mv_err_set(err, -ENOMEM, "out of memory");
	}
	for (i = 0; i < S3_TRIES; i++) {
		q->tries = i + 1;
		rc = perform(sb, h, q, url, &cc, cerr);
		if (rc)
			break;
		stats_add(q->cls, i > 0, q->sent, q->got);
		if (cc == CURLE_OK && !retryable_status(q->status))
			break;
		if (cc != CURLE_OK && !retryable_curl(cc))
			break;
		if (i + 1 < S3_TRIES) {
			usleep(delay);
			delay *= 2;
		}
	}
	handle_put(sb, h);
	free(url);
	if (rc)
		return mv_err_set(err, rc, "out of memory");
	if (cc != CURLE_OK)
		return mv_err_set(err, -EIO,
				  "cannot reach S3 endpoint '%s' for '%s' "
				  "(%d tries): %s",
				  sb->endpoint, sb->base.url, q->tries,
				  cerr[0] ? cerr : curl_easy_strerror(cc));
	if (retryable_status(q->status)) {
		char code[80];

		reply_code(q, code, sizeof(code));
		return mv_err_set(err, -EIO,
				  "S3 endpoint '%s' kept failing for %s '%s' "
				  "(%d tries, last HTTP %ld%s%s)",
				  sb->endpoint, q->path ? "object" : "bucket",
				  q->path ? q->path : sb->bucket, q->tries,
				  q->status, code[0] ? " " : "", code);
	}
	return 0;
}

static void req_release(struct s3_req *q)
{
	free(q->dyn);
	q->dyn = NULL;
}

/* ---- backend operations ---- */

static struct s3_backend *sbe(struct backend *be)
{
	return (struct s3_backend *)be;
}

/* One ranged GET, with retries. */
static int read_one(struct s3_backend *sb, const char *path, uint64_t off,
		    void *buf, size_t len, size_t *out_len, struct mv_err *err)
{
	struct s3_req q = {.method = "GET", .cls = S3_GET, .path = path};
	char range[80];
	int rc;

	if (!len) {
		*out_len = 0;
		return 0;
	}
	snprintf(range, sizeof(range), "Range: bytes=%llu-%llu",
		 (unsigned long long)off, (unsigned long long)(off + len - 1));
	q.hdr[0] = range;
	q.out = buf;
	q.out_cap = len;
	rc = request(sb, &q, err);
	if (rc)
		return rc;
	if (q.status == 416) {
		*out_len = 0; /* at or past the end */
		return 0;
	}
	if (q.status == 200 && off) {
		/* a server that ignores Range: the whole object came, we
		 * kept only its first len bytes; never expected of S3 */
		return mv_err_set(err, -EIO,
				  "S3 endpoint '%s' ignored a range request",
				  sb->endpoint);
	}
	if (q.status != 200 && q.status != 206) {
		/* the error body went to buf: no code to read */
		return status_error(sb, &q, err);
	}
	*out_len = q.got;
	return 0;
}

/* The whole object in one GET, no HEAD first: a config, a key slot, a
 * commit segment, a lock. */
static int s3_read_all(struct backend *be, const char *path, size_t max,
		       void **out, size_t *out_len, struct mv_err *err)
{
	struct s3_backend *sb = sbe(be);
	struct s3_req q = {.method = "GET", .cls = S3_GET, .path = path};
	struct mv_err e = MV_ERR_INIT;
	int rc;

	q.dyn_max = max;
	rc = request(sb, &q, &e);
	if (q.too_big) {
		rc = mv_err_set(err, -EFBIG,
				"'%s' in '%s' is too large (%llu bytes, at "
				"most %zu)",
				path, be->url,
				(unsigned long long)q.content_length, max);
	} else if (rc) {
		mv_err_set(err, rc, "%s", mv_err_msg(&e));
	} else if (q.status == 404) {
		rc = mv_err_set(err, -ENOENT, "'%s' not found in '%s'", path,
				be->url);
	} else if (q.status != 200) {
		rc = status_error(sb, &q, err);
	} else if (!q.dyn && !(q.dyn = calloc(1, 1))) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
	} else {
		*out = q.dyn;
		*out_len = q.dyn_len;
		q.dyn = NULL;
	}
	req_release(&q);
	return rc;
}

static int s3_stat(struct backend *be, const char *path, uint64_t *out_size,
		   int64_t *out_mtime_ns, struct mv_err *err)
{
	struct s3_backend *sb = sbe(be);
	struct s3_req q = {.method = "HEAD", .cls = S3_HEAD, .path = path};
	int rc;

	rc = request(sb, &q, err);
	if (rc)
		return rc;
	if (q.status != 200) {
		rc = q.status == 404 ? mv_err_set(err, -ENOENT,
						  "'%s' not found in '%s'",
						  path, be->url)
				     : status_error(sb, &q, err);
		return rc;
	}
	if (out_size)
		*out_size = q.content_length;
	if (out_mtime_ns)
		*out_mtime_ns = q.last_modified * 1000000000LL;
	return 0;
}

/* One part of a read_many() range: a ranged GET. */
struct s3_par {
	struct s3_req q;	    /* the ranged GET */
	CURL *h;		    /* its handle while in flight */
	char *url;		    /* its URL */
	struct curl_slist *hl;	    /* its headers */
	char range[80];		    /* its Range header */
	char cerr[CURL_ERROR_SIZE]; /* curl's message */
	size_t r;		    /* index of its range */
	uint64_t off;		    /* first byte */
	size_t len;		    /* bytes wanted */
	size_t got;		    /* bytes read */
	bool done;		    /* a reply came (q.status set) */
};

static void par_end(struct s3_backend *sb, CURLM *m, struct s3_par *p)
{
	if (!p->h)
		return;
	curl_multi_remove_handle(m, p->h);
	stats_add(S3_GET, false, 0, p->q.got);
	handle_put(sb, p->h);
	p->h = NULL;
	curl_slist_free_all(p->hl);
	p->hl = NULL;
	free(p->url);
	p->url = NULL;
}

/* Put part p on m; false when it could not be set up (read alone). */
static bool par_start(struct s3_backend *sb, CURLM *m, struct s3_par *p,
		      void *buf)
{
	p->q.method = "GET";
	p->q.cls = S3_GET;
	p->q.out = buf;
	p->q.out_cap = p->len;
	snprintf(p->range, sizeof(p->range), "Range: bytes=%llu-%llu",
		 (unsigned long long)p->off,
		 (unsigned long long)(p->off + p->len - 1));
	p->q.hdr[0] = p->range;
	p->h = handle_get(sb);
	if (!p->h)
		return false;
	if (build_url(sb, &p->q, &p->url) ||
	    setup(sb, p->h, &p->q, p->url, p->cerr, &p->hl)) {
		handle_put(sb, p->h);
		p->h = NULL;
		return false;
	}
	curl_easy_setopt(p->h, CURLOPT_PRIVATE, p);
	if (curl_multi_add_handle(m, p->h) != CURLM_OK) {
		curl_slist_free_all(p->hl);
		p->hl = NULL;
		handle_put(sb, p->h);
		p->h = NULL;
		return false;
	}
	return true;
}

/*
 * Many ranges at once.  A range larger than get_part (8 MiB) is cut into
 * parts, and up to S3_INFLIGHT ranged GETs are in flight on one curl
 * multi handle: when one ends the next starts, so the latency of the
 * endpoint is paid once per window, not once per range, and a large pack
 * range comes over several connections at once.  Connections stay open
 * between calls (the backend's share handle).  A part that fails here (a
 * 5xx, a dropped connection) is read again alone through read_at(),
 * which retries with backoff.
 */
static int s3_read_many(struct backend *be, struct backend_range *v, size_t n,
			struct mv_err *err)
{
	struct s3_backend *sb = sbe(be);
	struct s3_par *par = NULL;
	size_t np = 0, i, next = 0, active = 0;
	CURLM *m = NULL;
	int rc = 0;

	for (i = 0; i < n; i++) {
		v[i].got = 0;
		v[i].rc = 0;
		np += (v[i].len + sb->get_part - 1) / sb->get_part;
	}
	if (!np)
		return 0;
	par = calloc(np, sizeof(*par));
	m = curl_multi_init();
	if (!par || !m) {
		free(par);
		if (m)
			curl_multi_cleanup(m);
		return mv_err_set(err, -ENOMEM, "out of memory");
	}
	for (i = 0, np = 0; i < n; i++) {
		/* parts of even size: 9 MiB is two of 4.5, not 8 and 1 */
		size_t k = (v[i].len + sb->get_part - 1) / sb->get_part;
		size_t each = k ? (v[i].len + k - 1) / k : 0;
		size_t o;

		for (o = 0; o < v[i].len; o += each) {
			par[np].r = i;
			par[np].off = v[i].off + o;
			par[np].len = MV_MIN(each, v[i].len - o);
			par[np].q.path = v[i].path;
			np++;
		}
	}
	while (next < np || active) {
		int running = 0, left;
		CURLMsg *msg;

		while (active < S3_INFLIGHT && next < np) {
			struct s3_par *p = &par[next++];

			if (par_start(sb, m, p,
				      (char *)v[p->r].buf +
					      (p->off - v[p->r].off)))
				active++;
		}
		if (curl_multi_perform(m, &running) != CURLM_OK)
			break;
		while ((msg = curl_multi_info_read(m, &left))) {
			struct s3_par *p = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
					  (char **)&p);
			if (!p)
				continue;
			if (msg->data.result == CURLE_OK) {
				curl_easy_getinfo(p->h, CURLINFO_RESPONSE_CODE,
						  &p->q.status);
				p->done = true;
			}
			par_end(sb, m, p);
			active--;
		}
		if (active && running)
			curl_multi_poll(m, NULL, 0, 1000, NULL);
	}
	for (i = 0; i < np; i++)
		par_end(sb, m, &par[i]); /* left by a failed perform */
	curl_multi_cleanup(m);
	for (i = 0; i < np; i++) {
		struct s3_par *p = &par[i];
		struct backend_range *r = &v[p->r];
		int prc = 0;

		if (p->done &&
		    (p->q.status == 206 || (p->q.status == 200 && !p->off))) {
			p->got = p->q.got;
		} else if (p->done && p->q.status == 416) {
			p->got = 0;
		} else if (p->done && p->q.status == 404) {
			prc = mv_err_set(rc ? NULL : err, -ENOENT,
					 "'%s' not found in '%s'", r->path,
					 be->url);
		} else {
			/* anything else: alone, with retries */
			char *buf = (char *)r->buf + (p->off - r->off);
			size_t got = 0;

			while (!prc && p->got < p->len) {
				prc = read_one(sb, r->path, p->off + p->got,
					       buf + p->got, p->len - p->got,
					       &got, rc ? NULL : err);
				if (!prc && !got)
					break;
				p->got += prc ? 0 : got;
			}
		}
		if (prc && !r->rc)
			r->rc = prc;
		if (prc && !rc)
			rc = prc;
	}
	/* got: the bytes up to the first short part (the end of the file) */
	for (i = 0, next = SIZE_MAX; i < np; i++) {
		if (par[i].r == next)
			continue; /* after a short part of its range */
		v[par[i].r].got += par[i].got;
		if (par[i].got < par[i].len)
			next = par[i].r;
	}
	free(par);
	return rc;
}

/* A range of up to one part is one GET; a larger one (a whole pack that
 * check or a read-ahead asks for) goes in parts at once. */
static int s3_read_at(struct backend *be, const char *path, uint64_t off,
		      void *buf, size_t len, size_t *out_len,
		      struct mv_err *err)
{
	struct s3_backend *sb = sbe(be);
	struct backend_range rg = {path, off, buf, len, 0, 0};
	int rc;

	if (len <= sb->get_part)
		return read_one(sb, path, off, buf, len, out_len, err);
	rc = s3_read_many(be, &rg, 1, err);
	if (!rc)
		*out_len = rg.got;
	return rc;
}

/* ListObjectsV2 of dir/ with delimiter '/': objects and common prefixes. */
static int list_objects(struct s3_backend *sb, const char *dir, bool flat,
			backend_list_fn fn, void *arg, struct mv_err *err)
{
	char *pfx = NULL, *query = NULL, *token = NULL;
	size_t plen;
	int rc = 0;

	pfx = malloc(strlen(sb->prefix) + strlen(dir) + 2);
	if (!pfx)
		return mv_err_set(err, -ENOMEM, "out of memory");
	strcpy(pfx, sb->prefix);
	strcat(pfx, dir);
	plen = strlen(pfx);
	if (plen && pfx[plen - 1] != '/') {
		strcat(pfx, "/");
		plen++;
	}
	for (;;) {
		struct s3_req q = {.method = "GET", .cls = S3_LIST};
		char *name = NULL, trunc[16] = "";
		const char *p;
		size_t cap = 3 * (plen + (token ? strlen(token) : 0)) + 128;

		free(query);
		query = malloc(cap);
		if (!query) {
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			break;
		}
		/* sorted: continuation-token, delimiter, list-type, prefix */
		query[0] = '\0';
		if (token) {
			strcat(query, "continuation-token=");
			uri_encode(token, false, query);
			strcat(query, "&");
		}
		strcat(query, flat ? "list-type=2&prefix="
				   : "delimiter=%2F&list-type=2&prefix=");
		uri_encode(pfx, false, query);
		q.query = query;
		rc = request(sb, &q, err);
		if (!rc && q.status != 200)
			rc = status_error(sb, &q, err);
		if (rc) {
			req_release(&q);
			break;
		}
		name = malloc(q.dyn_len + 1);
		if (!name) {
			req_release(&q);
			rc = mv_err_set(err, -ENOMEM, "out of memory");
			break;
		}
		/* objects: <Contents><Key>..</Key>...<Size>..</Size> */
		for (p = q.dyn; p && !rc;) {
			const char *c = strstr(p, "<Contents>");
			const char *e;
			char size[32];

			if (!c)
				break;
			e = strstr(c, "</Contents>");
			if (!e)
				break;
			if (xml_get(c, "Key", name, q.dyn_len + 1) &&
			    xml_get(c, "Size", size, sizeof(size)) &&
			    strlen(name) > plen &&
			    (flat || !strchr(name + plen, '/')))
				rc = fn(name + plen, false,
					strtoull(size, NULL, 10), arg);
			p = e;
		}
		for (p = q.dyn; p && !rc;) {
			const char *c = strstr(p, "<CommonPrefixes>");
			size_t l;

			if (!c)
				break;
			p = xml_get(c, "Prefix", name, q.dyn_len + 1);
			if (!p)
				break;
			l = strlen(name);
			if (l > plen + 1 && name[l - 1] == '/') {
				name[l - 1] = '\0';
				rc = fn(name + plen, true, 0, arg);
			}
		}
		if (rc) {
			free(name);
			req_release(&q);
			break;
		}
		xml_get(q.dyn, "IsTruncated", trunc, sizeof(trunc));
		free(token);
		token = NULL;
		if (!strcmp(trunc, "true") &&
		    xml_get(q.dyn, "NextContinuationToken", name,
			    q.dyn_len + 1) &&
		    name[0])
			token = strdup(name);
		free(name);
		req_release(&q);
		if (!token)
			break;
	}
	free(token);
	free(query);
	free(pfx);
	return rc;
}

static void packs_forget(struct s3_backend *sb)
{
	size_t i;

	for (i = 0; i < sb->npacks; i++)
		free(sb->packs[i].name);
	free(sb->packs);
	sb->packs = NULL;
	sb->npacks = 0;
	sb->packs_cap = 0;
	sb->packs_valid = false;
}

static int packs_add(const char *name, bool is_dir, uint64_t size, void *arg)
{
	struct s3_backend *sb = arg;

	(void)is_dir;
	if (sb->npacks == sb->packs_cap) {
		size_t cap = sb->packs_cap ? 2 * sb->packs_cap : 1024;
		struct s3_obj *v = realloc(sb->packs, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		sb->packs = v;
		sb->packs_cap = cap;
	}
	sb->packs[sb->npacks].name = strdup(name);
	if (!sb->packs[sb->npacks].name)
		return -ENOMEM;
	sb->packs[sb->npacks++].size = size;
	return 0;
}

/* A write under packs/ by this process: the listing is stale. */
static void packs_touch(struct s3_backend *sb, const char *path)
{
	if (!strncmp(path, "packs/", 6))
		sb->packs_valid = false;
}

/*
 * The store lists packs/ and then each of its (up to 256) directories: on
 * S3 that is one LIST a directory.  Instead "packs" is listed flat, in
 * pages of 1,000 keys, and the directories are answered from that listing
 * while it is fresh (S3_PACKS_TTL seconds, and no write under packs/ by
 * this backend since).  Entries are only freed by the next flat listing or
 * close, so a callback may list a directory or remove a pack meanwhile.
 */
static int s3_list(struct backend *be, const char *dir, backend_list_fn fn,
		   void *arg, struct mv_err *err)
{
	struct s3_backend *sb = sbe(be);
	size_t i, dl;
	int rc;

	if (!strcmp(dir, "packs")) {
		const char *prev = NULL;
		size_t n;

		packs_forget(sb);
		rc = list_objects(sb, dir, true, packs_add, sb, err);
		if (rc) {
			packs_forget(sb);
			return rc == -ENOMEM
				       ? mv_err_set(err, rc, "out of memory")
				       : rc;
		}
		sb->packs_valid = true;
		sb->packs_time = time(NULL);
		n = sb->npacks;
		for (i = 0, rc = 0; !rc && i < n; i++) {
			const char *name = sb->packs[i].name;
			const char *slash = strchr(name, '/');
			char d[256];

			if (!slash) {
				rc = fn(name, false, sb->packs[i].size, arg);
				continue;
			}
			dl = (size_t)(slash - name);
			if (dl >= sizeof(d) ||
			    (prev && !strncmp(prev, name, dl) &&
			     prev[dl] == '/'))
				continue;
			memcpy(d, name, dl);
			d[dl] = '\0';
			prev = name;
			rc = fn(d, true, 0, arg);
		}
		return rc;
	}
	dl = strlen(dir);
	if (sb->packs_valid && time(NULL) - sb->packs_time < S3_PACKS_TTL &&
	    !strncmp(dir, "packs/", 6) && dl > 6 && !strchr(dir + 6, '/')) {
		size_t n = sb->npacks;

		for (i = 0, rc = 0; !rc && i < n; i++) {
			const char *name = sb->packs[i].name;

			if (!strncmp(name, dir + 6, dl - 6) &&
			    name[dl - 6] == '/' && !strchr(name + dl - 5, '/'))
				rc = fn(name + dl - 5, false, sb->packs[i].size,
					arg);
		}
		return rc;
	}
	return list_objects(sb, dir, false, fn, arg, err);
}

static int s3_mkdir(struct backend *be, const char *path, struct mv_err *err)
{
	(void)be;
	(void)path;
	(void)err;
	return 0; /* a bucket has no directories */
}

static int s3_sync_dir(struct backend *be, const char *path, struct mv_err *err)
{
	(void)be;
	(void)path;
	(void)err;
	return 0; /* a completed PUT is durable */
}

static const char *s3_local_root(struct backend *be)
{
	(void)be;
	return NULL;
}

/* Whether an object at path is never overwritten: packs (named by their
 * content), commit segments (named by a random id, one writer's each)
 * and the lock. */
static bool create_only(const char *path)
{
	return !strncmp(path, "packs/", 6) || !strncmp(path, "index/", 6) ||
	       !strcmp(path, "lock");
}

/*
 * After a retried create-only PUT got 412: was it our own first attempt
 * that went through (its reply lost)?  The object's ETag is then the MD5
 * of what we sent.
 */
static bool landed_ours(struct s3_backend *sb, const char *path,
			const void *buf, size_t len)
{
	struct s3_req q = {.method = "HEAD", .cls = S3_HEAD, .path = path};
	char md5[33];

	if (request(sb, &q, NULL) || q.status != 200)
		return false;
	md5_hex(buf, len, md5);
	return !strcmp(q.etag, md5);
}

/* One PUT of a whole object. */
static int put_single(struct s3_backend *sb, const char *path, const void *buf,
		      size_t len, bool excl, struct mv_err *err)
{
	struct s3_req q = {.method = "PUT", .cls = S3_PUT, .path = path};
	int rc;

	q.body = buf ? buf : "";
	q.body_len = len;
	if (excl)
		q.hdr[0] = "If-None-Match: *";
	rc = request(sb, &q, err);
	if (rc)
		goto out;
	if (q.status == 412 && q.tries > 1 && landed_ours(sb, path, buf, len))
		q.status = 200;
	if (q.status == 412 && excl)
		rc = -EEXIST; /* the caller says what that means */
	else if (q.status != 200)
		rc = status_error(sb, &q, err);
out:
	req_release(&q);
	return rc;
}

/* CompleteMultipartUpload: the object appears now, or never. */
static int complete_upload(struct s3_backend *sb, const char *path,
			   const char *query, const char *xml, size_t xlen,
			   bool excl, struct mv_err *err)
{
	struct s3_req c = {.method = "POST", .cls = S3_PUT, .path = path};
	int rc;

	c.query = query;
	c.body = xml;
	c.body_len = xlen;
	if (excl)
		c.hdr[0] = "If-None-Match: *";
	rc = request(sb, &c, err);
	/* a 200 may still carry an <Error> */
	if (!rc && c.status == 200 && c.dyn && strstr(c.dyn, "<Error>")) {
		char code[80];

		reply_code(&c, code, sizeof(code));
		rc = mv_err_set(err, -EIO,
				"completing the upload of '%s' in '%s' "
				"failed: %s",
				path, sb->base.url, code);
	} else if (!rc && c.status != 200) {
		rc = status_error(sb, &c, err);
	}
	req_release(&c);
	return rc;
}

/* A multipart upload: nothing is visible before CompleteMultipartUpload;
 * on any failure the upload is aborted. */
static int put_multipart(struct s3_backend *sb, const char *path,
			 const unsigned char *buf, size_t len, bool excl,
			 struct mv_err *err)
{
	size_t part = (size_t)S3_PART_MIB << 20 < sb->multipart_min
			      ? (size_t)S3_PART_MIB << 20
			      : sb->multipart_min;
	size_t nparts = (len + part - 1) / part, i;
	char id[512], *query = NULL, *xml = NULL, *enc = NULL;
	char(*etags)[80] = NULL;
	struct s3_req q = {.method = "POST", .cls = S3_PUT, .path = path};
	size_t xcap, xlen = 0;
	int rc;

	q.query = "uploads=";
	rc = request(sb, &q, err);
	if (!rc && q.status != 200)
		rc = status_error(sb, &q, err);
	if (!rc && !xml_get(q.dyn, "UploadId", id, sizeof(id)))
		rc = mv_err_set(err, -EIO,
				"S3 endpoint '%s' gave no UploadId for '%s'",
				sb->endpoint, path);
	req_release(&q);
	if (rc)
		return rc;
	enc = malloc(3 * strlen(id) + 1);
	query = malloc(3 * strlen(id) + 64);
	etags = calloc(nparts, sizeof(*etags));
	xcap = nparts * 160 + 128;
	xml = malloc(xcap);
	if (!enc || !query || !etags || !xml) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto abort;
	}
	enc[0] = '\0';
	uri_encode(id, false, enc);
	for (i = 0; i < nparts; i++) {
		struct s3_req p = {
			.method = "PUT", .cls = S3_PUT, .path = path};
		size_t off = i * part;

		snprintf(query, 3 * strlen(id) + 64,
			 "partNumber=%zu&uploadId=%s", i + 1, enc);
		p.query = query;
		p.body = buf + off;
		p.body_len = len - off < part ? len - off : part;
		rc = request(sb, &p, err);
		if (!rc && p.status != 200)
			rc = status_error(sb, &p, err);
		snprintf(etags[i], sizeof(etags[i]), "%s", p.etag);
		req_release(&p);
		if (rc)
			goto abort;
	}
	xlen = (size_t)snprintf(xml, xcap, "<CompleteMultipartUpload>");
	for (i = 0; i < nparts; i++)
		xlen += (size_t)snprintf(xml + xlen, xcap - xlen,
					 "<Part><PartNumber>%zu</PartNumber>"
					 "<ETag>\"%s\"</ETag></Part>",
					 i + 1, etags[i]);
	xlen += (size_t)snprintf(xml + xlen, xcap - xlen,
				 "</CompleteMultipartUpload>");
	snprintf(query, 3 * strlen(id) + 64, "uploadId=%s", enc);
	rc = complete_upload(sb, path, query, xml, xlen, excl, err);
	if (!rc)
		goto out;
abort:
	if (enc && query) {
		struct s3_req a = {
			.method = "DELETE", .cls = S3_DELETE, .path = path};

		snprintf(query, 3 * strlen(id) + 64, "uploadId=%s", enc);
		a.query = query;
		request(sb, &a, NULL);
		req_release(&a);
	}
out:
	free(xml);
	free(etags);
	free(query);
	free(enc);
	return rc;
}

static int put_object(struct s3_backend *sb, const char *path, const void *buf,
		      size_t len, bool excl, struct mv_err *err)
{
	if (len > sb->multipart_min)
		return put_multipart(sb, path, buf, len, excl, err);
	return put_single(sb, path, buf, len, excl, err);
}

static int s3_file_create(struct backend *be, const char *path,
			  struct backend_file **out, struct mv_err *err)
{
	struct s3_file *f = calloc(1, sizeof(*f));

	if (!f || !(f->path = strdup(path))) {
		free(f);
		return mv_err_set(err, -ENOMEM, "out of memory");
	}
	f->sb = sbe(be);
	*out = (struct backend_file *)f;
	return 0;
}

static int s3_file_write(struct backend_file *bf, const void *buf, size_t len,
			 struct mv_err *err)
{
	struct s3_file *f = (struct s3_file *)bf;

	if (f->len + len > f->cap) {
		size_t cap = f->cap ? f->cap : 1 << 16;
		unsigned char *p;

		while (cap < f->len + len)
			cap *= 2;
		p = realloc(f->buf, cap);
		if (!p)
			return mv_err_set(err, -ENOMEM, "out of memory");
		f->buf = p;
		f->cap = cap;
	}
	memcpy(f->buf + f->len, buf, len);
	f->len += len;
	return 0;
}

static void s3_file_abort(struct backend_file *bf)
{
	struct s3_file *f = (struct s3_file *)bf;

	if (!f)
		return;
	free(f->buf);
	free(f->path);
	free(f);
}

static int s3_file_commit(struct backend_file *bf, struct mv_err *err)
{
	struct s3_file *f = (struct s3_file *)bf;
	int rc;

	packs_touch(f->sb, f->path);
	rc = put_object(f->sb, f->path, f->buf, f->len, create_only(f->path),
			err);
	if (rc == -EEXIST && strncmp(f->path, "packs/", 6) == 0) {
		/* a pack is named by its content: the same bytes are there
		 * already (a repeated upload after a crash) */
		rc = landed_ours(f->sb, f->path, f->buf, f->len) ? 0 : rc;
	}
	if (rc == -EEXIST)
		mv_err_set(err, rc,
			   "'%s' already exists in '%s' with other content",
			   f->path, f->sb->base.url);
	s3_file_abort(bf);
	return rc;
}

static int s3_create_excl(struct backend *be, const char *path, const void *buf,
			  size_t len, struct mv_err *err)
{
	packs_touch(sbe(be), path);
	return put_single(sbe(be), path, buf, len, true, err);
}

static int s3_remove(struct backend *be, const char *path, struct mv_err *err)
{
	struct s3_backend *sb = sbe(be);
	struct s3_req q = {.method = "DELETE", .cls = S3_DELETE, .path = path};
	int rc;

	packs_touch(sb, path);
	rc = request(sb, &q, err);
	if (!rc && q.status != 204 && q.status != 200 && q.status != 404)
		rc = status_error(sb, &q, err);
	req_release(&q);
	return rc;
}

/* Server-side copy, then delete: not atomic (docs/S3.md says where the
 * store renames and why that is safe there). */
static int s3_rename(struct backend *be, const char *from, const char *to,
		     struct mv_err *err)
{
	struct s3_backend *sb = sbe(be);
	struct s3_req q = {.method = "PUT", .cls = S3_PUT, .path = to};
	char *src, *hdr;
	int rc;

	src = malloc(
		3 * (strlen(sb->bucket) + strlen(sb->prefix) + strlen(from)) +
		8);
	hdr = malloc(
		3 * (strlen(sb->bucket) + strlen(sb->prefix) + strlen(from)) +
		40);
	if (!src || !hdr) {
		free(src);
		free(hdr);
		return mv_err_set(err, -ENOMEM, "out of memory");
	}
	strcpy(src, "/");
	uri_encode(sb->bucket, false, src);
	strcat(src, "/");
	uri_encode(sb->prefix, true, src);
	uri_encode(from, true, src);
	sprintf(hdr, "x-amz-copy-source: %s", src);
	packs_touch(sb, to);
	q.hdr[0] = hdr;
	rc = request(sb, &q, err);
	if (!rc && (q.status != 200 || (q.dyn && strstr(q.dyn, "<Error>"))))
		rc = status_error(sb, &q, err);
	req_release(&q);
	free(src);
	free(hdr);
	if (!rc)
		rc = s3_remove(be, from, err);
	return rc;
}

static void s3_close(struct backend *be)
{
	struct s3_backend *sb = sbe(be);
	const char *sf = env("MAILVAULT_S3_STATS");
	int i;

	if (!be)
		return;
	if (sf) {
		FILE *fp = fopen(sf, "a");
		struct s3_stats s;

		s3_stats_get(&s);
		if (fp) {
			fprintf(fp,
				"get=%llu head=%llu put=%llu list=%llu "
				"delete=%llu retries=%llu up=%llu down=%llu\n",
				(unsigned long long)s.requests[S3_GET],
				(unsigned long long)s.requests[S3_HEAD],
				(unsigned long long)s.requests[S3_PUT],
				(unsigned long long)s.requests[S3_LIST],
				(unsigned long long)s.requests[S3_DELETE],
				(unsigned long long)s.retries,
				(unsigned long long)s.bytes_up,
				(unsigned long long)s.bytes_down);
			fclose(fp);
		}
	}
	for (i = 0; i < sb->npool; i++)
		curl_easy_cleanup(sb->pool[i]);
	if (sb->share)
		curl_share_cleanup(sb->share);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&sb->share_lock[i]);
	packs_forget(sb);
	pthread_mutex_destroy(&sb->lock);
	free(sb->endpoint);
	free(sb->host);
	free(sb->scheme);
	free(sb->bucket);
	free(sb->prefix);
	free(sb->region);
	free(sb->sigv4);
	free(sb->access_key);
	if (sb->secret_key) {
		memset(sb->secret_key, 0, strlen(sb->secret_key));
		free(sb->secret_key);
	}
	free(sb->token);
	free(sb->base.url);
	free(sb);
}

static const struct backend_ops s3_ops = {
	.scheme = "s3",
	.read_at = s3_read_at,
	.read_many = s3_read_many,
	.read_all = s3_read_all,
	.stat = s3_stat,
	.list = s3_list,
	.mkdir = s3_mkdir,
	.file_create = s3_file_create,
	.file_write = s3_file_write,
	.file_commit = s3_file_commit,
	.file_abort = s3_file_abort,
	.create_excl = s3_create_excl,
	.rename = s3_rename,
	.remove = s3_remove,
	.sync_dir = s3_sync_dir,
	.local_root = s3_local_root,
	.close = s3_close,
};

/* ---- configuration ---- */

/* What ~/.aws/credentials (and ~/.aws/config) say for one profile. */
struct profile {
	const char *name; /* profile wanted */
	bool in_config;	  /* parsing config: sections "profile NAME" */
	char *key;	  /* aws_access_key_id */
	char *secret;	  /* aws_secret_access_key */
	char *token;	  /* aws_session_token */
	char *region;	  /* region */
	char *endpoint;	  /* endpoint_url */
};

static int on_ini(void *arg, const char *section, const char *name,
		  const char *value)
{
	struct profile *p = arg;
	char **slot = NULL;

	if (p->in_config) {
		if (strcmp(p->name, "default")
			    ? strncmp(section, "profile ", 8) ||
				      strcmp(section + 8, p->name)
			    : strcmp(section, "default"))
			return 1;
	} else if (strcmp(section, p->name)) {
		return 1;
	}
	if (!strcmp(name, "aws_access_key_id"))
		slot = &p->key;
	else if (!strcmp(name, "aws_secret_access_key"))
		slot = &p->secret;
	else if (!strcmp(name, "aws_session_token"))
		slot = &p->token;
	else if (!strcmp(name, "region"))
		slot = &p->region;
	else if (!strcmp(name, "endpoint_url"))
		slot = &p->endpoint;
	if (slot && !*slot)
		*slot = strdup(value);
	return 1;
}

static void profile_load(struct profile *p)
{
	const char *home = env("HOME");
	const char *cred = env("AWS_SHARED_CREDENTIALS_FILE");
	const char *conf = env("AWS_CONFIG_FILE");
	char path[4096];

	p->name = env("AWS_PROFILE") ? env("AWS_PROFILE") : "default";
	if (cred || home) {
		if (cred)
			snprintf(path, sizeof(path), "%s", cred);
		else
			snprintf(path, sizeof(path), "%s/.aws/credentials",
				 home);
		ini_parse(path, on_ini, p);
	}
	if (conf || home) {
		if (conf)
			snprintf(path, sizeof(path), "%s", conf);
		else
			snprintf(path, sizeof(path), "%s/.aws/config", home);
		p->in_config = true;
		ini_parse(path, on_ini, p);
	}
}

static void profile_release(struct profile *p)
{
	free(p->key);
	if (p->secret) {
		memset(p->secret, 0, strlen(p->secret));
		free(p->secret);
	}
	free(p->token);
	free(p->region);
	free(p->endpoint);
}

/* An IP address or localhost: the bucket cannot be a subdomain. */
static bool needs_path_style(const char *host)
{
	char h[256];
	size_t l = strcspn(host, ":");

	if (host[0] == '[')
		return true; /* IPv6 literal */
	if (l >= sizeof(h))
		return false;
	memcpy(h, host, l);
	h[l] = '\0';
	if (!strcmp(h, "localhost"))
		return true;
	return strspn(h, "0123456789.") == l;
}

static int parse_url(struct s3_backend *sb, const char *url, struct mv_err *err)
{
	const char *b = url + 5, *slash = strchr(b, '/');
	size_t blen = slash ? (size_t)(slash - b) : strlen(b);
	const char *pfx = slash ? slash + 1 : "";
	size_t plen = strlen(pfx);

	while (plen && pfx[plen - 1] == '/')
		plen--;
	if (!blen || blen > 63 ||
	    strspn(b, "abcdefghijklmnopqrstuvwxyz"
		      "0123456789.-_") < blen)
		return mv_err_set(err, -EINVAL,
				  "bad S3 location '%s' (use "
				  "s3://BUCKET/PREFIX)",
				  url);
	sb->bucket = strndup(b, blen);
	sb->prefix = malloc(plen + 2);
	if (!sb->bucket || !sb->prefix)
		return mv_err_set(err, -ENOMEM, "out of memory");
	memcpy(sb->prefix, pfx, plen);
	sb->prefix[plen] = '\0';
	if (plen)
		strcat(sb->prefix, "/");
	return 0;
}

static int parse_endpoint(struct s3_backend *sb, const char *ep,
			  struct mv_err *err)
{
	const char *h = strstr(ep, "://");
	size_t l;

	if (!h || (strncmp(ep, "http://", 7) && strncmp(ep, "https://", 8)))
		return mv_err_set(err, -EINVAL,
				  "bad S3 endpoint '%s' (use "
				  "https://host[:port])",
				  ep);
	sb->scheme = strndup(ep, (size_t)(h - ep));
	h += 3;
	l = strcspn(h, "/");
	sb->host = strndup(h, l);
	sb->endpoint = malloc(strlen(sb->scheme) + 3 + l + 1);
	if (!sb->scheme || !sb->host || !sb->endpoint)
		return mv_err_set(err, -ENOMEM, "out of memory");
	sprintf(sb->endpoint, "%s://%s", sb->scheme, sb->host);
	return 0;
}

int backend_s3_open(const char *url, bool create, struct backend **out,
		    struct mv_err *err)
{
	struct s3_backend *sb;
	struct profile p = {0};
	struct s3_req q = {.method = "HEAD", .cls = S3_HEAD};
	const char *ep, *v;
	char buf[512];
	int rc;

	(void)create;
	pthread_once(&curl_once, curl_init_once);
	sb = calloc(1, sizeof(*sb));
	if (!sb)
		return mv_err_set(err, -ENOMEM, "out of memory");
	pthread_mutex_init(&sb->lock, NULL);
	share_init(sb);
	sb->get_part = (size_t)S3_GET_PART_MIB << 20;
	sb->base.ops = &s3_ops;
	sb->base.url = strdup(url);
	if (!sb->base.url) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	rc = parse_url(sb, url, err);
	if (rc)
		goto fail;
	profile_load(&p);
	if (env("AWS_ACCESS_KEY_ID")) {
		sb->access_key = xstrdup(env("AWS_ACCESS_KEY_ID"));
		sb->secret_key = xstrdup(env("AWS_SECRET_ACCESS_KEY"));
		sb->token = xstrdup(env("AWS_SESSION_TOKEN"));
	} else {
		sb->access_key = xstrdup(p.key);
		sb->secret_key = xstrdup(p.secret);
		sb->token = xstrdup(p.token);
	}
	if (!sb->access_key || !sb->secret_key) {
		rc = mv_err_set(err, -EACCES,
				"no S3 credentials for '%s': set "
				"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
				"or AWS_PROFILE with ~/.aws/credentials",
				url);
		goto fail;
	}
	v = env("AWS_REGION");
	if (!v)
		v = env("AWS_DEFAULT_REGION");
	if (!v)
		v = p.region;
	sb->region = strdup(v ? v : "us-east-1");
	ep = env("AWS_ENDPOINT_URL_S3");
	if (!ep)
		ep = env("AWS_ENDPOINT_URL");
	if (!ep)
		ep = p.endpoint;
	if (!ep) {
		snprintf(buf, sizeof(buf), "https://s3.%s.amazonaws.com",
			 sb->region ? sb->region : "us-east-1");
		ep = buf;
	}
	rc = parse_endpoint(sb, ep, err);
	if (rc)
		goto fail;
	sb->path_style = needs_path_style(sb->host) ||
			 (env("MAILVAULT_S3_PATH_STYLE") &&
			  !strcmp(env("MAILVAULT_S3_PATH_STYLE"), "1")) ||
			 strchr(sb->bucket, '.');
	v = env("MAILVAULT_S3_GET_PART_KIB");
	if (v && atoi(v) > 0)
		sb->get_part = (size_t)atoi(v) << 10;
	v = env("MAILVAULT_S3_MULTIPART_MIB");
	sb->multipart_min =
		(size_t)(v && atoi(v) > 0 ? atoi(v) : S3_MULTIPART_MIB) << 20;
	sb->sigv4 = malloc(strlen(sb->region) + 16);
	if (!sb->region || !sb->sigv4) {
		rc = mv_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	sprintf(sb->sigv4, "aws:amz:%s:s3", sb->region);
	/* one HEAD of the bucket: a missing bucket or refused credentials
	 * are told now, not as a puzzling "no repository" later */
	rc = request(sb, &q, err);
	if (!rc && q.status != 200)
		rc = status_error(sb, &q, err);
	req_release(&q);
	if (rc)
		goto fail;
	profile_release(&p);
	*out = &sb->base;
	return 0;
fail:
	profile_release(&p);
	s3_close(&sb->base);
	return rc;
}
