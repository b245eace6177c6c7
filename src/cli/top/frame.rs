//! The pure part of `respite top`: `RESPITE STATS` as a [`Snapshot`], two snapshots as
//! a [`Frame`] of rates and ratios over the interval between them, and a frame as
//! lines of text. A field the proxy does not report is `None` here and `-` on screen.

use std::time::Duration;

use bytesize::ByteSize;

/// One reading of `RESPITE STATS`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub upstream: Option<String>,
    pub tracking: Option<String>,
    pub clients: Option<u64>,
    pub l1_bytes: Option<u64>,
    pub l1_max_bytes: Option<u64>,
    /// Redis's `used_memory` and `maxmemory` (0: no limit).
    pub used_memory: Option<u64>,
    pub maxmemory: Option<u64>,
    /// Redis's `evicted_keys`, a counter.
    pub evicted_keys: Option<u64>,
    /// In the order the proxy lists them.
    pub namespaces: Vec<Namespace>,
}

/// The `ns:<name>:…` fields of one namespace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Namespace {
    pub name: String,
    pub requests: Option<u64>,
    pub l1_hits: Option<u64>,
    pub l1_misses: Option<u64>,
    pub cache_l1_hit: Option<u64>,
    pub cache_l2_hit: Option<u64>,
    pub cache_miss: Option<u64>,
    pub p95_us: Option<f64>,
    pub l1_bytes: Option<u64>,
    pub redis_keys: Option<u64>,
    pub redis_bytes: Option<u64>,
}

impl Snapshot {
    /// Reads the fields `top` shows from STATS's field/value pairs; others are ignored,
    /// and so is a value that is not a number where one is expected.
    pub fn parse(fields: &[(String, String)]) -> Snapshot {
        let mut s = Snapshot::default();
        for (k, v) in fields {
            if let Some((ns, what)) = k.strip_prefix("ns:").and_then(|r| r.rsplit_once(':')) {
                s.namespace(ns).set(what, v);
                continue;
            }
            let n = v.parse::<u64>().ok();
            match k.as_str() {
                "upstream" => s.upstream = Some(v.clone()),
                "tracking" => s.tracking = Some(v.clone()),
                "clients" => s.clients = n,
                "l1_bytes" => s.l1_bytes = n,
                "l1_max_bytes" => s.l1_max_bytes = n,
                "upstream_used_memory" => s.used_memory = n,
                "upstream_maxmemory" => s.maxmemory = n,
                "upstream_evicted_keys" => s.evicted_keys = n,
                _ => {}
            }
        }
        s
    }

    fn namespace(&mut self, name: &str) -> &mut Namespace {
        match self.namespaces.iter().position(|n| n.name == name) {
            Some(i) => &mut self.namespaces[i],
            None => {
                self.namespaces.push(Namespace {
                    name: name.to_owned(),
                    ..Namespace::default()
                });
                self.namespaces.last_mut().expect("just pushed")
            }
        }
    }
}

impl Namespace {
    fn set(&mut self, what: &str, v: &str) {
        let n = v.parse::<u64>().ok();
        let slot = match what {
            "requests" => &mut self.requests,
            "l1_hits" => &mut self.l1_hits,
            "l1_misses" => &mut self.l1_misses,
            "cache_l1_hit" => &mut self.cache_l1_hit,
            "cache_l2_hit" => &mut self.cache_l2_hit,
            "cache_miss" => &mut self.cache_miss,
            "l1_bytes" => &mut self.l1_bytes,
            "redis_keys" => &mut self.redis_keys,
            "redis_bytes" => &mut self.redis_bytes,
            "p95_us" => {
                self.p95_us = v.parse::<f64>().ok().filter(|f| f.is_finite());
                return;
            }
            _ => return,
        };
        *slot = n;
    }
}

/// What one refresh shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub upstream: Option<String>,
    pub tracking: Option<String>,
    pub clients: Option<u64>,
    pub used_memory: Option<u64>,
    pub maxmemory: Option<u64>,
    pub evictions_per_sec: Option<f64>,
    pub l1_bytes: Option<u64>,
    pub l1_max_bytes: Option<u64>,
    pub rows: Vec<Row>,
}

/// One namespace's line.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub ops_per_sec: Option<f64>,
    /// Percentages, 0–100.
    pub l1_hit_pct: Option<f64>,
    pub hit_pct: Option<f64>,
    pub p95_us: Option<f64>,
    pub l1_bytes: Option<u64>,
    pub redis_keys: Option<u64>,
    pub redis_bytes: Option<u64>,
}

/// How much a counter grew since `prev`; its whole value when there is no earlier
/// reading or it went down (the proxy restarted).
fn grown(prev: Option<u64>, cur: u64) -> u64 {
    match prev {
        Some(p) if p <= cur => cur - p,
        _ => cur,
    }
}

/// A counter's growth per second over `elapsed`; None without an earlier reading.
fn rate(prev: Option<u64>, cur: Option<u64>, elapsed: Duration) -> Option<f64> {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return None;
    }
    Some(grown(Some(prev?), cur?) as f64 / secs)
}

/// A counter of a namespace.
type Counter = fn(&Namespace) -> Option<u64>;

/// `hits / (hits + misses)` as a percentage over the interval since `prev` (since the
/// proxy started without one); None when a counter is missing or none moved.
fn hit_pct(
    prev: Option<&Namespace>,
    cur: &Namespace,
    hits: &[Counter],
    miss: Counter,
) -> Option<f64> {
    let moved = |f: Counter| Some(grown(prev.and_then(f), f(cur)?));
    let mut h = 0;
    for f in hits {
        h += moved(*f)?;
    }
    let m = moved(miss)?;
    (h + m > 0).then(|| 100.0 * h as f64 / (h + m) as f64)
}

impl Frame {
    /// The frame for `cur`, with rates over `elapsed` since `prev` (None for the
    /// first: no rates, ratios since the proxy started).
    pub fn between(prev: Option<&Snapshot>, cur: &Snapshot, elapsed: Duration) -> Frame {
        let rows = cur
            .namespaces
            .iter()
            .map(|ns| {
                let before = prev.and_then(|p| p.namespaces.iter().find(|n| n.name == ns.name));
                Row::between(before, ns, elapsed)
            })
            .collect();
        Frame {
            upstream: cur.upstream.clone(),
            tracking: cur.tracking.clone(),
            clients: cur.clients,
            used_memory: cur.used_memory,
            maxmemory: cur.maxmemory,
            evictions_per_sec: rate(prev.and_then(|p| p.evicted_keys), cur.evicted_keys, elapsed),
            l1_bytes: cur.l1_bytes,
            l1_max_bytes: cur.l1_max_bytes,
            rows,
        }
    }
}

impl Row {
    fn between(prev: Option<&Namespace>, cur: &Namespace, elapsed: Duration) -> Row {
        Row {
            name: cur.name.clone(),
            ops_per_sec: rate(prev.and_then(|n| n.requests), cur.requests, elapsed),
            l1_hit_pct: hit_pct(prev, cur, &[|n| n.l1_hits], |n| n.l1_misses),
            hit_pct: hit_pct(prev, cur, &[|n| n.cache_l1_hit, |n| n.cache_l2_hit], |n| {
                n.cache_miss
            }),
            p95_us: cur.p95_us,
            l1_bytes: cur.l1_bytes,
            redis_keys: cur.redis_keys,
            redis_bytes: cur.redis_bytes,
        }
    }
}

/// The table's columns: title and width (the namespace's is computed).
const COLUMNS: [(&str, usize); 7] = [
    ("ops/s", 9),
    ("l1 hit%", 8),
    ("hit%", 7),
    ("p95", 9),
    ("l1 bytes", 11),
    ("redis keys", 11),
    ("redis bytes", 12),
];

impl Frame {
    /// The frame as lines of plain text (no escape codes, no empty line): `title`, the
    /// proxy's and Redis's state, then one row per namespace.
    pub fn lines(&self, title: &str) -> Vec<String> {
        let mut out = vec![title.to_owned()];
        out.push(format!(
            "upstream {}   tracking {}   clients {}   l1 {} / {}",
            text(&self.upstream),
            text(&self.tracking),
            opt(self.clients, |n| n.to_string()),
            opt(self.l1_bytes, bytes),
            opt(self.l1_max_bytes, bytes),
        ));
        out.push(format!(
            "redis memory {}   evictions/s {}",
            self.memory(),
            opt(self.evictions_per_sec, per_sec),
        ));
        let width = self
            .rows
            .iter()
            .map(|r| r.name.chars().count())
            .max()
            .unwrap_or(0)
            .clamp(9, 32);
        let titles = COLUMNS.map(|(t, _)| t.to_owned());
        out.push(row_line(width, "namespace", &titles));
        out.extend(
            self.rows
                .iter()
                .map(|r| row_line(width, &r.name, &r.cells())),
        );
        if self.rows.is_empty() {
            out.push("(no namespaces)".to_owned());
        }
        out
    }

    /// `used / max (n%)`, `used / no limit`, with `-` for what is unknown.
    fn memory(&self) -> String {
        let max = match self.maxmemory {
            Some(0) => "no limit".to_owned(),
            other => opt(other, bytes),
        };
        let share = match (self.used_memory, self.maxmemory) {
            (Some(used), Some(max)) if max > 0 => {
                format!(" ({:.1}%)", 100.0 * used as f64 / max as f64)
            }
            _ => String::new(),
        };
        format!("{} / {max}{share}", opt(self.used_memory, bytes))
    }
}

impl Row {
    fn cells(&self) -> [String; 7] {
        [
            opt(self.ops_per_sec, per_sec),
            opt(self.l1_hit_pct, pct),
            opt(self.hit_pct, pct),
            opt(self.p95_us, latency),
            opt(self.l1_bytes, bytes),
            opt(self.redis_keys, |n| n.to_string()),
            opt(self.redis_bytes, bytes),
        ]
    }
}

/// The namespace left-aligned in `width` (cut if longer), then the cells right-aligned.
fn row_line(width: usize, name: &str, cells: &[String; 7]) -> String {
    let name: String = name.chars().take(width).collect();
    let mut line = format!("{name:<width$}");
    for ((_, w), cell) in COLUMNS.iter().zip(cells) {
        line.push_str(&format!(" {cell:>w$}"));
    }
    line.trim_end().to_owned()
}

fn opt<T>(v: Option<T>, show: impl FnOnce(T) -> String) -> String {
    v.map(show).unwrap_or_else(|| "-".to_owned())
}

fn text(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

/// Bytes in binary units: `512 B`, `4.0 KiB`, `1.5 GiB`.
pub fn bytes(n: u64) -> String {
    ByteSize::b(n).display().iec().to_string()
}

fn pct(p: f64) -> String {
    format!("{p:.1}%")
}

/// A rate: one decimal below 100 a second, whole numbers above.
fn per_sec(r: f64) -> String {
    if r < 100.0 {
        format!("{r:.1}")
    } else {
        format!("{r:.0}")
    }
}

/// Microseconds as `850us`, `1.2ms` or `2.35s`.
fn latency(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us:.0}us")
    } else if us < 1_000_000.0 {
        format!("{:.1}ms", us / 1_000.0)
    } else {
        format!("{:.2}s", us / 1_000_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// STATS as the proxy reports it today (L1 fields only) for namespace `c`.
    fn today(hits: u64, misses: u64) -> Snapshot {
        let (h, m) = (hits.to_string(), misses.to_string());
        Snapshot::parse(&fields(&[
            ("upstream", "up"),
            ("tracking", "up"),
            ("clients", "3"),
            ("l1_bytes", "4096"),
            ("l1_max_bytes", "67108864"),
            ("ns:c:l1_entries", "2"),
            ("ns:c:l1_bytes", "4096"),
            ("ns:c:l1_hits", &h),
            ("ns:c:l1_misses", &m),
            ("ns:c:l1_hit_ratio", "0.7500"),
        ]))
    }

    /// STATS with the per-namespace request, hit, latency and Redis fields too.
    fn full(requests: u64, l1: u64, l2: u64, miss: u64, evicted: u64) -> Snapshot {
        let n = |v: u64| v.to_string();
        Snapshot::parse(&fields(&[
            ("upstream", "up"),
            ("upstream_used_memory", "1048576"),
            ("upstream_maxmemory", "4194304"),
            ("upstream_evicted_keys", &n(evicted)),
            ("ns:s:requests", &n(requests)),
            ("ns:s:cache_l1_hit", &n(l1)),
            ("ns:s:cache_l2_hit", &n(l2)),
            ("ns:s:cache_miss", &n(miss)),
            ("ns:s:p95_us", "1250"),
            ("ns:s:redis_keys", "1200"),
            ("ns:s:redis_bytes", "3145728"),
        ]))
    }

    #[test]
    fn parses_the_fields_it_shows() {
        let s = today(3, 1);
        assert_eq!(s.upstream.as_deref(), Some("up"));
        assert_eq!((s.clients, s.l1_max_bytes), (Some(3), Some(67108864)));
        assert_eq!(s.used_memory, None, "absent fields stay unknown");
        assert_eq!(s.namespaces.len(), 1);
        let c = &s.namespaces[0];
        assert_eq!(
            (c.name.as_str(), c.l1_hits, c.l1_misses),
            ("c", Some(3), Some(1))
        );
        assert_eq!((c.l1_bytes, c.requests, c.p95_us), (Some(4096), None, None));
        let s = full(10, 1, 2, 3, 4);
        assert_eq!(s.namespaces[0].name, "s", "found from the new fields alone");
        assert_eq!(s.namespaces[0].p95_us, Some(1250.0));
        assert_eq!((s.maxmemory, s.evicted_keys), (Some(4194304), Some(4)));
    }

    #[test]
    fn namespaces_keep_the_proxy_order_and_colons() {
        let s = Snapshot::parse(&fields(&[
            ("ns:zeta:l1_hits", "1"),
            ("ns:a:b:l1_hits", "2"),
            ("ns:zeta:l1_misses", "x"),
            ("compress_zeta_bytes_in", "9"),
        ]));
        let names: Vec<&str> = s.namespaces.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["zeta", "a:b"]);
        assert_eq!(s.namespaces[1].l1_hits, Some(2));
        assert_eq!(s.namespaces[0].l1_misses, None, "not a number");
    }

    #[test]
    fn first_frame_has_ratios_since_start_and_no_rates() {
        let f = Frame::between(None, &today(3, 1), Duration::ZERO);
        let c = &f.rows[0];
        assert_eq!(c.l1_hit_pct, Some(75.0));
        assert_eq!((c.ops_per_sec, c.hit_pct, c.p95_us), (None, None, None));
        let f = Frame::between(None, &full(100, 30, 10, 10, 7), Duration::ZERO);
        let s = &f.rows[0];
        assert_eq!(s.hit_pct, Some(80.0), "(30 + 10) / 50");
        assert_eq!((s.ops_per_sec, f.evictions_per_sec), (None, None));
        assert_eq!(s.l1_hit_pct, None, "no L1 counters");
    }

    #[test]
    fn later_frames_use_the_interval() {
        let f = Frame::between(Some(&today(3, 1)), &today(7, 1), Duration::from_secs(1));
        assert_eq!(f.rows[0].l1_hit_pct, Some(100.0), "4 hits, no miss since");
        let f = Frame::between(Some(&today(3, 1)), &today(3, 1), Duration::from_secs(1));
        assert_eq!(f.rows[0].l1_hit_pct, None, "nothing happened");
        let (a, b) = (full(100, 30, 10, 10, 7), full(300, 60, 10, 30, 17));
        let f = Frame::between(Some(&a), &b, Duration::from_secs(2));
        let s = &f.rows[0];
        assert_eq!(s.ops_per_sec, Some(100.0), "200 requests in 2s");
        assert_eq!(s.hit_pct, Some(60.0), "30 hits, 20 misses");
        assert_eq!(f.evictions_per_sec, Some(5.0));
    }

    #[test]
    fn a_restarted_proxy_counts_from_zero() {
        let (before, after) = (full(500, 90, 0, 10, 50), full(40, 3, 0, 1, 0));
        let f = Frame::between(Some(&before), &after, Duration::from_secs(1));
        assert_eq!(f.rows[0].ops_per_sec, Some(40.0));
        assert_eq!(f.rows[0].hit_pct, Some(75.0));
        assert_eq!(f.evictions_per_sec, Some(0.0));
    }

    #[test]
    fn lines_are_plain_and_aligned() {
        let mut s = today(3, 1);
        s.namespaces.extend(full(100, 30, 10, 10, 7).namespaces);
        s.used_memory = Some(1048576);
        s.maxmemory = Some(4194304);
        let lines = Frame::between(None, &s, Duration::ZERO).lines("title");
        let text = lines.join("\n");
        assert!(!text.contains('\x1b'), "{text}");
        assert_eq!(lines[0], "title");
        assert!(lines[1].contains("upstream up") && lines[1].contains("clients 3"));
        assert!(lines[1].contains("l1 4.0 KiB / 64.0 MiB"), "{}", lines[1]);
        assert!(
            lines[2].contains("1.0 MiB / 4.0 MiB (25.0%)"),
            "{}",
            lines[2]
        );
        assert!(lines[2].contains("evictions/s -"), "{}", lines[2]);
        assert!(lines.iter().all(|l| !l.is_empty()), "{text}");
        let header = &lines[3];
        for t in ["namespace", "ops/s", "l1 hit%", "hit%", "p95", "redis keys"] {
            assert!(header.contains(t), "{header}");
        }
        let cells = |row: &str| {
            row.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let c = cells(&lines[4]);
        assert_eq!(c, ["c", "-", "75.0%", "-", "-", "4.0", "KiB", "-", "-"]);
        let s = cells(&lines[5]);
        assert_eq!(
            s,
            ["s", "-", "-", "80.0%", "1.2ms", "-", "1200", "3.0", "MiB"]
        );
        // Right-aligned under their titles.
        let end = |line: &str, what: &str| line.find(what).map(|i| i + what.len());
        assert_eq!(end(&lines[4], "75.0%"), end(header, "l1 hit%"));
        assert_eq!(end(&lines[5], "1200"), end(header, "redis keys"));
    }

    #[test]
    fn no_limit_and_no_namespaces() {
        let mut s = today(0, 0);
        s.namespaces.clear();
        s.used_memory = Some(512);
        s.maxmemory = Some(0);
        let lines = Frame::between(None, &s, Duration::ZERO).lines("t");
        assert!(lines[2].contains("512 B / no limit"), "{}", lines[2]);
        assert_eq!(lines.last().map(String::as_str), Some("(no namespaces)"));
    }

    #[test]
    fn units() {
        assert_eq!(latency(850.0), "850us");
        assert_eq!(latency(1250.0), "1.2ms");
        assert_eq!(latency(2_345_000.0), "2.35s");
        assert_eq!(per_sec(2.5), "2.5");
        assert_eq!(per_sec(12345.4), "12345");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
    }
}
