/*
 * remote_int: helpers shared by the files of src/remote/.
 */
#ifndef MV_REMOTE_INT_H
#define MV_REMOTE_INT_H

#include <stdbool.h>

#include <libssh2.h>
#include <libssh2_sftp.h>

#include "ssh.h"

/* The negative errno for the last failure of an SFTP call on sftp; sets
 * *lost when the connection is gone.  A generic SSH_FX_FAILURE maps to
 * -EIO (OpenSSH reports "exists" and "not empty" that way). */
int remote_sftp_errno(struct ssh_session *ss, LIBSSH2_SFTP *sftp, bool *lost);

/* Text for the last SFTP failure: the SFTP status name or libssh2's
 * message. */
const char *remote_sftp_strerror(struct ssh_session *ss, LIBSSH2_SFTP *sftp);

#endif
