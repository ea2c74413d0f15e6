#!/usr/bin/env bash
# Pause the acceptance-data builds (bench/resume_builds.sh starts them) without losing pw.x work: run this
# before a session ends. The builders stop first, so nothing is recorded as failed; then every pw.x SCF gets
# QE's exit file (out/pw.EXIT) and stops after its current iteration with restart files, which the next run
# of the same job resumes (alml.dft.espresso.request_stop). An nscf has no such restart and is simply ended;
# it is rerun from the SCF's density. pw.x runs still alive after WAIT seconds (default 900) are killed.
#   bash bench/pause_builds.sh
set -uo pipefail
wait_s=${WAIT:-900}
pkill -f "python bench/build_(al|ldos)_dataset.py" && echo "stopped the builders"
for pid in $(pgrep -x pw.x); do
    dir=$(readlink "/proc/$pid/cwd") || continue
    if tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "-in pw.in"; then
        mkdir -p "$dir/out" && touch "$dir/out/pw.EXIT" && echo "asked pw.x $pid to stop: $dir"
    else
        kill "$pid" && echo "ended pw.x $pid (not an SCF): $dir"
    fi
done
pkill -x pp.x
for ((t = 0; t < wait_s; t += 5)); do
    pgrep -x pw.x > /dev/null || { echo "all pw.x stopped after ${t} s"; exit 0; }
    sleep 5
done
echo "pw.x still running after ${wait_s} s: killing it (its SCF starts over next time)"
pkill -x pw.x
exit 0
