#!/bin/bash
cd /work/main
for n in 1 2 3 3 2 1; do
  out=/tmp/pt/t$n-$(date +%H%M%S); mkdir -p $out
  # (prefetch_threads was an experimental [lazy] key, removed after this measurement)
  build-rel/bench/harness/lazysnap-bench --runs 3 --images python,gcc,jre,node,postgres,real-app --modes native-overlayfs,lazy-prefetch-lazysnap --fused-config "prefetch_threads = $n" --out $out > $out/log 2>&1
  echo "$n done $out $(date +%T)"
done
