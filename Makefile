# Builds ngx_http_webhook_module.so against the installed nginx
# (Debian: the nginx-dev package), runs the tests and the example.

SHELL       = /bin/bash
NGINX_SRC  ?= /usr/share/nginx/src
BUILD      ?= build
NGINX_DIR   = $(BUILD)/nginx
MODULE      = $(NGINX_DIR)/objs/ngx_http_webhook_module.so
CC         ?= cc
CFLAGS_EXTRA ?= -Wall -Wextra -Werror
LDFLAGS_EXTRA ?=

SRCS = $(wildcard src/*.c src/*.h) config

.PHONY: all test unit fuzz run clean

all: $(MODULE)

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

# the pure parts, built outside nginx against its headers
NGX_INCS = -I $(NGINX_DIR)/src/core -I $(NGINX_DIR)/src/event \
           -I $(NGINX_DIR)/src/os/unix -I $(NGINX_DIR)/objs -I src
EVENT    = src/ngx_http_webhook_event.c src/ngx_http_webhook_event.h
UNIT     = $(BUILD)/test_event
FUZZER   = $(BUILD)/fuzz_event
FUZZ_SECONDS ?= 30

$(UNIT): t/unit/test_event.c $(EVENT) $(NGINX_DIR)/objs/Makefile
	$(CC) -g -O1 -Wall -Wextra -Werror -fsanitize=address,undefined \
	    $(NGX_INCS) -o $@ t/unit/test_event.c \
	    src/ngx_http_webhook_event.c -lcjson

$(FUZZER): t/fuzz/fuzz_event.c $(EVENT) $(NGINX_DIR)/objs/Makefile
	clang -g -O1 -fsanitize=fuzzer,address,undefined \
	    $(NGX_INCS) -o $@ t/fuzz/fuzz_event.c \
	    src/ngx_http_webhook_event.c -lcjson

unit: $(UNIT)
	$(UNIT)

fuzz: $(FUZZER)
	mkdir -p $(BUILD)/corpus
	cp t/fuzz/corpus/* t/data/*.json $(BUILD)/corpus/
	$(FUZZER) -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
	    -print_final_stats=1 $(BUILD)/corpus

test: $(MODULE) $(UNIT)
	prove -I t/lib t/

run: $(MODULE)
	scripts/run-example

clean:
	rm -rf $(BUILD)
