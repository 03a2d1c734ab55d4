# growth.gp: repository size over the days of the growth series, one line
# per tool (tools/bench/growth.sh).
# gnuplot -e "datafile='growth-sizes.dat'; outfile='growth-repo-size.png'" growth.gp
# growth-sizes.dat: a header line of tool names, then "DAY MB MB ..." per day.
set terminal pngcairo size 900,540 noenhanced font ",11"
set output outfile
set title "Growth series, real-like mail: repository size after each day"
set xlabel "day"
set ylabel "MB (10^6 bytes)"
set key top left
set grid
set yrange [0:*]
stats datafile skip 1 nooutput
n = STATS_columns
stats datafile skip 1 using 1 nooutput
set xrange [1:STATS_max]
xt = STATS_max > 12 ? 5 : 1
set xtics xt
set mxtics xt
plot for [i=2:n] datafile using 1:i with linespoints lw 2 pt 7 ps 0.6 \
	title columnheader(i)
