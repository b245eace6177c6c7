#!/usr/bin/env python3
"""Helper for benches/compare.sh (standard library only); also used by benches/zipf.sh.

Subcommands:
  ports N                      print N distinct free loopback TCP ports, one a line
  target-dir MANIFEST          print cargo's target directory for a Cargo.toml
  append RAW LABEL ID P REP N BENCH_OUTPUT [TESTS]
                               parse `redis-benchmark --csv` output, append rows to RAW;
                               TESTS (default GET,SET) are the tests that must be there
  fill KEYS SIZE               print RESP for SET key:%012d <SIZE bytes> for every key
                               redis-benchmark -r KEYS can touch (for redis-cli --pipe)
  gets KEYS                    print RESP for GET key:%012d for the same keys (reads
                               every key once through a proxy: fills its L1)
  report RAW IDS [GET_ONLY]    print the markdown comparison table from RAW; IDS is
                               the comma-separated target ids in column order, GET_ONLY
                               the comma-separated ids that ran the GET test only
  l1-summary RAW L1CSV ID      print the L1-hit target's hit ratio and Redis GETs over
                               its measured runs (L1CSV), and its goal check vs direct
  zipf-fill KEYS SIZE          print RESP for SET zipf:<rank> <SIZE bytes>, rank 1..KEYS
  zipf-size KEYS SIZE OVERHEAD print the bytes L1 would count for all KEYS zipf entries
                               read by GET (RESP2), and the per-entry parts; OVERHEAD is
                               L1's per-entry overhead (ENTRY_OVERHEAD in src/l1.rs)
  zipf-ideal KEYS S SIZE OVERHEAD MAX
                               print how many of the most popular zipf ranks fit in MAX
                               bytes of L1 and their share of requests under Zipf(S)
"""

import csv
import json
import os
import socket
import statistics
import subprocess
import sys

RAW_FIELDS = [
    "target_id", "target", "test", "pipeline", "repeat", "requests", "rps",
    "avg_latency_ms", "min_latency_ms", "p50_latency_ms", "p95_latency_ms",
    "p99_latency_ms", "max_latency_ms",
]
TESTS = ["GET", "SET"]
# Short names used in the combined latency columns.
SHORT = {"direct": "direct", "twemproxy": "twem", "respite": "respite",
         "respite_l1": "L1"}
DASH = "\u2014"
# What respite's L1 weigher counts per entry (src/l1.rs): key + signature + reply +
# ENTRY_OVERHEAD (passed in: zipf.sh reads it from src/l1.rs). The signature of a RESP2
# GET is "2get" (protocol + command name).
L1_GET_SIG_LEN = len(b"2get")


def die(msg):
    print(f"compare.sh: {msg}", file=sys.stderr)
    sys.exit(1)


def cmd_ports(n):
    socks = []
    try:
        # Hold every socket open until all are bound so the ports are distinct.
        for _ in range(int(n)):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        for s in socks:
            print(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()


def cmd_target_dir(manifest):
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps",
         "--manifest-path", manifest],
        check=True, capture_output=True, text=True).stdout
    print(json.loads(out)["target_directory"])


def cmd_fill(keys, size):
    value = b"x" * int(size)
    tail = b"\r\n$%d\r\n%s\r\n" % (len(value), value)
    out = sys.stdout.buffer
    chunk = []
    for i in range(int(keys)):
        key = b"key:%012d" % i
        chunk.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s%s" % (len(key), key, tail))
        if len(chunk) == 4096:
            out.write(b"".join(chunk))
            chunk.clear()
    out.write(b"".join(chunk))
    out.flush()


def cmd_gets(keys):
    out = sys.stdout.buffer
    chunk = []
    for i in range(int(keys)):
        key = b"key:%012d" % i
        chunk.append(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key))
        if len(chunk) == 4096:
            out.write(b"".join(chunk))
            chunk.clear()
    out.write(b"".join(chunk))
    out.flush()


def zipf_value(size):
    return (b"zipf-value-" + b"x" * int(size))[: int(size)]


def cmd_zipf_fill(keys, size):
    value = zipf_value(size)
    tail = b"\r\n$%d\r\n%s\r\n" % (len(value), value)
    out = sys.stdout.buffer
    chunk = []
    for rank in range(1, int(keys) + 1):
        key = b"zipf:%d" % rank
        chunk.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s%s" % (len(key), key, tail))
        if len(chunk) == 4096:
            out.write(b"".join(chunk))
            chunk.clear()
    out.write(b"".join(chunk))
    out.flush()


def cmd_zipf_size(keys, size, overhead):
    keys, size, overhead = int(keys), int(size), int(overhead)
    key_bytes = sum(len(b"zipf:%d" % r) for r in range(1, keys + 1))
    reply_len = len(b"$%d\r\n" % size) + size + 2
    total = key_bytes + keys * (L1_GET_SIG_LEN + reply_len + overhead)
    print(f"total={total}")
    print(f"key_bytes={key_bytes}")
    print(f"sig_len={L1_GET_SIG_LEN}")
    print(f"reply_len={reply_len}")
    print(f"overhead={overhead}")
    print(f"per_entry_avg={total / keys:.1f}")


def cmd_zipf_ideal(keys, s, size, overhead, max_bytes):
    """The best a cache of MAX_BYTES can do in the long run: hold the most popular ranks
    that fit (weighed as L1 weighs them) and hit their share of the requests."""
    keys, s, max_bytes = int(keys), float(s), int(max_bytes)
    fixed = L1_GET_SIG_LEN + len(b"$%d\r\n" % int(size)) + int(size) + 2 + int(overhead)
    weights = [r ** -s for r in range(1, keys + 1)]
    used, n = 0, 0
    for rank in range(1, keys + 1):
        w = len(b"zipf:%d" % rank) + fixed
        if used + w > max_bytes:
            break
        used += w
        n = rank
    print(f"entries={n}")
    print(f"share={sum(weights[:n]) / sum(weights):.6f}")


def cmd_append(raw, label, target_id, pipeline, repeat, requests, bench_output,
               tests="GET,SET"):
    tests = tests.split(",")
    rows = {}
    with open(bench_output, newline="") as f:
        for rec in csv.reader(f):
            # Skip the header and anything that is not a result line (warnings etc.).
            if len(rec) != 8 or rec[0] not in tests:
                continue
            try:
                nums = [float(x) for x in rec[1:]]
            except ValueError:
                continue
            rows[rec[0]] = [rec[1]] + rec[2:]
            if nums[0] <= 0:
                die(f"{label} P{pipeline}: {rec[0]} reported {rec[1]} ops/s")
    missing = [t for t in tests if t not in rows]
    if missing:
        with open(bench_output) as f:
            tail = f.read()[-2000:]
        die(f"{label} P{pipeline}: no result for {', '.join(missing)} in "
            f"redis-benchmark output:\n{tail}")
    new_file = not os.path.exists(raw) or os.path.getsize(raw) == 0
    with open(raw, "a", newline="") as f:
        w = csv.writer(f)
        if new_file:
            w.writerow(RAW_FIELDS)
        for test in tests:
            w.writerow([target_id, label, test, pipeline, repeat, requests] + rows[test])


def median_run(runs):
    """The run whose ops/s is the median (lower middle for an even count)."""
    ordered = sorted(runs, key=lambda r: float(r["rps"]))
    return ordered[(len(ordered) - 1) // 2]


def fmt_rps(x):
    return f"{x:,.0f}"


def fmt_ratio(a, b):
    return f"{a / b:.2f}x" if b > 0 else "n/a"


def fmt_ms(x):
    return f"{float(x):.3f}"


def read_raw(raw):
    label_of = {}
    cells = {}
    with open(raw, newline="") as f:
        for row in csv.DictReader(f):
            key = (row["test"], int(row["pipeline"]), row["target_id"])
            cells.setdefault(key, []).append(row)
            label_of[row["target_id"]] = row["target"]
    return label_of, cells


def cmd_report(raw, ids, get_only=""):
    ids = ids.split(",")
    get_only = set(filter(None, get_only.split(",")))
    label_of, cells = read_raw(raw)
    for i in ids:
        if i not in label_of:
            die(f"no results for target {i} in {raw}")

    pipelines = sorted({p for (_, p, _) in cells})
    # Ratios are given for every respite target against direct Redis, and for the
    # targets that ran every test against twemproxy too (a GET-only target such as the
    # L1-hit one is about reaching direct Redis; fewer columns keep the table readable).
    ratio_ids = [i for i in ids if i not in ("direct", "twemproxy")]
    short = [SHORT.get(i, label_of[i]) for i in ids]

    header = ["test", "pipeline"]
    header += [f"{label_of[i]} ops/s" for i in ids]
    for i in ratio_ids:
        if "twemproxy" in ids and i not in get_only:
            header.append(f"{label_of[i]}/twemproxy")
        if "direct" in ids:
            header.append(f"{label_of[i]}/direct")
    header.append(f"p50 {'/'.join(short)} (ms)")
    header.append(f"p99 {'/'.join(short)} (ms)")

    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
    for test in TESTS:
        for p in pipelines:
            med = {}
            for i in ids:
                runs = cells.get((test, p, i))
                if runs:
                    med[i] = median_run(runs)
                elif not (i in get_only and test != "GET"):
                    die(f"no results for {label_of[i]} {test} P{p}")
            rps = {i: float(m["rps"]) for i, m in med.items()}
            row = [test, str(p)] + [fmt_rps(rps[i]) if i in rps else DASH for i in ids]
            for i in ratio_ids:
                for base in ("twemproxy", "direct"):
                    if base not in ids or (base == "twemproxy" and i in get_only):
                        continue
                    if i in rps and base in rps:
                        row.append(fmt_ratio(rps[i], rps[base]))
                    else:
                        row.append(DASH)
            for q in ("p50_latency_ms", "p99_latency_ms"):
                row.append(" / ".join(fmt_ms(med[i][q]) if i in med else DASH
                                      for i in ids))
            lines.append("| " + " | ".join(row) + " |")

    repeats = sorted({len(v) for v in cells.values()})
    spread = []
    for (test, p, i), runs in cells.items():
        vals = [float(r["rps"]) for r in runs]
        if len(vals) > 1 and statistics.median(vals) > 0:
            spread.append((max(vals) - min(vals)) / statistics.median(vals))
    print("\n".join(lines))
    print()
    note = (f"Each cell: median ops/s of {'/'.join(map(str, repeats))} runs "
            "(targets interleaved round-robin), with that run's p50/p99.")
    if spread:
        note += (f" Largest (max-min)/median spread across runs of a cell: "
                 f"{max(spread) * 100:.0f}%.")
    if get_only:
        names = ", ".join(label_of[i] for i in ids if i in get_only)
        note += (f" {names}: GET only ({DASH} for SET: a SET invalidates the key in L1), "
                 "L1 re-warmed with every key before each of its runs.")
    print(note)


L1_FIELDS = ["pipeline", "repeat", "requests", "entries_after_warm", "bytes_after_warm",
             "hits", "misses", "redis_get_calls", "redis_pttl_calls"]


def pct(a, b):
    return f"{100.0 * a / b:.3f}%" if b > 0 else "n/a"


def cmd_l1_summary(raw, l1csv, target_id):
    label_of, cells = read_raw(raw)
    label = label_of.get(target_id, target_id)
    with open(l1csv, newline="") as f:
        runs = list(csv.DictReader(f, fieldnames=L1_FIELDS))
    if not runs:
        die(f"no L1 runs recorded in {l1csv}")
    print(f"{label}, measured GET runs only (deltas of RESPITE STATS on the proxy and of "
          "INFO commandstats on Redis, taken just before and after each run):")
    print()
    print("| pipeline | runs | GET requests | l1_entries after warm-up | L1 hits | "
          "L1 misses | hit ratio | GETs reaching Redis | PTTLs reaching Redis |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p in sorted({int(r["pipeline"]) for r in runs}):
        sel = [r for r in runs if int(r["pipeline"]) == p]
        tot = {k: sum(int(r[k]) for r in sel) for k in L1_FIELDS[2:]}
        entries = sorted({int(r["entries_after_warm"]) for r in sel})
        entries_s = (f"{entries[0]:,}" if len(entries) == 1
                     else f"{entries[0]:,}\u2013{entries[-1]:,}")
        print(f"| {p} | {len(sel)} | {tot['requests']:,} | {entries_s} | "
              f"{tot['hits']:,} | {tot['misses']:,} | "
              f"{pct(tot['hits'], tot['hits'] + tot['misses'])} | "
              f"{tot['redis_get_calls']:,} | {tot['redis_pttl_calls']:,} |")
    print()
    # The project's goal for the L1-hit path, checked on the median runs.
    for p in sorted({int(r["pipeline"]) for r in runs}):
        l1 = cells.get(("GET", p, target_id))
        direct = cells.get(("GET", p, "direct"))
        if not l1 or not direct:
            continue
        m, d = median_run(l1), median_run(direct)
        ratio = float(m["rps"]) / float(d["rps"])
        p99_ok = float(m["p99_latency_ms"]) <= float(d["p99_latency_ms"])
        verdict = "met" if ratio >= 1.0 and p99_ok else "not met"
        # Each L1 run against the direct run of the same round (minutes apart at
        # most, so under similar machine load).
        direct_by_rep = {r["repeat"]: r for r in direct}
        paired = [f"{float(r['rps']) / float(direct_by_rep[r['repeat']]['rps']):.2f}x"
                  for r in sorted(l1, key=lambda r: int(r["repeat"]))
                  if r["repeat"] in direct_by_rep]
        print(f"Goal (GET >= 1.0x direct ops/s, p99 <= direct) at P{p}: {verdict} "
              f"({ratio:.2f}x direct; p99 {fmt_ms(m['p99_latency_ms'])} ms vs "
              f"{fmt_ms(d['p99_latency_ms'])} ms direct). "
              f"Per round, L1 run / direct run: {', '.join(paired)}.")


def main(argv):
    if len(argv) < 2:
        die(__doc__)
    cmd, args = argv[1], argv[2:]
    handlers = {  # name: (function, least arguments, most arguments)
        "ports": (cmd_ports, 1, 1),
        "target-dir": (cmd_target_dir, 1, 1),
        "append": (cmd_append, 7, 8),
        "fill": (cmd_fill, 2, 2),
        "gets": (cmd_gets, 1, 1),
        "report": (cmd_report, 2, 3),
        "l1-summary": (cmd_l1_summary, 3, 3),
        "zipf-fill": (cmd_zipf_fill, 2, 2),
        "zipf-size": (cmd_zipf_size, 3, 3),
        "zipf-ideal": (cmd_zipf_ideal, 5, 5),
    }
    if cmd not in handlers or not handlers[cmd][1] <= len(args) <= handlers[cmd][2]:
        die(f"helper: bad arguments {argv[1:]}\n{__doc__}")
    handlers[cmd][0](*args)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(141)
