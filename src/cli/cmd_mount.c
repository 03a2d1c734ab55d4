/* mailvault mount: every snapshot as a read-only directory tree
 * (man/mailvault-mount.1). */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

static const char usage_line[] =
	"usage: mailvault mount [-f] [-o OPTIONS] REPO MOUNTPOINT\n"
	"options: allow_other, default_permissions, cache_size=MiB, debug\n";

/* Undo the octal escapes of a /proc/self/mountinfo field in place. */
static void unescape_field(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*w++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				      (s[3] - '0'));
			s += 3;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

/* Is something mounted on dir already?  Then its type goes into fstype.
 * FUSE mounts over a mount point without complaint, and a second mailvault
 * on the first would hide it until both are unmounted, one by one. */
static bool mounted_on(const char *dir, char *fstype, size_t n)
{
	char real[PATH_MAX], line[8192];
	bool found = false;
	FILE *f;

	if (!realpath(dir, real))
		return false; /* fs_mount reports a missing directory */
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return false;
	/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE ... */
	while (!found && fgets(line, sizeof(line), f)) {
		char *save = NULL, *tok, *mp = NULL;
		int k;

		tok = strtok_r(line, " ", &save);
		for (k = 1; tok && k < 5; k++)
			tok = strtok_r(NULL, " ", &save);
		if (!tok)
			continue;
		mp = tok;
		unescape_field(mp);
		if (strcmp(mp, real))
			continue;
		found = true;
		snprintf(fstype, n, "?");
		while ((tok = strtok_r(NULL, " ", &save)))
			if (!strcmp(tok, "-")) {
				tok = strtok_r(NULL, " ", &save);
				if (tok)
					snprintf(fstype, n, "%s", tok);
				break;
			}
	}
	fclose(f);
	return found;
}

int cmd_mount(int argc, char **argv)
{
	struct mv_err err = MV_ERR_INIT;
	struct fs_opts o;
	const char *repo, *mnt;
	char fstype[64];
	int c;

	fs_opts_init(&o);
	optind = 1;
	while ((c = getopt(argc, argv, "fho:")) != -1) {
		switch (c) {
		case 'f':
			o.foreground = true;
			break;
		case 'o':
			if (fs_opts_parse(&o, optarg, &err))
				return cli_usage("mount", "%s", err.msg);
			break;
		case 'h':
			fputs(usage_line, stdout);
			return MV_EXIT_OK;
		default:
			fputs(usage_line, stderr);
			return MV_EXIT_USAGE;
		}
	}
	if (argc - optind == 2) {
		repo = argv[optind];
		mnt = argv[optind + 1];
	} else if (argc - optind == 1 && cli_repo_arg(NULL)) {
		repo = cli_repo_arg(NULL);
		mnt = argv[optind];
	} else {
		return cli_usage("mount", "need REPO and MOUNTPOINT");
	}
	if (mounted_on(mnt, fstype, sizeof(fstype))) {
		fprintf(stderr,
			"mailvault: cannot mount on '%s': it is a mount point "
			"already (%s); unmount it first (fusermount3 -u "
			"'%s')\n",
			mnt, fstype, mnt);
		return MV_EXIT_FAIL;
	}
	if (fs_mount(repo, mnt, &o, &err))
		return cli_fail(&err);
	return MV_EXIT_OK;
}
