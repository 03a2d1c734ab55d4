# mailvault build.  See README.md for the two commands that set everything up.
#
#   make                 build build/mailvault
#   make check           unit tests (cmocka) + integration tests
#   make check-unit      unit tests only
#   make SANITIZE=1 check  the same under ASan+UBSan, in build-san/
#   make valgrind        unit tests under valgrind
#   make lint            clang-format check + cppcheck + check-headers
#   make bench           benchmarks side by side with borg/restic (tools/bench.sh)
#   make demo            install deps, build, back up a generated mail volume
#   make fuzz            libFuzzer harnesses, FUZZ_SECONDS each (tests/fuzz/README.md)
#   make ci              what .ci/run runs: deps, build, lint, check, sanitizer
#                        check, fuzz smoke run

CC       ?= cc
PREFIX   ?= /usr/local
DESTDIR  ?=
LIBDIR   ?= $(PREFIX)/lib
PLUGINDIR ?= $(LIBDIR)/mailvault
# systemd's unit directory for software installed under PREFIX
# (/usr/local/lib/systemd/system, searched by systemd; a package built with
# PREFIX=/usr gets /usr/lib/systemd/system); docs/JOBS.md
SYSTEMD_UNIT_DIR ?= $(PREFIX)/lib/systemd/system
# the job, full-check and alert units; the mount unit names one site's
# paths and stays an example in contrib/
UNITS    := $(sort $(wildcard contrib/*@.service contrib/*@.timer))
# The binary links PKGS_CORE; the formats plugin (include/formats.h) links
# PKGS_FMT, whose libraries cost a cold start 40-70 ms to map (libetpan
# brings Berkeley DB, SASL and liblockfile for restore-mail alone).
PKGS_CORE := fuse3 libssh2 sqlite3 libxxhash libzstd libcrypto liblz4 \
            glib-2.0 libacl jansson libsodium inih libcurl
PKGS_FMT := libarchive gmime-3.0 libisal libetpan libcrypto
PKGS     := $(PKGS_CORE) $(PKGS_FMT)

ifeq ($(SANITIZE),)
BUILD    ?= build
OPT      ?= -O2 -g
else
BUILD    ?= build-san
OPT      ?= -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
            -fno-omit-frame-pointer
endif

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wold-style-definition -Wpointer-arith \
            -Wformat=2 -Wvla -Wwrite-strings -Wundef -fno-common
CPPFLAGS += -Iinclude -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64
CFLAGS   ?=
CFLAGS   += -std=c11 $(OPT) $(WARN) -pthread -MMD -MP \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libetpan's .pc carries Debian's own build flags (-specs=no-pie-link.specs),
# which would link the binary non-PIE: only -l and -L flags are taken.
pc_libs   = $(filter-out -specs=% -Wl%,$(shell pkg-config --libs $(1) 2>/dev/null))
LDLIBS   += $(call pc_libs,$(PKGS)) -lpthread -lm
LIBS_CORE := $(call pc_libs,$(PKGS_CORE)) -ldl -lpthread -lm
LIBS_FMT := $(call pc_libs,$(PKGS_FMT)) -lpthread
SAN_FLAGS := -fsanitize=address,undefined
LDFLAGS  += $(if $(SANITIZE),$(SAN_FLAGS))

SRC_ALL  := $(sort $(wildcard src/*/*.c))
SRC_MAIN := src/cli/main.c
# the binary's forwarding functions into the plugin, and their stand-in
# for libmailvault.a, where the plugin's code is linked in
SRC_STUB := src/formats/formats_plugin.c
SRC_STATIC := src/formats/formats_static.c
SRC_FMT  := src/ingest/gzstream.c src/ingest/source_tar.c \
            src/ingest/source_mailcow.c src/mail/mail_msg.c \
            src/mail/mail_crypt_zlib.c src/store/restore_tar.c \
            src/cli/cmd_restore_mail.c src/imap/imap_client.c \
            src/imap/restore_mail.c
SRC_LIB  := $(filter-out $(SRC_MAIN) $(SRC_STUB),$(SRC_ALL))
OBJ_LIB  := $(SRC_LIB:%.c=$(BUILD)/%.o)
OBJ_MAIN := $(SRC_MAIN:%.c=$(BUILD)/%.o)
OBJ_FMT  := $(SRC_FMT:%.c=$(BUILD)/%.o)
OBJ_BIN  := $(OBJ_MAIN) $(SRC_STUB:%.c=$(BUILD)/%.o) \
            $(filter-out $(OBJ_FMT) $(SRC_STATIC:%.c=$(BUILD)/%.o),$(OBJ_LIB))
LIB      := $(BUILD)/libmailvault.a
BIN      := $(BUILD)/mailvault
PLUGIN   := $(BUILD)/mailvault-formats.so
# The test binary: the same objects but for those with fault hooks, compiled
# again with -DMV_FAULT_HOOKS; never installed (docs/TESTING.md).
SRC_HOOKED := src/lifecycle/lc.c
OBJ_HOOKED := $(SRC_HOOKED:%.c=$(BUILD)/faults/%.o)
FAULT_BIN := $(BUILD)/mailvault-faults
# LD_PRELOAD shim failing chosen syscalls (tests/fault/faultshim.c)
FAULT_SHIM := $(BUILD)/tests/faultshim.so

UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_SRC := $(sort $(wildcard tools/*.c))
TOOL_BIN := $(TOOL_SRC:tools/%.c=$(BUILD)/tools/%)
HEADERS  := $(sort $(wildcard include/*.h))

.PHONY: all build-tests check check-unit check-integration valgrind lint format \
        check-headers bench demo ci install clean deps

all: $(BIN) $(PLUGIN) $(TOOL_BIN) $(FAULT_BIN) $(FAULT_SHIM)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(LIB): $(OBJ_LIB)
	@rm -f $@
	$(AR) rcs $@ $^

$(OBJ_FMT): CFLAGS += -fPIC
$(BUILD)/src/formats/formats_plugin.o: CPPFLAGS += -DMV_PLUGIN_DIR='"$(PLUGINDIR)"'

# -rdynamic: the plugin calls the rest of mailvault through the binary
$(BIN): $(OBJ_BIN)
	$(CC) $(LDFLAGS) -rdynamic -o $@ $^ $(LIBS_CORE)

$(BUILD)/faults/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -DMV_FAULT_HOOKS $(CFLAGS) -c $< -o $@

$(FAULT_BIN): $(OBJ_HOOKED) \
		$(filter-out $(SRC_HOOKED:%.c=$(BUILD)/%.o),$(OBJ_BIN))
	$(CC) $(LDFLAGS) -rdynamic -o $@ $^ $(LIBS_CORE)

# plain C without the sanitizer: it is preloaded ahead of everything;
# without _FILE_OFFSET_BITS, which would rename open to open64
$(FAULT_SHIM): tests/fault/faultshim.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -g $(WARN) -fPIC -shared -o $@ $< -ldl

# -Bsymbolic: the plugin's calls to its own functions stay inside it
$(PLUGIN): $(OBJ_FMT)
	$(CC) $(LDFLAGS) -shared -Wl,-Bsymbolic -o $@ $^ $(LIBS_FMT)

$(BUILD)/tests/%: tests/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Wno-missing-prototypes $(LDFLAGS) \
		-o $@ $< $(LIB) $(LDLIBS) -lcmocka

$(BUILD)/tools/%: tools/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

check: check-unit check-integration

check-unit: $(UNIT_BIN)
	@sh tests/lib/run-unit.sh $(UNIT_BIN)

check-integration: $(BIN) $(PLUGIN) $(TOOL_BIN) $(FAULT_BIN) $(FAULT_SHIM)
	@MV_BUILD=$(BUILD) sh tests/lib/run-integration.sh $(T)

valgrind: $(UNIT_BIN)
	@MV_VALGRIND=1 sh tests/lib/run-unit.sh $(UNIT_BIN)

check-headers:
	@for h in $(HEADERS); do \
		printf '#include "%s"\n' $$(basename $$h) | \
		$(CC) $(CPPFLAGS) $(CFLAGS) -x c -fsyntax-only - || exit 1; \
	done; echo "headers: all self-contained"

lint: check-headers
	@clang-format --dry-run --Werror $(SRC_ALL) $(HEADERS) $(UNIT_SRC) $(TOOL_SRC) \
		tests/fault/faultshim.c
	@cppcheck -q --std=c11 --enable=warning,style,performance,portability \
		--inline-suppr --error-exitcode=1 --suppress=missingIncludeSystem \
		-D_GNU_SOURCE -Iinclude src tests tools
	@echo "lint: clean"

format:
	clang-format -i $(SRC_ALL) $(HEADERS) $(UNIT_SRC) $(TOOL_SRC)

bench: all
	sh tools/bench.sh

bench-growth: all
	MV=$(CURDIR)/$(BUILD)/mailvault sh tools/bench/growth.sh

demo:
	sh tools/install-deps.sh build
	$(MAKE) all
	sh tools/demo.sh

deps:
	sh tools/install-deps.sh test

# Root, FUSE and every test package are there where CI runs: a skipped
# test is one that did not run, and fails (tests/lib/run-integration.sh).
# Builds use every CPU; the integration tests run as many at a time
# (MV_JOBS, tests/lib/run-integration.sh).
NPROC := $(shell nproc 2>/dev/null || echo 1)

build-tests: all $(UNIT_BIN)

ci:
	sh tools/install-deps.sh test
	$(MAKE) -j$(NPROC) build-tests
	$(MAKE) lint
	MV_NO_SKIP=1 $(MAKE) check
	$(MAKE) -j$(NPROC) SANITIZE=1 build-tests
	MV_NO_SKIP=1 $(MAKE) SANITIZE=1 check
	$(MAKE) -j$(NPROC) fuzz-smoke

install: $(BIN) $(PLUGIN)
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/mailvault
	install -D -m 0644 $(PLUGIN) \
		$(DESTDIR)$(PLUGINDIR)/mailvault-formats.so
	install -D -m 0755 contrib/mount.fuse.mailvault \
		$(DESTDIR)/sbin/mount.fuse.mailvault
	install -D -m 0644 man/mailvault.1 $(DESTDIR)$(PREFIX)/share/man/man1/mailvault.1
	install -D -m 0644 man/mailvault-mount.1 \
		$(DESTDIR)$(PREFIX)/share/man/man1/mailvault-mount.1
	install -D -m 0644 man/mailvault-format.5 \
		$(DESTDIR)$(PREFIX)/share/man/man5/mailvault-format.5
	install -D -m 0644 man/mailvault-job.5 \
		$(DESTDIR)$(PREFIX)/share/man/man5/mailvault-job.5
	install -d $(DESTDIR)$(SYSTEMD_UNIT_DIR)
	install -m 0644 $(UNITS) $(DESTDIR)$(SYSTEMD_UNIT_DIR)/

clean:
	rm -rf build build-san

# make fuzz, fuzz-smoke, fuzz-corpus (libFuzzer, tests/fuzz/README.md)
include tests/fuzz/fuzz.mk

-include $(OBJ_LIB:.o=.d) $(OBJ_MAIN:.o=.d) $(SRC_STUB:%.c=$(BUILD)/%.d) \
	$(OBJ_HOOKED:.o=.d)
