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
# shellcheck source=benches/lib.sh
source "$SCRIPT_DIR/lib.sh"
bench_init compression.sh

# No options: --help prints the above; only the first argument is looked at.
if [[ -n "${1:-}" ]]; then
    help_or_die "$1"
fi

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

require_tools "$REDIS_SERVER" "$REDIS_CLI" python3 timeout

bench_tmp respite-compression

used_memory() { cli "$1" info memory | tr -d '\r' | sed -n 's/^used_memory://p'; }

if [[ -z "${RESPITE_BIN:-}" || -z "${LOAD_BIN:-}" ]]; then
    log "building respite and examples/compress_load.rs (cargo build --release)"
    cargo_build --bin respite --example compress_load
    RESPITE_BIN="${RESPITE_BIN:-$TARGET_DIR/release/respite}"
    LOAD_BIN="${LOAD_BIN:-$TARGET_DIR/release/examples/compress_load}"
fi

LOAD_ARGS=(--docs "$DOCS" --conns "$CONNS" --pipeline "$PIPELINE" --set-rounds "$SET_ROUNDS"
    --get-rounds "$ROUNDS" --seed "$SEED")
DATASET_BYTES="$("$LOAD_BIN" "${LOAD_ARGS[@]}" --dry-run | sed -n 's/^dataset_bytes: //p')"
log "dataset: $DOCS documents, $DATASET_BYTES bytes"

declare -A MEM SET GET STORED
for setting in $SETTINGS; do
    free_ports 2
    next_port
    redis_port="$PORT"
    next_port
    respite_port="$PORT"
    spawn_redis "$redis_port" "$TMP/redis-$setting"
    wait_ping redis redis "$redis_port" "$PID"
    addr="127.0.0.1:$redis_port"
    if [[ "$setting" != direct ]]; then
        {
            respite_toml "$respite_port" "$redis_port" "threads = $THREADS"
            cat <<EOF

[[namespace]]
name = "docs"
match = "doc:*"
compress = "$setting"
$([[ "$setting" == zstd ]] && echo "$LEVEL_LINE")
EOF
        } >"$TMP/respite.toml"
        spawn_respite respite "$TMP/respite.toml"
        wait_ping respite respite "$respite_port" "$PID"
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
