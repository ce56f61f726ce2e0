
/*
 * Copyright (C) The ngx_http_webhook_module authors
 *
 * webhook_redis_wait: the answer of the WAIT that follows a write pass
 * releases the writes held for it, as acknowledged or as not replicated
 * (REPLICAS), and a short count asks ROLE how many replicas are
 * connected, for the log.  The WAIT itself is sent by the flush of a
 * write pass (ngx_http_webhook_redis_conn.c) of a connection whose owner
 * asks for it (ngx_http_webhook_redis_setup_t).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_webhook_redis_conn.h"
#include "core/ngx_http_webhook_core.h"


/*
 * The answer of WAIT: every write held since the previous WAIT was sent
 * before it; they are answered with their replies when enough replicas
 * acknowledged them, else as failed (REPLICAS).
 */

void
ngx_http_webhook_redis_waited(ngx_http_webhook_redis_t *rd,
    redisReply *reply)
{
    u_char                         buf[NGX_HTTP_WEBHOOK_LOG_TEXT];
    ngx_int_t                      acked;
    ngx_str_t                      text;
    ngx_uint_t                     n, gen;
    ngx_queue_t                   *q;
    ngx_http_webhook_cmd_t        *cmd;
    ngx_http_webhook_redis_conf_t  *rcf;

    static const char  *role[] = { "ROLE" };
    static size_t       role_len[] = { sizeof("ROLE") - 1 };

    rcf = rd->rcf;

    if (reply->type == REDIS_REPLY_INTEGER) {
        acked = (ngx_int_t) reply->integer;

    } else {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "webhook: redis WAIT failed: %V",
                      ngx_http_webhook_log_text(&text, buf, sizeof(buf),
                          reply->str,
                          reply->type == REDIS_REPLY_ERROR ? reply->len : 0));
        acked = -1;
    }

    n = 0;

    for (q = ngx_queue_head(&rd->held);
         q != ngx_queue_sentinel(&rd->held);
         q = ngx_queue_next(q))
    {
        n++;
    }

    if (acked >= 0 && acked < rcf->wait_replicas) {
        ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                      "webhook: redis WAIT %i %M: %i replicas acknowledged, "
                      "%ui writes answered as not replicated",
                      rcf->wait_replicas, rcf->wait_timeout, acked, n);

        /* how many replicas there are, for the log */
        (void) ngx_http_webhook_redis_step(rd,
                                           NGX_HTTP_WEBHOOK_CMD_ROLE,
                                           "ROLE", 1, role, role_len);
    }

    gen = rd->generation;
    rd->waiting = 0;

    /* the writes sent while it waited: the next WAIT */

    if (rd->unwaited) {
        ngx_http_webhook_redis_flush(rd);
    }

    while (!ngx_queue_empty(&rd->held)) {
        q = ngx_queue_head(&rd->held);
        ngx_queue_remove(q);
        cmd = ngx_queue_data(q, ngx_http_webhook_cmd_t, queue);

        if (acked >= rcf->wait_replicas) {
            ngx_http_webhook_redis_call(rd, cmd, cmd->reply, 0);

        } else {
            freeReplyObject(cmd->reply);
            ngx_http_webhook_redis_call(rd, cmd, NULL,
                                        NGX_HTTP_WEBHOOK_REDIS_REPLICAS);
        }

        if (gen != rd->generation) {
            break;
        }
    }
}


/* ROLE after a short WAIT: fewer replicas than asked are connected? */

void
ngx_http_webhook_redis_role(ngx_http_webhook_redis_t *rd, redisReply *reply)
{
    ngx_int_t  replicas;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3
        || reply->element[2]->type != REDIS_REPLY_ARRAY)
    {
        return;
    }

    replicas = (ngx_int_t) reply->element[2]->elements;

    if (replicas < rd->rcf->wait_replicas && replicas != rd->replicas) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "webhook: redis at %V has %i connected replicas, "
                      "webhook_redis_wait asks for %i: no write is "
                      "acknowledged until enough replicas are back",
                      &rd->addr_text, replicas,
                      rd->rcf->wait_replicas);
    }

    rd->replicas = replicas;
}
