#!/usr/bin/env bash
# The study folder's kept records copied here, unfinished runs' records snapshot into in-progress/ (and
# once more when they finish, beside their sitting notes),
# and --status written (with --report: the tables, orderings and figures redrawn first, from every
# kept record). Run from the repository root after queue.sh; STUDY as there.
set -euo pipefail
cd "$(dirname "$0")/../.."
STUDY="${STUDY:-$HOME/dsmnet-study/converged}"
R=results/converged
TABLES=(--tables table1,table2,table3,beyond --seeds 0,1 --no-discover)
cp -a "$STUDY/metrics/." "$R/metrics/"
for run in "$STUDY"/runs/*/*/seed*; do  # a run that finished since its last snapshot gets a last one
    keep="$R/in-progress/${run#"$STUDY"/runs/}"
    [ -d "$run" ] && { [ ! -f "$run/summary.json" ] || [ -d "$keep" ]; } || continue
    mkdir -p "$keep"
    for f in metrics.jsonl sessions.json pauses.jsonl spec.yaml status.json; do [ ! -f "$run/$f" ] || cp "$run/$f" "$keep/"; done
done
if [ "${1:-}" = "--report" ]; then
    .venv/bin/dsmnet reproduce --out "$R" "${TABLES[@]}" --report | tail -1
    cp -a "$R/metrics/." "$STUDY/metrics/"  # references fitted again while redrawing go back too
fi
.venv/bin/dsmnet reproduce --out "$R" "${TABLES[@]}" --status | tail -1
