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

unit: $(BUILD)/test_event
	$(BUILD)/test_event

$(BUILD)/test_event: t/unit/test_event.c src/ngx_http_webhook_event.c src/ngx_http_webhook_event.h
	mkdir -p $(BUILD)
	$(CC) -g -O1 -Wall -Wextra -Werror -fsanitize=address,undefined \
	    -I t/unit -I src -o $@ t/unit/test_event.c \
	    src/ngx_http_webhook_event.c -lcjson

test: $(MODULE) unit
	prove -I t/lib t/

run: $(MODULE)
	sh docker/run.sh

clean:
	rm -rf $(BUILD)
