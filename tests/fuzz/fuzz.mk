# libFuzzer harnesses over the decoders of untrusted input
# (tests/fuzz/README.md).  Included from the Makefile.
#
#   make fuzz           each harness FUZZ_SECONDS (180) in turn, one process
#   make fuzz-smoke     the committed corpus, then FUZZ_SMOKE_SECONDS (10) each
#   make fuzz FUZZ=fuzz_tree    one harness
#   make fuzz-corpus    regenerate the seed corpus from the encoders
#
# The library is compiled again with clang and -fsanitize=fuzzer-no-link
# (plus ASan and UBSan) in FUZZ_BUILD, apart from the other builds.  clang
# reads -Wformat=2 as also asking for literal format strings, which the
# printf-like mv_err_set() forwards as a va_list.

FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 180
FUZZ_SMOKE_SECONDS ?= 10
FUZZ_CC ?= clang
FUZZ_OPT := -O1 -g -fno-omit-frame-pointer \
            -fsanitize=fuzzer-no-link,address,undefined \
            -fno-sanitize-recover=all
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_NAMES := $(FUZZ_SRC:tests/fuzz/%.c=%)
FUZZ ?=

.PHONY: fuzz fuzz-smoke fuzz-build fuzz-bins fuzz-corpus fuzz-lint fuzz-clean

fuzz-build:
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) \
		OPT='$(FUZZ_OPT)' SANITIZE= \
		WARN='$(WARN) -Wno-format-nonliteral' fuzz-bins

fuzz-bins: $(FUZZ_NAMES:%=$(BUILD)/fuzz/%)

$(BUILD)/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Wno-missing-prototypes -fsanitize=fuzzer \
		-o $@ $< $(LIB) $(LDLIBS)

fuzz: fuzz-build
	@sh tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ)

fuzz-smoke: fuzz-build
	@sh tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SMOKE_SECONDS) $(FUZZ)

$(BUILD)/tests/gen_fuzz_corpus: tests/fuzz/gen_corpus.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Wno-missing-prototypes $(LDFLAGS) \
		-o $@ $< $(LIB) $(LDLIBS)

fuzz-corpus: $(BUILD)/tests/gen_fuzz_corpus
	$< tests/fuzz/corpus

fuzz-lint:
	@clang-format --dry-run --Werror tests/fuzz/*.c tests/fuzz/*.h

lint: fuzz-lint

# the fuzz build, with the inputs found and the reproducers
fuzz-clean:
	rm -rf $(FUZZ_BUILD)

clean: fuzz-clean
