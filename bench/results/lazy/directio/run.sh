#!/bin/bash
cd /work/main
for i in 1 2 3; do
  for v in false true; do
    build-rel/bench/lazy/lazy_read_bench --runs 7 --spans 4M --fused-config "erofs_directio = $v" > /tmp/paired-$v-$i.txt 2>&1
    echo "directio=$v run $i: warm $(grep 'warm (chunk' /tmp/paired-$v-$i.txt | cut -d'|' -f4,6,7) cold $(grep 'cold (empty' /tmp/paired-$v-$i.txt | cut -d'|' -f4,6,7)"
  done
done
