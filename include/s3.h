/*
 * s3: repositories on S3-compatible object storage (AWS S3, Ceph radosgw,
 * MinIO, a provider's S3), over libcurl and its SigV4 signer.
 *
 * A repository location "s3://BUCKET/PREFIX" opens a backend
 * (include/backend.h) whose files are the objects PREFIX/path of BUCKET.
 * Endpoint and credentials follow the AWS conventions:
 *   AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, else
 *     https://s3.REGION.amazonaws.com
 *   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, else the
 *     profile AWS_PROFILE (default "default") of AWS_SHARED_CREDENTIALS_FILE
 *     (default ~/.aws/credentials)
 *   AWS_REGION, else AWS_DEFAULT_REGION, else the profile's region, else
 *     us-east-1
 * Path-style addressing for an endpoint that is an IP address or
 * localhost (or with MAILVAULT_S3_PATH_STYLE=1), virtual-host style
 * otherwise.
 *
 * How the backend operations map to requests (docs/S3.md): read_at is a
 * ranged GET, stat a HEAD, list a ListObjectsV2 (only where the store
 * lists: index rebuild, check, prune), file_commit one PUT of the buffered
 * file (multipart above MAILVAULT_S3_MULTIPART_MIB, default 100 MiB),
 * create-only (If-None-Match: *) for packs and the lock; rename is a copy
 * and a delete; mkdir and sync_dir do nothing.  A 500/502/503/504 and a
 * dropped connection are retried with backoff (6 tries); an upload is
 * never visible before it is complete.
 */
#ifndef MV_S3_H
#define MV_S3_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "mv_err.h"

/* Request classes counted per process (docs/S3.md's cost model). */
enum s3_class {
	S3_GET,	   /* GET of an object (ranged or whole) */
	S3_HEAD,   /* HEAD of an object or the bucket */
	S3_PUT,	   /* PUT, copy, multipart part and POST */
	S3_LIST,   /* ListObjectsV2 */
	S3_DELETE, /* DELETE (free at most providers) */
	S3_NCLASS
};

struct s3_stats {
	uint64_t requests[S3_NCLASS]; /* requests sent, retries included */
	uint64_t retries;	      /* requests sent again */
	uint64_t bytes_up;	      /* request bodies */
	uint64_t bytes_down;	      /* response bodies */
};

/* True when location starts with s3://. */
bool s3_is_url(const char *location);

/* Open the S3 backend for url (s3://BUCKET[/PREFIX]).  Checks that the
 * bucket exists and the credentials are accepted (one HEAD).  create is
 * ignored: a bucket is never created. */
int backend_s3_open(const char *url, bool create, struct backend **out,
		    struct mv_err *err);

/* The counts of every S3 backend of this process so far. */
void s3_stats_get(struct s3_stats *out);

#endif
