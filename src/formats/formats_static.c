/*
 * formats_static: the formats code linked in (libmailvault.a, used by the
 * unit tests and tools/): always available.  See include/formats.h.
 */
#include "formats.h"

int formats_require(struct mv_err *err)
{
	(void)err;
	return 0;
}
