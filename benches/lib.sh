# shellcheck shell=bash
# Helpers shared by the benchmark scripts (compare.sh, zipf.sh, compression.sh):
# messages, --help, the temp dir and the processes a script starts (torn down on exit,
# newest first), free loopback ports, and a throwaway redis-server and respite.
#
# Sourced, not run. A script starts with
#     set -euo pipefail
#     SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
#     source "$SCRIPT_DIR/lib.sh"
#     bench_init NAME        # NAME prefixes every message, e.g. compare.sh
# and then calls bench_tmp PREFIX before it starts anything.
#
# It sets REPO, HELPER (compare_helper.py), READY_TIMEOUT_S and the defaults of the
# REDIS_SERVER and REDIS_CLI tool paths.

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HELPER="$REPO/benches/compare_helper.py"

REDIS_SERVER="${REDIS_SERVER:-/usr/bin/redis-server}"
REDIS_CLI="${REDIS_CLI:-redis-cli}"
READY_TIMEOUT_S=10

# --- messages, arguments and settings -----------------------------------------------

# bench_init NAME: NAME prefixes die's and log's messages; --help prints the header
# comment of the script that calls bench_init.
bench_init() {
    BENCH_NAME="$1"
    BENCH_SCRIPT="${BASH_SOURCE[1]}"
}

die() {
    echo "$BENCH_NAME: $*" >&2
    exit 1
}

log() {
    echo "$BENCH_NAME: $*" >&2
}

# help_or_die ARG: -h or --help prints the script's header comment (from the second
# line up to `set -euo`) and exits 0; anything else is an unknown argument.
help_or_die() {
    case "$1" in
        -h | --help)
            sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$BENCH_SCRIPT"
            exit 0
            ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
}

is_uint() { [[ "$1" =~ ^[1-9][0-9]*$ ]]; }

# require_tools TOOL...: die unless every TOOL is a command or an executable path.
require_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "required tool not found: $tool"
    done
}

# --- process management -------------------------------------------------------------

# bench_tmp PREFIX: a temp dir TMP (${TMPDIR:-/tmp}/PREFIX.XXXXXX) and an empty PIDS
# list; on exit, cleanup stops FG_PID (see run_fg) and every process in PIDS, then
# removes TMP. SIGINT exits 130, SIGTERM 143 (through cleanup).
bench_tmp() {
    TMP="$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")"
    PIDS=()
    FG_PID=""
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# stop_all: TERM to every process in PIDS, newest first (the proxies go before the
# Redis behind them); KILL to any still running 5 s later. Empties PIDS.
stop_all() {
    local pid i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill -TERM "${PIDS[$i]}" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}

cleanup() {
    trap - EXIT INT TERM
    if [[ -n "$FG_PID" ]]; then
        kill -TERM "$FG_PID" 2>/dev/null || true
        wait "$FG_PID" 2>/dev/null || true
    fi
    stop_all
    rm -rf "$TMP"
}

# run_fg CMD...: run CMD (stdin from /dev/null; redirect its output at the call) in the
# background and wait for it, so a signal to the script interrupts the wait at once and
# cleanup stops CMD; returns CMD's status.
run_fg() {
    local rc=0
    "$@" </dev/null &
    FG_PID=$!
    wait "$FG_PID" || rc=$?
    FG_PID=""
    return "$rc"
}

# spawn NAME CMD...: start CMD in the background, output to $TMP/NAME.log; sets PID.
spawn() {
    local name="$1"
    shift
    "$@" >"$TMP/$name.log" 2>&1 &
    PID=$!
    PIDS+=("$PID")
}

show_log() {
    if [[ -s "$TMP/$1.log" ]]; then
        echo "--- last lines of $1's log ---" >&2
        tail -n 20 "$TMP/$1.log" >&2
    fi
}

# free_ports N: N free loopback ports into FREE_PORTS, all bound at once by the helper
# so they are distinct; next_port takes them one by one.
free_ports() {
    mapfile -t FREE_PORTS < <(python3 "$HELPER" ports "$1")
    ((${#FREE_PORTS[@]} > 0)) || die "could not find free ports"
}

# next_port: the next of FREE_PORTS into PORT.
next_port() {
    ((${#FREE_PORTS[@]} > 0)) || die "ran out of free ports"
    # shellcheck disable=SC2034 # read by the scripts
    PORT="${FREE_PORTS[0]}"
    FREE_PORTS=("${FREE_PORTS[@]:1}")
}

cli() { # PORT ARGS...
    local port="$1"
    shift
    timeout 10 "$REDIS_CLI" -h 127.0.0.1 -p "$port" "$@"
}

# wait_ping NAME LOG PORT PID: poll until PING answers PONG, for READY_TIMEOUT_S at
# most; dies with the end of $TMP/LOG.log if PID exits first or time runs out.
wait_ping() {
    local name="$1" logname="$2" port="$3" pid="$4" deadline=$((SECONDS + READY_TIMEOUT_S))
    until [[ "$(timeout 2 "$REDIS_CLI" -h 127.0.0.1 -p "$port" ping 2>/dev/null)" == PONG ]]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            show_log "$logname"
            die "$name exited during startup (port $port)"
        fi
        if ((SECONDS >= deadline)); then
            show_log "$logname"
            die "$name did not answer PING on 127.0.0.1:$port within ${READY_TIMEOUT_S}s"
        fi
        sleep 0.05
    done
}

# --- Redis and respite --------------------------------------------------------------

# spawn_redis PORT DIR: a throwaway redis-server on 127.0.0.1:PORT (no persistence,
# working dir DIR, log $TMP/redis.log); sets PID. Wait for it with wait_ping.
spawn_redis() {
    mkdir -p "$2"
    spawn redis "$REDIS_SERVER" --port "$1" --bind 127.0.0.1 \
        --daemonize no --save "" --appendonly no --dir "$2" --logfile ""
}

# respite_toml PORT REDIS_PORT [SERVER_LINE...]: on stdout, the base config of a
# respite on 127.0.0.1:PORT in front of the Redis on REDIS_PORT, log level warn, with
# the SERVER_LINEs added to [server].
respite_toml() {
    local port="$1" redis_port="$2"
    shift 2
    echo "[server]"
    echo "listen = \"127.0.0.1:$port\""
    if (($#)); then
        printf '%s\n' "$@"
    fi
    echo "[upstream]"
    echo "url = \"redis://127.0.0.1:$redis_port\""
    echo "[log]"
    echo "level = \"warn\""
}

# spawn_respite LOG CONF: start $RESPITE_BIN --config CONF, output to $TMP/LOG.log;
# sets PID. Wait for it with wait_ping.
spawn_respite() {
    # The env overrides and RUST_LOG would change what is benchmarked: drop them.
    spawn "$1" env -u RESPITE_LISTEN -u RESPITE_UPSTREAM -u RUST_LOG \
        "$RESPITE_BIN" --config "$2"
}

# --- binaries and machine -----------------------------------------------------------

# cargo_build ARGS...: cargo build --release ARGS for this repository; sets TARGET_DIR.
cargo_build() {
    cargo build --release --quiet --manifest-path "$REPO/Cargo.toml" "$@" ||
        die "cargo build --release failed"
    # shellcheck disable=SC2034 # read by the scripts
    TARGET_DIR="$(python3 "$HELPER" target-dir "$REPO/Cargo.toml")"
}

# note_load WHAT: the load average now into LOAD_AT_START, with a warning that WHAT
# will be noisy when it is above half the CPUs (other work on the machine skews it).
note_load() {
    LOAD_AT_START="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
    if awk -v l="${LOAD_AT_START%% *}" -v n="$(nproc)" 'BEGIN {exit !(l + 0 > n / 2)}'; then
        log "warning: load average is $LOAD_AT_START on $(nproc) CPUs; $1 will be noisy"
    fi
}
