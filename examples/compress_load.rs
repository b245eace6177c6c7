//! SET then GET load of JSON documents over raw RESP, for measuring what compression
//! saves in Redis memory and costs in throughput (benches/compression.sh).
//!
//! ```text
//! cargo run --release --example compress_load -- --addr 127.0.0.1:6380 --docs 10000 \
//!     --conns 8 --pipeline 4 --get-rounds 2
//! ```
//!
//! The dataset is made here, the same for a given `--seed`: `docs` JSON documents
//! (`<prefix><n>`) whose sizes are log-uniform between 1 KiB and 64 KiB, shaped like an
//! API's cached responses: records with repeated field names, ids, timestamps, enum-like
//! values and sentences drawn from a vocabulary with a skewed word frequency. Then:
//! `set-rounds` SETs per document (timed), `get-rounds` GETs per document (timed), every reply
//! compared with the document written. Prints `name: value` lines.

use std::{
    fmt::Write as _,
    sync::Arc,
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
#[command(about = "SET then GET load of JSON documents over raw RESP")]
struct Args {
    /// Where to send the load (respite or Redis).
    #[arg(long, default_value = "127.0.0.1:6380")]
    addr: String,
    /// Number of documents.
    #[arg(long, default_value_t = 10_000)]
    docs: usize,
    /// Smallest and largest document, in bytes.
    #[arg(long, default_value_t = 1024)]
    min_size: usize,
    #[arg(long, default_value_t = 64 * 1024)]
    max_size: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 8)]
    conns: usize,
    /// Commands in flight per connection.
    #[arg(long, default_value_t = 4)]
    pipeline: usize,
    /// SETs of every document (later rounds overwrite with the same bytes).
    #[arg(long, default_value_t = 1)]
    set_rounds: usize,
    /// GETs of every document after the SETs.
    #[arg(long, default_value_t = 2)]
    get_rounds: usize,
    #[arg(long, default_value = "doc:")]
    prefix: String,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Tokio worker threads for the generator.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Only write the dataset's size and exit (no connection).
    #[arg(long)]
    dry_run: bool,
    /// Time respite's codecs on the dataset in this process (no connection): ratio
    /// and single-core MB/s of packing and opening, per codec and zstd level.
    #[arg(long)]
    codecs: bool,
}

/// `--codecs`: what each setting costs one core and saves, on this dataset.
fn measure_codecs(docs: &[Vec<u8>]) {
    use respite::{compress, policy::Compress};
    let total: usize = docs.iter().map(Vec::len).sum();
    let settings = [
        (Compress::Lz4, 0),
        (Compress::Zstd, -5),
        (Compress::Zstd, -1),
        (Compress::Zstd, 1),
        (Compress::Zstd, 3),
    ];
    for (codec, level) in settings {
        let start = Instant::now();
        let packed: Vec<Vec<u8>> = docs
            .iter()
            .map(|d| compress::pack(d, codec, level).unwrap_or_else(|| d.clone()))
            .collect();
        let pack_s = start.elapsed().as_secs_f64();
        let stored: usize = packed.iter().map(Vec::len).sum();
        let start = Instant::now();
        for (p, d) in packed.iter().zip(docs) {
            let opened = compress::open(p, compress::DEFAULT_MAX_LEN).expect("ours");
            assert!(opened.as_deref().unwrap_or(p) == &d[..], "round trip");
        }
        let open_s = start.elapsed().as_secs_f64();
        let mb = total as f64 / 1e6;
        println!(
            "codec {} level {level}: stored {:.1}% of {total} bytes, pack {:.0} MB/s ({:.1} us/doc), open {:.0} MB/s ({:.1} us/doc)",
            codec.as_str(),
            100.0 * stored as f64 / total as f64,
            mb / pack_s,
            pack_s * 1e6 / docs.len() as f64,
            mb / open_s,
            open_s * 1e6 / docs.len() as f64,
        );
    }
}

const FIRST: [&str; 24] = [
    "ka", "ra", "mi", "to", "sa", "el", "an", "ur", "be", "di", "lo", "fa", "ne", "qu", "is", "ho",
    "ya", "zu", "we", "pe", "ti", "go", "ma", "si",
];
const LAST: [&str; 12] = [
    "n", "ra", "tal", "em", "is", "on", "ah", "ir", "ud", "eth", "a", "ost",
];
const KINDS: [&str; 5] = ["chapter", "verse", "note", "comment", "translation"];
const LANGS: [&str; 6] = ["en", "ar", "ur", "id", "tr", "fr"];

/// A vocabulary of pseudo-words; the sentences pick from it with a skew (frequent
/// words are frequent, as in text).
fn vocabulary(rng: &mut SmallRng) -> Vec<String> {
    (0..2000)
        .map(|_| {
            let syllables = rng.random_range(1..=3);
            let mut w: String = (0..syllables)
                .map(|_| FIRST[rng.random_range(0..FIRST.len())])
                .collect();
            w.push_str(LAST[rng.random_range(0..LAST.len())]);
            w
        })
        .collect()
}

fn sentence(rng: &mut SmallRng, vocab: &[String], out: &mut String) {
    let words = rng.random_range(6..30);
    for i in 0..words {
        let u: f64 = rng.random();
        let w = &vocab[((u * u * u) * vocab.len() as f64) as usize];
        if i > 0 {
            out.push(' ');
        }
        out.push_str(w);
    }
    out.push('.');
}

/// One document of about `size` bytes.
fn document(rng: &mut SmallRng, vocab: &[String], n: usize, size: usize) -> Vec<u8> {
    let mut s = String::with_capacity(size + 1024);
    let kind = KINDS[n % KINDS.len()];
    let _ = write!(
        s,
        r#"{{"id":{n},"type":"{kind}","locale":"{}","version":{},"updated_at":"2024-{:02}-{:02}T{:02}:{:02}:{:02}Z","items":["#,
        LANGS[rng.random_range(0..LANGS.len())],
        rng.random_range(1..40),
        rng.random_range(1..13),
        rng.random_range(1..29),
        rng.random_range(0..24),
        rng.random_range(0..60),
        rng.random_range(0..60),
    );
    let mut item = 0;
    while s.len() + 300 < size {
        if item > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            r#"{{"id":{},"key":"{}:{}","position":{item},"page":{},"juz":{},"lang":"{}","text":""#,
            n * 1000 + item,
            n % 114 + 1,
            item + 1,
            rng.random_range(1..605),
            rng.random_range(1..31),
            LANGS[rng.random_range(0..LANGS.len())],
        );
        sentence(rng, vocab, &mut s);
        let _ = write!(
            s,
            r#"","translation":{{"resource_id":{},"author":"{}","text":""#,
            rng.random_range(1..200),
            vocab[rng.random_range(0..50)],
        );
        sentence(rng, vocab, &mut s);
        let _ = write!(
            s,
            r#""}},"audio":{{"url":"https://cdn.example.org/audio/{}/{:03}{:03}.mp3","duration_ms":{}}},"verified":{}}}"#,
            rng.random_range(1..20),
            n % 114 + 1,
            item + 1,
            rng.random_range(1000..90_000),
            rng.random_bool(0.9),
        );
        item += 1;
    }
    s.push_str("]}");
    s.into_bytes()
}

fn dataset(args: &Args) -> Vec<Vec<u8>> {
    let mut rng = SmallRng::seed_from_u64(args.seed);
    let vocab = vocabulary(&mut rng);
    let (lo, hi) = (args.min_size as f64, args.max_size as f64);
    (0..args.docs)
        .map(|n| {
            let u: f64 = rng.random();
            let size = (lo * (hi / lo).powf(u)) as usize;
            document(&mut rng, &vocab, n, size)
        })
        .collect()
}

fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// The first complete reply in `buf`: its bulk payload (or line) and length.
fn scan(buf: &[u8]) -> anyhow::Result<Option<(&[u8], usize)>> {
    let Some(eol) = find_crlf(buf) else {
        return Ok(None);
    };
    match buf[0] {
        b'$' => {
            let len: i64 = std::str::from_utf8(&buf[1..eol])?.parse()?;
            ensure!(len >= 0, "nil reply: a document is missing");
            let end = eol + 2 + len as usize + 2;
            if buf.len() < end {
                return Ok(None);
            }
            Ok(Some((&buf[eol + 2..end - 2], end)))
        }
        b'+' => Ok(Some((&buf[1..eol], eol + 2))),
        b'-' => bail!("error reply: {}", String::from_utf8_lossy(&buf[1..eol])),
        other => bail!("unexpected reply type {:?}", other as char),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Set,
    Get,
}

/// Sends `op` for the documents `mine` (indexes), `pipeline` at a time.
async fn run_conn(
    mut stream: TcpStream,
    docs: Arc<Vec<Vec<u8>>>,
    prefix: Arc<str>,
    mine: Vec<usize>,
    pipeline: usize,
    op: Op,
) -> anyhow::Result<u64> {
    let mut out = Vec::new();
    let mut inbuf = BytesMut::with_capacity(256 * 1024);
    for batch in mine.chunks(pipeline) {
        out.clear();
        for &i in batch {
            let key = format!("{prefix}{i}");
            match op {
                Op::Set => encode(&mut out, &[b"SET", key.as_bytes(), &docs[i]]),
                Op::Get => encode(&mut out, &[b"GET", key.as_bytes()]),
            }
        }
        stream.write_all(&out).await?;
        for &i in batch {
            loop {
                if let Some((payload, len)) = scan(&inbuf)? {
                    match op {
                        Op::Set => ensure!(payload == b"OK", "SET did not answer OK"),
                        Op::Get => ensure!(payload == docs[i], "GET {prefix}{i}: wrong bytes"),
                    }
                    inbuf.advance(len);
                    break;
                }
                if stream.read_buf(&mut inbuf).await? == 0 {
                    bail!("connection closed");
                }
            }
        }
    }
    Ok(mine.len() as u64)
}

async fn phase(
    args: &Args,
    docs: &Arc<Vec<Vec<u8>>>,
    op: Op,
    rounds: usize,
) -> anyhow::Result<f64> {
    let prefix: Arc<str> = args.prefix.as_str().into();
    let mut tasks = Vec::new();
    let start = Instant::now();
    for c in 0..args.conns {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&args.addr))
            .await
            .context("connect timed out")??;
        stream.set_nodelay(true)?;
        let mine: Vec<usize> = (0..rounds)
            .flat_map(|_| (c..docs.len()).step_by(args.conns))
            .collect();
        tasks.push(tokio::spawn(run_conn(
            stream,
            docs.clone(),
            prefix.clone(),
            mine,
            args.pipeline,
            op,
        )));
    }
    let mut ops = 0;
    for t in tasks {
        ops += t.await.context("connection task panicked")??;
    }
    Ok(ops as f64 / start.elapsed().as_secs_f64().max(1e-9))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.docs >= 1 && args.conns >= 1 && args.pipeline >= 1);
    ensure!(args.min_size >= 1 && args.min_size <= args.max_size);
    let docs = Arc::new(dataset(&args));
    let bytes: usize = docs.iter().map(Vec::len).sum();
    println!("docs: {}", docs.len());
    println!("dataset_bytes: {bytes}");
    if args.codecs {
        measure_codecs(&docs);
    }
    if args.dry_run || args.codecs {
        return Ok(());
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?
        .block_on(async {
            let set = phase(&args, &docs, Op::Set, args.set_rounds).await?;
            println!("set_ops_per_s: {set:.0}");
            let get = phase(&args, &docs, Op::Get, args.get_rounds).await?;
            println!("get_ops_per_s: {get:.0}");
            Ok(())
        })
}
