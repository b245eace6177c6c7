//! `RESPITE <subcommand>`: the proxy's own commands, answered without Redis.

use std::sync::atomic::Ordering::Relaxed;

use bytes::{Bytes, BytesMut};

use super::Session;
use crate::protocol::{reply, request::Request};

impl Session {
    /// Answers a `RESPITE …` command.
    pub(super) fn admin(&mut self, req: &Request) -> Bytes {
        let sub = req.args.get(1).map(|s| s.to_ascii_uppercase());
        match sub.as_deref() {
            Some(b"STATS") if req.args.len() == 2 => self.stats(),
            Some(b"FLUSHL1") if req.args.len() == 2 => {
                if let Some(l1) = &self.shared.l1 {
                    l1.flush_all();
                }
                Bytes::from_static(reply::OK)
            }
            Some(b"HELP") => help(self.key.resp3),
            Some(_) => reply::error(&format!(
                "unknown subcommand or wrong number of arguments for 'respite|{}'. Try RESPITE HELP.",
                String::from_utf8_lossy(&req.args[1]).to_lowercase()
            )),
            None => reply::error("wrong number of arguments for 'respite' command"),
        }
    }

    fn stats(&self) -> Bytes {
        let compression = compression_fields(&self.shared.compression);
        let mut fields: Vec<(&str, String)> = Vec::new();
        let upstream = if self.shared.upstream.is_up() {
            "up"
        } else {
            "down"
        };
        fields.push(("upstream", upstream.into()));
        let tracking = match (&self.shared.l1, &self.shared.tracking) {
            (None, _) | (_, None) => "off",
            (_, Some(t)) if t.is_up() => "up",
            _ => "down",
        };
        fields.push(("tracking", tracking.into()));
        if let Some(l1) = &self.shared.l1 {
            let s = &l1.stats;
            fields.extend([
                ("l1_entries", l1.entries().to_string()),
                ("l1_bytes", l1.bytes().to_string()),
                ("l1_max_bytes", l1.max_bytes().to_string()),
                ("l1_hits", s.hits.load(Relaxed).to_string()),
                ("l1_misses", s.misses.load(Relaxed).to_string()),
                ("l1_coalesced", s.coalesced.load(Relaxed).to_string()),
                ("l1_stale", s.stale.load(Relaxed).to_string()),
                (
                    "l1_fills_dropped",
                    s.fills_dropped.load(Relaxed).to_string(),
                ),
            ]);
        }
        fields.extend(compression.iter().map(|(k, v)| (k.as_str(), v.clone())));
        pairs(&fields, self.key.resp3)
    }
}

/// `compress_<namespace>_bytes_in` / `_bytes_out` for each namespace that compressed.
fn compression_fields(registry: &crate::compress::Registry) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    for (ns, bytes_in, bytes_out) in registry.snapshot() {
        fields.push((format!("compress_{ns}_bytes_in"), bytes_in.to_string()));
        fields.push((format!("compress_{ns}_bytes_out"), bytes_out.to_string()));
    }
    fields
}

/// Field/value pairs: a map in RESP3, a flat array in RESP2.
fn pairs(fields: &[(&str, String)], resp3: bool) -> Bytes {
    let mut out = BytesMut::new();
    let header = if resp3 {
        format!("%{}\r\n", fields.len())
    } else {
        format!("*{}\r\n", fields.len() * 2)
    };
    out.extend_from_slice(header.as_bytes());
    for (k, v) in fields {
        out.extend_from_slice(&reply::bulk(k.as_bytes()));
        out.extend_from_slice(&reply::bulk(v.as_bytes()));
    }
    out.freeze()
}

fn help(_resp3: bool) -> Bytes {
    let lines = [
        "RESPITE <subcommand>. Subcommands are:",
        "STATS",
        "    L1 and upstream counters, as field/value pairs.",
        "FLUSHL1",
        "    Empty this proxy's L1 cache (Redis is not touched).",
        "HELP",
        "    Print this help.",
    ];
    let mut out = BytesMut::new();
    out.extend_from_slice(format!("*{}\r\n", lines.len()).as_bytes());
    for l in lines {
        out.extend_from_slice(&reply::simple(l));
    }
    out.freeze()
}
