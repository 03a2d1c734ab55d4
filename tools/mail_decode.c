/*
 * mail_decode: print the message inside a Dovecot/mailcow maildir file.
 *
 *   mail_decode [-k KEYDIR] [-l] FILE
 *
 * Decrypts (with KEYDIR/ecprivkey.pem) and decompresses FILE and writes the
 * message bytes to standard output.  -l prints the layers found instead.
 * Exit status: 0 decoded, 1 failure (message on stderr), 2 usage,
 * 3 missing or wrong key (-ENOKEY), 4 truncated or corrupt (-EBADMSG).
 */
#include "mail_crypt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void print_layers(unsigned l)
{
	printf("%s%s%s%s%s%s%s\n", l ? "" : "plain",
	       l & MAIL_CRYPT_ENCRYPTED ? "encrypted " : "",
	       l & MAIL_CRYPT_LZ4 ? "lz4" : "",
	       l & MAIL_CRYPT_ZSTD ? "zstd" : "",
	       l & MAIL_CRYPT_GZIP ? "gzip" : "",
	       l & MAIL_CRYPT_BZIP2 ? "bzip2" : "",
	       l & MAIL_CRYPT_XZ ? "xz" : "");
}

int main(int argc, char **argv)
{
	struct mv_err err = MV_ERR_INIT;
	struct mail_crypt_keys *keys = NULL;
	struct mv_buf out = MV_BUF_INIT;
	const char *keydir = NULL;
	char *data = NULL;
	size_t len = 0;
	unsigned layers = 0;
	int opt, rc, status = 1;
	bool list = false;

	while ((opt = getopt(argc, argv, "k:l")) != -1) {
		switch (opt) {
		case 'k':
			keydir = optarg;
			break;
		case 'l':
			list = true;
			break;
		default:
			goto usage;
		}
	}
	if (optind + 1 != argc)
		goto usage;
	if (mail_crypt_keys_new(&keys, &err) < 0)
		goto fail;
	if (keydir && mail_crypt_keys_load_dir(keys, keydir, &err) < 0)
		goto fail;
	if (mv_read_file(argv[optind], MAIL_CRYPT_MAX_OUT, &data, &len, &err) <
	    0)
		goto fail;
	rc = mail_crypt_decode(data, len, keys, &out, &layers, &err);
	if (rc < 0) {
		fprintf(stderr, "mail_decode: '%s': %s\n", argv[optind],
			mv_err_msg(&err));
		status = rc == -ENOKEY ? 3 : rc == -EBADMSG ? 4 : 1;
		goto out;
	}
	if (list)
		print_layers(layers);
	else if (out.len && fwrite(out.data, 1, out.len, stdout) != out.len)
		goto out;
	status = 0;
	goto out;
usage:
	fprintf(stderr, "usage: mail_decode [-k KEYDIR] [-l] FILE\n");
	return 2;
fail:
	fprintf(stderr, "mail_decode: %s\n", mv_err_msg(&err));
out:
	free(data);
	mv_buf_release(&out);
	mail_crypt_keys_free(keys);
	return status;
}
