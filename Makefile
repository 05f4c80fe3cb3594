# Spool - build, run, test.  See README.md.
#
#   make            build build/spoold
#   make run        install missing Debian packages, build, start a broker on 127.0.0.1:9092
#   make test       install missing Debian packages, build, run every test (with make tsan)
#   make asan       the same tests against an ASan+UBSan build
#   make tsan       the threaded unit tests against a ThreadSanitizer build (part of make test)
#   make fault      build/libspfault.so, the LD_PRELOAD fault injector (tests/fault)
#   make kafka      fetch Apache Kafka 4.3.1 (tests/kafka), make java the Java side (tests/java)
#   make clients    the newer Kafka clients the tests use, into .cache/ (once)
#   make old-clients  Debian's Sarama 1.22 and kafka-go 0.2 test programs, into .cache/
#   make fuzz       run each libFuzzer target briefly (FUZZ_SECONDS, default 60)
#   make regen      regenerate src/proto/gen from ../shared/kafka-protocol
#   make difftest   the whole differential corpus: every request to Kafka 4.3 and to Spool, compared

CC       ?= gcc
SCHEMAS  ?= ../shared/kafka-protocol
PYTHON   ?= /usr/bin/python3
BUILD    ?= build
WERROR   ?= $(if $(CI),-Werror,)
OPT      ?= -O2
SANFLAGS ?=

# Record batch codecs: zlib (gzip), libzstd, liblz4; snappy has no .pc file
# on every Debian release, so it is linked by name.  libxxhash: the log
# cleaner's key hashes (XXH3-128).
PKGS     := libuv zlib libzstd liblz4 libisal libxxhash
CFLAGS   += -std=c11 -D_GNU_SOURCE -g $(OPT) -Wall -Wextra $(WERROR) \
            -Isrc -I$(BUILD)/include -fno-strict-aliasing -pthread $(SANFLAGS) \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lsnappy -pthread -lm
LDFLAGS  += $(SANFLAGS)

GEN_SRC  := $(filter-out src/proto/gen/test_support.c,$(wildcard src/proto/gen/*.c))
LIB_SRC  := $(filter-out src/spoold.c,$(wildcard src/*/*.c)) $(GEN_SRC)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_SRC := $(wildcard tests/unit/*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TS_OBJ   := $(BUILD)/obj/src/proto/gen/test_support.o $(BUILD)/obj/tests/unit/lib/sample.o
# test objects are not intermediate: keep them (test_support.c is 1 MB)
.SECONDARY: $(TS_OBJ)

.PHONY: all run test unit integration difftest fault asan tsan fuzz regen regen-check api-table deps test-deps kafka java clients old-clients clean

all: $(BUILD)/spoold

Q := $(if $(V),,@)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC    $<")
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# The generated codec is large and regular; -O1 builds it in half the time
# with no measurable cost on the request path.
$(BUILD)/obj/src/proto/gen/%.o: src/proto/gen/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC    $<")
	$(Q)$(CC) $(CFLAGS) -O1 -MMD -MP -c $< -o $@

$(BUILD)/libspool.a: $(LIB_OBJ)
	@rm -f $@
	@echo "  AR    $@"
	$(Q)ar rcs $@ $^

$(BUILD)/spoold: $(BUILD)/obj/src/spoold.o $(BUILD)/libspool.a
	@echo "  LD    $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# several brokers in one process, for tests (tests/tools/spool_nodes.c)
$(BUILD)/spool-nodes: tests/tools/spool_nodes.c $(BUILD)/libspool.a
	@echo "  LD    $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libspool.a $(TS_OBJ)
	@mkdir -p $(dir $@)
	@echo "  LD    $@"
	$(Q)$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(TS_OBJ) $(BUILD)/libspool.a $(LDLIBS)

# The fault-injection shim (tests/fault/spfault.c): an LD_PRELOAD library
# for integration tests, built without sanitizers in every build (an
# ASan/TSan broker preloads the sanitizer runtime first; faults.py does).
$(BUILD)/libspfault.so: tests/fault/spfault.c
	@mkdir -p $(dir $@)
	@echo "  CC    $@"
	$(Q)$(CC) -std=c11 -g -O2 -Wall -Wextra $(WERROR) -fPIC -shared -o $@ $< -ldl -pthread

fault: $(BUILD)/libspfault.so

deps:
	@scripts/install-deps

test-deps:
	@scripts/install-deps --test

# Apache Kafka 4.3 beside Spool (tests/kafka): fetched once from Maven
# Central into .cache/ (git-ignored), checked on every run
kafka:
	@$(PYTHON) tests/kafka/kafka_ref.py fetch >/dev/null

# Newer clients beside Debian's (tests/integration/newer_clients.py): a venv
# of confluent-kafka, kafka-python and aiokafka from PyPI, franz-go, Sarama
# and kafka-go programs built with modules from the Go module proxy, kafkajs
# from npm; pinned by lock files, installed once into .cache/, a stamp of
# the inputs checked on every run
clients:
	@$(PYTHON) tests/integration/newer_clients.py setup

# The old tools Kafka 4 no longer serves (tests/integration/old_clients.py):
# programs on Debian's Sarama 1.22 and kafka-go 0.2 (tests/go-debian),
# built offline in GOPATH mode from /usr/share/gocode into .cache/go-debian,
# a stamp of the inputs checked on every run
old-clients:
	@$(PYTHON) tests/integration/old_clients.py setup

# The Java ecosystem against Spool (tests/java): Kafka's Java clients,
# Streams and Connect 4.3.1 fetched once into .cache/ (git-ignored), the
# scenario programs compiled there; checked on every run
java:
	@$(PYTHON) tests/java/java_side.py build >/dev/null

run: deps all
	@mkdir -p data
	./$(BUILD)/spoold config/server.properties

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

regen:
	python3 tools/gen_codec.py $(SCHEMAS) src/proto/gen

# docs/PROTOCOL.md's table of API versions (from api.c and the schemas)
api-table:
	python3 tools/api_table.py $(SCHEMAS) docs/PROTOCOL.md

# When the schemas are beside us, the committed codec must be exactly what
# the generator makes from them.
regen-check:
	@if [ -d $(SCHEMAS)/message ]; then \
	    tmp=$$(mktemp -d) && python3 tools/gen_codec.py $(SCHEMAS) $$tmp && \
	    diff -r -q $$tmp src/proto/gen && rm -rf $$tmp && \
	    echo "regen-check: src/proto/gen matches $(SCHEMAS)" && \
	    python3 tools/api_table.py $(SCHEMAS) docs/PROTOCOL.md --check; \
	else echo "regen-check: $(SCHEMAS) not present, skipped"; fi

integration: all fault kafka java clients old-clients $(BUILD)/spool-nodes
	SPOOLD=$(abspath $(BUILD)/spoold) $(PYTHON) -m pytest -q tests/integration

# The differential tests in full (tests/integration/test_0061_differential.py;
# make test runs their short form): every API and version Spool serves and
# every recorded client session, sent to Kafka 4.3 and to Spool; the report
# lists every difference, the known ones (docs/DIFFERENCES.md) included.  And
# the compaction tests on Kafka's side too (test_0080).
difftest: all kafka
	@mkdir -p $(BUILD)
	SPOOL_DIFF_FULL=1 SPOOL_DIFF_REPORT=$(abspath $(BUILD)/difftest-report.txt) \
	    SPOOLD=$(abspath $(BUILD)/spoold) $(PYTHON) -m pytest -q \
	    tests/integration/test_0060_kafka_schema.py tests/integration/test_0061_differential.py \
	    tests/integration/test_0080_compaction.py
	@head -30 $(BUILD)/difftest-report.txt

test: test-deps
	$(MAKE) all unit
	$(MAKE) tsan
	$(MAKE) regen-check
	$(MAKE) integration

asan: test-deps kafka java clients old-clients
	$(MAKE) BUILD=build/asan OPT=-O1 SANFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" all unit fault
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    SPOOLD=$(abspath build/asan/spoold) $(PYTHON) -m pytest -q tests/integration

# ThreadSanitizer over the unit tests that start threads.  A report fails
# the run (TSan's exit code 66).  tests/tsan.supp is for third-party noise
# only, never for our own races.
TSAN_TESTS := test_log test_logmgr test_partition test_image test_producer_state test_pid test_metadata test_txn test_cleaner
tsan:
	$(MAKE) BUILD=build/tsan OPT=-O1 SANFLAGS="-fsanitize=thread -fno-omit-frame-pointer" \
	    $(TSAN_TESTS:%=build/tsan/tests/%)
	@set -e; for t in $(TSAN_TESTS); do echo "== build/tsan/tests/$$t"; \
	    TSAN_OPTIONS="second_deadlock_stack=1 history_size=4 $(if $(wildcard tests/tsan.supp),suppressions=$(abspath tests/tsan.supp))" \
	    build/tsan/tests/$$t; done

FUZZ_SECONDS ?= 60
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
fuzz: test-deps
	$(MAKE) BUILD=build/fuzz CC=clang OPT=-O1 \
	    SANFLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined" \
	    $(BUILD)/fuzz/libspool.a
	@set -e; for t in $(FUZZ_TARGETS); do \
	    echo "== $$t"; \
	    clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc -fsanitize=fuzzer,address,undefined \
	        -o build/fuzz/$$t tests/fuzz/$$t.c build/fuzz/libspool.a $(LDLIBS); \
	    mkdir -p build/fuzz/corpus-$$t; \
	    build/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        build/fuzz/corpus-$$t tests/fuzz/corpus/$$t; \
	done

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(BUILD)/obj/src/spoold.d
