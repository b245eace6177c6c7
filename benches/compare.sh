#!/usr/bin/env bash
# Load comparison: direct Redis vs twemproxy (nutcracker) vs respite vs respite serving
# GETs from its L1 cache, in one run.
#
# Usage: benches/compare.sh [--no-l1] [--extra-toml [LABEL=]FILE]...
#
# Starts its own redis-server, nutcracker and respite on free loopback ports (all torn
# down on exit), runs `redis-benchmark -t get,set -c 50 -d 256 -r 100000` at -P 1 and
# -P 16 against each, BENCH_REPEAT times per cell with the targets interleaved
# round-robin, and prints a markdown table of the median runs. Raw results go to
# target/bench/compare-<timestamp>.csv (and the table to the matching .md; the L1-hit
# target's counters to compare-<timestamp>-l1.csv).
#
# The "respite (L1 hit)" target is a second respite whose config adds BENCH_L1_TOML
# (every key:* redis-benchmark touches is L1-cached). It runs the GET test only (a SET
# invalidates the key in L1, and the other targets' SET runs invalidate most keys, so
# before each of its runs every one of the 100000 keys is read once through it and
# RESPITE STATS must show them all in L1). After the table it reports, over its
# measured runs only, the L1 hit ratio (RESPITE STATS deltas) and how many GETs
# reached Redis (INFO commandstats deltas).
#
# --no-l1                    leave out the "respite (L1 hit)" target (also BENCH_L1=0)
# --extra-toml [LABEL=]FILE  add one more respite target whose proxy.toml is the base
#                            config with FILE appended (e.g. [[namespace]] sections;
#                            FILE must not repeat [server], [upstream] or [log]).
#                            Repeatable. LABEL defaults to "respite+<name>". It runs
#                            GET and SET like the base respite, without L1 warm-up.
#
# Environment:
#   RESPITE_BIN        respite binary to use (default: cargo build --release)
#   BENCH_N            requests per test at -P 1   (default 200000)
#   BENCH_N_PIPELINE   requests per test at -P 16  (default 2000000)
#   BENCH_REPEAT       runs per (target, test, pipeline) cell (default 3)
#   BENCH_QUICK=1      smoke run: small N (20000 / 200000) and BENCH_REPEAT 1
#   BENCH_TIMEOUT      seconds allowed for one redis-benchmark run (default 600)
#   BENCH_L1=0         same as --no-l1
#   BENCH_L1_TOML      config appended for the L1-hit target (default benches/l1-hit.toml)
#   BENCH_L1_THREADS   [server] threads of the L1-hit target (default 2: hits scale with
#                      threads, while the other targets keep the default, 1 on 2 CPUs)
#   REDIS_SERVER, NUTCRACKER, REDIS_BENCHMARK, REDIS_CLI   tool paths
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=benches/lib.sh
source "$SCRIPT_DIR/lib.sh"
bench_init compare.sh

NUTCRACKER="${NUTCRACKER:-/usr/sbin/nutcracker}"
REDIS_BENCHMARK="${REDIS_BENCHMARK:-redis-benchmark}"

PIPELINES=(1 16)
CLIENTS=50
DATA_SIZE=256
KEYSPACE=100000

# --- arguments and settings ---------------------------------------------------------

ORIG_ARGS=("$@")
EXTRA_SPECS=()
WITH_L1="${BENCH_L1:-1}"
while (($#)); do
    case "$1" in
        --no-l1)
            WITH_L1=0
            shift
            ;;
        --extra-toml)
            (($# >= 2)) || die "--extra-toml needs a [LABEL=]FILE argument"
            EXTRA_SPECS+=("$2")
            shift 2
            ;;
        --extra-toml=*)
            EXTRA_SPECS+=("${1#--extra-toml=}")
            shift
            ;;
        *) help_or_die "$1" ;;
    esac
done

if [[ "${BENCH_QUICK:-0}" == 1 ]]; then
    N_P1="${BENCH_N:-20000}"
    N_PIPE="${BENCH_N_PIPELINE:-200000}"
    REPEAT="${BENCH_REPEAT:-1}"
else
    N_P1="${BENCH_N:-200000}"
    N_PIPE="${BENCH_N_PIPELINE:-2000000}"
    REPEAT="${BENCH_REPEAT:-3}"
fi
BENCH_TIMEOUT="${BENCH_TIMEOUT:-600}"
for v in N_P1 N_PIPE REPEAT BENCH_TIMEOUT; do
    is_uint "${!v}" || die "$v must be a positive integer, got '${!v}'"
done
[[ "$WITH_L1" == 0 || "$WITH_L1" == 1 ]] || die "BENCH_L1 must be 0 or 1, got '$WITH_L1'"
L1_TOML="${BENCH_L1_TOML:-$SCRIPT_DIR/l1-hit.toml}"
L1_THREADS="${BENCH_L1_THREADS:-2}"
[[ "$L1_THREADS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_L1_THREADS must be a positive number"
if [[ "$WITH_L1" == 1 ]]; then
    [[ -f "$L1_TOML" ]] || die "BENCH_L1_TOML: no such file: $L1_TOML"
    L1_TOML="$(cd "$(dirname "$L1_TOML")" && pwd)/$(basename "$L1_TOML")"
fi
L1_ID=respite_l1
L1_LABEL="respite (L1 hit)"
# The warm-up must leave at least this share of the keys in L1 (per mille).
L1_MIN_WARM_PERMILLE=995

require_tools "$REDIS_SERVER" "$NUTCRACKER" "$REDIS_BENCHMARK" "$REDIS_CLI" python3 timeout

# --- process management -------------------------------------------------------------

bench_tmp respite-bench

free_ports $((9 + 2 * ${#EXTRA_SPECS[@]}))

# wait_ready NAME LOG PORT PID: wait_ping, then one write/read round trip, so a target
# that answers PING but not data fails here.
wait_ready() {
    local name="$1" port="$3" key="respite-bench:probe:$2" got
    wait_ping "$@"
    got="$(timeout 2 "$REDIS_CLI" -h 127.0.0.1 -p "$port" set "$key" ok 2>&1 || true)"
    [[ "$got" == OK ]] || die "$name: SET probe replied '$got'"
    got="$(timeout 2 "$REDIS_CLI" -h 127.0.0.1 -p "$port" get "$key" 2>&1 || true)"
    [[ "$got" == ok ]] || die "$name: GET probe replied '$got'"
    timeout 2 "$REDIS_CLI" -h 127.0.0.1 -p "$port" del "$key" >/dev/null 2>&1 || true
}

# Targets, in column order; the benchmark loop visits them round-robin.
TARGET_IDS=()
TARGET_LABELS=()
TARGET_PORTS=()
TARGET_PIDS=()
TARGET_LOGS=()
TARGET_TESTS=() # redis-benchmark -t list: get,set, or get for the L1-hit target
add_target() { # ID LABEL PORT PID LOG [TESTS]
    TARGET_IDS+=("$1")
    TARGET_LABELS+=("$2")
    TARGET_PORTS+=("$3")
    TARGET_PIDS+=("$4")
    TARGET_LOGS+=("$5")
    TARGET_TESTS+=("${6:-get,set}")
}

start_redis() {
    next_port
    REDIS_PORT="$PORT"
    spawn_redis "$REDIS_PORT" "$TMP/redis"
    wait_ready redis-server redis "$REDIS_PORT" "$PID"
    add_target direct direct "$REDIS_PORT" "$PID" redis
}

start_twemproxy() {
    local conf="$TMP/nutcracker.yml" stats_port
    next_port
    TWEM_PORT="$PORT"
    next_port
    stats_port="$PORT"
    cat >"$conf" <<EOF
respite_bench:
  listen: 127.0.0.1:$TWEM_PORT
  hash: fnv1a_64
  distribution: ketama
  redis: true
  auto_eject_hosts: false
  server_connections: 1
  servers:
    - 127.0.0.1:$REDIS_PORT:1
EOF
    "$NUTCRACKER" --test-conf -c "$conf" >"$TMP/nutcracker-test.log" 2>&1 ||
        { cat "$TMP/nutcracker-test.log" >&2; die "nutcracker rejected $conf"; }
    spawn twemproxy "$NUTCRACKER" -c "$conf" -s "$stats_port" -a 127.0.0.1 \
        -p "$TMP/nutcracker.pid" -o "$TMP/twemproxy.log"
    wait_ready twemproxy twemproxy "$TWEM_PORT" "$PID"
    add_target twemproxy twemproxy "$TWEM_PORT" "$PID" twemproxy
}

# start_respite ID LABEL [EXTRA_TOML [TESTS [SERVER_LINE...]]]: a respite in front of
# the Redis above, with the base config (SERVER_LINEs added to [server]) plus EXTRA_TOML
# (a file) appended.
start_respite() {
    local id="$1" label="$2" extra="${3:-}" tests="${4:-get,set}" conf="$TMP/$1.toml"
    shift $(($# < 4 ? $# : 4))
    next_port
    respite_toml "$PORT" "$REDIS_PORT" "$@" >"$conf"
    if [[ -n "$extra" ]]; then
        printf '\n# --- appended from %s ---\n' "$extra" >>"$conf"
        cat "$extra" >>"$conf"
    fi
    spawn_respite "$id" "$conf"
    wait_ready "$label" "$id" "$PORT" "$PID"
    add_target "$id" "$label" "$PORT" "$PID" "$id" "$tests"
}

# --- respite binary -----------------------------------------------------------------

# Validate --extra-toml specs before building or starting anything.
EXTRA_IDS=()
EXTRA_LABELS=()
EXTRA_FILES=()
for spec in "${EXTRA_SPECS[@]}"; do
    if [[ "$spec" == *=* ]]; then
        label="${spec%%=*}"
        file="${spec#*=}"
    else
        file="$spec"
        label="respite+$(basename "$file" .toml)"
    fi
    [[ -f "$file" ]] || die "--extra-toml: no such file: $file"
    [[ -n "$label" && "$label" != *[,\|]* ]] || die "--extra-toml: bad label '$label'"
    if grep -Eq '^[[:space:]]*\[(server|upstream|log)\][[:space:]]*(#.*)?$' "$file"; then
        die "--extra-toml $file: must not contain [server], [upstream] or [log]"
    fi
    EXTRA_IDS+=("respite_x$((${#EXTRA_IDS[@]} + 1))")
    EXTRA_LABELS+=("$label")
    EXTRA_FILES+=("$(cd "$(dirname "$file")" && pwd)/$(basename "$file")")
done

if [[ -z "${RESPITE_BIN:-}" ]]; then
    log "building respite (cargo build --release)"
    # shellcheck disable=SC2119 # no extra cargo arguments: the default binaries
    cargo_build
    RESPITE_BIN="$TARGET_DIR/release/respite"
    RESPITE_BIN_SOURCE="built"
else
    RESPITE_BIN_SOURCE="RESPITE_BIN"
fi
[[ -x "$RESPITE_BIN" ]] || die "respite binary not executable: $RESPITE_BIN"

# --- start everything ---------------------------------------------------------------

# Other work on this machine skews the numbers; say so up front and in the header.
note_load results

start_redis
start_twemproxy
start_respite respite respite
if [[ "$WITH_L1" == 1 ]]; then
    start_respite "$L1_ID" "$L1_LABEL" "$L1_TOML" get "threads = $L1_THREADS"
fi
for i in "${!EXTRA_IDS[@]}"; do
    start_respite "${EXTRA_IDS[$i]}" "${EXTRA_LABELS[$i]}" "${EXTRA_FILES[$i]}"
done
log "ready: $(for i in "${!TARGET_IDS[@]}"; do printf '%s=127.0.0.1:%s ' "${TARGET_LABELS[$i]}" "${TARGET_PORTS[$i]}"; done)"

# --- benchmark ----------------------------------------------------------------------

STAMP="$(date -u +%Y%m%d-%H%M%S)"
OUT_DIR="${CARGO_TARGET_DIR:-$REPO/target}/bench"
# Collected in the temp dir, copied to OUT_DIR only when the run completes.
RAW_TMP="$TMP/raw.csv"
: >"$RAW_TMP"

# run_bench PORT OUT ERR ARGS...: redis-benchmark against PORT, bounded by BENCH_TIMEOUT.
# It runs in the background and is waited for, so a signal to this script interrupts
# the wait at once and cleanup stops it; returns redis-benchmark's (or timeout's) status.
run_bench() {
    local port="$1" out="$2" err="$3"
    shift 3
    run_fg timeout "$BENCH_TIMEOUT" "$REDIS_BENCHMARK" -h 127.0.0.1 -p "$port" "$@" \
        >"$out" 2>"$err"
}

bench_args() { # N PIPELINE [TESTS]
    printf '%s\n' -t "${3:-get,set}" -c "$CLIENTS" -d "$DATA_SIZE" -r "$KEYSPACE" -n "$1" -P "$2" --csv
}

# run_cell TARGET_INDEX PIPELINE REPEAT: one recorded run. If redis-benchmark alone was
# killed by a signal from outside (on a shared machine, another job's cleanup), records
# nothing and sets KILLED=1 so the caller can run the cell again.
KILLED=0
KILLS=0
MAX_KILLS=3
run_cell() {
    local i="$1" p="$2" rep="$3" n out args rc=0 j
    KILLED=0
    n=$((p == 1 ? N_P1 : N_PIPE))
    out="$TMP/bench-${TARGET_IDS[$i]}-P$p-$rep"
    mapfile -t args < <(bench_args "$n" "$p" "${TARGET_TESTS[$i]}")
    run_bench "${TARGET_PORTS[$i]}" "$out.csv" "$out.err" "${args[@]}" || rc=$?
    for j in "${!TARGET_IDS[@]}"; do
        if ! kill -0 "${TARGET_PIDS[$j]}" 2>/dev/null; then
            show_log "${TARGET_LOGS[$j]}"
            die "${TARGET_LABELS[$j]} exited during the benchmark"
        fi
    done
    if ((rc == 143 || rc == 137)) && ((KILLS < MAX_KILLS)); then
        KILLS=$((KILLS + 1))
        KILLED=1
        log "warning: redis-benchmark against ${TARGET_LABELS[$i]} P$p was killed by a signal (exit $rc) from outside this script; running the cell again ($KILLS/$MAX_KILLS)"
        return 0
    fi
    if ((rc != 0)); then
        tail -n 20 "$out.err" "$out.csv" >&2
        ((rc == 124)) && die "redis-benchmark against ${TARGET_LABELS[$i]} P$p timed out after ${BENCH_TIMEOUT}s"
        die "redis-benchmark against ${TARGET_LABELS[$i]} P$p failed (exit $rc)"
    fi
    python3 "$HELPER" append "$RAW_TMP" "${TARGET_LABELS[$i]}" "${TARGET_IDS[$i]}" \
        "$p" "$rep" "$n" "$out.csv" "${TARGET_TESTS[$i]^^}"
    log "run $rep/$REPEAT P$p ${TARGET_LABELS[$i]}: $(awk -F'"' '$2 == "SET" || $2 == "GET" {printf "%s %s ops/s  ", $2, $4}' "$out.csv")"
}

# Every key the benchmark can touch exists from the start, so GET measures hits of
# DATA_SIZE-byte values for every target and every run (not a hit rate that grows as
# the SET runs fill the keyspace, which would favour whichever target runs last).
log "prefilling $KEYSPACE keys of $DATA_SIZE bytes in Redis"
fill_out="$(python3 "$HELPER" fill "$KEYSPACE" "$DATA_SIZE" |
    "$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" --pipe 2>&1)" || die "prefill failed: $fill_out"
[[ "$fill_out" == *"errors: 0, replies: $KEYSPACE"* ]] || die "prefill failed: $fill_out"

# One short unrecorded run per target: connection pools, allocators and caches warm up.
for i in "${!TARGET_IDS[@]}"; do
    run_bench "${TARGET_PORTS[$i]}" "$TMP/warmup.out" "$TMP/warmup.err" \
        -t "${TARGET_TESTS[$i]}" -c "$CLIENTS" -d "$DATA_SIZE" -r "$KEYSPACE" -n 20000 -P 16 -q || {
        cat "$TMP/warmup.err" "$TMP/warmup.out" >&2
        die "warm-up run against ${TARGET_LABELS[$i]} failed"
    }
done

# --- the L1-hit target's warm-up and counters ----------------------------------------

# respite_stats PORT: RESPITE STATS into the associative array STATS (field -> value).
declare -A STATS
respite_stats() {
    local lines k
    STATS=()
    mapfile -t lines < <(timeout 5 "$REDIS_CLI" -h 127.0.0.1 -p "$1" respite stats 2>&1 | tr -d '\r')
    for ((k = 0; k + 1 < ${#lines[@]}; k += 2)); do
        STATS["${lines[$k]}"]="${lines[$((k + 1))]}"
    done
    [[ -n "${STATS[l1_hits]:-}" && -n "${STATS[l1_misses]:-}" && -n "${STATS[l1_entries]:-}" ]] ||
        die "RESPITE STATS on port $1 has no L1 counters: ${lines[*]:0:20}"
}

# redis_calls CMD: calls of CMD on the Redis server so far (INFO commandstats).
redis_calls() {
    local n
    n="$(timeout 5 "$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" info commandstats | tr -d '\r' |
        sed -n "s/^cmdstat_$1:calls=\([0-9]*\),.*/\1/p")"
    echo "${n:-0}"
}

# warm_l1 TARGET_INDEX: read every key once through the L1-hit target, then check that
# they are all in L1 (the other targets' SET runs invalidate most of them each round).
warm_l1() {
    local i="$1" port="${TARGET_PORTS[$1]}" out
    out="$(python3 "$HELPER" gets "$KEYSPACE" |
        timeout "$BENCH_TIMEOUT" "$REDIS_CLI" -h 127.0.0.1 -p "$port" --pipe 2>&1)" ||
        die "L1 warm-up through ${TARGET_LABELS[$i]} failed: $out"
    [[ "$out" == *"errors: 0, replies: $KEYSPACE"* ]] ||
        die "L1 warm-up through ${TARGET_LABELS[$i]} failed: $out"
    respite_stats "$port"
    WARM_ENTRIES="${STATS[l1_entries]}"
    WARM_BYTES="${STATS[l1_bytes]}"
    ((WARM_ENTRIES * 1000 >= KEYSPACE * L1_MIN_WARM_PERMILLE)) ||
        die "after reading all $KEYSPACE keys through ${TARGET_LABELS[$i]}, l1_entries is only $WARM_ENTRIES (l1_bytes ${STATS[l1_bytes]} of ${STATS[l1_max_bytes]}, fills dropped ${STATS[l1_fills_dropped]:-?})"
}

L1_RUNS="$TMP/l1.csv" # see L1_FIELDS in the helper
: >"$L1_RUNS"

# run_l1_cell TARGET_INDEX PIPELINE REPEAT: warm L1, then one measured GET run, with
# the proxy's L1 counters and Redis's GET/PTTL calls read just before and after it.
run_l1_cell() {
    local i="$1" p="$2" rep="$3" port="${TARGET_PORTS[$1]}" n
    local h0 m0 g0 t0
    n=$((p == 1 ? N_P1 : N_PIPE))
    warm_l1 "$i"
    respite_stats "$port"
    h0="${STATS[l1_hits]}" m0="${STATS[l1_misses]}"
    g0="$(redis_calls get)" t0="$(redis_calls pttl)"
    run_cell "$i" "$p" "$rep"
    ((KILLED == 0)) || return 0
    respite_stats "$port"
    local hits=$((${STATS[l1_hits]} - h0)) misses=$((${STATS[l1_misses]} - m0))
    local gets=$(($(redis_calls get) - g0)) pttls=$(($(redis_calls pttl) - t0))
    echo "$p,$rep,$n,$WARM_ENTRIES,$WARM_BYTES,$hits,$misses,$gets,$pttls" >>"$L1_RUNS"
    log "  ${TARGET_LABELS[$i]}: $WARM_ENTRIES entries ($WARM_BYTES bytes) in L1 after warm-up; during the run $hits L1 hits, $misses misses, $gets GETs at Redis"
}

log "benchmarking: ${#TARGET_IDS[@]} targets x ${#PIPELINES[@]} pipelines x $REPEAT runs (N=$N_P1 at P1, $N_PIPE at P16)"
for ((rep = 1; rep <= REPEAT; rep++)); do
    for p in "${PIPELINES[@]}"; do
        for i in "${!TARGET_IDS[@]}"; do
            KILLED=1
            while ((KILLED)); do
                if [[ "${TARGET_IDS[$i]}" == "$L1_ID" ]]; then
                    run_l1_cell "$i" "$p" "$rep"
                else
                    run_cell "$i" "$p" "$rep"
                fi
            done
        done
    done
done

# --- report -------------------------------------------------------------------------

cpu_model="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)"
redis_version="$("$REDIS_SERVER" --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')"
nutcracker_version="$("$NUTCRACKER" --version 2>&1 | sed -n 's/^This is nutcracker-//p' | head -n 1)"

# The command line that reproduces this run, with the effective settings spelled out.
cmd="BENCH_N=$N_P1 BENCH_N_PIPELINE=$N_PIPE BENCH_REPEAT=$REPEAT"
if [[ "$WITH_L1" == 1 ]]; then
    cmd+=" BENCH_L1_THREADS=$L1_THREADS"
fi
if [[ "$RESPITE_BIN_SOURCE" == RESPITE_BIN ]]; then
    cmd+=" RESPITE_BIN=$(printf '%q' "$RESPITE_BIN")"
fi
cmd+=" $(printf '%q' "$0")"
for a in "${ORIG_ARGS[@]}"; do
    cmd+=" $(printf '%q' "$a")"
done
mapfile -t p1_args < <(bench_args "$N_P1" 1)
mapfile -t pn_args < <(bench_args "$N_PIPE" "${PIPELINES[-1]}")
GET_ONLY_IDS=""
for i in "${!TARGET_IDS[@]}"; do
    [[ "${TARGET_TESTS[$i]}" == get ]] && GET_ONLY_IDS+="${GET_ONLY_IDS:+,}${TARGET_IDS[$i]}"
done

mkdir -p "$OUT_DIR"
RAW="$OUT_DIR/compare-$STAMP.csv"
cp "$RAW_TMP" "$RAW"
if [[ "$WITH_L1" == 1 ]]; then
    cp "$L1_RUNS" "$OUT_DIR/compare-$STAMP-l1.csv"
fi
REPORT="$OUT_DIR/compare-$STAMP.md"
{
    echo "Machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, Linux $(uname -r), load avg at start $LOAD_AT_START · redis-server ${redis_version:-?} · nutcracker ${nutcracker_version:-?} · respite: $RESPITE_BIN ($RESPITE_BIN_SOURCE) · $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Command: \`$cmd\` — each cell runs \`redis-benchmark ${p1_args[*]}\` (and \`${pn_args[*]}\`) $REPEAT time(s), after prefilling all $KEYSPACE keys."
    if [[ -n "$GET_ONLY_IDS" ]]; then
        echo "The $L1_LABEL target runs \`-t get\` only, with \`threads = $L1_THREADS\` and $(basename "$L1_TOML") appended to its config, after reading every key once through it; the respite target runs the default config (\`threads = 0\`: $(( $(nproc) / 2 > 0 ? $(nproc) / 2 : 1 )) here)."
    fi
    echo
    python3 "$HELPER" report "$RAW" "$(IFS=,; echo "${TARGET_IDS[*]}")" "$GET_ONLY_IDS"
    if [[ "$WITH_L1" == 1 ]]; then
        echo
        python3 "$HELPER" l1-summary "$RAW" "$L1_RUNS" "$L1_ID"
    fi
    echo
    echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
    if ((KILLS > 0)); then
        echo "$KILLS redis-benchmark run(s) were killed by a signal from outside this script and run again."
    fi
} | tee "$REPORT"
log "raw results: $RAW"
