//! `CLIENT LIST`, `CLIENT INFO` and `CLIENT KILL` about respite's own clients: their
//! filters, and their lines in the upstream's own format (the field names and order
//! of its `CLIENT LIST`, so each Redis or Valkey version gets the lines it writes).

use std::time::Instant;

use bytes::Bytes;

use super::clients::{ClientEntry, ClientState, LastCmd, flag};

/// The filters of `CLIENT KILL` (new form) and `CLIENT LIST`; they all must match.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub ids: Vec<u64>,
    pub kind: Option<Type>,
    pub user: Option<Bytes>,
    pub addr: Option<Bytes>,
    pub laddr: Option<Bytes>,
    /// Skip the calling client (`CLIENT KILL`'s default).
    pub skipme: bool,
    /// Only clients older than this many seconds.
    pub maxage: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Normal,
    Pubsub,
    /// master, replica, slave: never one of respite's clients.
    Replication,
}

/// What parsing the filters found.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Filter(Filter),
    /// The filter at this index has no value (the upstream decides what comes first:
    /// an error in an earlier filter, or a syntax error).
    Dangling(usize),
    /// A filter this proxy does not know.
    Unknown(Bytes),
}

impl Filter {
    /// Parses `args` (after `CLIENT KILL`/`CLIENT LIST`). The upstream has checked the
    /// values already; `ID` takes one id or more (Valkey), the others one value.
    pub fn parse(args: &[Bytes], skipme: bool) -> Parsed {
        let mut f = Filter {
            skipme,
            ..Filter::default()
        };
        let mut i = 0;
        while i < args.len() {
            let Some(value) = args.get(i + 1) else {
                return Parsed::Dangling(i);
            };
            let name = args[i].to_ascii_lowercase();
            match name.as_slice() {
                b"id" => {
                    let before = f.ids.len();
                    f.ids
                        .extend(args[i + 1..].iter().map_while(|a| parse_u64(a)));
                    i += (f.ids.len() - before).max(1) + 1;
                    continue;
                }
                b"type" => f.kind = Some(Type::parse(value)),
                b"user" => f.user = Some(value.clone()),
                b"addr" => f.addr = Some(value.clone()),
                b"laddr" => f.laddr = Some(value.clone()),
                b"skipme" => f.skipme = value.eq_ignore_ascii_case(b"yes"),
                b"maxage" => f.maxage = parse_u64(value),
                _ => return Parsed::Unknown(args[i].clone()),
            }
            i += 2;
        }
        // Looked up once per client: sorted, so a long list costs a binary search.
        f.ids.sort_unstable();
        f.ids.dedup();
        Parsed::Filter(f)
    }

    /// True if client `e` (in state `s`) passes every filter; `me` is the caller.
    pub fn matches(&self, e: &ClientEntry, s: &ClientState, me: u64, now: Instant) -> bool {
        let is = |want: &Option<Bytes>, have: &str| want.as_ref().is_none_or(|w| w == have);
        (self.ids.is_empty() || self.ids.binary_search(&e.id).is_ok())
            && self.kind.is_none_or(|k| k == Type::of(s))
            && is(&self.user, s.user())
            && is(&self.addr, &e.peer.addr)
            && is(&self.laddr, &e.peer.laddr)
            && !(self.skipme && e.id == me)
            && self
                .maxage
                .is_none_or(|max| now.duration_since(e.born).as_secs() > max)
    }
}

impl Type {
    fn parse(value: &[u8]) -> Type {
        match value.to_ascii_lowercase().as_slice() {
            b"normal" => Type::Normal,
            b"pubsub" => Type::Pubsub,
            _ => Type::Replication,
        }
    }

    fn of(s: &ClientState) -> Type {
        if s.is_pubsub() {
            Type::Pubsub
        } else {
            Type::Normal
        }
    }
}

fn parse_u64(a: &[u8]) -> Option<u64> {
    std::str::from_utf8(a).ok()?.parse().ok()
}

/// A field of the upstream's lines: its name, and whether its value was a number
/// (what a field this proxy does not know gets: 0 or nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub numeric: bool,
}

/// The fields of one of the upstream's `CLIENT LIST` lines, in order.
pub fn fields_of(line: &str) -> Vec<Field> {
    line.split(' ')
        .filter_map(|f| f.split_once('='))
        .map(|(name, value)| Field {
            name: name.to_string(),
            numeric: !value.is_empty() && value.parse::<i64>().is_ok(),
        })
        .collect()
}

/// Appends one client's line (with its `\n`) to `out`, as the upstream writes its own.
pub fn line(out: &mut Vec<u8>, fields: &[Field], e: &ClientEntry, s: &ClientState, now: Instant) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(f.name.as_bytes());
        out.push(b'=');
        value(out, f, e, s, now);
    }
    out.push(b'\n');
}

fn value(out: &mut Vec<u8>, f: &Field, e: &ClientEntry, s: &ClientState, now: Instant) {
    let secs = |since: Instant| now.saturating_duration_since(since).as_secs();
    let text = |b: &Option<Bytes>| b.clone().unwrap_or_default();
    let n = match f.name.as_str() {
        "id" => e.id as i64,
        "addr" => return out.extend_from_slice(e.peer.addr.as_bytes()),
        "laddr" => return out.extend_from_slice(e.peer.laddr.as_bytes()),
        "fd" => e.peer.fd,
        "name" => return out.extend_from_slice(&text(&s.name)),
        "age" => secs(e.born) as i64,
        "idle" => secs(s.last_active) as i64,
        "flags" => return flags(out, s.flags),
        "db" => i64::from(s.key.db),
        "sub" => s.subs[0] as i64,
        "psub" => s.subs[1] as i64,
        "ssub" => s.subs[2] as i64,
        "multi" => s.multi,
        "qbuf" => s.qbuf as i64,
        "qbuf-free" => s.qbuf_free as i64,
        "rbs" | "rbp" => (s.qbuf + s.qbuf_free) as i64,
        "obl" => s.obl as i64,
        "oll" => s.oll as i64,
        "omem" => s.omem as i64,
        "tot-mem" => (s.qbuf + s.qbuf_free + s.omem) as i64,
        "events" => return out.extend_from_slice(if s.obl > 0 { b"rw" } else { b"r" }),
        "cmd" => return cmd_name(out, &s.cmd),
        "user" => return out.extend_from_slice(s.user().as_bytes()),
        "redir" => s.redir,
        "resp" => 2 + i64::from(s.key.resp3),
        "lib-name" => return out.extend_from_slice(&text(&s.lib_name)),
        "lib-ver" => return out.extend_from_slice(&text(&s.lib_ver)),
        "tot-net-in" => s.net_in as i64,
        "tot-net-out" => s.net_out as i64,
        "tot-cmds" => s.cmds as i64,
        _ if f.numeric => 0,
        _ => return,
    };
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn flags(out: &mut Vec<u8>, bits: u16) {
    let before = out.len();
    for (bit, c) in flag::LETTERS {
        if bits & bit != 0 {
            out.push(c);
        }
    }
    if out.len() == before {
        out.push(b'N');
    }
}

fn cmd_name(out: &mut Vec<u8>, cmd: &LastCmd) {
    match cmd {
        LastCmd::Known(name) => out.extend_from_slice(name.as_bytes()),
        LastCmd::Other(name) => out.extend(name.iter().map(u8::to_ascii_lowercase)),
    }
}

/// `frame` (CLIENT GETREDIR's integer, or TRACKINGINFO's `redirect` field) with the
/// upstream id Redis redirects to replaced by `id`, respite's id of that client.
pub fn with_redirect(frame: Bytes, id: u64) -> Bytes {
    const FIELD: &[u8] = b"$8\r\nredirect\r\n:";
    let at = match frame.windows(FIELD.len()).position(|w| w == FIELD) {
        Some(i) => i + FIELD.len(),
        None if frame.starts_with(b":") => 1,
        None => return frame,
    };
    let Some(len) = frame[at..].iter().position(|&b| b == b'\r') else {
        return frame;
    };
    // -1 (no tracking) and 0 (tracking without redirection) stay.
    if frame.get(at).is_none_or(|&b| b == b'-' || b == b'0') {
        return frame;
    }
    let mut out = frame[..at].to_vec();
    out.extend_from_slice(id.to_string().as_bytes());
    out.extend_from_slice(&frame[at + len..]);
    Bytes::from(out)
}

/// `CLIENT LIST`/`CLIENT INFO`'s reply: a bulk string, or in RESP3 a verbatim one.
pub fn text_reply(text: &[u8], resp3: bool) -> Bytes {
    let (head, len) = if resp3 {
        ("=", text.len() + 4)
    } else {
        ("$", text.len())
    };
    let mut out = Vec::with_capacity(text.len() + 32);
    out.extend_from_slice(format!("{head}{len}\r\n").as_bytes());
    if resp3 {
        out.extend_from_slice(b"txt:");
    }
    out.extend_from_slice(text);
    out.extend_from_slice(b"\r\n");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<Bytes> {
        s.split(' ').map(|a| Bytes::from(a.to_string())).collect()
    }

    #[test]
    fn filters_parse_as_redis_reads_them() {
        let Parsed::Filter(f) = Filter::parse(&args("ID 3 4 TYPE pubsub SKIPME no"), true) else {
            panic!("not parsed");
        };
        assert_eq!(f.ids, vec![3, 4]);
        assert_eq!(f.kind, Some(Type::Pubsub));
        assert!(!f.skipme);
        let Parsed::Filter(f) = Filter::parse(&args("ID 2 ID 1 TYPE pubsub"), true) else {
            panic!("a second ID filter, then TYPE: not parsed");
        };
        assert_eq!((f.ids, f.kind), (vec![1, 2], Some(Type::Pubsub)));
        assert_eq!(Filter::parse(&args("ID 3 TYPE"), true), Parsed::Dangling(2));
        assert_eq!(Filter::parse(&args("addr"), true), Parsed::Dangling(0));
        assert!(matches!(
            Filter::parse(&args("NAME x"), true),
            Parsed::Unknown(_)
        ));
    }

    #[test]
    fn fields_keep_the_upstream_order() {
        let f = fields_of("id=3 addr=1.2.3.4:5 name= flags=N io-thread=0 new=x");
        let names: Vec<_> = f.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["id", "addr", "name", "flags", "io-thread", "new"]);
        assert!(f[4].numeric && !f[5].numeric && !f[2].numeric);
    }

    #[test]
    fn redirect_ids_are_respites() {
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        assert_eq!(with_redirect(b(":12\r\n"), 7), b(":7\r\n"));
        assert_eq!(with_redirect(b(":-1\r\n"), 7), b(":-1\r\n"));
        let info = b(
            "*6\r\n$5\r\nflags\r\n*1\r\n$2\r\non\r\n$8\r\nredirect\r\n:12\r\n$8\r\nprefixes\r\n*0\r\n",
        );
        let want = b(
            "*6\r\n$5\r\nflags\r\n*1\r\n$2\r\non\r\n$8\r\nredirect\r\n:7\r\n$8\r\nprefixes\r\n*0\r\n",
        );
        assert_eq!(with_redirect(info, 7), want);
    }

    #[test]
    fn verbatim_in_resp3() {
        assert_eq!(&text_reply(b"a\n", true)[..], b"=6\r\ntxt:a\n\r\n");
        assert_eq!(&text_reply(b"a\n", false)[..], b"$2\r\na\n\r\n");
    }
}
