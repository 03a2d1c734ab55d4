/* mailvault snapshots: list snapshots. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "repo.h"
#include "snapshot.h"

int cmd_snapshots(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"name", required_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct mv_err err = MV_ERR_INIT;
	struct snapshot *list = NULL;
	struct repo *r = NULL;
	const char *repo, *name = NULL;
	size_t n = 0, i, shown = 0;
	bool json = false;
	int c, ret = MV_EXIT_OK;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'j')
			json = true;
		else if (c == 'n')
			name = optarg;
		else if (c == 'h') {
			cli_help_print("snapshots", stdout);
			return MV_EXIT_OK;
		} else
			return MV_EXIT_USAGE;
	}
	repo = cli_repo_arg(optind < argc ? argv[optind] : NULL);
	if (!repo)
		return cli_usage("snapshots", "no repository given");
	if (repo_open(repo, REPO_OPEN_READ, &r, &err) ||
	    snapshot_list(r, &list, &n, &err)) {
		ret = cli_fail(&err);
		goto out;
	}
	if (json)
		printf("[");
	for (i = 0; i < n; i++) {
		struct snapshot *s = &list[i];
		char id[2 * MV_ID_LEN + 1], dir[64], iso[40];
		uint32_t t;

		if (name && strcmp(name, s->name))
			continue;
		mv_hex(s->id, MV_ID_LEN, id);
		snapshot_shown_name(list, i, dir, sizeof(dir));
		mv_time_iso(s->time_ns, iso, sizeof(iso));
		if (json) {
			printf("%s{\"id\":\"%s\",\"name\":", shown ? "," : "",
			       id);
			cli_json_str(s->name);
			printf(",\"time\":\"%s\",\"dir\":\"%s\",\"host\":", iso,
			       dir);
			cli_json_str(s->host);
			printf(",\"partial\":%s,\"files\":%llu,"
			       "\"bytes\":%llu,\"added\":%llu,\"tags\":{",
			       s->partial ? "true" : "false",
			       (unsigned long long)s->stats.files,
			       (unsigned long long)s->stats.logical,
			       (unsigned long long)s->stats.stored_bytes);
			for (t = 0; t < s->ntags; t++) {
				printf("%s", t ? "," : "");
				cli_json_str(s->tags[t].key);
				putchar(':');
				cli_json_str(s->tags[t].value);
			}
			printf("}}");
		} else {
			char size[32];

			if (!shown)
				printf("%-12s  %-28s  %-20s  %8s  %10s  %s\n",
				       "ID", "SNAPSHOT", "TIME (UTC)", "FILES",
				       "SIZE", "HOST");
			mv_human_size(s->stats.logical, size, sizeof(size));
			printf("%.12s  %-28s  %-20s  %8llu  %10s  %s", id,
			       s->name, dir, (unsigned long long)s->stats.files,
			       size, s->host);
			for (t = 0; t < s->ntags; t++)
				printf(" %s=%s", s->tags[t].key,
				       s->tags[t].value);
			printf("%s\n", s->partial ? "  PARTIAL" : "");
		}
		shown++;
	}
	if (json)
		printf("]\n");
	else if (!shown)
		printf("no snapshots\n");
out:
	snapshot_list_free(list, n);
	repo_close(r);
	return ret;
}
