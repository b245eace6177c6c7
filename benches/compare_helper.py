#!/usr/bin/env python3
"""Helper for benches/compare.sh (standard library only).

Subcommands:
  ports N                      print N distinct free loopback TCP ports, one a line
  target-dir MANIFEST          print cargo's target directory for a Cargo.toml
  append RAW LABEL ID P REP N BENCH_OUTPUT
                               parse `redis-benchmark --csv` output, append rows to RAW
  fill KEYS SIZE               print RESP for SET key:%012d <SIZE bytes> for every key
                               redis-benchmark -r KEYS can touch (for redis-cli --pipe)
  report RAW IDS               print the markdown comparison table from RAW; IDS is
                               the comma-separated target ids in column order
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
SHORT = {"direct": "direct", "twemproxy": "twem", "respite": "respite"}


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


def cmd_append(raw, label, target_id, pipeline, repeat, requests, bench_output):
    rows = {}
    with open(bench_output, newline="") as f:
        for rec in csv.reader(f):
            # Skip the header and anything that is not a result line (warnings etc.).
            if len(rec) != 8 or rec[0] not in TESTS:
                continue
            try:
                nums = [float(x) for x in rec[1:]]
            except ValueError:
                continue
            rows[rec[0]] = [rec[1]] + rec[2:]
            if nums[0] <= 0:
                die(f"{label} P{pipeline}: {rec[0]} reported {rec[1]} ops/s")
    missing = [t for t in TESTS if t not in rows]
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
        for test in TESTS:
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


def cmd_report(raw, ids):
    ids = ids.split(",")
    label_of = {}
    cells = {}
    with open(raw, newline="") as f:
        for row in csv.DictReader(f):
            key = (row["test"], int(row["pipeline"]), row["target_id"])
            cells.setdefault(key, []).append(row)
            label_of[row["target_id"]] = row["target"]
    for i in ids:
        if i not in label_of:
            die(f"no results for target {i} in {raw}")

    pipelines = sorted({p for (_, p, _) in cells})
    # Ratios are given for every respite target, against twemproxy and direct Redis.
    ratio_ids = [i for i in ids if i not in ("direct", "twemproxy")]
    short = [SHORT.get(i, label_of[i]) for i in ids]

    header = ["test", "pipeline"]
    header += [f"{label_of[i]} ops/s" for i in ids]
    for i in ratio_ids:
        if "twemproxy" in ids:
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
                if not runs:
                    die(f"no results for {label_of[i]} {test} P{p}")
                med[i] = median_run(runs)
            rps = {i: float(med[i]["rps"]) for i in ids}
            row = [test, str(p)] + [fmt_rps(rps[i]) for i in ids]
            for i in ratio_ids:
                if "twemproxy" in ids:
                    row.append(fmt_ratio(rps[i], rps["twemproxy"]))
                if "direct" in ids:
                    row.append(fmt_ratio(rps[i], rps["direct"]))
            row.append(" / ".join(fmt_ms(med[i]["p50_latency_ms"]) for i in ids))
            row.append(" / ".join(fmt_ms(med[i]["p99_latency_ms"]) for i in ids))
            lines.append("| " + " | ".join(row) + " |")

    repeats = sorted({len(v) for v in cells.values()})
    spread = []
    for test in TESTS:
        for p in pipelines:
            for i in ids:
                vals = [float(r["rps"]) for r in cells[(test, p, i)]]
                if len(vals) > 1 and statistics.median(vals) > 0:
                    spread.append((max(vals) - min(vals)) / statistics.median(vals))
    print("\n".join(lines))
    print()
    note = (f"Each cell: median ops/s of {'/'.join(map(str, repeats))} runs "
            "(targets interleaved round-robin), with that run's p50/p99.")
    if spread:
        note += (f" Largest (max-min)/median spread across runs of a cell: "
                 f"{max(spread) * 100:.0f}%.")
    print(note)


def main(argv):
    if len(argv) < 2:
        die(__doc__)
    cmd, args = argv[1], argv[2:]
    handlers = {
        "ports": (cmd_ports, 1),
        "target-dir": (cmd_target_dir, 1),
        "append": (cmd_append, 7),
        "fill": (cmd_fill, 2),
        "report": (cmd_report, 2),
    }
    if cmd not in handlers or len(args) != handlers[cmd][1]:
        die(f"helper: bad arguments {argv[1:]}\n{__doc__}")
    handlers[cmd][0](*args)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(141)
