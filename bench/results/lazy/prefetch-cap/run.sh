#!/bin/bash
# A/B of lazysnap-fused: prefetch list ranges capped at 32 MiB vs not, both orders
cd /work/main
for v in nocap cap cap nocap; do
  cp /tmp/fused-$v build-rel/lazy/lazysnap-fused
  out=/tmp/cap/$v-$(date +%H%M%S); mkdir -p $out
  build-rel/bench/harness/lazysnap-bench --runs 3 --images real-app,lazy-app,python,gcc --modes native-overlayfs,lazy-prefetch-lazysnap --out $out > $out/log 2>&1
  echo "$v done $out $(date +%T)"
done
cp /tmp/fused-cap build-rel/lazy/lazysnap-fused
