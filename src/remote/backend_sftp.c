/* backend_sftp: repository files on an SFTP server (see include/sftp.h). */
#include "sftp.h"

#include <errno.h>

int backend_sftp_open(const char *url, bool create, struct backend **out,
		      struct mv_err *err)
{
	(void)create;
	(void)out;
	return mv_err_set(err, -ENOSYS, "cannot open '%s': sftp not built yet",
			  url);
}
