#!/usr/bin/env bash
# CPU time and syscalls per request of the server process listening on each PORT,
# during one redis-benchmark GET run against it, and the CPU per request of the
# benchmark client itself (and, with UPSTREAM=port, of the Redis behind a proxy) in
# that same run. On a shared 2-core machine ops/s is noisy; CPU per request is the
# steadier number for comparing Redis, twemproxy and respite (all started by you
# beforehand), and the sum over the processes shows what 2 cores can carry.
#
#   benches/cpu_per_op.sh 6379 6380                 # P=16 N=1000000 benches/cpu_per_op.sh …
#   UPSTREAM=6379 benches/cpu_per_op.sh 6380 22121  # also Redis's CPU behind each proxy
#   TLS_CACERT=ca.pem benches/cpu_per_op.sh 6380 tls:6381  # tls:PORT: redis-benchmark
#                                                   # --tls --cacert $TLS_CACERT
#
# Needs perf (Debian: linux-perf) and redis-benchmark.
set -euo pipefail
N=${N:-150000}
P=${P:-1}
UPSTREAM=${UPSTREAM:-}
TLS_CACERT=${TLS_CACERT:-}

pid_of() {
    ss -ltnpH "sport = :$1" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2
}

# per_request FILE: "cpu X us" and the counted syscalls per request from a perf stat file.
per_request() {
    awk -v n="$N" '/task-clock/ {gsub(",","",$1); printf "cpu %.2f us ", $1 * 1000 / n}
        /context-switches|sys_enter/ {gsub(",","",$1); sub("syscalls:sys_enter_","",$2); printf "%s %.2f ", $2, $1 / n}' "$1"
}

for target in "$@"; do
    port=${target#tls:}
    tls=()
    if [[ "$target" == tls:* ]]; then
        [[ -n "$TLS_CACERT" ]] || { echo "$target needs TLS_CACERT=<CA file>" >&2; exit 1; }
        tls=(--tls --cacert "$TLS_CACERT")
    fi
    pid=$(pid_of "$port")
    [[ -n "$pid" ]] || { echo "nothing listens on $port" >&2; exit 1; }
    out=$(mktemp) client=$(mktemp) up=$(mktemp)
    perf stat -e task-clock,context-switches,syscalls:sys_enter_writev,syscalls:sys_enter_write,syscalls:sys_enter_recvfrom,syscalls:sys_enter_read,syscalls:sys_enter_epoll_wait \
        -p "$pid" -o "$out" &
    stat_pid=$!
    up_pid=""
    if [[ -n "$UPSTREAM" && "$UPSTREAM" != "$port" ]]; then
        perf stat -e task-clock -p "$(pid_of "$UPSTREAM")" -o "$up" &
        up_pid=$!
    fi
    sleep 0.3
    ops=$(perf stat -e task-clock -o "$client" \
        redis-benchmark "${tls[@]}" -p "$port" -t get -c 50 -d 256 -r 100000 -n "$N" -P "$P" --csv 2>/dev/null |
        tail -1 | cut -d, -f2 | tr -d '"')
    kill -INT "$stat_pid" ${up_pid:+"$up_pid"}
    wait "$stat_pid" ${up_pid:+"$up_pid"} 2>/dev/null || true
    printf 'port %s (pid %s): %s ops/s; per request: %s| client %s' "$target" "$pid" "$ops" \
        "$(per_request "$out")" "$(per_request "$client")"
    if [[ -n "$up_pid" ]]; then
        printf '| redis behind it %s' "$(per_request "$up")"
    fi
    echo
    rm -f "$out" "$client" "$up"
done
