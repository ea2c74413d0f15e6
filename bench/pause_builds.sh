#!/usr/bin/env bash
# Pause the acceptance-data builds (bench/resume_builds.sh starts them) without losing pw.x work: run this
# before a session ends. The builders stop first, so nothing is recorded as failed; then every pw.x SCF gets
# QE's exit file (out/pw.EXIT) and stops at its next check with restart files, which the next run of the same
# job resumes (alml.dft.espresso.request_stop; an SCF stopped inside its first iteration starts over). An nscf
# has no such restart and is simply ended; it is rerun from the SCF's density. pw.x runs still alive after WAIT
# seconds (default 900) are killed.
# ONLY=ldos or ONLY=al pauses one build (e.g. to restart it with changed code; resume_builds.sh then starts
# only the stopped one).
#   bash bench/pause_builds.sh
#   ONLY=ldos bash bench/pause_builds.sh && bash bench/resume_builds.sh
set -uo pipefail
cd "$(dirname "$0")/.."
wait_s=${WAIT:-900}
case ${ONLY:-all} in
    all) which="al|ldos"; runs="runs/(al_dft|ldos)_v1" ;;
    al) which="al"; runs="runs/al_dft_v1" ;;
    ldos) which="ldos"; runs="runs/ldos_v1" ;;
    *) echo "ONLY must be al or ldos, not '$ONLY'" >&2; exit 2 ;;
esac
mine() { pgrep -x "$1" | while read -r pid; do readlink "/proc/$pid/cwd" | grep -Eq "$runs/" && echo "$pid"; done; }
stopped_al=0
pgrep -f "python bench/build_al_dataset.py" > /dev/null && [ "$which" != ldos ] && stopped_al=1
pkill -f "python bench/build_($which)_dataset.py" && echo "stopped the builders ($which)"
# bench/mldft_acceptance.py stops too: its training resumes from the last checkpoint (<= 10 epochs lost); a full
# run reuses the evaluation groups it finished (eval/<group>/group.json) and redoes the one it was in
[ "$which" != al ] && pkill -f "python bench/mldft_acceptance.py" && echo "stopped the acceptance training"
for pid in $(mine pw.x); do
    dir=$(readlink "/proc/$pid/cwd") || continue
    if tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "-in pw.in"; then
        mkdir -p "$dir/out" && touch "$dir/out/pw.EXIT" && echo "asked pw.x $pid to stop: $dir"
    else
        kill "$pid" && echo "ended pw.x $pid (not an SCF): $dir"
    fi
done
for pid in $(mine pp.x); do kill "$pid"; done
for ((t = 0; t < wait_s; t += 5)); do
    [ -z "$(mine pw.x)" ] && { echo "all pw.x stopped after ${t} s"; break; }
    sleep 5
done
if [ -n "$(mine pw.x)" ]; then
    echo "pw.x still running after ${wait_s} s: killing it (its SCF starts over next time)"
    for pid in $(mine pw.x); do kill "$pid"; done
fi
# the label builder stores each result as it finishes but commits the data file only every --chunk labels:
# export and commit what the store holds now, so that a fresh checkout keeps it (labels nothing)
if [ "$stopped_al" = 1 ]; then
    .venv/bin/python bench/build_al_dataset.py --limit 0 --commit > /dev/null && echo "exported the stored labels (committed if they changed)"
fi
exit 0
