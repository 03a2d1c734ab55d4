/* cli_snap: open a repository and resolve SNAP[:PATH] for commands. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot.h"

int cli_open_entry(const char *repo_arg, const char *spec, struct repo **out_r,
		   struct snapshot *out_snap, struct tree_entry *out_entry,
		   char **out_path, struct mv_err *err)
{
	const char *repo = cli_repo_arg(repo_arg);
	char *snap = NULL, *path = NULL;
	int rc;

	memset(out_snap, 0, sizeof(*out_snap));
	*out_r = NULL;
	if (!repo)
		return mv_err_set(err, -EINVAL,
				  "no repository given "
				  "(argument or MAILVAULT_REPO)");
	rc = snapshot_split_spec(spec, &snap, &path, err);
	if (rc)
		return rc;
	rc = repo_open(repo, REPO_OPEN_READ, out_r, err);
	if (!rc)
		rc = snapshot_resolve(*out_r, snap, out_snap, err);
	if (!rc)
		rc = tree_lookup_path(*out_r, &out_snap->root, path, out_entry,
				      err);
	if (!rc && out_entry->name_len == 0 && out_snap->name) {
		/* the snapshot root: name it for messages */
		free(out_entry->name);
		out_entry->name = strdup("");
	}
	free(snap);
	if (rc) {
		free(path);
		snapshot_release(out_snap);
		repo_close(*out_r);
		*out_r = NULL;
		return rc;
	}
	if (out_path)
		*out_path = path;
	else
		free(path);
	return 0;
}
