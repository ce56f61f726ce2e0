# median.tsv (bench/report/median.awk) -> the Markdown targets and table.
#   awk -f bench/report/table.awk median.tsv > table.md
# Fields: workers conns row req/s events/s p50_us p99_us requests non-2xx
# socket-errors 200s in-redis module-count check conns-per-worker scrapes
# duration_us range rounds; a failed row: workers conns row FAILED.

BEGIN { FS = "\t" }

function fmt(n,    s) {            # 1234567 -> 1,234,567
    s = sprintf("%.0f", n)
    while (s ~ /[0-9][0-9][0-9][0-9]/)
        sub(/[0-9][0-9][0-9]($|,)/, ",&", s)
    return s
}

function ms(us) {
    return sprintf("%.2f", us / 1000)
}

function checked(c) {
    return c ~ /^(ok|n\/a)/
}

function target(what, measured, met) {
    printf "| %s | %s | %s |\n", what, measured, met ? "yes" : "**no**"
}

{
    key = $1 " " $2 SUBSEP $3
    order[++n] = key
    if ($4 == "FAILED") {
        failed[key] = 1
        next
    }
    rps[key] = $4; ev[key] = $5; p50[key] = $6; p99[key] = $7
    bad[key] = $9; sock[key] = $10; ok[key] = $11; redis[key] = $12
    check[key] = $14; cpw[key] = $15; scr[key] = $16
    split($18, rg, "-")
    range[key] = fmt(rg[1]) "–" fmt(rg[2])
}

# the targets of issue 5, at 1 worker and 64 connections
function targets(    k, lim, r, i, m, worst, all, lost) {
    k = "1 64" SUBSEP
    if (!((k "limit") in rps && (k "module") in rps))
        return
    lim = rps[k "limit"]

    print "## Targets (1 worker, 64 connections, this run)\n"
    print "| target | measured | met |"
    print "| --- | --- | --- |"

    r = rps[k "module"] / lim
    target("module ≥ 0.5 × limit", sprintf("%.2f ×", r), r >= 0.5)
    if ((k "lua") in rps) {
        r = rps[k "module"] / rps[k "lua"]
        target("module ≥ 3 × the Lua way", sprintf("%.1f ×", r), r >= 3)
    }
    if ((k "module dedupe") in rps) {
        r = rps[k "module dedupe"] / lim
        target("module, dedupe on ≥ 0.4 × limit", sprintf("%.2f ×", r),
               r >= 0.4)
    }

    if ((k "module, TLS to Redis") in rps) {
        r = rps[k "module, TLS to Redis"] / rps[k "module"]
        target("module, TLS to Redis ≥ 0.8 × module", sprintf("%.2f ×", r),
               r >= 0.8)
    }
    if ((k "module, WAIT 1") in rps) {
        r = rps[k "module, WAIT 1"] / rps[k "module"]
        target("module, WAIT 1 ≥ 0.5 × module", sprintf("%.2f ×", r),
               r >= 0.5)
    }
    if ((k "module (base)") in rps) {
        r = rps[k "module"] / rps[k "module (base)"]
        target("module ≥ the base build's (no regression beyond noise)",
               sprintf("%.2f ×", r), r >= 0.95)
    }
    if ((k "module dedupe (base)") in rps) {
        r = rps[k "module dedupe"] / rps[k "module dedupe (base)"]
        target("module dedupe ≥ the base build's", sprintf("%.2f ×", r),
               r >= 0.95)
    }

    worst = 0
    all = ""
    split("module|module dedupe|module + scrape", m, "|")
    for (i = 1; i <= 3; i++) {
        if (!((k m[i]) in p99))
            continue
        if (p99[k m[i]] > worst)
            worst = p99[k m[i]]
        all = all (all == "" ? "" : ", ") m[i] " " ms(p99[k m[i]])
    }
    target("p99 ≤ 2 ms (module rows)", all " ms", worst <= 2000)

    split("module batch|module batch small", m, "|")
    for (i = 1; i <= 2; i++) {
        if (!((k m[i]) in ev))
            continue
        r = "100-event batches ≥ 200,000 events/s, dedupe on (" m[i] ")"
        target(r, fmt(ev[k m[i]]) " events/s", ev[k m[i]] >= 200000)
    }

    lost = 0
    for (i = 1; i <= n; i++)
        if (order[i] in failed || !checked(check[order[i]]))
            lost++
    target("zero lost events, every row",
           lost ? lost " rows failed the check" : "every row checked", !lost)
    print ""
}

function cell(v) {
    return "| " v " "
}

END {
    targets()

    print "## All rows\n"
    print "| workers | conns | row | req/s | range | × limit | events/s" \
          " | p50 ms | p99 ms | non-2xx | socket errors | 200s | in Redis" \
          " | check | conns per worker |"
    print "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |" \
          " ---: | ---: | ---: | ---: | --- | --- |"

    for (i = 1; i <= n; i++) {
        key = order[i]
        split(key, kr, SUBSEP)
        split(kr[1], wc, " ")
        row = kr[2]
        limit = kr[1] SUBSEP "limit"

        if (key in failed) {
            printf "| %s | %s | %s | **FAILED** | | | | | | | | | |" \
                   " **FAILED** | |\n", wc[1], wc[2], row
            continue
        }

        c = check[key]
        if (!checked(c))
            c = "**" c "**"
        if (scr[key] != "-")
            row = row " (" scr[key] " scrapes)"

        printf "%s", cell(wc[1]) cell(wc[2]) cell(row) cell(fmt(rps[key])) \
            cell(range[key]) \
            cell((limit in rps && kr[2] !~ /batch/) \
                 ? sprintf("%.2f", rps[key] / rps[limit]) : "-") \
            cell(kr[2] == "limit" ? "-" : fmt(ev[key])) \
            cell(ms(p50[key])) cell(ms(p99[key])) cell(bad[key]) \
            cell(sock[key]) cell(fmt(ok[key])) \
            cell(kr[2] == "limit" ? "-" : fmt(redis[key])) cell(c) \
            cell(cpw[key])
        print "|"
    }
}
