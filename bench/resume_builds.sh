#!/usr/bin/env bash
# Restart the acceptance-data builds in the background at the lowest priority: the potential's labels
# (bench/build_al_dataset.py, issue #5) and the ML-DFT snapshots (bench/build_ldos_dataset.py, issue #4).
# Both resume from finished pw.x work under runs/ and commit their data file as they go; a build already
# running is left alone. Progress: `--status` of each script, or runs/al_dft_v1/build.log, runs/ldos_v1/build.log.
# The LDOS snapshots (issue #4) run at nice 10 on 2 MPI ranks; the labels at nice 19 take the cycles left over.
# The LDOS build finished on 2026-11-22 (15 of 15): started again, it only finds nothing left and exits. Before a session ends: bash bench/pause_builds.sh (pw.x stops cleanly and resumes later).
#   bash bench/resume_builds.sh            # LDOS: 1 snapshot x 2 ranks; labels: 2 pw.x
#   AL_WORKERS=1 LDOS_RANKS=1 bash bench/resume_builds.sh
set -euo pipefail
cd "$(dirname "$0")/.."
start() {  # start NICENESS SCRIPT ARGS... unless SCRIPT is already running
    local niceness=$1; shift
    if pgrep -f "python bench/$1" > /dev/null; then
        echo "$1 is already running"
    else
        nohup nice -n "$niceness" .venv/bin/python "bench/$@" > /dev/null 2>&1 &
        echo "started $1 (pid $!, nice $niceness)"
    fi
}
start 10 build_ldos_dataset.py --commit --workers "${LDOS_WORKERS:-1}" --ranks "${LDOS_RANKS:-2}"
start 19 build_al_dataset.py --commit --chunk 8 --workers "${AL_WORKERS:-2}"
