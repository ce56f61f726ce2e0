# bench/run's rounds -> one line per row: the round with the median req/s,
# its check replaced by a failed round's, then the req/s range ("lo-hi")
# and the number of rounds as fields 18 and 19.
#   awk -f bench/report/median.awk rows.tsv > median.tsv

BEGIN { FS = OFS = "\t" }

{
    key = $1 SUBSEP $2 SUBSEP $3
    if (!(key in n))
        order[++nk] = key
    i = ++n[key]
    line[key, i] = $0
    r[key, i] = $4 + 0
    if ($4 == "FAILED")
        failed[key] = $1 OFS $2 OFS $3 OFS "FAILED"
    else if ($14 !~ /^(ok|n\/a)/ && !(key in bad))
        bad[key] = $14
}

END {
    for (k = 1; k <= nk; k++) {
        key = order[k]
        if (key in failed) {
            print failed[key]
            continue
        }

        # the rounds' indexes by req/s (insertion sort: a handful)
        m = n[key]
        for (i = 1; i <= m; i++)
            idx[i] = i
        for (i = 2; i <= m; i++)
            for (j = i; j > 1 && r[key, idx[j]] < r[key, idx[j - 1]]; j--) {
                t = idx[j]; idx[j] = idx[j - 1]; idx[j - 1] = t
            }

        $0 = line[key, idx[int((m + 1) / 2)]]
        if (key in bad)
            $14 = bad[key] " (in a round)"
        $18 = r[key, idx[1]] "-" r[key, idx[m]]
        $19 = m
        print
    }
}
