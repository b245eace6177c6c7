//! For unit tests: a `redis-server` child on a free port, and a connection that is
//! known to reach that child (not another test's server that took the port first).

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `redis-server` (or `$REDIS_SERVER`) without persistence and connects to it.
/// A port picked free can be taken before the child binds it: then the child exits,
/// or the connection reaches someone else's server; both are tried again on a new
/// port.
pub fn spawn() -> (Child, TcpStream) {
    for _ in 0..5 {
        if let Some(started) = try_spawn() {
            return started;
        }
    }
    panic!("redis-server did not start on any of five ports");
}

fn try_spawn() -> Option<(Child, TcpStream)> {
    let port = TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port()
        .to_string();
    let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
    let args = [
        "--port",
        &port,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ];
    let mut child = Command::new(&bin)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin} (set REDIS_SERVER): {e}"));
    let stream = connect(&mut child, &port).filter(|s| serves(s, child.id()));
    if stream.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    stream.map(|s| (child, s))
}

/// Connects to `port` while `child` runs, for up to ten seconds.
fn connect(child: &mut Child, port: &str) -> Option<TcpStream> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        if let Ok(stream) = TcpStream::connect(format!("127.0.0.1:{port}")) {
            return Some(stream);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// True when the server behind `stream` is the process `pid`.
fn serves(stream: &TcpStream, pid: u32) -> bool {
    let mut s = stream;
    if s.write_all(b"INFO server\r\n").is_err() {
        return false;
    }
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let want = format!("process_id:{pid}\r\n");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    // The reply is one bulk string that ends with "\r\n\r\n" (its last line, then the
    // bulk terminator).
    while !seen.ends_with(b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(n) if n > 0 => seen.extend_from_slice(&buf[..n]),
            _ => return false,
        }
    }
    let _ = stream.set_read_timeout(None);
    String::from_utf8_lossy(&seen).contains(&want)
}
