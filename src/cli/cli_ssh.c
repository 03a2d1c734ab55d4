/*
 * cli_ssh: the SSH options every command accepts (-i FILE,
 * --accept-new-host-key, --ssh-config FILE), taken out of argv before the
 * command parses its own options, and handed to the remote layer as the
 * defaults for every sftp://, ssh:// and ssh-exec:// location the command
 * opens.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ssh.h"
#include "ssh_config.h"

/* Options of commands whose value may look like one of ours ("--exec -i"
 * is a command to run, not an identity). */
static bool takes_value(const char *a)
{
	static const char *const names[] = {"--exec", "--name", "--tag",
					    "--time", "-o"};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(a, names[i]))
			return true;
	return false;
}

static int bad_identity(const char *cmd, const char *file)
{
	return cli_usage(cmd, "cannot read identity file '%s': %s", file,
			 strerror(errno));
}

int cli_ssh_options(int *argc, char **argv)
{
	struct ssh_opts o;
	const char *cmd = *argc > 1 ? argv[1] : "mailvault";
	const char *config = NULL;
	int i, out = 2;
	bool rest = false;

	ssh_opts_init(&o);
	for (i = 2; i < *argc; i++) {
		const char *a = argv[i];

		if (rest) {
			argv[out++] = argv[i];
			continue;
		}
		if (!strcmp(a, "--")) {
			rest = true;
			argv[out++] = argv[i];
		} else if (!strcmp(a, "--accept-new-host-key")) {
			o.accept_new_host_key = true;
		} else if (!strcmp(a, "-i") || !strcmp(a, "--identity")) {
			if (i + 1 >= *argc)
				return cli_usage(cmd, "%s needs a key file", a);
			o.identity = argv[++i];
		} else if (!strcmp(a, "--ssh-config")) {
			if (i + 1 >= *argc)
				return cli_usage(
					cmd, "%s needs a file (or none)", a);
			config = argv[++i];
		} else if (!strncmp(a, "--ssh-config=", 13)) {
			config = a + 13;
		} else if (!strncmp(a, "--identity=", 11)) {
			o.identity = a + 11;
		} else if (!strncmp(a, "-i", 2)) {
			o.identity = a + 2;
		} else {
			argv[out++] = argv[i];
			if (takes_value(a) && i + 1 < *argc)
				argv[out++] = argv[++i];
		}
	}
	if (o.identity && access(o.identity, R_OK) < 0)
		return bad_identity(cmd, o.identity);
	if (config && strcmp(config, "none") && access(config, R_OK) < 0)
		return cli_usage(cmd, "cannot read ssh configuration '%s': %s",
				 config, strerror(errno));
	argv[out] = NULL;
	*argc = out;
	ssh_set_default_opts(&o);
	if (config)
		ssh_config_set_file(config);
	return 0;
}
