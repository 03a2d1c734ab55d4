/*
 * cli_help: the text of "mailvault CMD --help" and "mailvault help CMD",
 * one entry per command of main.c's table, each with every option the
 * command parses and an example.  tests/integration/t0060-help.sh takes
 * the options from each command's getopt tables and fails when one is
 * not described here; man/mailvault.1 says the same at length.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

struct help {
	const char *cmd;
	const char *text;
};

#define COMMON                                                               \
	"  -h, --help   this text\n"                                         \
	"REPO is a directory or sftp://[user@]host[:port]/path; "            \
	"$MAILVAULT_REPO may\n"                                              \
	"stand for it.  SSH: -i FILE (--identity), --accept-new-host-key,\n" \
	"--ssh-config FILE|none; host may be a Host alias of ~/.ssh/config.\n"

static const struct help helps[] = {
	{"init",
	 "usage: mailvault init [OPTIONS] REPO\n"
	 "\n"
	 "Create a repository, encrypted by default (XChaCha20-Poly1305; a "
	 "random\n"
	 "master key wrapped by the passphrase with Argon2id).\n"
	 "\n"
	 "Options:\n"
	 "  --encryption xchacha20-poly1305|none\n"
	 "               none: unencrypted, for a disk you trust\n"
	 "  --key-mode repokey|keyfile\n"
	 "               where the wrapped key lives: REPO/keys/ (default) "
	 "or a file\n"
	 "  --keyfile FILE\n"
	 "               the key file of --key-mode keyfile (must not "
	 "exist); later\n"
	 "               commands find it through $MAILVAULT_KEYFILE\n"
	 "  --append-only\n"
	 "               refuse forget, prune and repair until 'config "
	 "append-only off'\n"
	 "  --chunk-avg BYTES\n"
	 "               average chunk size of the content-defined chunker\n"
	 "  --zstd-level N\n"
	 "               zstd compression level of new data\n"
	 "  --copy-chunker-params FROM_REPO\n"
	 "               chunker and hashing secret of another unencrypted "
	 "repository:\n"
	 "               both then cut and name the same data alike\n" COMMON
	 "The passphrase comes from MAILVAULT_PASSPHRASE, "
	 "MAILVAULT_PASSCOMMAND,\n"
	 "MAILVAULT_PASSPHRASE_FILE, $CREDENTIALS_DIRECTORY/"
	 "mailvault-passphrase or the\n"
	 "terminal (asked twice).\n"
	 "\n"
	 "Example:\n"
	 "  mailvault init /srv/backup/mailvault\n"
	 "  mailvault init --encryption none /mnt/usb/vault\n"},
	{"backup",
	 "usage: mailvault backup [REPO] --name NAME [OPTIONS] "
	 "LABEL=SOURCE...\n"
	 "\n"
	 "Store the sources as one snapshot NAME/TIME; each becomes the "
	 "top-level\n"
	 "directory LABEL.  SOURCE is one of:\n"
	 "  DIR              a directory (unchanged files are not read "
	 "again)\n"
	 "  FILE             a tar archive (tar, gz, zst, xz, bz2); a file "
	 "that is not\n"
	 "                   an archive (a database dump) is stored as "
	 "LABEL/FILE\n"
	 "  file:PATH        PATH as one file, LABEL/NAME, archive or not\n"
	 "  -                stdin as a tar stream; with --stdin-name, as "
	 "one file\n"
	 "  ssh://[user@]host[:port]/path      a directory over SFTP\n"
	 "  ssh-exec://[user@]host[:port]      the stdout of --exec "
	 "COMMAND, as tar\n"
	 "\n"
	 "Options:\n"
	 "  --name NAME        the job name (required; no '/')\n"
	 "  --time T           the snapshot's time: 2024-05-01T12:00:00Z or "
	 "@SECONDS\n"
	 "                     (import an old archive under its real date)\n"
	 "  --tag K=V          a tag on the snapshot (repeatable)\n"
	 "  --exclude PATTERN  leave out what matches, on the path inside "
	 "the source\n"
	 "                     (repeatable; directory and tar sources): "
	 "'*.tmp' at any\n"
	 "                     depth, '/cache' at the top only, '**' any "
	 "depth, an\n"
	 "                     excluded directory takes its subtree, 'dir/' "
	 "matches\n"
	 "                     directories only\n"
	 "  --exclude-from FILE  patterns, one a line ('#' comments)\n"
	 "  --dry-run          read the sources and report what would be "
	 "added; write\n"
	 "                     nothing, take no lock\n"
	 "  --stdin-name NAME  store the '-' source as one file LABEL/NAME "
	 "(mode 0600,\n"
	 "                     time now), not as a tar stream\n"
	 "  --exec COMMAND     the command of the next ssh-exec:// source, "
	 "in order\n"
	 "  --partial          after an input error, commit what was read as "
	 "a partial\n"
	 "                     snapshot (still exits 1)\n"
	 "  --wait[=SECONDS]   wait for another writer's lock (for ever, or "
	 "that long)\n"
	 "  --json             the summary as JSON on stdout\n"
	 "  --quiet            no progress line, no summary\n"
	 "  --no-mail          no mail view (mail/, maildir/) and no "
	 "catalogue\n"
	 "  --mailcow-keys DIR the mail_crypt keys of mailcow's "
	 "encrypted mailboxes\n"
	 "  --index-body       put message body text into the search "
	 "catalogue\n" COMMON "\n"
	 "Example:\n"
	 "  ssh mail 'docker run --rm -v stalwart-data:/data:ro alpine tar "
	 "-czf - -C /data .' |\n"
	 "    mailvault backup /srv/backup/mailvault --name stalwart "
	 "volume=- \\\n"
	 "      config=/opt/stalwart/etc --exclude '*.tmp'\n"
	 "  pg_dump mail | mailvault backup --name db --stdin-name mail.sql "
	 "dump=-\n"},
	{"snapshots",
	 "usage: mailvault snapshots [--json] [--name NAME] [REPO]\n"
	 "\n"
	 "List snapshots: id, name/time, files, size, host, tags.\n"
	 "\n"
	 "Options:\n"
	 "  --json       an array of objects (mailvault(1): JSON OUTPUT)\n"
	 "  --name NAME  only the snapshots of job NAME\n" COMMON "\n"
	 "Example:\n"
	 "  mailvault snapshots /srv/backup/mailvault --name stalwart\n"},
	{"ls",
	 "usage: mailvault ls [-l] [--json] [REPO] SNAP[:PATH]\n"
	 "\n"
	 "List a directory of a snapshot.  SNAP is NAME/latest, NAME/TIME or "
	 "an id\n"
	 "prefix.\n"
	 "\n"
	 "Options:\n"
	 "  -l, --long   mode, owner, size, time\n"
	 "  --json       one object per entry (name, type, mode, uid, gid, "
	 "size, mtime)\n" COMMON "\n"
	 "Example:\n"
	 "  mailvault ls -l /srv/backup/mailvault stalwart/latest:volume\n"},
	{"cat",
	 "usage: mailvault cat [REPO] SNAP:PATH\n"
	 "\n"
	 "Write a file of a snapshot to stdout.\n"
	 "\n"
	 "Options:\n" COMMON "\n"
	 "Example:\n"
	 "  mailvault cat /srv/backup/mailvault db/latest:dump/mail.sql > "
	 "mail.sql\n"},
	{"restore",
	 "usage: mailvault restore [-v] [--json] [REPO] SNAP[:PATH] DIR\n"
	 "\n"
	 "Restore into DIR with owners, modes, times, xattrs, ACLs, hard "
	 "links and\n"
	 "holes; nothing is written outside DIR.\n"
	 "\n"
	 "Options:\n"
	 "  -v, --verbose  name every path restored\n"
	 "  --json         the summary as one JSON object (files, dirs, "
	 "bytes,\n"
	 "                 errors)\n" COMMON "\n"
	 "Example:\n"
	 "  mailvault restore /srv/backup/mailvault "
	 "stalwart/latest:volume /tmp/volume\n"},
	{"export-tar",
	 "usage: mailvault export-tar [-z] [REPO] SNAP[:PATH] > out.tar\n"
	 "       mailvault export-tar --mailcow [REPO] "
	 "SNAP:PATH/mailcow-... OUTDIR\n"
	 "\n"
	 "Write a tree as a pax tar stream (members ./...), or a mailcow "
	 "backup\n"
	 "folder as mailcow's backup_and_restore.sh restores it.\n"
	 "\n"
	 "Options:\n"
	 "  -z, --gzip   gzip the stream\n"
	 "  --mailcow    write the folder's archives into OUTDIR\n" COMMON "\n"
	 "Example:\n"
	 "  mailvault export-tar R stalwart/latest:volume | "
	 "tar -xf - -C /srv/restore\n"},
	{"stats",
	 "usage: mailvault stats [--json] [REPO]\n"
	 "\n"
	 "Sizes per snapshot and in total, with the dedup and compression "
	 "ratio.\n"
	 "\n"
	 "Options:\n"
	 "  --json       one JSON object\n" COMMON "\n"
	 "Example:\n"
	 "  mailvault stats /srv/backup/mailvault\n"},
	{"check",
	 "usage: mailvault check [--read-data | --read-data-subset N%|N/M] "
	 "[--repair\n"
	 "                       [--wait]] [--json] [REPO]\n"
	 "\n"
	 "Verify the index, the packs and every snapshot's references; read "
	 "and\n"
	 "re-hash data (1% of the packs by default).  Exit 13 on damage.\n"
	 "\n"
	 "Options:\n"
	 "  --read-data           read every pack\n"
	 "  --read-data-subset N%|N/M\n"
	 "                        read N percent of the packs, or group N of "
	 "M\n"
	 "  --repair              rebuild and repair after damage; no "
	 "snapshot is removed\n"
	 "  --wait                with --repair: wait for the writer lock\n"
	 "  --json                the findings as one JSON object\n" COMMON "\n"
	 "Example:\n"
	 "  mailvault check --read-data-subset 1/7 /srv/backup/mailvault\n"},
	{"mount",
	 "usage: mailvault mount [-f] [-o OPTIONS] REPO MOUNTPOINT\n"
	 "\n"
	 "Mount every snapshot read-only: MOUNTPOINT/NAME/TIME/LABEL/...\n"
	 "\n"
	 "Options:\n"
	 "  -f           stay in the foreground\n"
	 "  -o OPTIONS   comma-separated: allow_other, default_permissions,\n"
	 "               cache_size=MiB, debug\n" COMMON
	 "See mailvault-mount(1).\n"
	 "\n"
	 "Example:\n"
	 "  mailvault mount /srv/backup/mailvault /mnt/mailvault && "
	 "ls /mnt/mailvault\n"
	 "  fusermount3 -u /mnt/mailvault\n"},
	{"forget",
	 "usage: mailvault forget [--name NAME] [--keep-RULE N]... "
	 "[--keep-within D]\n"
	 "                        [--dry-run] [--list] [--json] [--wait] "
	 "[REPO]\n"
	 "\n"
	 "Remove snapshots by a retention policy, per job, as borg prune 1.2 "
	 "does.\n"
	 "Space is reclaimed by prune.\n"
	 "\n"
	 "Options:\n"
	 "  --name NAME          only the snapshots of job NAME\n"
	 "  --keep-last N        the N newest (also --keep-secondly)\n"
	 "  --keep-secondly N    the newest of each of N seconds\n"
	 "  --keep-minutely N    the newest of each of N minutes\n"
	 "  --keep-hourly N      the newest of each of N hours\n"
	 "  --keep-daily N       the newest of each of N days\n"
	 "  --keep-weekly N      the newest of each of N ISO weeks\n"
	 "  --keep-monthly N     the newest of each of N months\n"
	 "  --keep-yearly N      the newest of each of N years\n"
	 "  --keep-within D      all within D: NH, Nd, Nw, Nm (31 days), Ny\n"
	 "  --dry-run            show what would go; remove nothing\n"
	 "  -n                   the same as --dry-run\n"
	 "  --list               one line per snapshot: keep or remove, and "
	 "why\n"
	 "  --json               the decision as JSON\n"
	 "  --wait               wait for the writer lock\n"
	 "N is a count, -1 for no limit.\n" COMMON "\n"
	 "Example:\n"
	 "  mailvault forget --name stalwart --keep-daily 7 --keep-weekly 4 "
	 "\\\n"
	 "    --keep-monthly 12 --dry-run --list /srv/backup/mailvault\n"},
	{"prune",
	 "usage: mailvault prune [--dry-run] [--max-unused PERCENT] "
	 "[--orphan-grace S]\n"
	 "                       [--wait] [--verbose] [--json] [REPO]\n"
	 "\n"
	 "Reclaim the space of forgotten snapshots: delete unused packs, "
	 "repack\n"
	 "partly used ones.\n"
	 "\n"
	 "Options:\n"
	 "  -n, --dry-run          show what would be deleted and repacked\n"
	 "  --max-unused PERCENT   unused space left in packs (default 2%); "
	 "0 repacks\n"
	 "                         every pack with unused space, "
	 "'unlimited' only\n"
	 "                         deletes wholly unused packs\n"
	 "  --orphan-grace SECONDS files the index does not name are removed "
	 "when\n"
	 "                         older (default 3600, "
	 "$MAILVAULT_PRUNE_GRACE)\n"
	 "  --wait                 wait for the writer lock\n"
	 "  -v, --verbose          name every pack\n"
	 "  --json                 the plan or the result as JSON\n" COMMON "\n"
	 "Example:\n"
	 "  mailvault prune --dry-run --json /srv/backup/mailvault\n"},
	{"rebuild-index",
	 "usage: mailvault rebuild-index [--wait] [--verbose] [REPO]\n"
	 "\n"
	 "Rebuild index.db from the packs alone.\n"
	 "\n"
	 "Options:\n"
	 "  --wait         wait for the writer lock\n"
	 "  -v, --verbose  report every pack read\n" COMMON "\n"
	 "Example:\n"
	 "  mailvault rebuild-index /srv/backup/mailvault\n"},
	{"config",
	 "usage: mailvault config [--json] REPO [append-only on|off]\n"
	 "\n"
	 "Show the repository's settings, or change append-only.\n"
	 "\n"
	 "Options:\n"
	 "  --json       the settings as one JSON object\n" COMMON "\n"
	 "Example:\n"
	 "  mailvault config /srv/backup/mailvault append-only on\n"},
	{"unlock",
	 "usage: mailvault unlock [--force] REPO\n"
	 "\n"
	 "Show the writer lock and remove it when its holder is provably "
	 "gone.\n"
	 "\n"
	 "Options:\n"
	 "  -f, --force  remove a lock that cannot be judged from here "
	 "(another\n"
	 "               machine, before a reboot, a remote "
	 "repository)\n" COMMON "\n"
	 "Example:\n"
	 "  mailvault unlock /srv/backup/mailvault\n"},
	{"find",
	 "usage: mailvault find [REPO] [OPTIONS]\n"
	 "\n"
	 "Search the catalogue of backed-up messages; exit 1 when nothing "
	 "matches.\n"
	 "\n"
	 "Options:\n"
	 "  --from X          sender contains X\n"
	 "  --to X            a recipient contains X\n"
	 "  --subject X       subject contains X\n"
	 "  --text X          body text contains X (backups with "
	 "--index-body)\n"
	 "  --since D         sent on or after D (2024-05-01 or ISO 8601)\n"
	 "  --until D         sent before D\n"
	 "  --account A       only account A\n"
	 "  --name JOB        only snapshots of job JOB\n"
	 "  --snapshot SNAP   only that snapshot\n"
	 "  --deleted         messages gone from the latest snapshot of "
	 "their job\n"
	 "  --limit N         at most N results\n"
	 "  --json            one JSON object per line\n"
	 "  --rebuild         rebuild the local catalogue from the "
	 "repository's\n"
	 "                    catalogue segments first\n" COMMON "\n"
	 "Example:\n"
	 "  mailvault find /srv/backup/mailvault --from alice@ --subject "
	 "invoice\n"},
	{"diff",
	 "usage: mailvault diff [REPO] SNAP1 SNAP2 [--mail] [--quiet] "
	 "[--json]\n"
	 "\n"
	 "Files added (+), removed (-) and changed (M) between two "
	 "snapshots.\n"
	 "\n"
	 "Options:\n"
	 "  --mail       messages added, removed and moved instead of files\n"
	 "  -q, --quiet  only the counts\n"
	 "  --json       the changes and counts as one JSON object\n" COMMON
	 "\n"
	 "Example:\n"
	 "  mailvault diff /srv/backup/mailvault stalwart/2026-02-01T030000Z "
	 "stalwart/latest\n"},
	{"key",
	 "usage: mailvault key list REPO\n"
	 "       mailvault key add REPO\n"
	 "       mailvault key remove REPO SLOT\n"
	 "       mailvault key change-passphrase REPO\n"
	 "       mailvault key export [--paper] REPO FILE\n"
	 "       mailvault key import [--paper] [--keyfile KEYFILE] REPO "
	 "FILE\n"
	 "\n"
	 "Manage the key slots of an encrypted repository.  A new "
	 "passphrase comes\n"
	 "from MAILVAULT_NEW_PASSPHRASE or the terminal.\n"
	 "\n"
	 "Options:\n"
	 "  --paper            export: text to print; import: read that "
	 "text\n"
	 "  --keyfile KEYFILE  import into a key file instead of a "
	 "slot\n" COMMON "\n"
	 "Example:\n"
	 "  mailvault key export --paper /srv/backup/mailvault "
	 "~/mailvault-key.txt\n"},
	/* run prints its own text (src/cli/cmd_run.c) */
};

const char *cli_help_text(const char *cmd)
{
	size_t i;

	for (i = 0; i < sizeof(helps) / sizeof(helps[0]); i++)
		if (!strcmp(helps[i].cmd, cmd))
			return helps[i].text;
	return NULL;
}

void cli_help_print(const char *cmd, FILE *f)
{
	const char *t = cli_help_text(cmd);

	if (t)
		fputs(t, f);
}
