# median.tsv -> gnuplot data: a line per workers x connections, a column per
# row (but batches) holding its req/s over the limit row's.
#   awk -f bench/report/chart.awk median.tsv > chart.dat

BEGIN { FS = "\t" }

$4 != "FAILED" && $3 !~ /batch/ {
    key = $1 "w " $2 "c"
    if (!(key in seen)) {
        seen[key] = 1
        keys[++nk] = key
    }
    if (!($3 in col)) {
        col[$3] = ++nc
        name[nc] = $3
    }
    rps[key, $3] = $4
}

END {
    printf "combo"
    for (c = 1; c <= nc; c++)
        printf "\t\"%s\"", name[c]
    print ""
    for (i = 1; i <= nk; i++) {
        printf "\"%s\"", keys[i]
        lim = rps[keys[i], "limit"]
        for (c = 1; c <= nc; c++)
            printf "\t%.6f", lim ? rps[keys[i], name[c]] / lim : 0
        print ""
    }
}
