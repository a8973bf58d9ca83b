#!/usr/bin/env bash
# The study folder's kept records copied here, unfinished runs' records snapshot into in-progress/ (and
# once more when they finish, beside their sitting notes; a run begun again after its folder was lost
# — a new machine — moves the lost one's snapshot aside to lost-seedN-<when it began> first),
# and --status written (with --report: the tables, orderings and figures redrawn first, from every
# kept record). Run from the repository root after queue.sh; STUDY as there.
set -euo pipefail
cd "$(dirname "$0")/../.."
STUDY="${STUDY:-$HOME/dsmnet-study/converged}"
R=results/converged
TABLES=(--tables table1,table2,table3,beyond --seeds 0,1 --no-discover)
cp -a "$STUDY/metrics/." "$R/metrics/"
began() { .venv/bin/python -c 'import json, sys; print(json.load(open(sys.argv[1]))[0]["began"])' "$1/sessions.json"; }
for run in "$STUDY"/runs/*/*/seed*; do  # a run that finished since its last snapshot gets a last one
    keep="$R/in-progress/${run#"$STUDY"/runs/}"
    [ -d "$run" ] && { [ ! -f "$run/summary.json" ] || [ -d "$keep" ]; } || continue
    if [ -f "$keep/sessions.json" ] && [ -f "$run/sessions.json" ] && [ "$(began "$keep")" != "$(began "$run")" ]; then
        mv "$keep" "$(dirname "$keep")/lost-$(basename "$keep")-$(began "$keep" | tr -d ':-' | cut -c1-13)"  # a lost run's record stays
    fi
    mkdir -p "$keep"
    for f in metrics.jsonl sessions.json pauses.jsonl spec.yaml status.json; do [ ! -f "$run/$f" ] || cp "$run/$f" "$keep/"; done
done
if [ "${1:-}" = "--report" ]; then
    .venv/bin/dsmnet reproduce --out "$R" "${TABLES[@]}" --report | tail -1
    cp -a "$R/metrics/." "$STUDY/metrics/"  # references fitted again while redrawing go back too
fi
.venv/bin/dsmnet reproduce --out "$R" "${TABLES[@]}" --status | tail -1
