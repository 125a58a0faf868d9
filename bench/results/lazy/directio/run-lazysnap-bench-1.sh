#!/bin/bash
cd /work/main
for v in false true; do
  build-rel/bench/harness/lazysnap-bench --runs 3 --images real-app,python,gcc,node,postgres,jre \
    --modes native-overlayfs,lazy-lazysnap --fused-config "erofs_directio = $v" --out /tmp/ab-$v > /tmp/ab-$v.log 2>&1
  echo "done $v rc=$?"
done
