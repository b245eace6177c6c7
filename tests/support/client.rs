//! A synchronous RESP client over a plain TCP socket. Every read has a timeout, so
//! a proxy that hangs fails the test instead of blocking CI.

use std::{
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use super::resp::{self, Frame};

/// How long a read waits before the test fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    addr: SocketAddr,
}

/// What a read found instead of a reply.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The peer closed the connection (with this many unparsed bytes pending).
    Closed(usize),
    TimedOut,
    Io(String),
    Protocol(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Closed(0) => write!(f, "connection closed"),
            ReadError::Closed(n) => {
                write!(f, "connection closed with {n} bytes of a partial reply")
            }
            ReadError::TimedOut => write!(f, "no reply within the read timeout"),
            ReadError::Io(e) => write!(f, "i/o error: {e}"),
            ReadError::Protocol(e) => write!(f, "unparsable reply: {e}"),
        }
    }
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Self::try_connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
    }

    pub fn try_connect(addr: SocketAddr) -> std::io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        Self::over(stream, addr)
    }

    /// Connects from `source` (e.g. another loopback address, `127.0.0.2`).
    pub fn connect_from(source: std::net::IpAddr, addr: SocketAddr) -> std::io::Result<Client> {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.bind(&SocketAddr::new(source, 0).into())?;
        socket.connect_timeout(&addr.into(), Duration::from_secs(5))?;
        Self::over(socket.into(), addr)
    }

    fn over(stream: TcpStream, addr: SocketAddr) -> std::io::Result<Client> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_write_timeout(Some(READ_TIMEOUT))?;
        Ok(Client {
            stream,
            buf: Vec::new(),
            addr,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    pub fn set_read_timeout(&self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
    }

    /// Writes one command as a RESP array.
    pub fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        self.send_raw(&resp::encode_command(args));
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("write to {}: {e}", self.addr));
    }

    pub fn try_send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Raw bytes of exactly one reply; panics on timeout, close or garbage.
    pub fn read_reply(&mut self) -> Vec<u8> {
        self.try_read_reply()
            .unwrap_or_else(|e| panic!("reading a reply from {}: {e}", self.addr))
    }

    pub fn try_read_reply(&mut self) -> Result<Vec<u8>, ReadError> {
        loop {
            match resp::reply_len(&self.buf) {
                Ok(Some(n)) => return Ok(self.buf.drain(..n).collect()),
                Ok(None) => {}
                Err(e) => return Err(ReadError::Protocol(e)),
            }
            self.fill()?;
        }
    }

    /// Reads one reply and decodes it.
    pub fn read_frame(&mut self) -> Frame {
        resp::decode(&self.read_reply())
    }

    /// Sends a command and returns the raw bytes of its reply.
    pub fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Vec<u8> {
        self.send(args);
        self.try_read_reply()
            .unwrap_or_else(|e| panic!("{} via {}: {e}", resp::show_command(args), self.addr))
    }

    /// `call` for whitespace-separated text arguments: `c.cmd("SET k v")`.
    pub fn cmd(&mut self, line: &str) -> Vec<u8> {
        let args: Vec<&str> = line.split_whitespace().collect();
        self.call(&args)
    }

    /// Asserts the raw reply of `line` equals `expected`.
    pub fn assert_cmd(&mut self, line: &str, expected: &[u8]) {
        let got = self.cmd(line);
        assert!(
            got == expected,
            "{line}: got {}, expected {}",
            resp::show(&got),
            resp::show(expected)
        );
    }

    /// Reads one reply and asserts it is `expected`.
    pub fn assert_reply(&mut self, expected: &[u8]) {
        let got = self.read_reply();
        assert!(
            got == expected,
            "got {}, expected {}",
            resp::show(&got),
            resp::show(expected)
        );
    }

    /// True when the peer closes the connection within `within` (pending replies
    /// are read and discarded).
    pub fn closed_within(&mut self, within: Duration) -> bool {
        self.read_available(within).1
    }

    /// True when nothing arrives and the connection stays open for `quiet`.
    pub fn silent_for(&mut self, quiet: Duration) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        self.stream.set_read_timeout(Some(quiet)).unwrap();
        let mut chunk = [0u8; 4096];
        let silent = match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                false
            }
            Err(e) => is_timeout(&e),
        };
        self.stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        silent
    }

    /// Everything that arrives within `within` (unparsed bytes included), and whether
    /// the peer closed the connection.
    pub fn read_available(&mut self, within: Duration) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + within;
        let mut chunk = [0u8; 4096];
        let closed = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break false;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut chunk) {
                Ok(0) => break true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if is_timeout(&e) => break false,
                Err(_) => break true,
            }
        };
        let _ = self.stream.set_read_timeout(Some(READ_TIMEOUT));
        (std::mem::take(&mut self.buf), closed)
    }

    fn fill(&mut self) -> Result<(), ReadError> {
        let mut chunk = vec![0u8; 256 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err(ReadError::Closed(self.buf.len())),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) if is_timeout(&e) => Err(ReadError::TimedOut),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                Err(ReadError::Closed(self.buf.len()))
            }
            Err(e) => Err(ReadError::Io(e.to_string())),
        }
    }
}

pub fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}
