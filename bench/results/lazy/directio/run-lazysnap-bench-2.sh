#!/bin/bash
cd /work/main
for v in true false; do
  build-rel/bench/harness/lazysnap-bench --runs 3 --images real-app,python,node,gcc \
    --modes native-overlayfs,lazy-lazysnap --fused-config "erofs_directio = $v" --out /tmp/ab2-$v > /tmp/ab2-$v.log 2>&1
  echo "done $v rc=$?"
done
