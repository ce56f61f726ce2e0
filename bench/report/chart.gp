# chart.dat (bench/report/chart.awk) -> results.png: clustered bars of
# req/s over the limit row's, labelled with their value.
#   gnuplot -e "data='chart.dat'; out='results.png'; ncols=7; nrows=4;
#               subtitle='...'" bench/report/chart.gp

set terminal pngcairo noenhanced size 1100,560 font "Sans,10"
set output out
set title "ngx_http_webhook_module: requests/s as a fraction of nginx's " . \
          "own limit (return 200), same run\n" . subtitle
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:1.25]
set ytics 0.1
set grid ytics
set ylabel "requests/s ÷ limit"
set key top right horizontal maxcols 3
set key autotitle columnhead
set datafile separator "\t"
set xtics nomirror
set xrange [-0.6:nrows - 0.4]

# bar c of a cluster of n = ncols - 1 bars (gap 1) stands at
# x + (c - 2 + 0.5 - n / 2) / (n + 1)
plot for [c=2:ncols] data using c:xtic(1), \
     for [c=2:ncols] data \
         using ($0 + (c - 1.5 - (ncols - 1) / 2.0) / ncols):(column(c)):\
               (sprintf("%.2f", column(c))) \
         with labels offset 0,0.6 font "Sans,8" notitle
