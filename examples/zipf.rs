//! Zipf-distributed GET load over raw RESP, for measuring respite's L1 hit ratio.
//!
//! ```text
//! cargo run --release --example zipf -- --addr 127.0.0.1:6380 --keys 1000000 \
//!     --requests 2000000 --s 0.99 --conns 50 --pipeline 16 --seed 1
//! ```
//!
//! Every request is `GET <prefix><rank>`, the rank in 1..=keys drawn from a Zipf
//! distribution with exponent `s` (rank 1 the most popular): P(rank = k) is
//! proportional to k^-s. The sampler inverts a precomputed CDF by binary search, so
//! the distribution is exact for any `s` >= 0 (8 bytes of table per rank).
//!
//! `conns` connections each send a fixed share of `requests` in batches of `pipeline`
//! commands and wait for all of a batch's replies before sending the next. Each
//! connection draws its keys from its own generator seeded from `seed`, so a run's
//! key sequence is reproducible. Prints `name: value` lines (requests, replies by kind,
//! distinct keys requested, elapsed, ops/s, batch round-trip percentiles).

use std::{
    io::Write as _,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use bytes::{Buf, BytesMut};
use clap::Parser;
use rand::{Rng, SeedableRng, rngs::SmallRng};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

#[derive(Parser, Debug)]
#[command(about = "Zipf-distributed GET load over raw RESP")]
struct Args {
    /// Where to send the load (respite or Redis).
    #[arg(long, default_value = "127.0.0.1:6380")]
    addr: String,
    /// Number of distinct keys (ranks 1..=keys).
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// Total GETs to send.
    #[arg(long, default_value_t = 2_000_000)]
    requests: u64,
    /// Zipf exponent (0 = uniform).
    #[arg(long, default_value_t = 0.99)]
    s: f64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 50)]
    conns: u64,
    /// GETs in flight per connection (sent in one write, then all replies awaited).
    #[arg(long, default_value_t = 16)]
    pipeline: u64,
    /// Seed of the key sequence.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Key prefix; the key is the prefix followed by the rank in decimal.
    #[arg(long, default_value = "zipf:")]
    prefix: String,
    /// Tokio worker threads for the generator.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// Zipf(s) over ranks 1..=n by inverting the CDF.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: u64, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n as usize);
        let mut sum = 0.0;
        for k in 1..=n {
            sum += (k as f64).powf(-s);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Self { cdf }
    }

    /// A rank in 1..=n.
    fn sample(&self, rng: &mut impl Rng) -> u64 {
        let u: f64 = rng.random();
        let i = self.cdf.partition_point(|&c| c <= u);
        i.min(self.cdf.len() - 1) as u64 + 1
    }
}

/// What one reply frame was.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Bulk,
    Null,
    Error,
    Other,
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| from + p)
}

/// The first complete frame in `buf`: its kind and length, or None if incomplete.
/// Replies to GET are bulk strings or nulls (errors and simple values are tolerated).
fn scan(buf: &[u8]) -> anyhow::Result<Option<(Reply, usize)>> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    let Some(eol) = find_crlf(buf, 1) else {
        return Ok(None);
    };
    let line = &buf[1..eol];
    Ok(Some(match kind {
        b'$' => {
            let len: i64 = std::str::from_utf8(line)
                .ok()
                .and_then(|s| s.parse().ok())
                .with_context(|| format!("bad bulk length {:?}", String::from_utf8_lossy(line)))?;
            if len < 0 {
                (Reply::Null, eol + 2)
            } else {
                let end = eol + 2 + len as usize + 2;
                if buf.len() < end {
                    return Ok(None);
                }
                ensure!(
                    &buf[end - 2..end] == b"\r\n",
                    "bulk string not ended by CRLF"
                );
                (Reply::Bulk, end)
            }
        }
        b'_' => (Reply::Null, eol + 2),
        b'-' => (Reply::Error, eol + 2),
        b'+' | b':' => (Reply::Other, eol + 2),
        other => bail!("unexpected reply type {:?}", other as char),
    }))
}

#[derive(Default)]
struct ConnResult {
    bulk: u64,
    null: u64,
    error: u64,
    other: u64,
    first_error: Option<String>,
    /// Round trip of each batch, in microseconds.
    batch_us: Vec<u32>,
}

async fn run_conn(
    mut stream: TcpStream,
    zipf: Arc<Zipf>,
    seen: Arc<Vec<AtomicU64>>,
    prefix: Arc<str>,
    quota: u64,
    pipeline: u64,
    seed: u64,
) -> anyhow::Result<ConnResult> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(pipeline as usize * 48);
    let mut inbuf = BytesMut::with_capacity(64 * 1024);
    let mut res = ConnResult {
        batch_us: Vec::with_capacity(quota.div_ceil(pipeline) as usize),
        ..Default::default()
    };
    let mut left = quota;
    while left > 0 {
        let batch = left.min(pipeline);
        left -= batch;
        out.clear();
        for _ in 0..batch {
            let rank = zipf.sample(&mut rng);
            let idx = rank - 1;
            seen[(idx / 64) as usize].fetch_or(1 << (idx % 64), Ordering::Relaxed);
            let digits = rank.checked_ilog10().unwrap_or(0) as usize + 1;
            write!(
                out,
                "*2\r\n$3\r\nGET\r\n${}\r\n{}{}\r\n",
                prefix.len() + digits,
                prefix,
                rank
            )?;
        }
        let sent = Instant::now();
        stream.write_all(&out).await?;
        let mut pending = batch;
        while pending > 0 {
            while let Some((reply, len)) = scan(&inbuf)? {
                if reply == Reply::Error && res.first_error.is_none() {
                    res.first_error = Some(String::from_utf8_lossy(&inbuf[1..len - 2]).into());
                }
                match reply {
                    Reply::Bulk => res.bulk += 1,
                    Reply::Null => res.null += 1,
                    Reply::Error => res.error += 1,
                    Reply::Other => res.other += 1,
                }
                inbuf.advance(len);
                pending -= 1;
                if pending == 0 {
                    break;
                }
            }
            if pending > 0 && stream.read_buf(&mut inbuf).await? == 0 {
                bail!("connection closed with {pending} replies outstanding");
            }
        }
        ensure!(inbuf.is_empty(), "more replies than requests");
        let us = sent.elapsed().as_micros().min(u32::MAX as u128) as u32;
        res.batch_us.push(us);
    }
    Ok(res)
}

fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.keys >= 1, "--keys must be at least 1");
    ensure!(args.s >= 0.0 && args.s.is_finite(), "--s must be >= 0");
    ensure!(args.conns >= 1, "--conns must be at least 1");
    ensure!(args.pipeline >= 1, "--pipeline must be at least 1");
    ensure!(args.threads >= 1, "--threads must be at least 1");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let zipf = Arc::new(Zipf::new(args.keys, args.s));
    let seen: Arc<Vec<AtomicU64>> = Arc::new(
        (0..args.keys.div_ceil(64))
            .map(|_| AtomicU64::new(0))
            .collect(),
    );
    let prefix: Arc<str> = args.prefix.as_str().into();

    let mut streams = Vec::with_capacity(args.conns as usize);
    for _ in 0..args.conns {
        let s = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&args.addr))
            .await
            .with_context(|| format!("connecting to {} timed out", args.addr))?
            .with_context(|| format!("connecting to {}", args.addr))?;
        s.set_nodelay(true)?;
        streams.push(s);
    }

    let start = Instant::now();
    let mut tasks = Vec::with_capacity(streams.len());
    for (i, stream) in streams.into_iter().enumerate() {
        let i = i as u64;
        let quota = args.requests / args.conns + u64::from(i < args.requests % args.conns);
        // Distinct, reproducible streams per connection (splitmix-style spread).
        let seed = args.seed ^ (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        tasks.push(tokio::spawn(run_conn(
            stream,
            zipf.clone(),
            seen.clone(),
            prefix.clone(),
            quota,
            args.pipeline,
            seed,
        )));
    }
    let mut total = ConnResult::default();
    let mut lat = Vec::with_capacity(args.requests.div_ceil(args.pipeline) as usize);
    for t in tasks {
        let r = t.await.context("connection task panicked")??;
        total.bulk += r.bulk;
        total.null += r.null;
        total.error += r.error;
        total.other += r.other;
        if total.first_error.is_none() {
            total.first_error = r.first_error;
        }
        lat.extend(r.batch_us);
    }
    let elapsed = start.elapsed();
    lat.sort_unstable();
    let replies = total.bulk + total.null + total.error + total.other;
    let distinct: u64 = seen
        .iter()
        .map(|w| u64::from(w.load(Ordering::Relaxed).count_ones()))
        .sum();

    println!("addr: {}", args.addr);
    println!(
        "workload: GET {}<rank>, rank 1..={} ~ Zipf(s={}), conns {}, pipeline {}, seed {}",
        args.prefix, args.keys, args.s, args.conns, args.pipeline, args.seed
    );
    println!("requests: {}", args.requests);
    println!("replies: {replies}");
    println!("replies_bulk: {}", total.bulk);
    println!("replies_null: {}", total.null);
    println!("replies_error: {}", total.error);
    if let Some(e) = &total.first_error {
        println!("first_error: {e}");
    }
    println!("replies_other: {}", total.other);
    println!("distinct_keys: {distinct}");
    println!("elapsed_s: {:.3}", elapsed.as_secs_f64());
    println!(
        "ops_per_s: {:.0}",
        replies as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    println!("batch_rtt_p50_ms: {:.3}", percentile(&lat, 0.50));
    println!("batch_rtt_p99_ms: {:.3}", percentile(&lat, 0.99));
    println!(
        "batch_rtt_max_ms: {:.3}",
        lat.last().map_or(0.0, |&u| f64::from(u) / 1000.0)
    );
    ensure!(replies == args.requests, "replies != requests");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner() {
        assert_eq!(scan(b"$3\r\nabc\r\n").unwrap(), Some((Reply::Bulk, 9)));
        assert_eq!(scan(b"$3\r\nab").unwrap(), None);
        assert_eq!(scan(b"$-1\r\n$").unwrap(), Some((Reply::Null, 5)));
        assert_eq!(scan(b"-ERR x\r\n").unwrap(), Some((Reply::Error, 8)));
        assert_eq!(scan(b"$0\r\n\r\n").unwrap(), Some((Reply::Bulk, 6)));
        assert!(scan(b"*1\r\n").is_err());
    }

    #[test]
    fn zipf_is_skewed_and_in_range() {
        let z = Zipf::new(1000, 0.99);
        let mut rng = SmallRng::seed_from_u64(7);
        let mut ones = 0;
        for _ in 0..100_000 {
            let r = z.sample(&mut rng);
            assert!((1..=1000).contains(&r));
            ones += u32::from(r == 1);
        }
        // P(rank 1) = 1 / H(1000, 0.99) ~ 0.133.
        assert!((12_000..14_600).contains(&ones), "{ones}");
    }
}
