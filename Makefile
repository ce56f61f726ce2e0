# Builds ngx_http_webhook_module.so against the installed nginx
# (Debian: the nginx-dev package), checks that the target nginx
# (NGINX_BIN) would load it, installs it like Debian's libnginx-mod-*
# packages (make install / make uninstall, DESTDIR and PREFIX honoured),
# runs the tests and the example.

SHELL       = /bin/bash
NGINX_SRC  ?= /usr/share/nginx/src
BUILD      ?= build
NGINX_DIR   = $(BUILD)/nginx
MODULE      = $(NGINX_DIR)/objs/ngx_http_webhook_module.so
CC         ?= cc
CFLAGS_EXTRA ?= -Wall -Wextra -Werror
LDFLAGS_EXTRA ?=
# the nginx the module is for: `make` refuses a version or signature that
# does not match (empty: not checked)
NGINX_BIN  ?= /usr/sbin/nginx

# make install: Debian's layout
PREFIX     ?= /usr
MODULES_DIR ?= $(PREFIX)/lib/nginx/modules
NGINX_CONFDIR ?= /etc/nginx
AVAILABLE   = $(PREFIX)/share/nginx/modules-available/mod-http-webhook.conf
ENABLED     = $(NGINX_CONFDIR)/modules-enabled/50-mod-http-webhook.conf

SRCS = $(wildcard src/*.c src/*.h src/*/*.c src/*/*.h) config

.PHONY: all check-nginx install uninstall test unit fuzz run clean deb \
        lintian matrix matrix-test

all: check-nginx

$(NGINX_DIR)/objs/Makefile: config
	rm -rf $(NGINX_DIR)
	mkdir -p $(BUILD)
	cp -r $(NGINX_SRC) $(NGINX_DIR)
	cd $(NGINX_DIR) && . ./conf_flags && \
	    ./configure "$${NGX_CONF_FLAGS[@]}" \
	        --with-cc="$(CC)" \
	        --with-cc-opt="-g -O2 -fPIC $(CFLAGS_EXTRA)" \
	        --with-ld-opt="$(LDFLAGS_EXTRA)" \
	        --add-dynamic-module=$(CURDIR) > configure.log 2>&1 \
	    || { tail -30 configure.log; exit 1; }

$(MODULE): $(NGINX_DIR)/objs/Makefile $(SRCS)
	$(MAKE) -C $(NGINX_DIR) -f objs/Makefile modules

check-nginx: $(MODULE)
	scripts/check-nginx-compat $(MODULE) $(NGINX_DIR) "$(NGINX_BIN)"

# the .so, the load line in modules-available and its link in
# modules-enabled, as libnginx-mod-* packages have them; the load line is
# relative to nginx's prefix where MODULES_DIR is Debian's
install: all
	install -d $(DESTDIR)$(MODULES_DIR) $(DESTDIR)$(dir $(AVAILABLE)) \
	    $(DESTDIR)$(dir $(ENABLED))
	install -m 0644 $(MODULE) \
	    $(DESTDIR)$(MODULES_DIR)/ngx_http_webhook_module.so
	if [ "$(MODULES_DIR)" = /usr/lib/nginx/modules ]; then \
	    install -m 0644 conf.d/mod-http-webhook.conf $(DESTDIR)$(AVAILABLE); \
	else \
	    sed 's|modules/ngx_http|$(MODULES_DIR)/ngx_http|' \
	        conf.d/mod-http-webhook.conf > $(DESTDIR)$(AVAILABLE); \
	    chmod 0644 $(DESTDIR)$(AVAILABLE); \
	fi
	ln -sfn $(AVAILABLE) $(DESTDIR)$(ENABLED)
	@echo "installed; next: a configuration from conf.d/, nginx -t," \
	      "nginx -s reload"

uninstall:
	rm -f $(DESTDIR)$(ENABLED) $(DESTDIR)$(AVAILABLE) \
	    $(DESTDIR)$(MODULES_DIR)/ngx_http_webhook_module.so
	@used=$$(grep -rlsE '^[[:space:]]*webhook_' \
	          $(DESTDIR)$(NGINX_CONFDIR) || true); \
	if [ -n "$$used" ]; then \
	    echo "note: nginx -t fails until these files no longer use" \
	         "webhook_* directives:"; \
	    echo "$$used"; \
	fi

# the pure parts, built outside nginx against its headers
NGX_INCS = -I $(NGINX_DIR)/src/core -I $(NGINX_DIR)/src/event \
           -I $(NGINX_DIR)/src/os/unix -I $(NGINX_DIR)/objs -I src
EVENT    = src/core/ngx_http_webhook_event.c src/core/ngx_http_webhook_event.h \
           src/core/ngx_http_webhook_json.c src/core/ngx_http_webhook_json.h \
           src/core/ngx_http_webhook_text.c src/core/ngx_http_webhook_text.h
RECORD   = src/spool/ngx_http_webhook_record.c src/spool/ngx_http_webhook_record.h
UNIT     = $(BUILD)/test_event
UNIT_REC = $(BUILD)/test_record
UNIT_SLOT = $(BUILD)/test_keyslot
UNIT_RESP = $(BUILD)/test_resp
UNIT_TEXT = $(BUILD)/test_text
FUZZER   = $(BUILD)/fuzz_event
FUZZ_REC = $(BUILD)/fuzz_record
FUZZ_RESP = $(BUILD)/fuzz_resp
FUZZ_SECONDS ?= 30
# prove -j of make test (every test takes loopback ports of its own), and
# the tests it runs (default every one)
PROVE_JOBS ?= 1
TESTS ?= t/

$(UNIT): t/unit/test_event.c t/unit/tap.h $(EVENT) $(NGINX_DIR)/objs/Makefile
	$(CC) -g -O1 -Wall -Wextra -Werror -fsanitize=address,undefined \
	    $(NGX_INCS) -o $@ t/unit/test_event.c \
	    src/core/ngx_http_webhook_event.c src/core/ngx_http_webhook_json.c \
	    src/core/ngx_http_webhook_text.c -lcjson

$(FUZZER): t/fuzz/fuzz_event.c t/fuzz/fuzz.h $(EVENT) $(NGINX_DIR)/objs/Makefile
	clang -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined \
	    $(NGX_INCS) -o $@ t/fuzz/fuzz_event.c \
	    src/core/ngx_http_webhook_event.c src/core/ngx_http_webhook_json.c \
	    src/core/ngx_http_webhook_text.c -lcjson

$(UNIT_REC): t/unit/test_record.c t/unit/tap.h $(RECORD) $(NGINX_DIR)/objs/Makefile
	$(CC) -g -O1 -Wall -Wextra -Werror -fsanitize=address,undefined \
	    $(NGX_INCS) -o $@ t/unit/test_record.c $(RECORD:%.h=) -lz

$(UNIT_SLOT): t/unit/test_keyslot.c t/unit/tap.h src/core/ngx_http_webhook_keyslot.c \
	    src/core/ngx_http_webhook_keyslot.h $(NGINX_DIR)/objs/Makefile
	$(CC) -g -O1 -Wall -Wextra -Werror -fsanitize=address,undefined \
	    $(NGX_INCS) -o $@ t/unit/test_keyslot.c src/core/ngx_http_webhook_keyslot.c

$(UNIT_RESP): t/unit/test_resp.c t/unit/tap.h src/redis/ngx_http_webhook_redis_resp.c \
	    src/redis/ngx_http_webhook_redis_resp.h $(NGINX_DIR)/objs/Makefile
	$(CC) -g -O1 -Wall -Wextra -Werror -fsanitize=address,undefined \
	    $(NGX_INCS) -o $@ t/unit/test_resp.c src/redis/ngx_http_webhook_redis_resp.c

$(UNIT_TEXT): t/unit/test_text.c t/unit/tap.h src/core/ngx_http_webhook_text.c \
	    src/core/ngx_http_webhook_text.h $(NGINX_DIR)/objs/Makefile
	$(CC) -g -O1 -Wall -Wextra -Werror -fsanitize=address,undefined \
	    $(NGX_INCS) -o $@ t/unit/test_text.c src/core/ngx_http_webhook_text.c \
	    src/core/ngx_http_webhook_json.c

$(FUZZ_REC): t/fuzz/fuzz_record.c t/fuzz/fuzz.h $(RECORD) $(NGINX_DIR)/objs/Makefile
	clang -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined \
	    $(NGX_INCS) -o $@ t/fuzz/fuzz_record.c $(RECORD:%.h=)

$(FUZZ_RESP): t/fuzz/fuzz_resp.c t/fuzz/fuzz.h src/redis/ngx_http_webhook_redis_resp.c \
	    src/redis/ngx_http_webhook_redis_resp.h $(NGINX_DIR)/objs/Makefile
	clang -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined \
	    $(NGX_INCS) -o $@ t/fuzz/fuzz_resp.c \
	    src/redis/ngx_http_webhook_redis_resp.c -lhiredis

unit: $(UNIT) $(UNIT_REC) $(UNIT_SLOT) $(UNIT_RESP) $(UNIT_TEXT)
	$(UNIT)
	$(UNIT_REC)
	$(UNIT_SLOT)
	$(UNIT_RESP)
	$(UNIT_TEXT)

# the body parser gets half of FUZZ_SECONDS, the journal reader (records
# from t/fuzz/records, written by t/unit/test_record) and the bounds of
# Redis's replies (seeds in t/fuzz/resp) a quarter each
fuzz: $(FUZZER) $(FUZZ_REC) $(FUZZ_RESP)
	mkdir -p $(BUILD)/corpus $(BUILD)/corpus-record $(BUILD)/corpus-resp
	cp t/fuzz/corpus/* t/data/*.json $(BUILD)/corpus/
	cp t/fuzz/records/* $(BUILD)/corpus-record/
	cp t/fuzz/resp/* $(BUILD)/corpus-resp/
	$(FUZZER) -max_total_time=$$(( $(FUZZ_SECONDS) / 2 )) \
	    -max_len=65536 \
	    -dict=t/fuzz/json.dict -timeout=10 -rss_limit_mb=1024 \
	    -print_final_stats=1 $(BUILD)/corpus
	$(FUZZ_REC) -max_total_time=$$(( $(FUZZ_SECONDS) / 4 )) \
	    -max_len=8192 -timeout=10 -rss_limit_mb=1024 \
	    -print_final_stats=1 $(BUILD)/corpus-record
	$(FUZZ_RESP) -max_total_time=$$(( $(FUZZ_SECONDS) / 4 )) \
	    -max_len=4096 -timeout=10 -rss_limit_mb=1024 \
	    -print_final_stats=1 $(BUILD)/corpus-resp

test: $(MODULE) $(UNIT) $(UNIT_REC) $(UNIT_SLOT) $(UNIT_RESP) $(UNIT_TEXT)
	prove --timer -j$(PROVE_JOBS) -I t/lib $(TESTS)

run: $(MODULE)
	scripts/run-example

clean:
	rm -rf $(BUILD)

# the Debian package, as Debian builds its libnginx-mod-* (debian/: dh
# --with nginx); the .deb and its .changes are moved into the project root
DEB_NAME    = libnginx-mod-http-webhook
DEB_VERSION = $(shell dpkg-parsechangelog -S Version 2>/dev/null)
DEB_ARCH    = $(shell dpkg-architecture -qDEB_HOST_ARCH 2>/dev/null)
DEB         = $(DEB_NAME)_$(DEB_VERSION)_$(DEB_ARCH).deb

deb:
	rm -f ../$(DEB_NAME)_$(DEB_VERSION)_* \
	    ../$(DEB_NAME)-dbgsym_$(DEB_VERSION)_*
	dpkg-buildpackage -b -us -uc
	mv ../$(DEB_NAME)_$(DEB_VERSION)_* \
	    ../$(DEB_NAME)-dbgsym_$(DEB_VERSION)_* .
	@echo "built $(DEB)"

lintian: deb
	lintian --info --display-info --pedantic --fail-on error,warning \
	    $(DEB_NAME)_$(DEB_VERSION)_$(DEB_ARCH).changes

# the compatibility matrix (scripts/build-matrix): nginx from each source
# tarball of ../shared/nginx, the module against hiredis 0.14 and 1.2;
# matrix-test: the integration suite against 1.30.4 and 1.31.4
matrix:
	scripts/build-matrix

matrix-test: matrix
	scripts/matrix-tests

# the benchmark of issue 5 (bench/run): every row, results in bench/;
# bench-smoke: every row once, 1 s each, for CI (non-zero only if broken)
.PHONY: bench bench-smoke

bench:
	bench/run

bench-smoke:
	bench/run --smoke
