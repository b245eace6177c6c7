#!/usr/bin/env bash
# CPU time and syscalls per request of the server process listening on each PORT,
# during one redis-benchmark GET run against it. On a shared 2-core machine ops/s is
# noisy; CPU per request is the steadier number for comparing Redis, twemproxy and
# respite (all started by you beforehand).
#
#   benches/cpu_per_op.sh 6379 6380            # P=16 N=1000000 benches/cpu_per_op.sh …
#
# Needs perf (Debian: linux-perf) and redis-benchmark.
set -euo pipefail
N=${N:-150000}
P=${P:-1}
for port in "$@"; do
    pid=$(ss -ltnpH "sport = :$port" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
    [[ -n "$pid" ]] || { echo "nothing listens on $port" >&2; exit 1; }
    out=$(mktemp)
    perf stat -e task-clock,context-switches,syscalls:sys_enter_writev,syscalls:sys_enter_write,syscalls:sys_enter_recvfrom,syscalls:sys_enter_read,syscalls:sys_enter_epoll_wait \
        -p "$pid" -o "$out" &
    stat_pid=$!
    sleep 0.3
    ops=$(redis-benchmark -p "$port" -t get -c 50 -d 256 -r 100000 -n "$N" -P "$P" --csv 2>/dev/null | tail -1 | cut -d, -f2 | tr -d '"')
    kill -INT "$stat_pid"
    wait "$stat_pid" 2>/dev/null || true
    printf 'port %s (pid %s): %s ops/s; per request: ' "$port" "$pid" "$ops"
    awk -v n="$N" '/task-clock/ {gsub(",","",$1); printf "cpu %.2f us ", $1 * 1000 / n}
        /context-switches|sys_enter/ {gsub(",","",$1); sub("syscalls:sys_enter_","",$2); printf "%s %.2f ", $2, $1 / n}' "$out"
    echo
    rm -f "$out"
done
