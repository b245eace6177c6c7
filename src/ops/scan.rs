//! SCAN pages and the few reply shapes the admin operations read.

use bytes::Bytes;

use super::OpError;
use crate::{
    protocol::{
        reply::{array_elements, is_error, split_frames},
        request::encode_command,
    },
    upstream::{Conn, ReplyTo},
};

/// One SCAN reply: the next cursor (0 at the end) and the keys of this page.
pub struct Page {
    pub cursor: u64,
    pub keys: Vec<Bytes>,
}

/// `SCAN cursor MATCH pattern COUNT count`.
pub async fn page(
    conn: &Conn,
    cursor: u64,
    pattern: &Bytes,
    count: usize,
) -> Result<Page, OpError> {
    let cmd = encode_command(&[
        Bytes::from_static(b"SCAN"),
        Bytes::from(cursor.to_string()),
        Bytes::from_static(b"MATCH"),
        pattern.clone(),
        Bytes::from_static(b"COUNT"),
        Bytes::from(count.to_string()),
    ]);
    let frame = request(conn, cmd, 1).await?;
    let bad = || OpError::Unexpected(format!("SCAN replied {:?}", lossy(&frame)));
    let parts = array_elements(&frame)
        .filter(|p| p.len() == 2)
        .ok_or_else(bad)?;
    let cursor = bulk(&parts[0])
        .and_then(|c| std::str::from_utf8(&c).ok()?.parse().ok())
        .ok_or_else(bad)?;
    let keys = array_elements(&parts[1])
        .ok_or_else(bad)?
        .iter()
        .map(|k| bulk(k).ok_or_else(bad))
        .collect::<Result<_, _>>()?;
    Ok(Page { cursor, keys })
}

/// Sends `cmd` (producing `frames` replies) and returns the replies, or the first
/// error reply among them.
pub async fn request(conn: &Conn, cmd: Bytes, frames: u32) -> Result<Bytes, OpError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    conn.request_with(cmd, frames, ReplyTo::Oneshot(tx));
    let reply = rx
        .await
        .unwrap_or(Err(crate::error::Error::ConnectionLost))?;
    if let Some(err) = split_frames(&reply).find(|f| is_error(f)) {
        return Err(OpError::Redis(err));
    }
    Ok(reply)
}

/// The body of a bulk (or simple) string frame.
pub fn bulk(frame: &Bytes) -> Option<Bytes> {
    match frame.first()? {
        b'$' => {
            let start = frame.iter().position(|&b| b == b'\n')? + 1;
            Some(frame.slice(start..frame.len().checked_sub(2)?))
        }
        b'+' => Some(frame.slice(1..frame.len().checked_sub(2)?)),
        _ => None,
    }
}

/// How much of the keyspace a SCAN has covered once it returned `cursor` (0: all).
///
/// Redis walks its hash table in reverse-binary order: the cursor's bits, reversed,
/// count the buckets visited out of the table size (a power of two). Reversing all 64
/// bits puts that count in the top bits, so it reads as a fraction of 2^64 whatever
/// the table size. During a rehash it is an estimate, which is all a progress bar needs.
pub fn fraction_done(cursor: u64) -> f64 {
    if cursor == 0 {
        return 1.0;
    }
    cursor.reverse_bits() as f64 / 18_446_744_073_709_551_616.0
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bulk_and_integer() {
        assert_eq!(
            bulk(&Bytes::from_static(b"$3\r\nabc\r\n")).as_deref(),
            Some(&b"abc"[..])
        );
        assert_eq!(
            bulk(&Bytes::from_static(b"+string\r\n")).as_deref(),
            Some(&b"string"[..])
        );
        assert_eq!(bulk(&Bytes::from_static(b":1\r\n")), None);
        assert_eq!(crate::protocol::reply::integer_value(b":42\r\n"), Some(42));
        assert_eq!(crate::protocol::reply::integer_value(b"$2\r\n42\r\n"), None);
    }

    #[test]
    fn cursor_fraction() {
        assert_eq!(fraction_done(0), 1.0);
        // Table of 8 buckets: the cursor after bucket 0 is 0b100 (4), after 4 of 8
        // buckets it is 0b001.
        assert!((fraction_done(0b100) - 1.0 / 8.0).abs() < 1e-9);
        assert!((fraction_done(0b001) - 0.5).abs() < 1e-9);
        assert!((fraction_done(0b111) - 7.0 / 8.0).abs() < 1e-9);
    }
}
