
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * The command queue of a Redis connection: commands formatted in RESP
 * into one output buffer (pipelined), sent in order and matched with their
 * replies, the replies of writes held until the WAIT of their write pass
 * has answered, the handshake's steps; an error reply shown to the owner
 * first (a redirection, a demoted primary), the messages of a subscription
 * to it.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_webhook_redis_conn.h"
#include "core/ngx_http_webhook_core.h"


static ngx_http_webhook_cmd_t *ngx_http_webhook_redis_cmd(
    ngx_http_webhook_redis_t *rd, ngx_http_webhook_cmd_kind_e kind,
    int argc, const char **argv, size_t *argvlen);
static ngx_int_t ngx_http_webhook_redis_reserve(ngx_http_webhook_redis_t *rd,
    size_t len);
static u_char *ngx_http_webhook_redis_bulk_len(u_char *p, size_t len);
static ngx_uint_t ngx_http_webhook_redis_message(ngx_http_webhook_redis_t *rd,
    redisReply *reply);
static void ngx_http_webhook_redis_answer(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_cmd_t *cmd, redisReply *reply);
static void ngx_http_webhook_redis_step_reply(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_cmd_t *cmd, redisReply *reply);
static ngx_uint_t ngx_http_webhook_redis_role_is_master(redisReply *reply);

#define ngx_http_webhook_redis_noscript(reply)                               \
    ngx_http_webhook_redis_error_is(reply, "NOSCRIPT", sizeof("NOSCRIPT") - 1)


/* a caller's command; NULL: the connection is not connected nor connecting */

ngx_http_webhook_cmd_t *
ngx_http_webhook_redis_command(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_script_t *script, ngx_uint_t write, int argc,
    const char **argv, size_t *argvlen, ngx_http_webhook_reply_pt handler,
    void *data)
{
    ngx_http_webhook_cmd_t  *cmd;

    /* while connecting, commands wait behind the handshake */

    if (rd->state <= NGX_HTTP_WEBHOOK_REDIS_BACKOFF) {
        return NULL;
    }

    cmd = ngx_http_webhook_redis_cmd(rd, NGX_HTTP_WEBHOOK_CMD_REQUEST,
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


static ngx_http_webhook_cmd_t *
ngx_http_webhook_redis_cmd(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_cmd_kind_e kind, int argc, const char **argv,
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


/* an internal command: a step of the handshake, WAIT, ROLE, ASKING */

ngx_http_webhook_cmd_t *
ngx_http_webhook_redis_step(ngx_http_webhook_redis_t *rd,
    ngx_http_webhook_cmd_kind_e kind, const char *name, int argc,
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
 * The handshake, as the owner asks: AUTH, SELECT, ROLE (a primary named by
 * a sentinel is checked before anything is written), the scripts; the
 * last step makes the connection ready (a PING when nothing else is sent)
 */

ngx_int_t
ngx_http_webhook_redis_setup_steps(ngx_http_webhook_redis_t *rd)
{
    int                              argc;
    u_char                          *p;
    size_t                           argvlen[3];
    const char                      *argv[3];
    u_char                           db[NGX_INT_T_LEN];
    ngx_http_webhook_redis_conf_t    *rcf;
    ngx_http_webhook_redis_setup_t  *setup;

    rcf = rd->rcf;
    setup = rd->setup;

    if (setup->password.len) {
        argc = 0;
        argv[argc] = "AUTH";
        argvlen[argc++] = 4;

        if (setup->user.len) {
            argv[argc] = (char *) setup->user.data;
            argvlen[argc++] = setup->user.len;
        }

        argv[argc] = (char *) setup->password.data;
        argvlen[argc++] = setup->password.len;

        if (ngx_http_webhook_redis_step(rd, NGX_HTTP_WEBHOOK_CMD_SETUP,
                                        "AUTH", argc, argv, argvlen)
            == NULL)
        {
            return NGX_ERROR;
        }
    }

    if (setup->db) {
        p = ngx_sprintf(db, "%i", setup->db);

        argv[0] = "SELECT";
        argvlen[0] = 6;
        argv[1] = (char *) db;
        argvlen[1] = p - db;

        if (ngx_http_webhook_redis_step(rd, NGX_HTTP_WEBHOOK_CMD_SETUP,
                                        "SELECT", 2, argv, argvlen)
            == NULL)
        {
            return NGX_ERROR;
        }
    }

    if (setup->check_role) {
        argv[0] = "ROLE";
        argvlen[0] = 4;

        if (ngx_http_webhook_redis_step(rd, NGX_HTTP_WEBHOOK_CMD_ROLE_CHECK,
                                        "ROLE", 1, argv, argvlen)
            == NULL)
        {
            return NGX_ERROR;
        }
    }

    if (!setup->scripts) {
        argv[0] = "PING";
        argvlen[0] = 4;

        return ngx_http_webhook_redis_step(rd, NGX_HTTP_WEBHOOK_CMD_READY,
                                           "PING", 1, argv, argvlen)
               ? NGX_OK : NGX_ERROR;
    }

    argv[0] = "SCRIPT";
    argvlen[0] = 6;
    argv[1] = "LOAD";
    argvlen[1] = 4;
    argv[2] = (char *) rcf->enqueue.text.data;
    argvlen[2] = rcf->enqueue.text.len;

    if (ngx_http_webhook_redis_step(rd, NGX_HTTP_WEBHOOK_CMD_SETUP,
                                    "SCRIPT LOAD", 3, argv, argvlen)
        == NULL)
    {
        return NGX_ERROR;
    }

    argv[2] = (char *) rcf->status.text.data;
    argvlen[2] = rcf->status.text.len;

    return ngx_http_webhook_redis_step(rd, NGX_HTTP_WEBHOOK_CMD_READY,
                                       "SCRIPT LOAD", 3, argv, argvlen)
           ? NGX_OK : NGX_ERROR;
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

    size = rd->out_size;
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

    if (rd->subscribed && ngx_http_webhook_redis_message(rd, reply)) {
        return;
    }

    if (ngx_queue_empty(&rd->sent)) {
        /* "max number of clients reached" and the like, then a close */
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "webhook: %s at %V sent a reply with no command "
                      "waiting: %V", rd->setup->role, &rd->addr_text,
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

    if (cmd->kind == NGX_HTTP_WEBHOOK_CMD_REQUEST) {
        ngx_http_webhook_redis_answer(rd, cmd, reply);
        return;
    }

    ngx_http_webhook_redis_step_reply(rd, cmd, reply);
}


/* a subscription's ["message", channel, text]: no command awaits it */

static ngx_uint_t
ngx_http_webhook_redis_message(ngx_http_webhook_redis_t *rd,
    redisReply *reply)
{
    redisReply  *kind;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) {
        return 0;
    }

    kind = reply->element[0];

    if (kind->type != REDIS_REPLY_STRING
        || kind->len != sizeof("message") - 1
        || ngx_strncmp(kind->str, "message", sizeof("message") - 1) != 0)
    {
        return 0;
    }

    if (rd->handler->message) {
        rd->handler->message(rd, reply);
    }

    freeReplyObject(reply);

    return 1;
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

    if (reply->type == REDIS_REPLY_ERROR && rd->handler->error) {

        /* the owner's first: MOVED, ASK, READONLY */

        switch (rd->handler->error(rd, cmd, reply)) {

        case NGX_OK:
            return;

        case NGX_ERROR:
            freeReplyObject(reply);
            ngx_http_webhook_redis_call(rd, cmd, NULL,
                                        NGX_HTTP_WEBHOOK_REDIS_LOST);
            return;

        case NGX_DONE:
            gen = rd->generation;

            ngx_http_webhook_redis_call(rd, cmd, reply, 0);

            if (gen == rd->generation) {
                ngx_http_webhook_redis_close(rd, 1);
            }

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

    if (cmd->write && rd->setup->wait && reply->type != REDIS_REPLY_ERROR) {
        /* answered once the replicas have it too */
        cmd->reply = reply;
        ngx_queue_insert_tail(&rd->held, &cmd->queue);
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
        if (reply == NULL && failure == NGX_HTTP_WEBHOOK_REDIS_LOST) {
            ngx_log_error(NGX_LOG_INFO, rd->log, 0,
                          "webhook: %s command failed: connection closed",
                          rd->setup->role);
        }

        cmd->handler(cmd->data, reply, failure);
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
    u_char                       buf[NGX_HTTP_WEBHOOK_LOG_TEXT];
    ngx_str_t                    text;
    redisReply                  *role;
    const char                  *name;
    ngx_http_webhook_cmd_kind_e  kind;

    kind = cmd->kind;
    name = cmd->name;
    ngx_free(cmd);

    switch (kind) {

    case NGX_HTTP_WEBHOOK_CMD_WAIT:
        ngx_http_webhook_redis_waited(rd, reply);
        break;

    case NGX_HTTP_WEBHOOK_CMD_ROLE:
        ngx_http_webhook_redis_role(rd, reply);
        break;

    case NGX_HTTP_WEBHOOK_CMD_ASKING:
        /* its command, next, has the answer that counts */
        break;

    default: /* the handshake */

        if (reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                          "webhook: %s %s failed: %V", rd->setup->role, name,
                          ngx_http_webhook_log_text(&text, buf, sizeof(buf),
                                                    reply->str, reply->len));
            freeReplyObject(reply);
            ngx_http_webhook_redis_close(rd, 1);
            return;
        }

        if (kind == NGX_HTTP_WEBHOOK_CMD_ROLE_CHECK
            && !ngx_http_webhook_redis_role_is_master(reply))
        {
            role = reply->type == REDIS_REPLY_ARRAY && reply->elements
                   && reply->element[0]->type == REDIS_REPLY_STRING
                   ? reply->element[0] : NULL;

            ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                          "webhook: %s at %V is not the primary (ROLE %V)",
                          rd->setup->role, &rd->addr_text,
                          ngx_http_webhook_log_text(&text, buf, sizeof(buf),
                              role ? role->str : NULL, role ? role->len : 0));
            freeReplyObject(reply);
            ngx_http_webhook_redis_close(rd, 1);
            return;
        }

        if (kind == NGX_HTTP_WEBHOOK_CMD_READY
            && rd->state == NGX_HTTP_WEBHOOK_REDIS_HANDSHAKE)
        {
            freeReplyObject(reply);
            ngx_http_webhook_redis_set_ready(rd);
            return;
        }
    }

    freeReplyObject(reply);
}


ngx_uint_t
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

        if (cmd->kind != NGX_HTTP_WEBHOOK_CMD_REQUEST) {
            ngx_free(cmd);
            continue;
        }

        ngx_http_webhook_redis_call(rd, cmd, NULL,
                                    NGX_HTTP_WEBHOOK_REDIS_LOST);
    }
}
