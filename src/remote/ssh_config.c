/*
 * ssh_config: the user's OpenSSH configuration for a host, read from
 * `ssh -G`, and ProxyJump / ProxyCommand children (see
 * include/ssh_config.h and docs/REMOTE.md).
 *
 * `ssh -G` costs a fork and an exec (a few milliseconds) and no network
 * traffic; its output is cached per process, so a backend's pool of
 * sessions and its reconnections ask once.
 */
#include "ssh_config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

extern char **environ;

#define OUTPUT_MAX (256u << 10)
#define CACHE_SLOTS 8
#define SYSTEM_CONFIG "/etc/ssh/ssh_config"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *config_file_opt; /* --ssh-config, NULL when not given */
static bool config_file_set;

struct cache_slot {
	char *key;  /* file \n user \n host \n port */
	char *text; /* what ssh -G printed */
};
static struct cache_slot cache[CACHE_SLOTS];
static unsigned cache_next;

void ssh_debug(const char *fmt, ...)
{
	const char *v = getenv("MAILVAULT_SSH_DEBUG");
	va_list ap;

	if (!v || !*v || !strcmp(v, "0"))
		return;
	va_start(ap, fmt);
	fputs("mailvault: ssh: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

void ssh_config_set_file(const char *s)
{
	pthread_mutex_lock(&lock);
	free(config_file_opt);
	config_file_opt = s ? strdup(s) : NULL;
	config_file_set = s != NULL;
	pthread_mutex_unlock(&lock);
}

static const char *pw_home(void);

static bool same_dir(const char *a, const char *b)
{
	struct stat sa, sb;

	if (stat(a, &sa) < 0 || stat(b, &sb) < 0)
		return !strcmp(a, b);
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* The -F file into out ("" for OpenSSH's own choice).  OpenSSH reads
 * ~/.ssh/config from the passwd entry's home; mailvault's ~ is $HOME
 * (known_hosts, keys), so when $HOME is elsewhere, $HOME/.ssh/config is
 * read (as -F: the one the user sees as ~/.ssh/config), or when there is
 * none, /etc/ssh/ssh_config alone: never the passwd home's file. */
static void config_file(char *out, size_t n)
{
	const char *env = getenv("MAILVAULT_SSH_CONFIG");
	const char *home = getenv("HOME");

	pthread_mutex_lock(&lock);
	if (config_file_set)
		snprintf(out, n, "%s", config_file_opt ? config_file_opt : "");
	else
		snprintf(out, n, "%s", env ? env : "");
	pthread_mutex_unlock(&lock);
	if (!*out && home && *home && !same_dir(home, pw_home())) {
		snprintf(out, n, "%s/.ssh/config", home);
		if (access(out, R_OK) < 0)
			snprintf(out, n, "%s",
				 access(SYSTEM_CONFIG, R_OK) < 0
					 ? ""
					 : SYSTEM_CONFIG);
	}
}

static const char *ssh_binary(void)
{
	const char *b = getenv("MAILVAULT_SSH");

	return b && *b ? b : "ssh";
}

static const char *pw_home(void)
{
	struct passwd *pw = getpwuid(getuid());

	return pw ? pw->pw_dir : "/";
}

void ssh_host_config_release(struct ssh_host_config *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < c->n_identity_files; i++)
		free(c->identity_files[i]);
	for (i = 0; i < c->n_known_hosts; i++)
		free(c->known_hosts[i]);
	for (i = 0; i < c->n_global_known_hosts; i++)
		free(c->global_known_hosts[i]);
	free(c->identity_files);
	free(c->known_hosts);
	free(c->global_known_hosts);
	free(c->host);
	free(c->hostname);
	free(c->user);
	free(c->proxy_jump);
	free(c->proxy_command);
	free(c->host_key_alias);
	memset(c, 0, sizeof(*c));
}

static int push(char ***list, size_t *n, const char *s, size_t len)
{
	char **l = realloc(*list, (*n + 1) * sizeof(*l));

	if (!l)
		return -ENOMEM;
	*list = l;
	l[*n] = strndup(s, len);
	if (!l[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

static void free_list(char ***list, size_t *n)
{
	size_t i;

	for (i = 0; i < *n; i++)
		free((*list)[i]);
	free(*list);
	*list = NULL;
	*n = 0;
}

/* Expand a leading ~ and OpenSSH's %-tokens (%% %d %h %n %p %r %u) of in;
 * an unknown token stays as written.  Returns a new string or NULL. */
static char *expand(const char *in, const struct ssh_host_config *c,
		    const char *home, const char *local_user)
{
	struct mv_buf b = {0};
	char port[16];
	const char *p = in;

	snprintf(port, sizeof(port), "%d", c->port);
	if (p[0] == '~' && (p[1] == '/' || p[1] == '\0')) {
		if (mv_buf_append(&b, home, strlen(home)))
			goto fail;
		p++;
	}
	for (; *p; p++) {
		const char *v = NULL;

		if (*p == '%' && p[1]) {
			switch (p[1]) {
			case '%':
				v = "%";
				break;
			case 'd':
				v = home;
				break;
			case 'h':
				v = c->hostname;
				break;
			case 'n':
				v = c->host;
				break;
			case 'p':
				v = port;
				break;
			case 'r':
				v = c->user ? c->user : local_user;
				break;
			case 'u':
				v = local_user;
				break;
			default:
				break;
			}
		}
		if (v) {
			if (mv_buf_append(&b, v, strlen(v)))
				goto fail;
			p++;
		} else if (mv_buf_append(&b, p, 1)) {
			goto fail;
		}
	}
	if (mv_buf_append(&b, "", 1))
		goto fail;
	return (char *)b.data;
fail:
	mv_buf_release(&b);
	return NULL;
}

/* OpenSSH's default identity files, which it lists when none is set */
static bool is_default_identity(const char *f)
{
	static const char *const names[] = {
		"id_rsa",	 "id_ecdsa", "id_ecdsa_sk", "id_ed25519",
		"id_ed25519_sk", "id_xmss",  "id_dsa"};
	size_t i;

	if (strncmp(f, "~/.ssh/", 7))
		return false;
	for (i = 0; i < MV_ARRAY_SIZE(names); i++)
		if (!strcmp(f + 7, names[i]))
			return true;
	return false;
}

/* UserKnownHostsFile as OpenSSH sets it when the configuration is silent:
 * the home of the passwd entry, .ssh/known_hosts and known_hosts2 */
static bool is_default_known_hosts(char **l, size_t n)
{
	char a[4096], b[4096];

	if (n != 2)
		return false;
	snprintf(a, sizeof(a), "%s/.ssh/known_hosts", pw_home());
	snprintf(b, sizeof(b), "%s/.ssh/known_hosts2", pw_home());
	return (!strcmp(l[0], a) || !strcmp(l[0], "~/.ssh/known_hosts")) &&
	       (!strcmp(l[1], b) || !strcmp(l[1], "~/.ssh/known_hosts2"));
}

static int split_words(const char *v, char ***list, size_t *n)
{
	while (*v) {
		size_t len = strcspn(v, " \t");

		if (len && push(list, n, v, len))
			return -ENOMEM;
		v += len;
		v += strspn(v, " \t");
	}
	return 0;
}

int ssh_config_parse(const char *text, const struct ssh_url *u,
		     const char *home, const char *local_user,
		     struct ssh_host_config *out, struct mv_err *err)
{
	struct ssh_host_config c;
	const char *line = text;
	bool all_default = true;
	size_t i;
	int rc = -ENOMEM;

	memset(&c, 0, sizeof(c));
	c.port = u->port ? u->port : 22;
	c.from_openssh = true;
	c.host = strdup(u->host);
	if (!c.host)
		goto fail;
	while (*line) {
		size_t len = strcspn(line, "\n");
		const char *sp = memchr(line, ' ', len);
		char key[64], *val;
		size_t klen;

		if (!sp || (size_t)(sp - line) >= sizeof(key)) {
			line += len + (line[len] == '\n');
			continue;
		}
		klen = (size_t)(sp - line);
		memcpy(key, line, klen);
		key[klen] = '\0';
		val = strndup(sp + 1, len - klen - 1);
		if (!val)
			goto fail;
		line += len + (line[len] == '\n');
		if (!strcmp(key, "hostname")) {
			free(c.hostname);
			c.hostname = val;
			val = NULL;
		} else if (!strcmp(key, "port")) {
			int p = atoi(val);

			if (p > 0 && p < 65536)
				c.port = p;
		} else if (!strcmp(key, "user")) {
			free(c.user);
			c.user = val;
			val = NULL;
		} else if (!strcmp(key, "identityfile")) {
			if (!is_default_identity(val))
				all_default = false;
			if (push(&c.identity_files, &c.n_identity_files, val,
				 strlen(val))) {
				free(val);
				goto fail;
			}
		} else if (!strcmp(key, "identitiesonly")) {
			c.identities_only = !strcmp(val, "yes");
		} else if (!strcmp(key, "proxyjump")) {
			if (strcmp(val, "none")) {
				free(c.proxy_jump);
				c.proxy_jump = val;
				val = NULL;
			}
		} else if (!strcmp(key, "proxycommand")) {
			if (strcmp(val, "none")) {
				free(c.proxy_command);
				c.proxy_command = val;
				val = NULL;
			}
		} else if (!strcmp(key, "userknownhostsfile")) {
			free_list(&c.known_hosts, &c.n_known_hosts);
			if (split_words(val, &c.known_hosts,
					&c.n_known_hosts)) {
				free(val);
				goto fail;
			}
		} else if (!strcmp(key, "globalknownhostsfile")) {
			free_list(&c.global_known_hosts,
				  &c.n_global_known_hosts);
			if (split_words(val, &c.global_known_hosts,
					&c.n_global_known_hosts)) {
				free(val);
				goto fail;
			}
		} else if (!strcmp(key, "hostkeyalias")) {
			if (strcmp(val, "none")) {
				free(c.host_key_alias);
				c.host_key_alias = val;
				val = NULL;
			}
		} else if (!strcmp(key, "connecttimeout")) {
			if (strcmp(val, "none"))
				c.connect_timeout_s = atoi(val);
		} else if (!strcmp(key, "stricthostkeychecking")) {
			c.accept_new_host_key = !strcmp(val, "accept-new") ||
						!strcmp(val, "false") ||
						!strcmp(val, "no") ||
						!strcmp(val, "off");
		}
		free(val);
	}
	if (!c.hostname) {
		c.hostname = strdup(u->host);
		if (!c.hostname)
			goto fail;
	}
	if (u->user) {
		/* the location's user wins (it was given to ssh as -l) */
		free(c.user);
		c.user = strdup(u->user);
		if (!c.user)
			goto fail;
	}
	/* OpenSSH lists its defaults when nothing is configured; ours
	 * (id_ed25519, id_ecdsa, id_rsa, after the agent) apply then */
	if (all_default)
		free_list(&c.identity_files, &c.n_identity_files);
	for (i = 0; i < c.n_identity_files; i++) {
		char *x = expand(c.identity_files[i], &c, home, local_user);

		if (!x)
			goto fail;
		free(c.identity_files[i]);
		c.identity_files[i] = x;
	}
	if (is_default_known_hosts(c.known_hosts, c.n_known_hosts))
		free_list(&c.known_hosts, &c.n_known_hosts);
	for (i = 0; i < c.n_known_hosts; i++) {
		char *x = expand(c.known_hosts[i], &c, home, local_user);

		if (!x)
			goto fail;
		free(c.known_hosts[i]);
		c.known_hosts[i] = x;
	}
	if (c.proxy_command) {
		char *x = expand(c.proxy_command, &c, home, local_user);

		if (!x)
			goto fail;
		free(c.proxy_command);
		c.proxy_command = x;
	}
	*out = c;
	return 0;
fail:
	ssh_host_config_release(&c);
	return mv_err_set(err, rc,
			  "out of memory reading the ssh "
			  "configuration");
}

static void from_location(const struct ssh_url *u, struct ssh_host_config *c)
{
	memset(c, 0, sizeof(*c));
	c->host = strdup(u->host);
	c->hostname = strdup(u->host);
	c->user = u->user ? strdup(u->user) : NULL;
	c->port = u->port ? u->port : 22;
}

/* Run argv with stdin from /dev/null; its stdout into *out, its stderr
 * (lines joined by "; ") into errline.  Returns its exit status (>= 0), or a
 * negative errno when it could not be started (-ENOENT: no such program).
 */
static int run_capture(char *const argv[], char **out, char *errline,
		       size_t errn)
{
	posix_spawn_file_actions_t fa;
	struct mv_buf o = {0}, e = {0};
	int po[2] = {-1, -1}, pe[2] = {-1, -1};
	pid_t pid = 0;
	int rc, status = 0;

	*out = NULL;
	*errline = '\0';
	if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0) {
		rc = -errno;
		goto out;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, po[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
	rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(po[1]);
	close(pe[1]);
	po[1] = pe[1] = -1;
	if (rc) {
		rc = -rc;
		goto out;
	}
	/* stdout first, to its end; stderr is a line or two and fits in
	 * the pipe meanwhile */
	for (int *fd = &po[0];; fd = &pe[0]) {
		char buf[8192];
		ssize_t n;

		while ((n = read(*fd, buf, sizeof(buf))) != 0) {
			struct mv_buf *b = fd == &po[0] ? &o : &e;

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				break;
			if (b->len + (size_t)n <= OUTPUT_MAX)
				(void)mv_buf_append(b, buf, (size_t)n);
		}
		if (fd == &pe[0])
			break;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	rc = WIFEXITED(status) ? WEXITSTATUS(status) : 255;
	if (mv_buf_append(&o, "", 1) == 0) {
		*out = (char *)o.data;
		o.data = NULL;
	}
	if (e.len) {
		/* every line: ssh says where, then that it gives up */
		size_t end = e.len, i, k = 0;

		while (end &&
		       (e.data[end - 1] == '\n' || e.data[end - 1] == '\r'))
			end--;
		for (i = 0; i < end && k + 3 < errn; i++) {
			if (e.data[i] == '\r')
				continue;
			if (e.data[i] == '\n') {
				errline[k++] = ';';
				errline[k++] = ' ';
			} else {
				errline[k++] = (char)e.data[i];
			}
		}
		errline[k] = '\0';
	}
out:
	for (int i = 0; i < 2; i++) {
		if (po[i] >= 0)
			close(po[i]);
		if (pe[i] >= 0)
			close(pe[i]);
	}
	mv_buf_release(&o);
	mv_buf_release(&e);
	return rc;
}

static char *cache_get(const char *key)
{
	char *t = NULL;

	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < CACHE_SLOTS; i++) {
		if (cache[i].key && !strcmp(cache[i].key, key)) {
			t = strdup(cache[i].text);
			break;
		}
	}
	pthread_mutex_unlock(&lock);
	return t;
}

static void cache_put(const char *key, const char *text)
{
	char *k = strdup(key), *t = strdup(text);
	struct cache_slot *s;

	if (!k || !t) {
		free(k);
		free(t);
		return;
	}
	pthread_mutex_lock(&lock);
	s = &cache[cache_next++ % CACHE_SLOTS];
	free(s->key);
	free(s->text);
	s->key = k;
	s->text = t;
	pthread_mutex_unlock(&lock);
}

static const char *env_home(void)
{
	const char *h = getenv("HOME");

	return h && *h ? h : pw_home();
}

const char *ssh_local_user(void)
{
	const char *u = getenv("USER");
	struct passwd *pw;

	if (u && *u)
		return u;
	pw = getpwuid(getuid());
	return pw ? pw->pw_name : "root";
}

/* Run ssh -G for u into *text.  Returns 0, 1 when there is no ssh to run
 * (*text NULL), or an error with ssh's message. */
static int ask_openssh(const char *file, const struct ssh_url *u, char **text,
		       struct mv_err *err)
{
	char port[16], errline[600];
	char *argv[12];
	int argc = 0, rc;

	snprintf(port, sizeof(port), "%d", u->port);
	argv[argc++] = (char *)ssh_binary();
	if (*file) {
		argv[argc++] = (char *)"-F";
		argv[argc++] = (char *)file;
	}
	argv[argc++] = (char *)"-G";
	if (u->port) {
		argv[argc++] = (char *)"-p";
		argv[argc++] = port;
	}
	if (u->user) {
		argv[argc++] = (char *)"-l";
		argv[argc++] = u->user;
	}
	argv[argc++] = (char *)"--";
	argv[argc++] = u->host;
	argv[argc] = NULL;
	rc = run_capture(argv, text, errline, sizeof(errline));
	if (rc < 0) {
		ssh_debug("cannot run '%s' (%s): connecting to '%s' as "
			  "written, without ~/.ssh/config",
			  argv[0], strerror(-rc), u->host);
		free(*text);
		*text = NULL;
		return 1;
	}
	if (rc > 0 || !*text) {
		free(*text);
		*text = NULL;
		return mv_err_set(err, -EINVAL,
				  "cannot read the ssh configuration for '%s' "
				  "(%s -G): %s",
				  u->host, argv[0],
				  *errline ? errline : "failed");
	}
	return 0;
}

int ssh_config_resolve(const struct ssh_url *u, struct ssh_host_config *out,
		       struct mv_err *err)
{
	char file[4096], key[8192];
	char *text;
	int rc;

	config_file(file, sizeof(file));
	if (!strcmp(file, "none")) {
		ssh_debug("ssh configuration turned off: connecting to '%s' "
			  "as written",
			  u->host);
		from_location(u, out);
		return out->host && out->hostname ? 0 : -ENOMEM;
	}
	snprintf(key, sizeof(key), "%s\n%s\n%s\n%d", file,
		 u->user ? u->user : "", u->host, u->port);
	text = cache_get(key);
	if (!text) {
		rc = ask_openssh(file, u, &text, err);
		if (rc < 0)
			return rc;
		if (rc == 1) {
			from_location(u, out);
			return out->host && out->hostname ? 0 : -ENOMEM;
		}
		cache_put(key, text);
	}
	rc = ssh_config_parse(text, u, env_home(), ssh_local_user(), out, err);
	free(text);
	if (!rc)
		ssh_debug("'%s' is %s@%s port %d%s%s%s%s (from ssh -G)",
			  u->host, out->user ? out->user : ssh_local_user(),
			  out->hostname, out->port,
			  out->proxy_jump ? ", ProxyJump " : "",
			  out->proxy_jump ? out->proxy_jump : "",
			  out->proxy_command ? ", ProxyCommand " : "",
			  out->proxy_command ? out->proxy_command : "");
	return rc;
}

int ssh_proxy_start(const struct ssh_host_config *c, int *fd, pid_t *pid,
		    struct mv_err *err)
{
	posix_spawn_file_actions_t fa;
	char file[4096], target[512], dest[512], *hops = NULL;
	char *argv[12], *cmd = NULL;
	int sv[2], argc = 0, rc;

	if (!c->proxy_jump && !c->proxy_command)
		return -ENOENT;
	if (strchr(c->hostname, ':'))
		snprintf(target, sizeof(target), "[%s]:%d", c->hostname,
			 c->port);
	else
		snprintf(target, sizeof(target), "%s:%d", c->hostname, c->port);
	if (c->proxy_jump) {
		const char *last = strrchr(c->proxy_jump, ',');

		config_file(file, sizeof(file));
		argv[argc++] = (char *)ssh_binary();
		if (*file && strcmp(file, "none")) {
			argv[argc++] = (char *)"-F";
			argv[argc++] = file;
		}
		if (last) {
			hops = strndup(c->proxy_jump,
				       (size_t)(last - c->proxy_jump));
			if (!hops)
				return mv_err_set(err, -ENOMEM,
						  "out of memory");
			argv[argc++] = (char *)"-J";
			argv[argc++] = hops;
			last++;
		} else {
			last = c->proxy_jump;
		}
		/* a jump host may carry a port: only the URI form of a
		 * destination has one */
		snprintf(dest, sizeof(dest), "%s%s",
			 strncmp(last, "ssh://", 6) ? "ssh://" : "", last);
		argv[argc++] = (char *)"-W";
		argv[argc++] = target;
		argv[argc++] = (char *)"--";
		argv[argc++] = dest;
	} else {
		size_t n = strlen(c->proxy_command) + 6;

		cmd = malloc(n);
		if (!cmd)
			return mv_err_set(err, -ENOMEM, "out of memory");
		snprintf(cmd, n, "exec %s", c->proxy_command);
		argv[argc++] = (char *)"/bin/sh";
		argv[argc++] = (char *)"-c";
		argv[argc++] = cmd;
	}
	argv[argc] = NULL;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		rc = mv_err_set(err, -errno, "cannot create a socket: %s",
				strerror(errno));
		goto out;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 1);
	rc = posix_spawnp(pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(sv[1]);
	if (rc) {
		close(sv[0]);
		rc = mv_err_set(
			err, -rc, "cannot run '%s' for %s '%s': %s", argv[0],
			c->proxy_jump ? "ProxyJump" : "ProxyCommand",
			c->proxy_jump ? c->proxy_jump : c->proxy_command,
			strerror(rc));
		goto out;
	}
	ssh_debug("%s: '%s' %s%s%s (pid %d)",
		  c->proxy_jump ? "ProxyJump" : "ProxyCommand", argv[0],
		  c->proxy_jump ? "-W " : "", c->proxy_jump ? target : "",
		  c->proxy_jump ? "" : c->proxy_command, (int)*pid);
	*fd = sv[0];
	rc = 0;
out:
	free(hops);
	free(cmd);
	return rc;
}

int ssh_proxy_reap(pid_t pid)
{
	struct timespec ts = {0, 20 * 1000000L};
	int status = 0, i;
	pid_t r;

	if (pid <= 0)
		return 0;
	/* it ends by itself once its socket is closed */
	for (i = 0; i < 100; i++) {
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			goto done;
		if (r < 0 && errno != EINTR)
			return -1;
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGTERM);
	while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
		;
	if (r < 0)
		return -1;
done:
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
