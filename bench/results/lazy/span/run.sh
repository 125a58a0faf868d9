#!/bin/bash
cd /work/main
for v in 1M 4M 2M; do
  build-rel/bench/harness/lazysnap-bench --runs 3 --images real-app,python,gcc,node \
    --modes native-overlayfs,lazy-lazysnap --index-span $v --out /tmp/span-$v > /tmp/span-$v.log 2>&1
  echo "done $v rc=$?"
done
