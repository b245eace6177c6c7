//! A small RESP2/RESP3 reader and writer for tests: finds frame boundaries, keeps every
//! frame's exact bytes, and renders replies readably in assertion messages.

/// One decoded frame. Re-encoding gives back the bytes it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `+ - : _ , # (` — the type byte and the line without CRLF.
    Line(u8, Vec<u8>),
    /// `$ ! =` — the type byte and the payload (`None` for `$-1`).
    Blob(u8, Option<Vec<u8>>),
    /// `* ~ > % |` — the type byte and the children (`None` for `*-1`); maps and
    /// attributes hold keys and values alternately.
    Agg(u8, Option<Vec<Frame>>),
}

impl Frame {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Frame::Line(t, line) => {
                out.push(*t);
                out.extend_from_slice(line);
                out.extend_from_slice(b"\r\n");
            }
            Frame::Blob(t, None) => {
                out.push(*t);
                out.extend_from_slice(b"-1\r\n");
            }
            Frame::Blob(t, Some(data)) => {
                out.push(*t);
                out.extend_from_slice(format!("{}\r\n", data.len()).as_bytes());
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
            }
            Frame::Agg(t, None) => {
                out.push(*t);
                out.extend_from_slice(b"-1\r\n");
            }
            Frame::Agg(t, Some(children)) => {
                let n = if matches!(t, b'%' | b'|') {
                    children.len() / 2
                } else {
                    children.len()
                };
                out.push(*t);
                out.extend_from_slice(format!("{n}\r\n").as_bytes());
                for c in children {
                    c.encode_into(out);
                }
            }
        }
    }

    /// The payload of a simple string, error or bulk string.
    pub fn text(&self) -> Option<&[u8]> {
        match self {
            Frame::Line(_, l) => Some(l),
            Frame::Blob(_, Some(d)) => Some(d),
            _ => None,
        }
    }

    pub fn children(&self) -> &[Frame] {
        match self {
            Frame::Agg(_, Some(c)) => c,
            _ => &[],
        }
    }

    /// Sorts the elements of every aggregate, recursively (pairs for maps), so
    /// replies whose order Redis does not define compare equal.
    pub fn sorted(&self) -> Frame {
        match self {
            Frame::Agg(t, Some(children)) => {
                let children: Vec<Frame> = children.iter().map(Frame::sorted).collect();
                let children = if matches!(t, b'%' | b'|') {
                    let mut pairs: Vec<(Frame, Frame)> = children
                        .chunks(2)
                        .map(|p| (p[0].clone(), p[1].clone()))
                        .collect();
                    pairs.sort_by_key(|(k, v)| (k.encode(), v.encode()));
                    pairs.into_iter().flat_map(|(k, v)| [k, v]).collect()
                } else {
                    let mut c = children;
                    c.sort_by_key(Frame::encode);
                    c
                };
                Frame::Agg(*t, Some(children))
            }
            other => other.clone(),
        }
    }

    /// Replaces the value that follows the key `field` in a map or in a flat
    /// key/value array (HELLO's `id`, for instance) with a placeholder.
    pub fn masked(&self, field: &str) -> Frame {
        match self {
            Frame::Agg(t, Some(children)) if children.len() % 2 == 0 => {
                let mut out = children.clone();
                for i in (0..out.len()).step_by(2) {
                    if out[i].text() == Some(field.as_bytes()) {
                        out[i + 1] = Frame::Line(b'+', b"<masked>".to_vec());
                    }
                }
                Frame::Agg(*t, Some(out))
            }
            other => other.clone(),
        }
    }
}

/// Parses one frame at the start of `buf`: `Ok(None)` when more bytes are needed.
pub fn parse(buf: &[u8]) -> Result<Option<(Frame, usize)>, String> {
    let Some(t) = buf.first().copied() else {
        return Ok(None);
    };
    let Some(eol) = find_crlf(buf, 1) else {
        return Ok(None);
    };
    let line = &buf[1..eol];
    let after = eol + 2;
    match t {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => {
            Ok(Some((Frame::Line(t, line.to_vec()), after)))
        }
        b'$' | b'!' | b'=' => {
            let len = parse_len(line)?;
            let Some(len) = len else {
                return Ok(Some((Frame::Blob(t, None), after)));
            };
            if buf.len() < after + len + 2 {
                return Ok(None);
            }
            if &buf[after + len..after + len + 2] != b"\r\n" {
                return Err(format!("bulk of {len} bytes not followed by CRLF"));
            }
            let data = buf[after..after + len].to_vec();
            Ok(Some((Frame::Blob(t, Some(data)), after + len + 2)))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let Some(n) = parse_len(line)? else {
                return Ok(Some((Frame::Agg(t, None), after)));
            };
            let n = if matches!(t, b'%' | b'|') { n * 2 } else { n };
            let mut pos = after;
            let mut children = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                match parse(&buf[pos..])? {
                    Some((f, used)) => {
                        children.push(f);
                        pos += used;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Frame::Agg(t, Some(children)), pos)))
        }
        other => Err(format!(
            "unexpected type byte {:?} at start of {}",
            other as char,
            show(&buf[..buf.len().min(64)])
        )),
    }
}

/// Length of one complete reply at the start of `buf` (an attribute frame and the
/// frame it annotates count as one reply).
pub fn reply_len(buf: &[u8]) -> Result<Option<usize>, String> {
    match parse(buf)? {
        Some((Frame::Agg(b'|', _), used)) => Ok(reply_len(&buf[used..])?.map(|n| used + n)),
        Some((_, used)) => Ok(Some(used)),
        None => Ok(None),
    }
}

/// Parses exactly one complete reply, panicking with the bytes shown otherwise.
pub fn decode(bytes: &[u8]) -> Frame {
    match parse(bytes) {
        Ok(Some((f, used))) if used == bytes.len() => f,
        other => panic!("not exactly one RESP frame ({other:?}): {}", show(bytes)),
    }
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| p + from)
}

fn parse_len(line: &[u8]) -> Result<Option<usize>, String> {
    let s = std::str::from_utf8(line).map_err(|_| format!("bad length {}", show(line)))?;
    if s == "-1" {
        return Ok(None);
    }
    s.parse::<usize>()
        .map(Some)
        .map_err(|_| format!("bad length {s:?}"))
}

/// Encodes a command as a RESP array of bulk strings.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Escaped, length-capped rendering of raw bytes for assertion messages.
pub fn show(bytes: &[u8]) -> String {
    const MAX: usize = 300;
    let shown = &bytes[..bytes.len().min(MAX)];
    let mut s = format!("\"{}\"", shown.escape_ascii());
    if bytes.len() > MAX {
        s.push_str(&format!("… ({} bytes in all)", bytes.len()));
    }
    s
}

/// A command's arguments rendered for messages: `SET "k" "v"`.
pub fn show_command<A: AsRef<[u8]>>(args: &[A]) -> String {
    args.iter()
        .map(|a| {
            let a = a.as_ref();
            if a.len() > 60 {
                format!("<{} bytes>", a.len())
            } else {
                a.escape_ascii().to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
