#!/usr/bin/env bash
# Restart the acceptance-data builds in the background at the lowest priority: the potential's labels
# (bench/build_al_dataset.py, issue #5) and the ML-DFT snapshots (bench/build_ldos_dataset.py, issue #4).
# Both resume from finished pw.x work under runs/ and commit their data file as they go; a build already
# running is left alone. Progress: `--status` of each script, or runs/al_dft_v1/build.log, runs/ldos_v1/build.log.
#   bash bench/resume_builds.sh            # 2 pw.x for the labels + 1 for the LDOS snapshots
#   AL_WORKERS=1 bash bench/resume_builds.sh
set -euo pipefail
cd "$(dirname "$0")/.."
start() {  # start SCRIPT ARGS... unless SCRIPT is already running
    if pgrep -f "python bench/$1" > /dev/null; then
        echo "$1 is already running"
    else
        nohup nice -n 19 .venv/bin/python "bench/$@" > /dev/null 2>&1 &
        echo "started $1 (pid $!)"
    fi
}
start build_al_dataset.py --commit --chunk 8 --workers "${AL_WORKERS:-2}"
start build_ldos_dataset.py --commit --workers "${LDOS_WORKERS:-1}"
