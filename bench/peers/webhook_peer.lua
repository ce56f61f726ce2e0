-- "The OpenResty way" peer of bench/run: the receive endpoint as people
-- write it with Debian's libnginx-mod-http-lua, lua-nginx-redis
-- (lua-resty-redis, here "nginx.redis") and lua-cjson.
--
-- Bearer check, content type, cjson.decode, the priority (body, then the
-- X-Webhook-Priority header, then "medium"), an envelope holding the body
-- as received, LPUSH on a pooled connection (set_keepalive).  Answers like
-- ngx_http_webhook_module: 200 queued, 400, 401, 405, 415, 503 with
-- Retry-After.  No deduplication: compare it with the module's
-- "dedupe off" row.  Loaded by bench/peers/openresty.conf.

local cjson = require "cjson.safe"
local redis = require "nginx.redis"

local _M = {}

local host, port
local tokens = {}
local PREFIX = "{webhook}:queue:"
local PRIORITIES = { high = true, medium = true, low = true }

function _M.init(redis_host, redis_port, token_file)
    local f = assert(io.open(token_file, "r"))

    host = redis_host
    port = redis_port
    for line in f:lines() do
        if line ~= "" and line:sub(1, 1) ~= "#" then
            tokens["Bearer " .. line] = true
        end
    end
    f:close()
end

local function answer(status, body)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.print(body)
    return ngx.exit(status)
end

local function fail(status, err, message)
    return answer(status, '{"status":"error","error":"' .. err
                          .. '","message":"' .. message .. '"}')
end

local function unavailable()
    ngx.header["Retry-After"] = "5"
    return fail(503, "unavailable", "redis unavailable")
end

local function field(v)
    if v == nil then
        return "null"
    end
    return cjson.encode(v)
end

function _M.receive()
    local ctype, body, ev, priority, id, now, envelope, red, ok, err

    if ngx.req.get_method() ~= "POST" then
        ngx.header["Allow"] = "POST, HEAD"
        return fail(405, "method_not_allowed", "POST only")
    end

    if not tokens[ngx.var.http_authorization or ""] then
        ngx.header["WWW-Authenticate"] = "Bearer"
        return fail(401, "unauthorized", "missing or wrong token")
    end

    ctype = ngx.var.content_type or ""
    if ctype:sub(1, 16):lower() ~= "application/json" then
        return fail(415, "unsupported_media_type", "application/json only")
    end

    ngx.req.read_body()
    body = ngx.req.get_body_data()
    if not body then
        return fail(413, "too_large", "body not in memory")
    end

    ev = cjson.decode(body)
    if type(ev) ~= "table" then
        return fail(400, "invalid_json", "not a JSON object")
    end

    priority = ev.priority or ngx.var.http_x_webhook_priority or "medium"
    if not PRIORITIES[priority] then
        return fail(400, "invalid_priority", "unknown priority")
    end

    if ev.model == nil or ev.record_id == nil or ev.event == nil then
        return fail(400, "invalid_payload", "model, record_id, event needed")
    end

    id = ngx.var.request_id
    now = ngx.now()
    envelope = '{"id":"' .. id .. '","received_at":"'
               .. os.date("!%Y-%m-%dT%H:%M:%S", now)
               .. string.format(".%03dZ", (now * 1000) % 1000)
               .. '","priority":"' .. priority
               .. '","event_id":' .. field(ev.event_id)
               .. ',"model":' .. field(ev.model)
               .. ',"record_id":' .. field(ev.record_id)
               .. ',"event":' .. field(ev.event)
               .. ',"payload":' .. body .. '}'

    red = redis:new()
    red:set_timeouts(1000, 2000, 2000)
    ok, err = red:connect(host, port)
    if not ok then
        ngx.log(ngx.ERR, "redis connect: ", err)
        return unavailable()
    end

    ok, err = red:lpush(PREFIX .. priority, envelope)
    if not ok then
        ngx.log(ngx.ERR, "redis lpush: ", err)
        red:close()
        return unavailable()
    end
    red:set_keepalive(60000, 512)

    return answer(200, '{"status":"queued","id":"' .. id
                       .. '","priority":"' .. priority .. '"}')
end

return _M
