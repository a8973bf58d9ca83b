#!/usr/bin/env bash
# Run a command with the study's trainings paused, and say so in their records: every `dsmnet
# reproduce` or `dsmnet train` process is stopped with its helper processes (--fresh-data's
# simulator: `pgrep -f 'dsmnet reproduce'` alone misses it), the command runs alone on the cores,
# and they continue — also when the command fails or is interrupted. Each paused run gets a line in its pauses.jsonl (from, to, why), which
# `dsmnet reproduce --status` lists under the session it fell in. For what must be measured alone
# (benchmarks, a fresh-clone CI run, make demo); STUDY as in queue.sh; PAUSE_MATCH, the processes'
# command-line pattern (pgrep -f), for the test.
#
#   bash results/converged/pause.sh "fresh-clone CI" bash -c 'rm -rf /tmp/ci && git clone -q . /tmp/ci && cd /tmp/ci && bash .ci/run'
set -euo pipefail
cd "$(dirname "$0")/../.."
STUDY="${STUDY:-$HOME/dsmnet-study/converged}"
[ $# -ge 2 ] || { echo "usage: pause.sh WHY COMMAND [ARGS...]" >&2; exit 2; }
why="$1"
shift
pids=()  # every training or study process (scoring uses the cores too) and its helpers
for pid in $(pgrep -f "${PAUSE_MATCH:-^[^ ]*python[^ ]* [^ ]*dsmnet (reproduce|train) }" || true); do
    pids+=("$pid" $(pgrep -P "$pid" || true))
done
runs=()  # the runs they are training: a lock naming one of them, no summary yet
for lock in "$STUDY"/runs/*/*/seed*/.lock; do
    [ -f "$lock" ] && [ ! -f "$(dirname "$lock")/summary.json" ] || continue
    pid=$(head -n 1 "$lock")
    [[ " ${pids[*]} " == *" $pid "* ]] && runs+=("$(dirname "$lock")")
done
now() { date -u +%Y-%m-%dT%H:%M:%SZ; }
began=$(now)
resume() {
    [ ${#pids[@]} -eq 0 ] || kill -CONT "${pids[@]}" 2>/dev/null || true
    local ended
    ended=$(now)
    for run in "${runs[@]}"; do
        .venv/bin/python -c 'import json, sys; print(json.dumps(dict(zip(["from", "to", "why"], sys.argv[1:]))))' \
            "$began" "$ended" "$why" >> "$run/pauses.jsonl"
    done
    echo "pause.sh: ${#runs[@]} training(s) paused ${began:11:8}–${ended:11:8} UTC for: $why" >&2
}
trap resume EXIT
[ ${#pids[@]} -eq 0 ] || kill -STOP "${pids[@]}"
"$@"
