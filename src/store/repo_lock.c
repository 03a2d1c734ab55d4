/*
 * repo_lock: the writer lock of a repository (include/repo.h).
 */
#include "repo_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <zstd.h>

#include "backend.h"
#include "chunker.h"
#include "diskcache.h"
#include "hash.h"
#include "index.h"
#include "pack.h"
#include "snapshot.h"

/* ---- locking ---------------------------------------------------------- */

static int lock_describe(struct repo *r, char *out, size_t n, bool *stale)
{
	void *buf = NULL;
	size_t len;
	char host[256] = "?", myhost[256] = "";
	long long pid = 0, t = 0;
	char *p, *save = NULL;

	*stale = false;
	if (backend_read_all(r->be, "lock", 4096, &buf, &len, NULL))
		return -ENOENT;
	for (p = strtok_r(buf, "\n", &save); p;
	     p = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(p, "host=", 5))
			snprintf(host, sizeof(host), "%s", p + 5);
		else if (!strncmp(p, "pid=", 4))
			pid = atoll(p + 4);
		else if (!strncmp(p, "time=", 5))
			t = atoll(p + 5);
	}
	free(buf);
	gethostname(myhost, sizeof(myhost) - 1);
	if (!strcmp(host, myhost) && pid > 0 && kill((pid_t)pid, 0) < 0 &&
	    errno == ESRCH)
		*stale = true;
	snprintf(out, n, "pid %lld on host '%s' since %lld s ago", pid, host,
		 t ? (long long)time(NULL) - t : 0LL);
	return 0;
}

int repo_lock_take(struct repo *r, bool wait, struct mv_err *err)
{
	char body[512], host[256] = "", who[400];
	bool stale;
	int rc, tries = 0, len;

	gethostname(host, sizeof(host) - 1);
	len = snprintf(body, sizeof(body), "host=%s\npid=%d\ntime=%lld\n", host,
		       (int)getpid(), (long long)time(NULL));
	for (;;) {
		rc = r->be->ops->create_excl(r->be, "lock", body, (size_t)len,
					     err);
		if (rc != -EEXIST)
			break;
		if (lock_describe(r, who, sizeof(who), &stale))
			continue; /* vanished: try again */
		if (stale && tries++ < 3) {
			r->be->ops->remove(r->be, "lock", NULL);
			continue;
		}
		if (!wait)
			return mv_err_set(err, -EBUSY,
					  "repository '%s' is "
					  "locked by %s; if that process is "
					  "gone, remove the file 'lock' in the "
					  "repository",
					  r->location, who);
		sleep(1);
	}
	if (!rc)
		r->locked = true;
	return rc;
}

void repo_lock_release(struct repo *r)
{
	if (r->locked)
		r->be->ops->remove(r->be, "lock", NULL);
	r->locked = false;
}
