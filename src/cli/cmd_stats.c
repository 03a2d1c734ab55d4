/* mailvault stats: sizes and dedup ratios. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "index.h"
#include "repo.h"
#include "snapshot.h"

/* What the last prune gave back and left unused (lifecycle/prune.c). */
static void print_last_prune(struct repo *r)
{
	char note[128], when[40], a[32], b[32];
	unsigned long long reclaimed, unused;
	long long t;

	if (index_meta_get(repo_index(r), "last-prune", note, sizeof(note),
			   NULL) ||
	    sscanf(note, "%lld %llu %llu", &t, &reclaimed, &unused) != 3)
		return;
	mv_time_iso(t, when, sizeof(when));
	mv_human_size(reclaimed, a, sizeof(a));
	mv_human_size(unused, b, sizeof(b));
	printf("last prune %s: reclaimed %s, %s unused left in packs\n", when,
	       a, b);
}

int cmd_stats(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct mv_err err = MV_ERR_INIT;
	struct snapshot *list = NULL;
	struct repo_totals tot;
	struct repo *r = NULL;
	uint64_t logical = 0;
	const char *repo;
	size_t n = 0, i;
	bool json = false;
	char a[32], b[32], d[32];
	int c, ret = MV_EXIT_OK;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'j')
			json = true;
		else if (c == 'h') {
			cli_help_print("stats", stdout);
			return MV_EXIT_OK;
		} else
			return MV_EXIT_USAGE;
	}
	repo = cli_repo_arg(optind < argc ? argv[optind] : NULL);
	if (!repo)
		return cli_usage("stats", "no repository given");
	if (repo_open(repo, REPO_OPEN_READ, &r, &err) ||
	    snapshot_list(r, &list, &n, &err) || repo_totals(r, &tot, &err)) {
		ret = cli_fail(&err);
		goto out;
	}
	for (i = 0; i < n; i++)
		logical += list[i].stats.logical;
	if (json) {
		printf("{\"snapshots\":%zu,\"logical\":%llu,\"chunks\":%llu,"
		       "\"unique\":%llu,\"stored\":%llu,\"packs\":%llu,"
		       "\"pack_bytes\":%llu,\"per_snapshot\":[",
		       n, (unsigned long long)logical,
		       (unsigned long long)tot.chunks,
		       (unsigned long long)tot.raw,
		       (unsigned long long)tot.stored,
		       (unsigned long long)tot.packs,
		       (unsigned long long)tot.pack_bytes);
		for (i = 0; i < n; i++) {
			char dir[64];

			snapshot_dir_name(&list[i], dir, sizeof(dir));
			printf("%s{\"snapshot\":\"%s/%s\",\"logical\":%llu,"
			       "\"new\":%llu,\"added\":%llu}",
			       i ? "," : "", list[i].name, dir,
			       (unsigned long long)list[i].stats.logical,
			       (unsigned long long)list[i].stats.new_bytes,
			       (unsigned long long)list[i].stats.stored_bytes);
		}
		printf("]}\n");
		goto out;
	}
	printf("%-36s %12s %12s %12s\n", "SNAPSHOT", "LOGICAL", "NEW", "ADDED");
	for (i = 0; i < n; i++) {
		char dir[64], name[128];

		snapshot_dir_name(&list[i], dir, sizeof(dir));
		snprintf(name, sizeof(name), "%s/%s", list[i].name, dir);
		mv_human_size(list[i].stats.logical, a, sizeof(a));
		mv_human_size(list[i].stats.new_bytes, b, sizeof(b));
		mv_human_size(list[i].stats.stored_bytes, d, sizeof(d));
		printf("%-36s %12s %12s %12s\n", name, a, b, d);
	}
	mv_human_size(logical, a, sizeof(a));
	mv_human_size(tot.raw, b, sizeof(b));
	mv_human_size(tot.pack_bytes, d, sizeof(d));
	printf("\n%zu snapshots: %s logical, %s unique, %s in %llu packs", n, a,
	       b, d, (unsigned long long)tot.packs);
	if (tot.pack_bytes)
		printf(" (dedup+compression %.1fx)",
		       (double)logical / (double)tot.pack_bytes);
	printf("\n");
	print_last_prune(r);
out:
	snapshot_list_free(list, n);
	repo_close(r);
	return ret;
}
