#!/bin/bash
# Run one benchmark at two git revisions of this repository, alternating, in the same session
# (same machine, same load), so a speed change is measured against its reference in one run.
#
#   benchmarks/ab_revisions.sh OLD_REV NEW_REV ROUNDS BENCHMARK [ARGS...]
#   e.g. benchmarks/ab_revisions.sh a6b305c HEAD 2 detect_latency.py --repeats 1 --no-json
#
# Each revision is checked out once into a temporary worktree; its own src/ and benchmarks/ are
# used (PYTHONPATH), in a fresh process per run. Output: one log per (revision, round) in
# ${AB_OUT:-ab_out}/, and the load average before each run in ab_out/progress.txt.
set -euo pipefail
old=$1 new=$2 rounds=$3 bench=$4
shift 4
root=$(git rev-parse --show-toplevel)
out=${AB_OUT:-ab_out}
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'for r in a b; do git -C "$root" worktree remove --force "$tmp/$r" 2>/dev/null || true; done; rm -rf "$tmp"' EXIT
git -C "$root" worktree add -q --detach "$tmp/a" "$old"
git -C "$root" worktree add -q --detach "$tmp/b" "$new"
for ((i = 1; i <= rounds; i++)); do
  for r in a b; do
    rev=$([ $r = a ] && echo "$old" || echo "$new")
    echo "$(date -u +%FT%TZ) $rev round $i load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/progress.txt"
    PYTHONPATH="$tmp/$r/src" HF_HUB_OFFLINE=1 python "$tmp/$r/benchmarks/$bench" "$@" > "$out/${rev//\//_}_$i.log" 2>&1
  done
done
echo "logs in $out/"
