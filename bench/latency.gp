# bench/latency.gp - p99 (and p50) publish-to-delivery latency against offered
# load for the sessions scenario, tabsyncd and Node socket.io (make bench).
# usage: gnuplot -e "datafile='latency.dat'; outfile='bench-latency.png'" latency.gp
set terminal pngcairo size 900,560 enhanced font 'sans,11'
set output outfile
set title 'sessions scenario (rooms of 4): latency against offered load'
set xlabel 'offered load (publishes/s, each delivered to 3 members)'
set ylabel 'publish -> delivery latency (ms)'
set logscale xy
set grid xtics ytics mytics
set key top left
set datafile missing 'NaN'
set format y '%g'
plot datafile using 1:2 with linespoints lw 2 pt 7 lc rgb '#1f77b4' title 'tabsyncd p99', \
     datafile using 1:3 with linespoints lw 2 pt 5 lc rgb '#d62728' title 'Node socket.io p99', \
     datafile using 1:4 with linespoints lw 1 dt 2 pt 6 lc rgb '#1f77b4' title 'tabsyncd p50', \
     datafile using 1:5 with linespoints lw 1 dt 2 pt 4 lc rgb '#d62728' title 'Node socket.io p50'
