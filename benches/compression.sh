#!/usr/bin/env bash
# Redis memory and throughput with compression: the same JSON dataset written through
# respite with compress = "none", "zstd" and "lz4" (and straight to Redis, for
# reference), by examples/compress_load.rs.
#
# Usage: benches/compression.sh
#
# For each setting it starts a fresh redis-server and a respite with
#     [[namespace]] name = "docs"  match = "doc:*"  compress = <setting>
# on free loopback ports, writes COMP_DOCS documents (1-64 KiB, log-uniform, made by
# the generator from COMP_SEED: the same bytes in every run) COMP_SET_ROUNDS times each,
# then GETs each document COMP_GET_ROUNDS times, checking every reply byte for byte.
# Redis's used_memory is read before and after the SETs; the difference is what the
# dataset costs. The markdown table (memory, ratios, SET and GET ops/s against the
# "none" run) goes to stdout and to target/bench/compression-<timestamp>.md.
#
# Environment:
#   COMP_DOCS          documents                         (default 10000)
#   COMP_CONNS         connections                       (default 8)
#   COMP_PIPELINE      commands in flight per connection (default 4)
#   COMP_SET_ROUNDS    SETs of every document            (default 3)
#   COMP_GET_ROUNDS    GETs of every document            (default 5)
#   COMP_SEED          dataset seed                      (default 1)
#   COMP_LEVEL         zstd compress_level               (default: respite's default)
#   COMP_THREADS       respite [server] threads          (default 0: respite's default)
#   COMP_SETTINGS      settings to run                   (default "direct none zstd lz4")
#   BENCH_QUICK=1      smoke run: 1000 documents
#   RESPITE_BIN, LOAD_BIN   binaries to use (default: cargo build --release)
#   REDIS_SERVER, REDIS_CLI  tool paths
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"
HELPER="$SCRIPT_DIR/compare_helper.py"

REDIS_SERVER="${REDIS_SERVER:-/usr/bin/redis-server}"
REDIS_CLI="${REDIS_CLI:-redis-cli}"
READY_TIMEOUT_S=10

die() {
    echo "compression.sh: $*" >&2
    exit 1
}
log() { echo "compression.sh: $*" >&2; }

case "${1:-}" in
    -h | --help)
        sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    "") ;;
    *) die "unknown argument: $1 (see --help)" ;;
esac

if [[ "${BENCH_QUICK:-0}" == 1 ]]; then
    DOCS="${COMP_DOCS:-1000}"
else
    DOCS="${COMP_DOCS:-10000}"
fi
CONNS="${COMP_CONNS:-8}"
PIPELINE="${COMP_PIPELINE:-4}"
SET_ROUNDS="${COMP_SET_ROUNDS:-3}"
ROUNDS="${COMP_GET_ROUNDS:-5}"
SEED="${COMP_SEED:-1}"
THREADS="${COMP_THREADS:-0}"
SETTINGS="${COMP_SETTINGS:-direct none zstd lz4}"
LEVEL_LINE=""
[[ -n "${COMP_LEVEL:-}" ]] && LEVEL_LINE="compress_level = ${COMP_LEVEL}"

for tool in "$REDIS_SERVER" "$REDIS_CLI" python3 timeout; do
    command -v "$tool" >/dev/null || die "required tool not found: $tool"
done

TMP="$(mktemp -d "${TMPDIR:-/tmp}/respite-compression.XXXXXX")"
PIDS=()

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
    stop_all
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

spawn() { # NAME CMD...: start CMD in the background, output to $TMP/NAME.log; sets PID.
    local name="$1"
    shift
    "$@" >"$TMP/$name.log" 2>&1 &
    PID=$!
    PIDS+=("$PID")
}

cli() { # PORT ARGS...
    local port="$1"
    shift
    timeout 10 "$REDIS_CLI" -h 127.0.0.1 -p "$port" "$@"
}

wait_ready() { # NAME PORT PID
    local name="$1" port="$2" pid="$3" deadline=$((SECONDS + READY_TIMEOUT_S))
    until [[ "$(cli "$port" ping 2>/dev/null)" == PONG ]]; do
        kill -0 "$pid" 2>/dev/null || {
            tail -n 20 "$TMP/$name.log" >&2
            die "$name exited during startup"
        }
        ((SECONDS < deadline)) || die "$name did not answer PING on port $port"
        sleep 0.05
    done
}

used_memory() { cli "$1" info memory | tr -d '\r' | sed -n 's/^used_memory://p'; }

if [[ -z "${RESPITE_BIN:-}" || -z "${LOAD_BIN:-}" ]]; then
    log "building respite and examples/compress_load.rs (cargo build --release)"
    cargo build --release --quiet --manifest-path "$REPO/Cargo.toml" --bin respite \
        --example compress_load || die "cargo build --release failed"
    target_dir="$(python3 "$HELPER" target-dir "$REPO/Cargo.toml")"
    RESPITE_BIN="${RESPITE_BIN:-$target_dir/release/respite}"
    LOAD_BIN="${LOAD_BIN:-$target_dir/release/examples/compress_load}"
fi

LOAD_ARGS=(--docs "$DOCS" --conns "$CONNS" --pipeline "$PIPELINE" --set-rounds "$SET_ROUNDS"
    --get-rounds "$ROUNDS" --seed "$SEED")
DATASET_BYTES="$("$LOAD_BIN" "${LOAD_ARGS[@]}" --dry-run | sed -n 's/^dataset_bytes: //p')"
log "dataset: $DOCS documents, $DATASET_BYTES bytes"

declare -A MEM SET GET STORED
for setting in $SETTINGS; do
    mapfile -t ports < <(python3 "$HELPER" ports 2)
    redis_port="${ports[0]}"
    respite_port="${ports[1]}"
    mkdir -p "$TMP/redis-$setting"
    spawn redis "$REDIS_SERVER" --port "$redis_port" --bind 127.0.0.1 --daemonize no \
        --save "" --appendonly no --dir "$TMP/redis-$setting" --logfile ""
    wait_ready redis "$redis_port" "$PID"
    addr="127.0.0.1:$redis_port"
    if [[ "$setting" != direct ]]; then
        cat >"$TMP/respite.toml" <<EOF
[server]
listen = "127.0.0.1:$respite_port"
threads = $THREADS
[upstream]
url = "redis://127.0.0.1:$redis_port"
[log]
level = "warn"

[[namespace]]
name = "docs"
match = "doc:*"
compress = "$setting"
$([[ "$setting" == zstd ]] && echo "$LEVEL_LINE")
EOF
        spawn respite env -u RESPITE_LISTEN -u RESPITE_UPSTREAM -u RUST_LOG \
            "$RESPITE_BIN" --config "$TMP/respite.toml"
        wait_ready respite "$respite_port" "$PID"
        addr="127.0.0.1:$respite_port"
    fi
    before="$(used_memory "$redis_port")"
    log "$setting: writing and reading through $addr"
    "$LOAD_BIN" "${LOAD_ARGS[@]}" --addr "$addr" >"$TMP/load-$setting.txt" ||
        die "load failed for $setting: $(tail -n 5 "$TMP/load-$setting.txt")"
    after="$(used_memory "$redis_port")"
    MEM[$setting]=$((after - before))
    SET[$setting]="$(sed -n 's/^set_ops_per_s: //p' "$TMP/load-$setting.txt")"
    GET[$setting]="$(sed -n 's/^get_ops_per_s: //p' "$TMP/load-$setting.txt")"
    STORED[$setting]="-"
    if [[ "$setting" != direct && "$setting" != none ]]; then
        out="$(cli "$respite_port" respite stats | tr -d '\r' |
            sed -n '/^compress_docs_bytes_out$/{n;p}')"
        STORED[$setting]=$((out / SET_ROUNDS)) # the counter adds up every round
    fi
    log "$setting: used_memory +${MEM[$setting]} B, SET ${SET[$setting]}/s, GET ${GET[$setting]}/s"
    stop_all
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }
saved() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * (1 - a / b); else printf "-" }'; }

base="none"
[[ -n "${MEM[none]:-}" ]] || base="$(echo "$SETTINGS" | awk '{print $1}')"
mkdir -p "$REPO/target/bench"
OUT="$REPO/target/bench/compression-$(date +%Y%m%d-%H%M%S).md"
{
    echo "Dataset: $DOCS JSON documents, $DATASET_BYTES bytes (seed $SEED); $CONNS connections x pipeline $PIPELINE; SET rounds $SET_ROUNDS, GET rounds $ROUNDS; respite threads $THREADS (0: default); load average at end $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
    echo
    echo "| setting | Redis used_memory | vs none | memory saved | values as stored (bytes) | SET ops/s | SET vs none | GET ops/s | GET vs none |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for s in $SETTINGS; do
        echo "| $s | ${MEM[$s]} | $(ratio "${MEM[$s]}" "${MEM[$base]}") | $(saved "${MEM[$s]}" "${MEM[$base]}") | ${STORED[$s]} | ${SET[$s]} | $(ratio "${SET[$s]}" "${SET[$base]}") | ${GET[$s]} | $(ratio "${GET[$s]}" "${GET[$base]}") |"
    done
} | tee "$OUT"
log "table written to $OUT"
