-- wrk script of bench/run: POSTs an Odoo event with a Bearer token.
--
--   wrk -t1 -c64 -d10s -s bench/post.lua http://127.0.0.1:8080/receive \
--       -- <event.json> [single|batch] [token]
--
-- Every request gets a fresh event_id (thread number * 1e12 + a counter),
-- so the same script serves rows with dedupe on and off.  Priorities cycle
-- high, medium, low, absent (absent: the server's default applies).
-- "batch" sends {"batch": true, "events": [...]} with 100 copies of the
-- event, each with its own event_id.
-- done() prints one machine-readable line for bench/run:
--   BENCH requests=N duration_us=N connect=N read=N write=N status=N
--         timeout=N p50_us=N p99_us=N max_us=N

local BATCH = 100
local PRIORITIES = { "high", "medium", "low", false }

local threads = {}

function setup(thread)
    threads[#threads + 1] = thread
    thread:set("tid", #threads)
end

-- the requests, prepared once per thread: whole HTTP requests cut at the
-- event_id digits, which have a fixed width (thread number * 1e12 +
-- counter), so Content-Length never changes and request() only joins
-- strings
local pieces = {}
local counter = 0
local width

local function read_file(path)
    local f = assert(io.open(path, "rb"), "cannot open " .. path)
    local text = f:read("*a")
    f:close()
    return (text:gsub("%s+$", ""))
end

-- the event with the given priority (false: none) and a placeholder id
local function variant(text, priority)
    if priority then
        text = text:gsub('("priority"%s*:%s*)"%a+"',
                         '%1"' .. priority .. '"', 1)
    else
        text = text:gsub('"priority"%s*:%s*"%a+"%s*,%s*', '', 1)
    end
    text = text:gsub('("event_id"%s*:%s*)%d+', '%1@ID@', 1)
    assert(text:find("@ID@", 1, true), "the event has no numeric event_id")
    return text
end

function init(args)
    local text = read_file(args[1] or "t/data/odoo-event.json")
    local mode = args[2] or "single"
    local events = {}
    local placeholder, req, body, s, e, from

    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
    wrk.headers["Authorization"] = "Bearer " .. (args[3] or "bench-token")

    counter = (tid or 1) * 1e12
    width = #string.format("%.0f", counter)
    placeholder = string.rep("#", width)

    if mode == "batch" then
        for n = 1, BATCH do
            events[n] = variant(text, PRIORITIES[n % #PRIORITIES + 1])
        end
        req = '{"batch": true, "events": [' .. table.concat(events, ", ")
              .. ']}'
    else
        -- one request per priority variant, used in turn
        for n = 1, #PRIORITIES do
            events[n] = variant(text, PRIORITIES[n])
        end
    end

    if mode == "batch" then
        events = { req }
    end
    for n = 1, #events do
        body = events[n]:gsub("@ID@", placeholder)
        req = wrk.format(nil, nil, nil, body)
        pieces[n] = {}
        from = 1
        while true do
            s, e = req:find(placeholder, from, true)
            if not s then
                break
            end
            table.insert(pieces[n], req:sub(from, s - 1))
            table.insert(pieces[n], false)    -- an id goes here
            from = e + 1
        end
        table.insert(pieces[n], req:sub(from))
    end
end

function request()
    local p = pieces[counter % #pieces + 1]

    for i = 2, #p, 2 do
        counter = counter + 1
        p[i] = string.format("%.0f", counter)
    end
    return table.concat(p)
end

function done(summary, latency, requests)
    local e = summary.errors

    io.write(string.format(
        "BENCH requests=%d duration_us=%d connect=%d read=%d write=%d"
        .. " status=%d timeout=%d p50_us=%d p99_us=%d max_us=%d\n",
        summary.requests, summary.duration, e.connect, e.read, e.write,
        e.status, e.timeout, latency:percentile(50),
        latency:percentile(99), latency.max))
end
