#!/usr/bin/python3
"""A stand-in for BridgeCore's webhook receiver, for t/consumer-bridgecore.t:
FastAPI on uvicorn (Debian: python3-fastapi, python3-uvicorn).

    bridgecore_standin.py --port P [--token T]

POST /api/v1/webhooks/receive takes a WebhookReceivePayload, as BridgeCore
does, and answers {"success", "message", "event_id", "processed_at"}.  It
is stricter than BridgeCore, to check the forwarder's shape: exact types
(no "1842" for an integer), no unknown fields, no nulls (a field that does
not fit is left out).  Required: model, record_id, event, timestamp,
payload; priority defaults to "medium"; event_id, category,
changed_fields, user_id and user_name are optional.

In order, a request can get: 429 from the rate limit (a sliding window,
200 a minute by default, with Retry-After); a failure queued by /_control;
401 without the token (with --token); 422 for a body that does not fit
(or is not application/json);
else 200, and the body is recorded.

    GET  /_log       {"requests": [{t, status, body, headers}], "received":
                     [the bodies answered 200]}; t is time.time()
    POST /_control   {"reset": true} forgets the log and the settings;
                     {"fail": [{"status": 500, "count": 2, "retry_after":
                     "1", "body": {...}}]} answers the next requests so
                     ("html": "<html>..." instead of "body": that text
                     as text/html, e.g. a proxy's login page);
                     {"limit": [n, seconds]} sets the rate limit;
                     {"event_id_required": true} (a BridgeCore whose
                     event_id is required)
"""

import argparse
import collections
import datetime
import json
import math
import time
from typing import Any, Dict, List, Literal, Optional

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import (BaseModel, Extra, StrictInt, StrictStr,
                      ValidationError, root_validator)

PATH = "/api/v1/webhooks/receive"


class WebhookReceivePayload(BaseModel):
    event_id: Optional[StrictInt] = None
    model: StrictStr
    record_id: StrictInt
    event: Literal["create", "write", "unlink"]
    timestamp: datetime.datetime
    priority: Literal["high", "medium", "low"] = "medium"
    category: Optional[StrictStr] = None
    payload: Dict[str, Any]
    changed_fields: Optional[List[StrictStr]] = None
    user_id: Optional[StrictInt] = None
    user_name: Optional[StrictStr] = None

    class Config:
        extra = Extra.forbid

    @root_validator(pre=True)
    def no_nulls(cls, values):
        nulls = sorted(k for k, v in values.items() if v is None)
        if nulls:
            raise ValueError("null fields (leave them out): %s"
                             % ", ".join(nulls))
        return values


class WithEventId(WebhookReceivePayload):
    event_id: StrictInt


def fresh_state():
    return {"requests": [], "received": [], "fail": [],
            "limit": (200, 60.0), "event_id_required": False,
            "window": collections.deque()}


state = fresh_state()
app = FastAPI()
TOKEN = None


def answer(req_log, status, body, headers=None):
    req_log["status"] = status
    return JSONResponse(body, status_code=status, headers=headers)


@app.post(PATH)
async def receive(request: Request):
    raw = await request.body()
    now = time.time()
    try:
        body = json.loads(raw)
    except ValueError:
        body = raw.decode("utf-8", "replace")
    entry = {"t": now, "status": None, "body": body,
             "headers": {k.lower(): v for k, v in request.headers.items()}}
    state["requests"].append(entry)

    n, seconds = state["limit"]
    window = state["window"]
    while window and window[0] <= now - seconds:
        window.popleft()
    if len(window) >= n:
        wait = max(1, math.ceil(window[0] + seconds - now))
        return answer(entry, 429, {"error": "Rate limit exceeded: %d per %g "
                                   "seconds" % (n, seconds)},
                      {"Retry-After": str(wait)})
    window.append(now)

    if state["fail"]:
        f = state["fail"][0]
        f["count"] -= 1
        if f["count"] <= 0:
            state["fail"].pop(0)
        headers = {"Retry-After": str(f["retry_after"])} \
            if f.get("retry_after") is not None else None
        if "html" in f:
            entry["status"] = f["status"]
            return HTMLResponse(f["html"], status_code=f["status"],
                                headers=headers)
        return answer(entry, f["status"],
                      f.get("body", {"detail": "failing on purpose"}),
                      headers)

    if TOKEN and request.headers.get("authorization") != "Bearer " + TOKEN:
        return answer(entry, 401, {"detail": "Not authenticated"})

    model = WithEventId if state["event_id_required"] else \
        WebhookReceivePayload
    try:
        # FastAPI reads a body as JSON only with this content type
        if not request.headers.get("content-type", "").startswith(
                "application/json"):
            raise TypeError("Content-Type is not application/json")
        if not isinstance(body, dict):
            raise TypeError("the body is not a JSON object")
        event = model.parse_obj(body)
    except (ValidationError, TypeError) as e:
        detail = e.errors() if isinstance(e, ValidationError) else str(e)
        return answer(entry, 422, {"detail": detail})

    state["received"].append(body)
    return answer(entry, 200, {
        "success": True, "message": "Webhook received",
        "event_id": event.event_id,
        "processed_at": datetime.datetime.now(
            datetime.timezone.utc).isoformat()})


@app.get("/_log")
async def get_log():
    return {"requests": state["requests"], "received": state["received"]}


@app.post("/_control")
async def control(request: Request):
    global state
    c = await request.json()
    if c.get("reset"):
        state = fresh_state()
    if "fail" in c:
        state["fail"] = [dict(f) for f in c["fail"]]
    if "limit" in c:
        state["limit"] = (int(c["limit"][0]), float(c["limit"][1]))
        state["window"].clear()
    if "event_id_required" in c:
        state["event_id_required"] = bool(c["event_id_required"])
    return {"ok": True}


def main():
    global TOKEN
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--token")
    args = p.parse_args()
    TOKEN = args.token
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
