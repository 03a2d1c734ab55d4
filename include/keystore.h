/*
 * keystore: the key slots of a repository, keys/<slot id in hex>
 * (docs/FORMAT-2.md sections 4 and 5.1), read and written through struct
 * backend so that a local and an sftp:// repository behave alike.
 *
 * At most KEYSTORE_MAX_SLOTS slots: each one a passphrase must be tried
 * against costs an Argon2id of about a second, and a reader refuses a
 * keys/ directory with more (a server could otherwise make every unlock
 * arbitrarily slow).  The last slot cannot be removed.  Other files under
 * keys/ (the key ring, keys/ring-N) are not slots and are left alone.
 * Files are written atomically with mode 0600 (backend.h); two clients
 * adding slots at once may each see room for one more and end above the
 * limit, which readers then refuse until one is removed.
 */
#ifndef MV_KEYSTORE_H
#define MV_KEYSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "keyslot.h"
#include "mv_err.h"

#define KEYSTORE_DIR "keys"
#define KEYSTORE_MAX_SLOTS 8
/* a slot's name: its id in lower-case hex */
#define KEYSTORE_NAME_LEN (2 * KEYSLOT_ID_LEN)

struct keystore_slot {
	char name[KEYSTORE_NAME_LEN + 1]; /* hex slot id */
	uint8_t *data;			  /* the slot's bytes (malloc'ed) */
	size_t len;			  /* bytes in data */
};

struct keystore_list {
	struct keystore_slot slots[KEYSTORE_MAX_SLOTS]; /* sorted by name */
	size_t n;					/* slots in use */
};

/* Read every slot of the repository, sorted by name.  A slot file that is
 * not a well-formed slot of its own name is -EBADMSG naming it; more than
 * KEYSTORE_MAX_SLOTS slots is -EMSGSIZE; no keys/ directory gives n = 0.
 * Release with keystore_list_release. */
int keystore_list(struct backend *be, struct keystore_list *out,
		  struct mv_err *err);
void keystore_list_release(struct keystore_list *l);

/* Read the slot called name (-ENOENT when there is none). */
int keystore_read(struct backend *be, const char *name, uint8_t **out,
		  size_t *out_len, struct mv_err *err);

/* Store a slot (from keyslot_wrap) under its own name, written into
 * out_name (may be NULL).  -ENOSPC when KEYSTORE_MAX_SLOTS exist already,
 * -EEXIST when a slot of that id does, -EBADMSG for bytes that are not a
 * slot. */
int keystore_write(struct backend *be, const void *slot, size_t len,
		   char out_name[KEYSTORE_NAME_LEN + 1], struct mv_err *err);

/* Remove the slot called name.  -EPERM when it is the last slot (the
 * repository could not be opened again), -ENOENT when there is none. */
int keystore_remove(struct backend *be, const char *name, struct mv_err *err);

/*
 * Open the master key with pass: the slot called prefer first (the one
 * that opened last time; may be NULL), read without listing keys/, then
 * the others by name, each costing one Argon2id.  On success *out_mk
 * (keyslot_key_free) and, when out_name is not NULL, the slot that
 * opened.  -EKEYREJECTED "wrong passphrase: no key slot of REPO opens
 * with it (N tried)"; -ENOKEY when the repository has no slot.
 */
int keystore_unlock(struct backend *be,
		    const uint8_t repo_id[KEYSLOT_REPO_ID_LEN],
		    const char *pass, size_t pass_len, const char *prefer,
		    uint8_t **out_mk, char out_name[KEYSTORE_NAME_LEN + 1],
		    struct mv_err *err);

/*
 * Keyfiles: the same slot bytes in a file outside the repository
 * (--keyfile, MAILVAULT_KEYFILE, 'key export').  keystore_keyfile_write
 * writes data (a slot, or a paper form's text) to path with mode 0600
 * whatever the umask, synced, and never over an existing file (-EEXIST).
 * keystore_keyfile_read reads a slot back, checked as keyslot_parse does
 * (-EBADMSG naming the file; -EFBIG for a file larger than any slot).
 */
int keystore_keyfile_write(const char *path, const void *data, size_t len,
			   struct mv_err *err);
int keystore_keyfile_read(const char *path, uint8_t **out, size_t *out_len,
			  struct mv_err *err);

#endif
