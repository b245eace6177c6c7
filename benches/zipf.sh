#!/usr/bin/env bash
# L1 hit ratio under a Zipf workload: respite with an L1 of 10% of the data in front of
# Redis, read by examples/zipf.rs.
#
# Usage: benches/zipf.sh
#
# Starts its own redis-server and respite on free loopback ports (torn down on exit),
# loads ZIPF_KEYS keys zipf:1 ... zipf:<ZIPF_KEYS> with ZIPF_VALUE_SIZE-byte values
# straight into Redis, and gives respite
#     [l1] max_memory = <ZIPF_L1_PERCENT% of the data as L1 counts it>
#     [[namespace]] match = "zipf:*"  l1 = true  l1_ttl = "1h"
# L1 counts an entry as its header + key + command signature + reply + ENTRY_OVERHEAD
# (src/l1.rs: the 88-byte header `at::SIZE` and ~200 bytes; read from there): for a
# RESP2 GET that is 88 + len(key) + 4 ("2get") + (ZIPF_VALUE_SIZE + 8)
# ("$100\r\n…\r\n") + ENTRY_OVERHEAD, summed over every key (the
# helper's zipf-size computes it exactly). The report checks it against l1_bytes /
# l1_entries at the end.
# Then it runs the generator, first straight at Redis (ops/s baseline, no cache; skip
# with ZIPF_DIRECT=0), then through respite (L1 starts empty), and prints a markdown
# table: requests, L1 hit ratio (RESPITE STATS deltas), GETs that reached Redis
# (INFO commandstats deltas), upstream calls per 1,000 requests, L1 fill level, ops/s.
# The table goes to target/bench/zipf-<timestamp>.md as well.
#
# Environment:
#   ZIPF_KEYS          distinct keys                       (default 1000000)
#   ZIPF_VALUE_SIZE    value bytes                         (default 100)
#   ZIPF_REQUESTS      GETs sent through respite           (default 2000000)
#   ZIPF_WARMUP        GETs sent through respite first, not counted, with seed
#                      ZIPF_SEED+1 (default 0: the counted run starts with L1 empty)
#   ZIPF_S             Zipf exponent                       (default 0.99)
#   ZIPF_CONNS         connections                         (default 50)
#   ZIPF_PIPELINE      GETs in flight per connection       (default 16)
#   ZIPF_SEED          seed of the key sequence            (default 1)
#   ZIPF_L1_PERCENT    L1 max_memory as % of the data      (default 10)
#   ZIPF_DIRECT=0      skip the run straight at Redis
#   ZIPF_L1_OVERHEAD   L1's per-entry bytes beyond key, signature and reply
#                      (default: the entry header plus ENTRY_OVERHEAD, from src/l1.rs)
#   BENCH_QUICK=1      smoke run: 100000 keys, 200000 requests
#   BENCH_TIMEOUT      seconds allowed for one generator run (default 600)
#   RESPITE_BIN, ZIPF_BIN   binaries to use (default: cargo build --release)
#   REDIS_SERVER, REDIS_CLI  tool paths
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=benches/lib.sh
source "$SCRIPT_DIR/lib.sh"
bench_init zipf.sh

# --- arguments and settings ---------------------------------------------------------

# No options: --help prints the above, anything else is an error.
if (($#)); then
    help_or_die "$1"
fi

if [[ "${BENCH_QUICK:-0}" == 1 ]]; then
    KEYS="${ZIPF_KEYS:-100000}"
    REQUESTS="${ZIPF_REQUESTS:-200000}"
else
    KEYS="${ZIPF_KEYS:-1000000}"
    REQUESTS="${ZIPF_REQUESTS:-2000000}"
fi
VALUE_SIZE="${ZIPF_VALUE_SIZE:-100}"
WARMUP="${ZIPF_WARMUP:-0}"
S="${ZIPF_S:-0.99}"
CONNS="${ZIPF_CONNS:-50}"
PIPELINE="${ZIPF_PIPELINE:-16}"
SEED="${ZIPF_SEED:-1}"
L1_PERCENT="${ZIPF_L1_PERCENT:-10}"
DIRECT="${ZIPF_DIRECT:-1}"
BENCH_TIMEOUT="${BENCH_TIMEOUT:-600}"
for v in KEYS REQUESTS VALUE_SIZE CONNS PIPELINE L1_PERCENT BENCH_TIMEOUT; do
    is_uint "${!v}" || die "$v must be a positive integer, got '${!v}'"
done
[[ "$WARMUP" =~ ^[0-9]+$ ]] || die "ZIPF_WARMUP must be an integer, got '$WARMUP'"
[[ "$SEED" =~ ^[0-9]+$ ]] || die "ZIPF_SEED must be an integer, got '$SEED'"
[[ "$S" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "ZIPF_S must be a number >= 0, got '$S'"
[[ "$DIRECT" == 0 || "$DIRECT" == 1 ]] || die "ZIPF_DIRECT must be 0 or 1"
((L1_PERCENT <= 100)) || die "ZIPF_L1_PERCENT must be at most 100"

require_tools "$REDIS_SERVER" "$REDIS_CLI" python3 timeout

# --- process management -------------------------------------------------------------

bench_tmp respite-zipf

free_ports 4
next_port
REDIS_PORT="$PORT"
next_port
RESPITE_PORT="$PORT"

# --- binaries -----------------------------------------------------------------------

if [[ -z "${RESPITE_BIN:-}" || -z "${ZIPF_BIN:-}" ]]; then
    log "building respite and examples/zipf.rs (cargo build --release)"
    cargo_build --bin respite --example zipf
    RESPITE_BIN="${RESPITE_BIN:-$TARGET_DIR/release/respite}"
    ZIPF_BIN="${ZIPF_BIN:-$TARGET_DIR/release/examples/zipf}"
fi
[[ -x "$RESPITE_BIN" ]] || die "respite binary not executable: $RESPITE_BIN"
[[ -x "$ZIPF_BIN" ]] || die "zipf generator not executable: $ZIPF_BIN"

note_load ops/s

# --- Redis, data, sizes -------------------------------------------------------------

spawn_redis "$REDIS_PORT" "$TMP/redis"
REDIS_PID="$PID"
wait_ping redis-server redis "$REDIS_PORT" "$REDIS_PID"

log "loading $KEYS keys zipf:1..zipf:$KEYS with $VALUE_SIZE-byte values into Redis"
fill_out="$(python3 "$HELPER" zipf-fill "$KEYS" "$VALUE_SIZE" |
    timeout "$BENCH_TIMEOUT" "$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" --pipe 2>&1)" ||
    die "load failed: $fill_out"
[[ "$fill_out" == *"errors: 0, replies: $KEYS"* ]] || die "load failed: $fill_out"
dbsize="$(cli "$REDIS_PORT" dbsize)"
[[ "$dbsize" == "$KEYS" ]] || die "Redis holds $dbsize keys after the load, expected $KEYS"

# kv NAME < "name=value" lines: the value of NAME.
kv() { sed -n "s/^$1=//p"; }
entry_overhead="$(sed -n 's/^const ENTRY_OVERHEAD: usize = \([0-9]*\);.*/\1/p' "$REPO/src/l1.rs" 2>/dev/null | head -n 1)"
entry_header="$(sed -n 's/^ *pub const SIZE: usize = \([0-9]*\);.*/\1/p' "$REPO/src/l1.rs" 2>/dev/null | head -n 1)"
if [[ -n "$entry_overhead" && -n "$entry_header" ]]; then
    entry_overhead=$((entry_overhead + entry_header))
fi
L1_OVERHEAD="${ZIPF_L1_OVERHEAD:-$entry_overhead}"
if [[ -z "$L1_OVERHEAD" ]]; then
    L1_OVERHEAD=160
    log "warning: ENTRY_OVERHEAD not found in src/l1.rs; assuming $L1_OVERHEAD bytes per entry"
fi
is_uint "$L1_OVERHEAD" || die "ZIPF_L1_OVERHEAD must be a positive integer, got '$L1_OVERHEAD'"
sizes="$(python3 "$HELPER" zipf-size "$KEYS" "$VALUE_SIZE" "$L1_OVERHEAD")"
DATA_L1_BYTES="$(kv total <<<"$sizes")"
KEY_BYTES="$(kv key_bytes <<<"$sizes")"
REPLY_LEN="$(kv reply_len <<<"$sizes")"
PER_ENTRY_AVG="$(kv per_entry_avg <<<"$sizes")"
L1_MAX_BYTES=$((DATA_L1_BYTES * L1_PERCENT / 100))
ideal="$(python3 "$HELPER" zipf-ideal "$KEYS" "$S" "$VALUE_SIZE" "$L1_OVERHEAD" "$L1_MAX_BYTES")"
IDEAL_ENTRIES="$(kv entries <<<"$ideal")"
IDEAL_SHARE="$(kv share <<<"$ideal")"
log "all $KEYS keys weigh $DATA_L1_BYTES bytes as L1 counts them (keys $KEY_BYTES + $KEYS x (4 + $REPLY_LEN + $L1_OVERHEAD)); L1 max_memory = $L1_PERCENT% = $L1_MAX_BYTES bytes"

# --- respite ------------------------------------------------------------------------

CONF="$TMP/respite.toml"
{
    respite_toml "$RESPITE_PORT" "$REDIS_PORT"
    cat <<EOF

# $L1_PERCENT% of the $KEYS entries' L1 weight ($DATA_L1_BYTES bytes).
[l1]
max_memory = $L1_MAX_BYTES
coherence = "tracking"

[[namespace]]
name = "zipf"
match = "zipf:*"
l1 = true
l1_ttl = "1h"
EOF
} >"$CONF"
spawn_respite respite "$CONF"
RESPITE_PID="$PID"
wait_ping respite respite "$RESPITE_PORT" "$RESPITE_PID"

# --- measuring ----------------------------------------------------------------------

declare -A STATS
respite_stats() { # RESPITE STATS into the associative array STATS (field -> value)
    local lines k
    STATS=()
    mapfile -t lines < <(cli "$RESPITE_PORT" respite stats 2>&1 | tr -d '\r')
    for ((k = 0; k + 1 < ${#lines[@]}; k += 2)); do
        STATS["${lines[$k]}"]="${lines[$((k + 1))]}"
    done
    [[ -n "${STATS[l1_hits]:-}" && -n "${STATS[l1_misses]:-}" ]] ||
        die "RESPITE STATS has no L1 counters: ${lines[*]:0:20}"
}

redis_calls() { # CMD: calls of CMD on the Redis server so far (INFO commandstats)
    local n
    n="$(cli "$REDIS_PORT" info commandstats | tr -d '\r' |
        sed -n "s/^cmdstat_$1:calls=\([0-9]*\),.*/\1/p")"
    echo "${n:-0}"
}

# generate PORT REQUESTS OUT [SEED]: run the generator, bounded by BENCH_TIMEOUT.
generate() {
    local rc=0
    run_fg timeout "$BENCH_TIMEOUT" "$ZIPF_BIN" --addr "127.0.0.1:$1" --keys "$KEYS" --requests "$2" \
        --s "$S" --conns "$CONNS" --pipeline "$PIPELINE" --seed "${4:-$SEED}" >"$3" 2>&1 || rc=$?
    for pid in "$REDIS_PID" "$RESPITE_PID"; do
        kill -0 "$pid" 2>/dev/null || {
            show_log redis
            show_log respite
            die "a server exited during the run"
        }
    done
    if ((rc != 0)); then
        tail -n 20 "$3" >&2
        die "generator against port $1 failed (exit $rc)"
    fi
}
field() { sed -n "s/^$1: //p" "$2"; } # NAME FILE: a `name: value` line of the generator

GEN_CMD="$ZIPF_BIN --addr 127.0.0.1:PORT --keys $KEYS --requests $REQUESTS --s $S --conns $CONNS --pipeline $PIPELINE --seed $SEED"
log "generator: $GEN_CMD"

if [[ "$DIRECT" == 1 ]]; then
    log "run straight at Redis (no cache)"
    generate "$REDIS_PORT" "$REQUESTS" "$TMP/direct.out"
    log "  $(field ops_per_s "$TMP/direct.out") ops/s"
fi

if ((WARMUP > 0)); then
    # Another seed: the counted run must not replay the warm-up's key sequence.
    log "warm-up through respite: $WARMUP requests, seed $((SEED + 1)) (not counted)"
    generate "$RESPITE_PORT" "$WARMUP" "$TMP/warmup.out" $((SEED + 1))
fi

respite_stats
h0="${STATS[l1_hits]}" m0="${STATS[l1_misses]}" c0="${STATS[l1_coalesced]:-0}"
d0="${STATS[l1_fills_dropped]:-0}"
g0="$(redis_calls get)" mg0="$(redis_calls mget)" t0="$(redis_calls pttl)"
log "run through respite (L1 max_memory $L1_MAX_BYTES bytes)"
generate "$RESPITE_PORT" "$REQUESTS" "$TMP/respite.out"
respite_stats
HITS=$((${STATS[l1_hits]} - h0))
MISSES=$((${STATS[l1_misses]} - m0))
COALESCED=$((${STATS[l1_coalesced]:-0} - c0))
DROPPED=$((${STATS[l1_fills_dropped]:-0} - d0))
GETS=$(($(redis_calls get) - g0))
MGETS=$(($(redis_calls mget) - mg0))
PTTLS=$(($(redis_calls pttl) - t0))
log "  $(field ops_per_s "$TMP/respite.out") ops/s, $HITS hits, $MISSES misses"

# --- report -------------------------------------------------------------------------

LOAD_AT_END="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
cpu_model="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)"
redis_version="$("$REDIS_SERVER" --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')"
cmd="ZIPF_KEYS=$KEYS ZIPF_REQUESTS=$REQUESTS ZIPF_S=$S ZIPF_CONNS=$CONNS ZIPF_PIPELINE=$PIPELINE ZIPF_SEED=$SEED ZIPF_VALUE_SIZE=$VALUE_SIZE ZIPF_L1_PERCENT=$L1_PERCENT"
((WARMUP > 0)) && cmd+=" ZIPF_WARMUP=$WARMUP"
[[ "$DIRECT" == 0 ]] && cmd+=" ZIPF_DIRECT=0"
cmd+=" $(printf '%q' "$0")"

STAMP="$(date -u +%Y%m%d-%H%M%S)"
OUT_DIR="${CARGO_TARGET_DIR:-$REPO/target}/bench"
mkdir -p "$OUT_DIR"
REPORT="$OUT_DIR/zipf-$STAMP.md"

cat >"$TMP/counts" <<EOF
keys: $KEYS
requests: $REQUESTS
warmup: $WARMUP
hits: $HITS
misses: $MISSES
coalesced: $COALESCED
fills_dropped: $DROPPED
gets: $GETS
mgets: $MGETS
pttls: $PTTLS
ideal_entries: $IDEAL_ENTRIES
ideal_share: $IDEAL_SHARE
per_entry_avg: $PER_ENTRY_AVG
l1_entries: ${STATS[l1_entries]}
l1_bytes: ${STATS[l1_bytes]}
l1_max_bytes: ${STATS[l1_max_bytes]}
EOF

python3 - "$TMP/counts" "$TMP/respite.out" "$TMP/direct.out" >"$TMP/table.md" <<'EOF'
import sys


def fields(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                k, sep, v = line.rstrip("\n").partition(": ")
                if sep:
                    out[k] = v
    except FileNotFoundError:
        pass
    return out


c, r, d = (fields(p) for p in sys.argv[1:4])
i = {k: int(v) for k, v in c.items() if k not in ("ideal_share", "per_entry_avg")}
requests, hits, misses = i["requests"], i["hits"], i["misses"]
upstream_gets = i["gets"] + i["mgets"]
distinct = int(r["distinct_keys"])
lookups = hits + misses


def n(x):
    return f"{int(x):,}"


def pc(a, b):
    return f"{100.0 * a / b:.1f}%" if b else "n/a"


rows = [
    ("requests sent (GET)", n(requests)),
    ("replies: bulk / null / error",
     f"{n(r['replies_bulk'])} / {n(r['replies_null'])} / {n(r['replies_error'])}"),
    ("distinct keys requested", f"{n(distinct)} ({pc(distinct, i['keys'])} of {n(i['keys'])})"),
    ("**L1 hit ratio** = l1_hits / (l1_hits + l1_misses)",
     f"**{pc(hits, lookups)}** ({n(hits)} / {n(lookups)})"),
    ("bound: share of requests to the most popular keys that fit in L1",
     f"{float(c['ideal_share']) * 100:.1f}% ({n(i['ideal_entries'])} keys)"),
    ("bound: 1 - distinct keys / requests (a key's first read misses)",
     pc(requests - distinct, requests) if not i["warmup"]
     else f"n/a ({n(i['warmup'])} warm-up requests)"),
    ("l1_coalesced / l1_fills_dropped", f"{n(i['coalesced'])} / {n(i['fills_dropped'])}"),
    ("GETs that reached Redis (GET + MGET calls)",
     f"{n(upstream_gets)} ({n(i['gets'])} + {n(i['mgets'])})"),
    ("PTTLs that reached Redis (one per fill)", n(i["pttls"])),
    ("upstream GETs per 1,000 requests", f"{1000.0 * upstream_gets / requests:.1f}"),
    ("upstream commands per 1,000 requests (GET + MGET + PTTL)",
     f"{1000.0 * (upstream_gets + i['pttls']) / requests:.1f}"),
    ("l1_entries at the end", n(i["l1_entries"])),
    ("l1_bytes / l1_max_bytes at the end",
     f"{n(i['l1_bytes'])} / {n(i['l1_max_bytes'])} ({pc(i['l1_bytes'], i['l1_max_bytes'])})"),
    ("l1_bytes / l1_entries (computed average weight of an entry)",
     (f"{i['l1_bytes'] / i['l1_entries']:.1f}" if i["l1_entries"] else "n/a")
     + f" ({c['per_entry_avg']})"),
    ("ops/s through respite", n(float(r["ops_per_s"]))),
    ("batch round trip p50 / p99 through respite (ms)",
     f"{r['batch_rtt_p50_ms']} / {r['batch_rtt_p99_ms']}"),
]
if d:
    rows += [
        ("ops/s straight at Redis (same generator, no proxy)", n(float(d["ops_per_s"]))),
        ("batch round trip p50 / p99 straight at Redis (ms)",
         f"{d['batch_rtt_p50_ms']} / {d['batch_rtt_p99_ms']}"),
    ]
print("| metric | value |")
print("|---|---:|")
for k, v in rows:
    print(f"| {k} | {v} |")
EOF

{
    echo "Machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, Linux $(uname -r), load avg $LOAD_AT_START at start, $LOAD_AT_END at end · redis-server ${redis_version:-?} · respite: $RESPITE_BIN · $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Command: \`$cmd\` — loads $KEYS keys \`zipf:<rank>\` with $VALUE_SIZE-byte values into Redis, then runs \`examples/zipf.rs\` (\`${GEN_CMD#"$ZIPF_BIN" }\`)$([[ "$DIRECT" == 1 ]] && echo " straight at Redis, then") through respite, whose L1 starts empty$( ((WARMUP > 0)) && echo " and gets $WARMUP uncounted requests (seed $((SEED + 1))) first")."
    echo
    echo "L1: \`max_memory = $L1_MAX_BYTES\` bytes = $L1_PERCENT% of $DATA_L1_BYTES, the weight of all $KEYS entries as L1 counts them: key ($KEY_BYTES bytes for all keys) + 4 (signature \"2get\") + $REPLY_LEN (reply \`\$$VALUE_SIZE\\r\\n…\\r\\n\`) + $L1_OVERHEAD overhead (entry header + ENTRY_OVERHEAD), $PER_ENTRY_AVG bytes per entry on average. Namespace \`zipf:*\`, \`l1_ttl = \"1h\"\`, \`coherence = \"tracking\"\`."
    echo
    cat "$TMP/table.md"
    echo
    echo "Hit ratio and upstream calls are deltas of RESPITE STATS and of Redis's INFO commandstats over the counted run only."
} | tee "$REPORT"
log "report: $REPORT"
