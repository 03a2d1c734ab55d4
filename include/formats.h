/*
 * formats: where the code that reads and writes foreign formats lives.
 *
 * Tar streams (libarchive, ISA-L inflate), MIME parsing (GMime), tar
 * export, the zlib-plugin streams of Dovecot mail and IMAP (libetpan, for
 * restore-mail) pull in about 30 shared libraries - libxml2 and ICU
 * through libarchive, GIO and GPGME through GMime, Berkeley DB, SASL and
 * liblockfile through libetpan.  Mapping them is 40-70 ms of a cold
 * start, more than all of "mount, then ls a mailbox".  So the mailvault
 * binary is built without them and loads that code, as
 * mailvault-formats.so, on its first use:
 * mount, ls, cat, snapshots, forget, prune and check start with only the
 * libraries they need.
 *
 * The code in the plugin is the ordinary modules (source_tar.c,
 * source_mailcow.c, gzstream.c, mail_msg.c, mail_crypt_zlib.c,
 * restore_tar.c, and the restore-mail command with src/imap/); their
 * callers call them by their usual names.  In the
 * binary those names are forwarding functions (formats_plugin.c); in
 * libmailvault.a, which the unit tests and tools link, the modules are
 * linked in directly (formats_static.c).  See docs/ARCHITECTURE.md.
 */
#ifndef MV_FORMATS_H
#define MV_FORMATS_H

#include "mv_err.h"

/* File name of the plugin, looked for next to the mailvault binary, then
 * in MV_PLUGIN_DIR (set at build time, $(PREFIX)/lib/mailvault); the
 * environment variable MAILVAULT_PLUGIN names another file. */
#define FORMATS_PLUGIN_NAME "mailvault-formats.so"

/* 0 when the formats code is available (loading the plugin now if it is
 * not yet), else -ELIBACC with a message naming the files tried and why
 * they failed.  Commands that will need it call this first, so a missing
 * plugin stops them before they change anything. */
int formats_require(struct mv_err *err);

#endif
