# repo-size.gp: repository size over days, one line per tool.
# gnuplot -e "datafile='sizes.dat'; outfile='bench-repo-size.png'" repo-size.gp
# sizes.dat: a header line of tool names, then "DAY MB MB ..." per day.
set terminal pngcairo size 900,540 noenhanced font ",11"
set output outfile
set title "Repository size after each day"
set xlabel "day"
set ylabel "MB (10^6 bytes)"
set key top left
set grid
set xtics 1
stats datafile skip 1 nooutput
n = STATS_columns
plot for [i=2:n] datafile using 1:i with linespoints lw 2 pt 7 \
	title columnheader(i)
