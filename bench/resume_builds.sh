#!/usr/bin/env bash
# Restart the potential's label build (bench/build_al_dataset.py, issue #5) in the background at nice 19.
# It resumes from the labels in data/al_dft_v1.extxyz and from finished pw.x work under runs/, and commits
# the data file every 8 new labels; a build already running is left alone. Progress: `--status` of the
# script, or runs/al_dft_v1/build.log. Before a session ends: bash bench/pause_builds.sh (pw.x stops cleanly
# and resumes later; it also commits the labels stored since the last commit).
# The ML-DFT snapshots (bench/build_ldos_dataset.py, issue #4) finished on 2026-11-22 and are no longer started
# here: their LDOS files live under runs/, so on a fresh machine a restart would recompute all 15 (LDOS=1 does).
#   bash bench/resume_builds.sh            # labels: 2 pw.x
#   AL_WORKERS=1 bash bench/resume_builds.sh
#   LDOS=1 bash bench/resume_builds.sh     # also the LDOS snapshots: 1 snapshot x 2 ranks at nice 10
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
[ "${LDOS:-0}" = 1 ] && start 10 build_ldos_dataset.py --commit --workers "${LDOS_WORKERS:-1}" --ranks "${LDOS_RANKS:-2}"
start 19 build_al_dataset.py --commit --chunk 8 --workers "${AL_WORKERS:-2}"
