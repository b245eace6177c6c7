//! `CLIENT LIST` under many clients: how long it takes, and whether other clients wait
//! for it.
//!
//! ```text
//! cargo run --release --example client_list -- --addr 127.0.0.1:6380 --idle 10000 \
//!     --lists 50
//! ```
//!
//! Opens `idle` connections that stay idle (each sends one PING first, so it is a
//! registered client), then one client sends `CLIENT LIST` `lists` times, one at a
//! time, while another sends PINGs back to back the whole time. Prints the size of a
//! listing, its round-trip times, and the PING round trips during the listings next to
//! those of a quiet period of the same length before them: if listing blocked the
//! event loop, the pings' maximum would grow by the listing's time.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Parser;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:6380")]
    addr: String,
    /// Idle connections opened first.
    #[arg(long, default_value_t = 10_000)]
    idle: usize,
    /// CLIENT LIST calls.
    #[arg(long, default_value_t = 50)]
    lists: usize,
    /// How long each PING measurement (quiet, then while listing) lasts.
    #[arg(long, default_value_t = 500)]
    window_ms: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut idle = Vec::with_capacity(args.idle);
    for _ in 0..args.idle {
        let mut c = TcpStream::connect(&args.addr).await.context("connect")?;
        call(&mut c, b"*1\r\n$4\r\nPING\r\n").await?;
        idle.push(c);
    }
    let mut lister = TcpStream::connect(&args.addr).await?;
    let first = call(&mut lister, b"*2\r\n$6\r\nCLIENT\r\n$4\r\nLIST\r\n").await?;
    let lines = first.iter().filter(|&&b| b == b'\n').count() - 1;
    println!("clients listed: {lines}");
    println!("listing bytes: {}", first.len());

    let window = Duration::from_millis(args.window_ms);
    let mut quiet = pings(args.addr.clone(), Instant::now() + window).await?;
    let mut took = Vec::with_capacity(args.lists);
    for _ in 0..args.lists {
        let start = Instant::now();
        call(&mut lister, b"*2\r\n$6\r\nCLIENT\r\n$4\r\nLIST\r\n").await?;
        took.push(start.elapsed());
    }
    report("CLIENT LIST round trip", &mut took);
    if window.is_zero() {
        return Ok(());
    }
    report("PING round trip, quiet", &mut quiet);
    let end = Instant::now() + window;
    let during = tokio::spawn(pings(args.addr.clone(), end));
    while Instant::now() < end {
        call(&mut lister, b"*2\r\n$6\r\nCLIENT\r\n$4\r\nLIST\r\n").await?;
    }
    let mut during = during.await??;
    report("PING round trip, while listing", &mut during);
    drop(idle);
    Ok(())
}

/// PINGs back to back on a new connection until `until`: each round trip.
async fn pings(addr: String, until: Instant) -> anyhow::Result<Vec<Duration>> {
    let mut c = TcpStream::connect(&addr).await?;
    let mut took = Vec::new();
    while Instant::now() < until {
        let start = Instant::now();
        call(&mut c, b"*1\r\n$4\r\nPING\r\n").await?;
        took.push(start.elapsed());
    }
    Ok(took)
}

/// Sends `cmd` and reads one reply (a simple string or one bulk string).
async fn call(c: &mut TcpStream, cmd: &[u8]) -> anyhow::Result<Vec<u8>> {
    c.write_all(cmd).await?;
    let mut buf = Vec::with_capacity(256);
    loop {
        let mut chunk = [0u8; 65536];
        let n = c.read(&mut chunk).await?;
        ensure!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(len) = complete(&buf) {
            ensure!(len == buf.len(), "more than one reply");
            return Ok(buf);
        }
    }
}

/// The length of the reply at the start of `buf`, once it is all there.
fn complete(buf: &[u8]) -> Option<usize> {
    let eol = buf.windows(2).position(|w| w == b"\r\n")?;
    match buf.first()? {
        b'$' | b'=' => {
            let len: usize = std::str::from_utf8(&buf[1..eol]).ok()?.parse().ok()?;
            let end = eol + 2 + len + 2;
            (buf.len() >= end).then_some(end)
        }
        _ => Some(eol + 2),
    }
}

fn report(what: &str, took: &mut [Duration]) {
    if took.is_empty() {
        return;
    }
    took.sort_unstable();
    let at = |q: f64| took[((took.len() - 1) as f64 * q) as usize];
    println!(
        "{what}: n={} p50={:?} p99={:?} max={:?}",
        took.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}
