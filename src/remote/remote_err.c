/* remote_err: SFTP status codes to errno (see remote_int.h). */
#include "remote_int.h"

#include <errno.h>

int remote_sftp_errno(struct ssh_session *ss, LIBSSH2_SFTP *sftp, bool *lost)
{
	int e = libssh2_session_last_errno(ssh_session_handle(ss));

	if (e == LIBSSH2_ERROR_SFTP_PROTOCOL && sftp) {
		switch (libssh2_sftp_last_error(sftp)) {
		case LIBSSH2_FX_NO_SUCH_FILE:
		case LIBSSH2_FX_NO_SUCH_PATH:
			return -ENOENT;
		case LIBSSH2_FX_PERMISSION_DENIED:
		case LIBSSH2_FX_WRITE_PROTECT:
			return -EACCES;
		case LIBSSH2_FX_FILE_ALREADY_EXISTS:
			return -EEXIST;
		case LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM:
			return -ENOSPC;
		case LIBSSH2_FX_QUOTA_EXCEEDED:
			return -EDQUOT;
		case LIBSSH2_FX_OP_UNSUPPORTED:
			return -EOPNOTSUPP;
		case LIBSSH2_FX_DIR_NOT_EMPTY:
			return -ENOTEMPTY;
		case LIBSSH2_FX_NOT_A_DIRECTORY:
			return -ENOTDIR;
		case LIBSSH2_FX_NO_CONNECTION:
		case LIBSSH2_FX_CONNECTION_LOST:
			*lost = true;
			return -EIO;
		default:
			return -EIO;
		}
	}
	if (ssh_is_connection_error(e) || e == LIBSSH2_ERROR_SOCKET_NONE)
		*lost = true;
	if (e == LIBSSH2_ERROR_ALLOC)
		return -ENOMEM;
	return -EIO;
}

const char *remote_sftp_strerror(struct ssh_session *ss, LIBSSH2_SFTP *sftp)
{
	int e = libssh2_session_last_errno(ssh_session_handle(ss));

	if (e != LIBSSH2_ERROR_SFTP_PROTOCOL || !sftp)
		return ssh_last_error(ss);
	switch (libssh2_sftp_last_error(sftp)) {
	case LIBSSH2_FX_EOF:
		return "end of file";
	case LIBSSH2_FX_NO_SUCH_FILE:
	case LIBSSH2_FX_NO_SUCH_PATH:
		return "no such file";
	case LIBSSH2_FX_PERMISSION_DENIED:
	case LIBSSH2_FX_WRITE_PROTECT:
		return "permission denied";
	case LIBSSH2_FX_FAILURE:
		return "the server reported a failure";
	case LIBSSH2_FX_BAD_MESSAGE:
		return "bad message";
	case LIBSSH2_FX_NO_CONNECTION:
	case LIBSSH2_FX_CONNECTION_LOST:
		return "connection lost";
	case LIBSSH2_FX_OP_UNSUPPORTED:
		return "operation not supported by the server";
	case LIBSSH2_FX_FILE_ALREADY_EXISTS:
		return "file exists";
	case LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM:
		return "no space left on the server";
	case LIBSSH2_FX_QUOTA_EXCEEDED:
		return "quota exceeded";
	case LIBSSH2_FX_DIR_NOT_EMPTY:
		return "directory not empty";
	case LIBSSH2_FX_NOT_A_DIRECTORY:
		return "not a directory";
	default:
		return "SFTP error";
	}
}
