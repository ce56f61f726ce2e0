"""The Python way peer of bench/run: the receive endpoint in FastAPI.

Runs under uvicorn with Debian's python3 (python3-fastapi, python3-uvicorn,
python3-redis, and python3-uvloop / python3-httptools that uvicorn picks
up by itself):

    BENCH_REDIS_PORT=6379 BENCH_TOKEN_FILE=/path/tokens \\
        /usr/bin/python3 -m uvicorn --app-dir bench/peers app:app \\
        --port 8000 --workers 2

Bearer check, content type, json.loads, the priority (body, then the
X-Webhook-Priority header, then "medium"), an envelope holding the body as
received, LPUSH through redis.asyncio's connection pool.  Answers like
ngx_http_webhook_module: 200 queued, 400, 401, 415, 503 with Retry-After.
No deduplication: compare it with the module's "dedupe off" row.
"""

import json
import os
import time
import uuid

import redis.asyncio as redis
from fastapi import FastAPI, Request
from fastapi.responses import Response

PREFIX = "{webhook}:queue:"
PRIORITIES = ("high", "medium", "low")


def load_tokens(path):
    with open(path) as f:
        return {"Bearer " + line.strip() for line in f
                if line.strip() and not line.startswith("#")}


TOKENS = load_tokens(os.environ["BENCH_TOKEN_FILE"])
app = FastAPI()
client = None


@app.on_event("startup")
async def startup():
    global client
    client = redis.Redis(host="127.0.0.1",
                         port=int(os.environ.get("BENCH_REDIS_PORT", "6379")),
                         socket_timeout=2, socket_connect_timeout=1)


def answer(status, body, headers=None):
    return Response(content=json.dumps(body), status_code=status,
                    media_type="application/json", headers=headers)


def fail(status, error, message, headers=None):
    return answer(status, {"status": "error", "error": error,
                           "message": message}, headers)


@app.post("/receive")
async def receive(request: Request):
    headers = request.headers
    if headers.get("authorization") not in TOKENS:
        return fail(401, "unauthorized", "missing or wrong token",
                    {"WWW-Authenticate": "Bearer"})
    if not headers.get("content-type", "").lower().startswith(
            "application/json"):
        return fail(415, "unsupported_media_type", "application/json only")

    body = await request.body()
    try:
        ev = json.loads(body)
    except ValueError:
        return fail(400, "invalid_json", "not JSON")
    if not isinstance(ev, dict):
        return fail(400, "invalid_json", "not a JSON object")

    priority = (ev.get("priority") or headers.get("x-webhook-priority")
                or "medium")
    if priority not in PRIORITIES:
        return fail(400, "invalid_priority", "unknown priority")
    if any(ev.get(k) is None for k in ("model", "record_id", "event")):
        return fail(400, "invalid_payload", "model, record_id, event needed")

    now = time.time()
    eid = uuid.uuid4().hex
    envelope = ('{"id":"%s","received_at":"%s.%03dZ","priority":"%s",'
                '"event_id":%s,"model":%s,"record_id":%s,"event":%s,'
                '"payload":%s}' % (
                    eid, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)),
                    int(now * 1000) % 1000, priority,
                    json.dumps(ev.get("event_id")), json.dumps(ev["model"]),
                    json.dumps(ev["record_id"]), json.dumps(ev["event"]),
                    body.decode()))
    try:
        await client.lpush(PREFIX + priority, envelope)
    except (redis.RedisError, OSError):
        return fail(503, "unavailable", "redis unavailable",
                    {"Retry-After": "5"})

    return answer(200, {"status": "queued", "id": eid, "priority": priority})
