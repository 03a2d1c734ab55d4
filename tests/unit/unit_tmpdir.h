/*
 * unit_tmpdir: the fixture of unit tests that work in a directory of
 * their own - each test of the group gets a new, empty one, removed with
 * everything in it after the test:
 *
 *	#include "unit_tmpdir.h"
 *	cmocka_unit_test_setup_teardown(test_x, unit_dir_setup,
 *					unit_dir_teardown),
 *
 * and the test works below unit_dir (/tmp/mv-<test binary>.XXXXXX).
 */
#ifndef MV_UNIT_TMPDIR_H
#define MV_UNIT_TMPDIR_H

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static char unit_dir[64];

static int unit_dir_setup(void **state)
{
	(void)state;
	snprintf(unit_dir, sizeof(unit_dir), "/tmp/mv-%s.XXXXXX",
		 program_invocation_short_name);
	return mkdtemp(unit_dir) ? 0 : -1;
}

static int unit_dir_remove_one(const char *path, const struct stat *st,
			       int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int unit_dir_teardown(void **state)
{
	(void)state;
	return nftw(unit_dir, unit_dir_remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
