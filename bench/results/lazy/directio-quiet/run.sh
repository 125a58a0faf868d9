#!/bin/bash
# erofs_directio A/B on a quiet evening, alternating orders, 4 invocations per setting
cd /work/main
for v in false true true false false true true false; do
  out=/tmp/dio2/dio-$v-$(date +%H%M%S); mkdir -p $out
  build-rel/bench/harness/lazysnap-bench --runs 3 --images python,gcc,node,real-app --modes native-overlayfs,lazy-lazysnap,lazy-prefetch-lazysnap --fused-config "erofs_directio = $v" --out $out > $out/log 2>&1
  echo "$v done $out $(date +%T) rc=$?"
done
