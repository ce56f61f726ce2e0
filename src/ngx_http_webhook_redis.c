
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The command queue of a worker's Redis connection: the public calls,
 * commands formatted in RESP into one output buffer (pipelined), the
 * commands sent in order and matched with their replies, the replies of
 * writes held until the WAIT of their write pass has answered.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_webhook_redis_conn.h"
#include "ngx_http_webhook_escape.h"


/* the output buffer is kept at this size when it empties */
#define NGX_HTTP_WEBHOOK_OUT_SIZE     65536


static ngx_http_webhook_cmd_t *ngx_http_webhook_redis_cmd(
    ngx_http_webhook_redis_t *rd, ngx_http_webhook_redis_kind_e kind,
    int argc, const char **argv, size_t *argvlen);
static ngx_int_t ngx_http_webhook_redis_reserve(ngx_http_webhook_redis_t *rd,
    size_t len);
static u_char *ngx_http_webhook_redis_bulk_len(u_char *p, size_t len);
static void ngx_http_webhook_redis_answer(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_cmd_t *cmd, redisReply *reply);
static void ngx_http_webhook_redis_step_reply(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_cmd_t *cmd, redisReply *reply);
static ngx_uint_t ngx_http_webhook_redis_error_is(redisReply *reply,
    char *prefix, size_t len);
static ngx_uint_t ngx_http_webhook_redis_role_is_master(redisReply *reply);

#define ngx_http_webhook_redis_noscript(reply)                               \
    ngx_http_webhook_redis_error_is(reply, "NOSCRIPT", sizeof("NOSCRIPT") - 1)
#define ngx_http_webhook_redis_readonly(reply)                               \
    ngx_http_webhook_redis_error_is(reply, "READONLY", sizeof("READONLY") - 1)


ngx_http_webhook_redis_t        *ngx_http_webhook_redis_conn;
ngx_http_webhook_resp_limits_t   ngx_http_webhook_redis_limits;

/* why the handler being called has no reply */
static ngx_uint_t  ngx_http_webhook_redis_failed;


ngx_http_webhook_redis_t *
ngx_http_webhook_redis_create(ngx_cycle_t *cycle,
    ngx_http_webhook_main_conf_t *wmcf)
{
    ngx_http_webhook_redis_t  *rd;

    rd = ngx_pcalloc(cycle->pool, sizeof(ngx_http_webhook_redis_t));
    if (rd == NULL) {
        return NULL;
    }

    rd->out = ngx_alloc(NGX_HTTP_WEBHOOK_OUT_SIZE, cycle->log);
    if (rd->out == NULL) {
        return NULL;
    }

    rd->out_size = NGX_HTTP_WEBHOOK_OUT_SIZE;
    rd->wmcf = wmcf;
    rd->log = cycle->log;
    rd->replicas = -1;

    ngx_queue_init(&rd->sent);
    ngx_queue_init(&rd->held);

    rd->timer.handler = ngx_http_webhook_redis_timer;
    rd->timer.data = rd;
    rd->timer.log = cycle->log;
    rd->timer.cancelable = 1;

    return rd;
}


ngx_int_t
ngx_http_webhook_redis_init(ngx_cycle_t *cycle,
    ngx_http_webhook_main_conf_t *wmcf)
{
    ngx_http_webhook_redis_t  *rd;

    /*
     * the cached time is the master's from before it read the
     * configuration: a connect timer armed from it could expire before
     * the handshake had a chance to be answered
     */

    ngx_time_update();

    ngx_http_webhook_resp_limits(&ngx_http_webhook_redis_limits,
                                 wmcf->batch_max);

    if (wmcf->cluster) {
        /* the seeds name the primaries */
        return ngx_http_webhook_cluster_init(cycle, wmcf);
    }

    rd = ngx_http_webhook_redis_create(cycle, wmcf);
    if (rd == NULL) {
        return NGX_ERROR;
    }

    ngx_http_webhook_redis_conn = rd;

    if (wmcf->sentinels) {
        /* the sentinels name the primary */

        rd->addr_text = wmcf->sentinel_name;

        if (ngx_http_webhook_sentinel_init(rd, cycle) != NGX_OK) {
            return NGX_ERROR;
        }

        ngx_http_webhook_sentinel_discover(rd);

        return NGX_OK;
    }

    rd->addr_text = wmcf->addr_text;
    rd->sockaddr = wmcf->sockaddr;
    rd->socklen = wmcf->socklen;
    rd->host = wmcf->host;

    ngx_http_webhook_redis_connect(rd);

    return NGX_OK;
}


void
ngx_http_webhook_redis_exit(ngx_cycle_t *cycle)
{
    ngx_http_webhook_redis_t  *rd;

    ngx_http_webhook_cluster_exit();

    rd = ngx_http_webhook_redis_conn;
    if (rd == NULL) {
        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, cycle->log, 0,
                   "webhook: closing the redis connection");

    rd->exiting = 1;

    ngx_http_webhook_sentinel_close(rd);
    ngx_http_webhook_redis_close(rd, 0);

    ngx_free(rd->out);
    rd->out = NULL;

    ngx_http_webhook_redis_conn = NULL;
}


ngx_uint_t
ngx_http_webhook_redis_up(ngx_uint_t slot)
{
    if (ngx_http_webhook_cluster_on()) {
        return ngx_http_webhook_cluster_up(slot);
    }

    return ngx_http_webhook_redis_conn != NULL
           && ngx_http_webhook_redis_conn->state
              == ngx_http_webhook_redis_ready;
}


ngx_uint_t
ngx_http_webhook_redis_failure(void)
{
    return ngx_http_webhook_redis_failed;
}


ngx_http_webhook_cmd_t *
ngx_http_webhook_redis_eval(ngx_http_webhook_script_t *script,
    ngx_uint_t slot, int argc, const char **argv, size_t *argvlen,
    ngx_http_webhook_reply_pt handler, void *data)
{
    ngx_http_webhook_redis_t  *rd;

    rd = ngx_http_webhook_cluster_on() ? ngx_http_webhook_cluster_route(slot)
                                       : ngx_http_webhook_redis_conn;
    if (rd == NULL) {
        return NULL;
    }

    /* every command of a caller writes but the status script's */

    return ngx_http_webhook_redis_command(rd, script,
                                          script != &rd->wmcf->status,
                                          argc, argv, argvlen, handler,
                                          data);
}


/* a command on a given connection: a caller's, or CLUSTER SLOTS */

ngx_http_webhook_cmd_t *
ngx_http_webhook_redis_command(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_script_t *script, ngx_uint_t write, int argc,
    const char **argv, size_t *argvlen, ngx_http_webhook_reply_pt handler,
    void *data)
{
    ngx_http_webhook_cmd_t  *cmd;

    /* while connecting, commands wait behind the handshake */

    if (rd->state == ngx_http_webhook_redis_disconnected) {
        return NULL;
    }

    cmd = ngx_http_webhook_redis_cmd(rd, ngx_http_webhook_redis_request,
                                     argc, argv, argvlen);
    if (cmd == NULL) {
        return NULL;
    }

    cmd->handler = handler;
    cmd->data = data;
    cmd->script = script;
    cmd->write = write ? 1 : 0;

    if (script) {
        argv[0] = "EVALSHA";
        argvlen[0] = sizeof("EVALSHA") - 1;
        argv[1] = (char *) script->sha;
        argvlen[1] = sizeof(script->sha);
    }

    if (ngx_http_webhook_redis_append(rd, cmd) != NGX_OK) {
        ngx_free(cmd);
        return NULL;
    }

    return cmd;
}


void
ngx_http_webhook_redis_cancel(ngx_http_webhook_cmd_t *cmd)
{
    /* freed when its reply arrives or the connection closes */
    cmd->handler = NULL;
    cmd->data = NULL;
}


void
ngx_http_webhook_redis_timed_out(ngx_uint_t slot)
{
    ngx_http_webhook_redis_t  *rd;

    /*
     * the connection of the slot's primary as known: a timeout neither
     * reads the map again nor connects, nor closes another node's
     */

    rd = ngx_http_webhook_cluster_on() ? ngx_http_webhook_cluster_conn(slot)
                                       : ngx_http_webhook_redis_conn;

    if (rd == NULL || rd->connection == NULL) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                  "webhook: redis at %V timed out, closing the connection",
                  &rd->addr_text);

    ngx_http_webhook_redis_close(rd, 1);
}


static ngx_http_webhook_cmd_t *
ngx_http_webhook_redis_cmd(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_redis_kind_e kind, int argc, const char **argv,
    size_t *argvlen)
{
    ngx_http_webhook_cmd_t  *cmd;

    cmd = ngx_alloc(sizeof(ngx_http_webhook_cmd_t), rd->log);
    if (cmd == NULL) {
        return NULL;
    }

    ngx_memzero(cmd, sizeof(ngx_http_webhook_cmd_t));

    cmd->kind = kind;
    cmd->argc = argc;
    cmd->argv = argv;
    cmd->argvlen = argvlen;

    return cmd;
}


/* an internal command: a step of the handshake, WAIT, ROLE */

ngx_http_webhook_cmd_t *
ngx_http_webhook_redis_step(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_redis_kind_e kind, const char *name, int argc,
    const char **argv, size_t *argvlen)
{
    ngx_http_webhook_cmd_t  *cmd;

    cmd = ngx_http_webhook_redis_cmd(rd, kind, argc, argv, argvlen);
    if (cmd == NULL) {
        return NULL;
    }

    cmd->name = name;

    if (ngx_http_webhook_redis_append(rd, cmd) != NGX_OK) {
        ngx_free(cmd);
        return NULL;
    }

    /* the arguments are formatted already: they may go away */

    cmd->argv = NULL;
    cmd->argvlen = NULL;

    return cmd;
}


/*
 * Formats the command in RESP at the end of the output buffer, puts it
 * last of the commands whose replies are awaited and has the buffer
 * written when the event loop comes round: all the commands of a turn
 * go out in one write pass.
 */

ngx_int_t
ngx_http_webhook_redis_append(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_cmd_t *cmd)
{
    int      i;
    u_char  *p;
    size_t   len;

    len = sizeof("*\r\n") - 1 + NGX_INT_T_LEN;

    for (i = 0; i < cmd->argc; i++) {
        len += sizeof("$\r\n\r\n") - 1 + NGX_SIZE_T_LEN + cmd->argvlen[i];
    }

    if (ngx_http_webhook_redis_reserve(rd, len) != NGX_OK) {
        return NGX_ERROR;
    }

    p = rd->out + rd->out_len;
    *p++ = '*';
    p = ngx_http_webhook_redis_bulk_len(p, cmd->argc);

    for (i = 0; i < cmd->argc; i++) {
        *p++ = '$';
        p = ngx_http_webhook_redis_bulk_len(p, cmd->argvlen[i]);
        p = ngx_cpymem(p, cmd->argv[i], cmd->argvlen[i]);
        *p++ = CR;
        *p++ = LF;
    }

    rd->out_len = p - rd->out;

    ngx_queue_insert_tail(&rd->sent, &cmd->queue);

    if (cmd->write) {
        rd->unwaited++;
    }

    ngx_http_webhook_redis_flush(rd);

    return NGX_OK;
}


static ngx_int_t
ngx_http_webhook_redis_reserve(ngx_http_webhook_redis_t *rd, size_t len)
{
    u_char  *out;
    size_t   size, unsent;

    if (rd->out_pos == rd->out_len) {
        rd->out_pos = 0;
        rd->out_len = 0;
    }

    if (rd->out_size - rd->out_len >= len) {
        return NGX_OK;
    }

    unsent = rd->out_len - rd->out_pos;

    size = ngx_max(rd->out_size, NGX_HTTP_WEBHOOK_OUT_SIZE);
    while (size < unsent + len) {
        size *= 2;
    }

    out = ngx_alloc(size, rd->log);
    if (out == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(out, rd->out + rd->out_pos, unsent);
    ngx_free(rd->out);

    rd->out = out;
    rd->out_size = size;
    rd->out_pos = 0;
    rd->out_len = unsent;

    return NGX_OK;
}


/* "<len>\r\n": ngx_sprintf() costs twice the instructions per command */

static u_char *
ngx_http_webhook_redis_bulk_len(u_char *p, size_t len)
{
    u_char   digits[NGX_SIZE_T_LEN];
    u_char  *d;

    d = digits + NGX_SIZE_T_LEN;

    do {
        *--d = (u_char) ('0' + len % 10);
        len /= 10;
    } while (len);

    p = ngx_cpymem(p, d, digits + NGX_SIZE_T_LEN - d);
    *p++ = CR;
    *p++ = LF;

    return p;
}


/* the output buffer is written: a large one is given back */

void
ngx_http_webhook_redis_shrink(ngx_http_webhook_redis_t *rd)
{
    u_char  *out;

    rd->out_pos = 0;
    rd->out_len = 0;

    if (rd->out_size <= 16 * NGX_HTTP_WEBHOOK_OUT_SIZE) {
        return;
    }

    out = ngx_alloc(NGX_HTTP_WEBHOOK_OUT_SIZE, rd->log);
    if (out == NULL) {
        return;
    }

    ngx_free(rd->out);
    rd->out = out;
    rd->out_size = NGX_HTTP_WEBHOOK_OUT_SIZE;
}


/* a reply, for the first command that awaits one */

void
ngx_http_webhook_redis_dispatch(ngx_http_webhook_redis_t *rd,
    redisReply *reply)
{
    u_char                   buf[NGX_HTTP_WEBHOOK_LOG_TEXT];
    ngx_str_t                text;
    ngx_queue_t             *q;
    ngx_http_webhook_cmd_t  *cmd;

    if (ngx_queue_empty(&rd->sent)) {
        /* "max number of clients reached" and the like, then a close */
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "webhook: redis at %V sent a reply with no command "
                      "waiting: %V", &rd->addr_text,
                      ngx_http_webhook_log_text(&text, buf, sizeof(buf),
                          reply->str,
                          reply->type == REDIS_REPLY_ERROR ? reply->len : 0));
        freeReplyObject(reply);
        ngx_http_webhook_redis_close(rd, 1);
        return;
    }

    q = ngx_queue_head(&rd->sent);
    ngx_queue_remove(q);
    cmd = ngx_queue_data(q, ngx_http_webhook_cmd_t, queue);

    if (cmd->kind == ngx_http_webhook_redis_request) {
        ngx_http_webhook_redis_answer(rd, cmd, reply);
        return;
    }

    ngx_http_webhook_redis_step_reply(rd, cmd, reply);
}


static void
ngx_http_webhook_redis_answer(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_cmd_t *cmd, redisReply *reply)
{
    ngx_uint_t  gen;

    if (cmd->handler == NULL) {
        /* its request went away (timed out or closed) */
        freeReplyObject(reply);
        ngx_free(cmd);
        return;
    }

    if (rd->node) {
        /* Cluster: MOVED and ASK are followed */

        switch (ngx_http_webhook_cluster_redirect(rd, cmd, reply)) {

        case NGX_OK:
            return;

        case NGX_ERROR:
            freeReplyObject(reply);
            ngx_http_webhook_redis_call(rd, cmd, NULL,
                                        NGX_HTTP_WEBHOOK_REDIS_LOST);
            return;

        default: /* NGX_DECLINED: the reply is the caller's */
            break;
        }
    }

    if (cmd->script && !cmd->retried
        && ngx_http_webhook_redis_noscript(reply))
    {
        /* the script cache was flushed: send the script itself */

        freeReplyObject(reply);

        cmd->retried = 1;
        cmd->argv[0] = "EVAL";
        cmd->argvlen[0] = sizeof("EVAL") - 1;
        cmd->argv[1] = (char *) cmd->script->text.data;
        cmd->argvlen[1] = cmd->script->text.len;

        if (ngx_http_webhook_redis_append(rd, cmd) != NGX_OK) {
            ngx_http_webhook_redis_call(rd, cmd, NULL,
                                        NGX_HTTP_WEBHOOK_REDIS_LOST);
        }

        return;
    }

    if (cmd->write && rd->wmcf->wait_replicas
        && reply->type != REDIS_REPLY_ERROR)
    {
        /* answered once the replicas have it too */
        cmd->reply = reply;
        ngx_queue_insert_tail(&rd->held, &cmd->queue);
        return;
    }

    if (rd->sentinel && ngx_http_webhook_redis_readonly(reply)) {
        /* a replica now: the sentinels are asked for the primary */

        ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                      "webhook: redis at %V is read-only (no longer the "
                      "primary), asking the sentinels", &rd->addr_text);

        gen = rd->generation;

        ngx_http_webhook_redis_call(rd, cmd, reply, 0);

        if (gen == rd->generation) {
            ngx_http_webhook_redis_close(rd, 1);
        }

        return;
    }

    ngx_http_webhook_redis_call(rd, cmd, reply, 0);
}


/* the handler once, the reply and the command freed after it */

void
ngx_http_webhook_redis_call(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_cmd_t *cmd, redisReply *reply, ngx_uint_t failure)
{
    if (cmd->handler) {
        ngx_http_webhook_redis_failed = failure;

        if (reply == NULL && failure == NGX_HTTP_WEBHOOK_REDIS_LOST) {
            ngx_log_error(NGX_LOG_INFO, rd->log, 0,
                          "webhook: redis command failed: connection "
                          "closed");
        }

        cmd->handler(cmd->data, reply);

        ngx_http_webhook_redis_failed = 0;
    }

    if (reply) {
        freeReplyObject(reply);
    }

    ngx_free(cmd);
}


static void
ngx_http_webhook_redis_step_reply(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_cmd_t *cmd, redisReply *reply)
{
    u_char                         buf[NGX_HTTP_WEBHOOK_LOG_TEXT];
    ngx_str_t                      text;
    redisReply                    *role;
    const char                    *name;
    ngx_http_webhook_redis_kind_e  kind;

    kind = cmd->kind;
    name = cmd->name;
    ngx_free(cmd);

    switch (kind) {

    case ngx_http_webhook_redis_wait_step:
        ngx_http_webhook_redis_waited(rd, reply);
        break;

    case ngx_http_webhook_redis_role_step:
        ngx_http_webhook_redis_role(rd, reply);
        break;

    case ngx_http_webhook_redis_asking:
        /* its command, next, has the answer that counts */
        break;

    default: /* the handshake */

        if (reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                          "webhook: redis %s failed: %V", name,
                          ngx_http_webhook_log_text(&text, buf, sizeof(buf),
                                                    reply->str, reply->len));
            freeReplyObject(reply);
            ngx_http_webhook_redis_close(rd, 1);
            return;
        }

        if (kind == ngx_http_webhook_redis_role_check
            && !ngx_http_webhook_redis_role_is_master(reply))
        {
            role = reply->type == REDIS_REPLY_ARRAY && reply->elements
                   && reply->element[0]->type == REDIS_REPLY_STRING
                   ? reply->element[0] : NULL;

            ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                          "webhook: redis at %V is not the primary (ROLE "
                          "%V), asking the sentinels again", &rd->addr_text,
                          ngx_http_webhook_log_text(&text, buf, sizeof(buf),
                              role ? role->str : NULL, role ? role->len : 0));
            freeReplyObject(reply);
            ngx_http_webhook_redis_close(rd, 1);
            return;
        }

        if (kind == ngx_http_webhook_redis_ready_step
            && rd->state == ngx_http_webhook_redis_handshake)
        {
            ngx_http_webhook_redis_set_ready(rd);
        }
    }

    freeReplyObject(reply);
}


static ngx_uint_t
ngx_http_webhook_redis_error_is(redisReply *reply, char *prefix, size_t len)
{
    return reply->type == REDIS_REPLY_ERROR
           && reply->len >= len
           && ngx_strncmp(reply->str, prefix, len) == 0;
}


static ngx_uint_t
ngx_http_webhook_redis_role_is_master(redisReply *reply)
{
    return reply->type == REDIS_REPLY_ARRAY && reply->elements
           && reply->element[0]->type == REDIS_REPLY_STRING
           && reply->element[0]->len == sizeof("master") - 1
           && ngx_strncmp(reply->element[0]->str, "master",
                          sizeof("master") - 1) == 0;
}


/* for the status: the primary, and the sentinel that named it */

void
ngx_http_webhook_redis_addresses(ngx_str_t *primary, ngx_str_t *sentinel)
{
    ngx_str_t                 *s;
    ngx_http_webhook_redis_t  *rd;

    rd = ngx_http_webhook_redis_conn;

    ngx_str_null(sentinel);

    if (rd == NULL) {
        return;
    }

    *primary = rd->addr_text;

    s = ngx_http_webhook_sentinel_name(rd);
    if (s) {
        *sentinel = *s;
    }
}


/* the connection is gone: every command awaiting a reply fails */

void
ngx_http_webhook_redis_fail_all(ngx_http_webhook_redis_t *rd)
{
    ngx_queue_t             *q;
    ngx_http_webhook_cmd_t  *cmd;

    while (!ngx_queue_empty(&rd->held) || !ngx_queue_empty(&rd->sent)) {
        q = ngx_queue_empty(&rd->held) ? ngx_queue_head(&rd->sent)
                                       : ngx_queue_head(&rd->held);
        ngx_queue_remove(q);
        cmd = ngx_queue_data(q, ngx_http_webhook_cmd_t, queue);

        if (cmd->reply) {
            freeReplyObject(cmd->reply);
            cmd->reply = NULL;
        }

        if (cmd->kind != ngx_http_webhook_redis_request) {
            ngx_free(cmd);
            continue;
        }

        ngx_http_webhook_redis_call(rd, cmd, NULL,
                                    NGX_HTTP_WEBHOOK_REDIS_LOST);
    }
}
