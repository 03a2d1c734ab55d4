/*
 * sftp: repositories and backup sources on an SFTP server, over libssh2.
 *
 * A repository location "sftp://[user@]host[:port]/path" opens a backend
 * (include/backend.h) whose files live under path on the server.  Only the
 * SFTP subsystem is needed on the remote side.
 */
#ifndef MV_SFTP_H
#define MV_SFTP_H

#include <stdbool.h>

#include "backend.h"
#include "mv_err.h"

/* Open the SFTP backend for url (sftp://[user@]host[:port]/path).
 * create: make the root directory (and its parents) when missing. */
int backend_sftp_open(const char *url, bool create, struct backend **out,
		      struct mv_err *err);

#endif
