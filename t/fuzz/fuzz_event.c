
/*
 * libFuzzer harness of the request-body path: flatten, cJSON, the
 * batch scanner, the event reader and the envelope builder, with the
 * invariants the module relies on checked on every input.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_webhook_event.h"


#define FUZZ_MAX_EVENTS  64


static void
fuzz_envelope(ngx_http_webhook_event_t *ev)
{
    u_char     *buf, *last;
    size_t      len;
    cJSON      *env;
    ngx_str_t   id, at, prio;

    id.data = (u_char *) "0123456789abcdef0123456789abcdef-7";
    id.len = 34;
    at.data = (u_char *) "2026-11-27T09:14:03.412Z";
    at.len = NGX_HTTP_WEBHOOK_TIME_LEN;
    prio.data = (u_char *) "medium";
    prio.len = 6;

    len = ngx_http_webhook_envelope_len(ev, &id, &at, &prio);

    buf = malloc(len);
    if (buf == NULL) {
        return;
    }

    last = ngx_http_webhook_envelope_write(buf, ev, &id, &at, &prio);

    if ((size_t) (last - buf) != len || memchr(buf, '\n', len)) {
        abort();
    }

    /* the envelope of a valid payload is valid JSON */

    env = cJSON_ParseWithLength((char *) buf, len);
    if (env == NULL) {
        abort();
    }

    cJSON_Delete(env);
    free(buf);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                    *copy;
    cJSON                     *root, *events, *elt, *check;
    size_t                     offset;
    ngx_int_t                  n, i;
    ngx_str_t                  body, spans[FUZZ_MAX_EVENTS];
    const char                *err;
    ngx_http_webhook_event_t   ev;

    copy = malloc(size + 1);
    if (copy == NULL) {
        return 0;
    }

    memcpy(copy, data, size);
    copy[size] = '\0';

    (void) ngx_http_webhook_time_parse(copy, size);

    root = ngx_http_webhook_json_parse(copy, size, &offset);
    if (root == NULL || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        free(copy);
        return 0;
    }

    body.data = copy;
    body.len = size;

    if (ngx_http_webhook_payload_kind(root) == NGX_HTTP_WEBHOOK_BATCH) {
        events = cJSON_GetObjectItemCaseSensitive(root, "events");

        n = ngx_http_webhook_json_elements(&body, "events", spans,
                                           FUZZ_MAX_EVENTS);

        if (n > 0 && cJSON_IsArray(events)
            && n == cJSON_GetArraySize(events))
        {
            i = 0;

            cJSON_ArrayForEach(elt, events) {
                /* each span is the exact text of its element */

                check = cJSON_ParseWithLength((char *) spans[i].data,
                                              spans[i].len);
                if (check == NULL) {
                    abort();
                }

                cJSON_Delete(check);

                if (ngx_http_webhook_event_read(elt, i & 1, &ev, &err)
                    == NGX_OK)
                {
                    ev.payload = spans[i];
                    if (cJSON_IsObject(elt)) {
                        fuzz_envelope(&ev);
                    }
                }

                i++;
            }
        }

    } else if (ngx_http_webhook_event_read(root, size & 1, &ev, &err)
               == NGX_OK)
    {
        ev.payload = body;
        fuzz_envelope(&ev);
    }

    cJSON_Delete(root);
    free(copy);

    return 0;
}
