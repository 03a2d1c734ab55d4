/*
 * mailvault key: the key slots of an encrypted repository
 * (docs/FORMAT-2.md section 4, "Key slots").  Every slot wraps the same
 * master key, so adding, removing or changing a passphrase re-wraps that
 * key and re-encrypts nothing.
 *
 *   key list [--json]             the slots, the one that opened marked
 *   key add                       a new slot for a new passphrase
 *   key remove SLOT               never the last one
 *   key change-passphrase         a new slot, then the old one removed
 *   key export [--paper] FILE     the slot that opened (a file, or text
 *                                 to print)
 *   key import [--keyfile F] FILE a slot back into keys/ (or into F)
 *
 * The current passphrase comes from the usual sources (cli_pass.h); a new
 * one from MAILVAULT_NEW_PASSPHRASE or the terminal (asked twice), never
 * from the variables of the current one, so a script cannot turn its old
 * passphrase into the "new" one by accident.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "cli.h"
#include "cli_pass.h"
#include "keyslot.h"
#include "keystore.h"
#include "repo.h"
#include "util.h"

static const char usage[] =
	"usage: mailvault key list [--json] REPO\n"
	"       mailvault key add REPO\n"
	"       mailvault key remove REPO SLOT\n"
	"       mailvault key change-passphrase REPO\n"
	"       mailvault key export [--paper] REPO FILE\n"
	"       mailvault key import [--paper] [--keyfile KEYFILE] REPO FILE\n"
	"REPO may be left out when MAILVAULT_REPO is set.  A new passphrase\n"
	"comes from MAILVAULT_NEW_PASSPHRASE or the terminal.\n";

/* The new passphrase of add and change-passphrase. */
static int new_pass(struct cli_pass *out, const char *repo, struct mv_err *err)
{
	static const char *const vars[] = {
		"MAILVAULT_PASSPHRASE", "MAILVAULT_PASSCOMMAND",
		"MAILVAULT_PASSPHRASE_FILE", "CREDENTIALS_DIRECTORY"};
	const char *v = getenv("MAILVAULT_NEW_PASSPHRASE");
	char prompt[512];
	size_t i;

	if (v && *v) {
		/* through cli_pass's own reading of a variable */
		if (setenv("MAILVAULT_PASSPHRASE", v, 1))
			return mv_err_set(err, -ENOMEM, "out of memory");
		for (i = 1; i < sizeof(vars) / sizeof(vars[0]); i++)
			unsetenv(vars[i]);
		return cli_pass_get(out, NULL, CLI_PASS_NEW, err);
	}
	for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
	snprintf(prompt, sizeof(prompt),
		 "mailvault: new passphrase for '%s': ", repo);
	return cli_pass_get(out, prompt, CLI_PASS_NEW, err);
}

static int need_encrypted(struct repo *r, const uint8_t **mk, const char **slot,
			  struct mv_err *err)
{
	*mk = repo_master_key(r, slot);
	if (!*mk)
		return mv_err_set(err, -EINVAL,
				  "'%s' is not encrypted: it has no keys",
				  repo_location(r));
	return 0;
}

static bool is_keyfile(const struct repo *r)
{
	return !strcmp(repo_get_config(r)->key_mode, "keyfile");
}

/* One slot as a JSON object (--json). */
static void slot_json(const char *name, const struct keyslot_info *info,
		      bool opened, bool first)
{
	printf("%s{\"name\":", first ? "" : ",");
	cli_json_str(name);
	printf(",\"kdf\":\"argon2id\",\"opslimit\":%llu,"
	       "\"memlimit\":%llu,\"opened\":%s}",
	       (unsigned long long)info->params.opslimit,
	       (unsigned long long)info->params.memlimit,
	       opened ? "true" : "false");
}

static int key_list(struct repo *r, bool json, struct mv_err *err)
{
	struct keystore_list l = {0};
	const uint8_t *mk;
	const char *opened;
	size_t i, shown = 0;
	int rc;

	rc = need_encrypted(r, &mk, &opened, err);
	if (rc)
		return rc;
	rc = keystore_list(repo_backend(r), &l, err);
	if (rc)
		return rc;
	if (json) {
		printf("{\"encryption\":");
		cli_json_str(repo_get_config(r)->encryption);
		printf(",\"key\":");
		cli_json_str(repo_get_config(r)->key_mode);
		printf(",\"slots\":[");
	} else {
		printf("encryption = %s\nkey = %s\n",
		       repo_get_config(r)->encryption,
		       repo_get_config(r)->key_mode);
	}
	for (i = 0; i < l.n; i++) {
		struct keyslot_info info;
		bool is_open = !strcmp(l.slots[i].name, opened);

		if (keyslot_parse(l.slots[i].data, l.slots[i].len, &info, NULL))
			continue;
		if (json)
			slot_json(l.slots[i].name, &info, is_open, !shown);
		else
			printf("%s argon2id t=%llu m=%llu MiB%s\n",
			       l.slots[i].name,
			       (unsigned long long)info.params.opslimit,
			       (unsigned long long)(info.params.memlimit >> 20),
			       is_open ? "  (opened)" : "");
		shown++;
	}
	if (json)
		printf("],\"slot_in_keyfile\":%s}\n",
		       !l.n && is_keyfile(r) ? "true" : "false");
	else if (!l.n && is_keyfile(r))
		printf("(the slot is in the key file)\n");
	keystore_list_release(&l);
	return 0;
}

/* A new slot wrapping the master key under a new passphrase: written into
 * keys/ (name into out_name) or, for a keyfile repository, returned in
 * slot for the caller. */
static int wrap_new(struct repo *r, const uint8_t *mk, struct mv_buf *slot,
		    char out_name[KEYSTORE_NAME_LEN + 1], struct mv_err *err)
{
	struct cli_pass np = CLI_PASS_INIT;
	struct keyslot_params kp;
	int rc;

	rc = new_pass(&np, repo_location(r), err);
	if (!rc)
		rc = keyslot_calibrate(&kp, NULL, err);
	if (!rc)
		rc = keyslot_wrap(mk, repo_get_config(r)->id, np.text, np.len,
				  &kp, slot, NULL, err);
	cli_pass_release(&np);
	if (!rc && !is_keyfile(r))
		rc = keystore_write(repo_backend(r), slot->data, slot->len,
				    out_name, err);
	return rc;
}

static int key_add(struct repo *r, struct mv_err *err)
{
	struct mv_buf slot = MV_BUF_INIT;
	char name[KEYSTORE_NAME_LEN + 1] = "";
	const uint8_t *mk;
	const char *opened;
	int rc;

	rc = need_encrypted(r, &mk, &opened, err);
	if (!rc && is_keyfile(r))
		rc = mv_err_set(err, -EINVAL,
				"'%s' keeps its one slot in a key file: "
				"'key change-passphrase' changes it",
				repo_location(r));
	if (!rc)
		rc = wrap_new(r, mk, &slot, name, err);
	mv_buf_release(&slot);
	if (!rc)
		printf("added key slot %s\n", name);
	return rc;
}

static int key_remove(struct repo *r, const char *name, struct mv_err *err)
{
	const uint8_t *mk;
	const char *opened;
	int rc;

	rc = need_encrypted(r, &mk, &opened, err);
	if (!rc)
		rc = keystore_remove(repo_backend(r), name, err);
	if (!rc)
		printf("removed key slot %s\n", name);
	return rc;
}

static int key_change(struct repo *r, struct mv_err *err)
{
	struct mv_buf slot = MV_BUF_INIT;
	char name[KEYSTORE_NAME_LEN + 1] = "", old[KEYSTORE_NAME_LEN + 1];
	const uint8_t *mk;
	const char *opened;
	int rc;

	rc = need_encrypted(r, &mk, &opened, err);
	if (rc)
		return rc;
	snprintf(old, sizeof(old), "%s", opened);
	rc = wrap_new(r, mk, &slot, name, err);
	if (!rc && is_keyfile(r)) {
		const char *kf = getenv("MAILVAULT_KEYFILE");
		char tmp[4096];

		/* the new file beside the old, then renamed over it */
		snprintf(tmp, sizeof(tmp), "%s.new", kf);
		rc = keystore_keyfile_write(tmp, slot.data, slot.len, err);
		if (!rc && rename(tmp, kf) < 0)
			rc = mv_err_set(err, -errno,
					"cannot rename '%s' to '%s': %s", tmp,
					kf, strerror(errno));
		if (!rc)
			printf("changed the passphrase of key file '%s'\n", kf);
	} else if (!rc) {
		/* the new slot is written: only now is the old one dropped */
		rc = keystore_remove(repo_backend(r), old, err);
		if (!rc)
			printf("changed the passphrase: slot %s replaces %s\n",
			       name, old);
	}
	mv_buf_release(&slot);
	return rc;
}

/* The bytes of the slot that opened the repository. */
static int opened_slot(struct repo *r, uint8_t **out, size_t *out_len,
		       struct mv_err *err)
{
	const uint8_t *mk;
	const char *opened;
	int rc;

	rc = need_encrypted(r, &mk, &opened, err);
	if (rc)
		return rc;
	if (is_keyfile(r))
		return keystore_keyfile_read(getenv("MAILVAULT_KEYFILE"), out,
					     out_len, err);
	return keystore_read(repo_backend(r), opened, out, out_len, err);
}

static int key_export(struct repo *r, const char *file, bool paper,
		      struct mv_err *err)
{
	uint8_t *slot = NULL;
	size_t len = 0;
	char *text = NULL;
	int rc;

	rc = opened_slot(r, &slot, &len, err);
	if (!rc && paper)
		rc = keyslot_paper_encode(slot, len, repo_get_config(r)->id,
					  &text, err);
	if (!rc && paper)
		rc = keystore_keyfile_write(file, text, strlen(text), err);
	else if (!rc)
		rc = keystore_keyfile_write(file, slot, len, err);
	if (!rc)
		printf("exported the key of '%s' to '%s'%s\n", repo_location(r),
		       file, paper ? " (paper form)" : "");
	free(text);
	free(slot);
	return rc;
}

/* Read FILE as a slot or as a paper form; the slot must open with the
 * passphrase for this repository (its id is in the slot's AAD), so a key
 * of another repository is refused before anything is written. */
static int key_import(struct repo *r, const char *file, const char *keyfile,
		      struct mv_err *err)
{
	const struct repo_config *c = repo_get_config(r);
	struct cli_pass pass = CLI_PASS_INIT;
	struct mv_buf slot = MV_BUF_INIT;
	char *text = NULL;
	size_t len = 0;
	uint8_t *mk = NULL;
	char name[KEYSTORE_NAME_LEN + 1] = "", prompt[512];
	int rc;

	if (strcmp(c->encryption, "none") == 0)
		return mv_err_set(err, -EINVAL,
				  "'%s' is not encrypted: it has no keys",
				  repo_location(r));
	rc = mv_read_file(file, 64 << 10, &text, &len, err);
	if (rc)
		return rc;
	if (len >= 6 && !memcmp(text, "MVKEY2", 6)) {
		rc = mv_buf_append(&slot, text, len);
	} else {
		uint8_t rid[MV_REPO_ID_LEN];

		rc = keyslot_paper_decode(text, &slot, rid, err);
		if (!rc && memcmp(rid, c->id, MV_REPO_ID_LEN))
			rc = mv_err_set(err, -EINVAL,
					"'%s' is the key of another "
					"repository",
					file);
	}
	free(text);
	snprintf(prompt, sizeof(prompt),
		 "mailvault: passphrase of the key "
		 "in '%s': ",
		 file);
	if (!rc)
		rc = cli_pass_get(&pass, prompt, 0, err);
	if (!rc)
		rc = keyslot_unwrap(slot.data, slot.len, c->id, pass.text,
				    pass.len, &mk, NULL, err);
	cli_pass_release(&pass);
	keyslot_key_free(mk);
	if (rc == -EKEYREJECTED) {
		mv_err_clear(err);
		rc = mv_err_set(err, rc,
				"wrong passphrase: the key in '%s' does not "
				"open with it (or is not a key of '%s')",
				file, repo_location(r));
	}
	if (!rc && keyfile)
		rc = keystore_keyfile_write(keyfile, slot.data, slot.len, err);
	else if (!rc)
		rc = keystore_write(repo_backend(r), slot.data, slot.len, name,
				    err);
	if (!rc && keyfile)
		printf("imported the key into key file '%s'\n", keyfile);
	else if (!rc)
		printf("imported the key as slot %s\n", name);
	mv_buf_release(&slot);
	return rc;
}

int cmd_key(int argc, char **argv)
{
	static const struct option opts[] = {
		{"paper", no_argument, NULL, 'p'},
		{"keyfile", required_argument, NULL, 'k'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct mv_err err = MV_ERR_INIT;
	struct repo *r = NULL;
	const char *sub, *repo, *keyfile = NULL, *arg = NULL;
	bool paper = false, json = false;
	int c, rc, rest, want;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (c == 'h') {
			cli_help_print("key", stdout);
			return MV_EXIT_OK;
		}
		fputs(usage, stderr);
		return MV_EXIT_USAGE;
	}
	if (optind >= argc)
		return cli_usage("key", "give a subcommand: list, add, "
					"remove, change-passphrase, export, "
					"import");
	sub = argv[optind++];
	/* options of the subcommand, after its name */
	argv[optind - 1] = argv[0];
	argc -= optind - 1;
	argv += optind - 1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			paper = true;
			break;
		case 'k':
			keyfile = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			cli_help_print("key", stdout);
			return MV_EXIT_OK;
		default:
			fputs(usage, stderr);
			return MV_EXIT_USAGE;
		}
	}
	if (!strcmp(sub, "list") || !strcmp(sub, "add") ||
	    !strcmp(sub, "change-passphrase"))
		want = 0;
	else if (!strcmp(sub, "remove") || !strcmp(sub, "export") ||
		 !strcmp(sub, "import"))
		want = 1;
	else
		return cli_usage("key", "unknown subcommand '%s'", sub);
	/* import tells a paper form from a slot by itself: --paper is
	 * accepted there as the paper form's own text says to type it */
	if ((paper && strcmp(sub, "export") && strcmp(sub, "import")) ||
	    (keyfile && strcmp(sub, "import")))
		return cli_usage("key", "--paper is for export and import, "
					"--keyfile for import");
	if (json && strcmp(sub, "list"))
		return cli_usage("key", "--json is for list");
	rest = argc - optind;
	if (rest == want + 1)
		repo = argv[optind++];
	else if (rest == want)
		repo = cli_repo_arg(NULL);
	else
		repo = NULL;
	if (!repo)
		return cli_usage("key", "give REPO%s",
				 want ? " and one more "
					"argument"
				      : "");
	if (want)
		arg = argv[optind];
	if (!strcmp(sub, "import")) {
		/* the repository may have no slot left to open it with */
		rc = repo_open_bare(repo, REPO_OPEN_NO_KEY, &r, &err);
		if (!rc)
			rc = key_import(r, arg, keyfile, &err);
	} else {
		rc = repo_open_bare(repo, REPO_OPEN_READ, &r, &err);
		if (rc == 0 && !strcmp(sub, "list"))
			rc = key_list(r, json, &err);
		else if (rc == 0 && !strcmp(sub, "add"))
			rc = key_add(r, &err);
		else if (rc == 0 && !strcmp(sub, "remove"))
			rc = key_remove(r, arg, &err);
		else if (rc == 0 && !strcmp(sub, "change-passphrase"))
			rc = key_change(r, &err);
		else if (rc == 0)
			rc = key_export(r, arg, paper, &err);
	}
	repo_close(r);
	return rc ? cli_fail(&err) : MV_EXIT_OK;
}
