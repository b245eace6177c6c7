//! Invalidations the proxy's connection sent before Redis's did.
//!
//! Redis tracks a key for a client when a read-only command (or a script's read)
//! names it, and forgets it once it has sent one invalidation. A rule's extra command
//! (`PEXPIRE key ms NX` after a write under a `ttl` rule, even one Redis refused) can
//! change a key Redis alone would leave as it is: the proxy's side then sends that
//! invalidation early (an extra one, allowed: it costs the client a cache miss) and
//! has none left for the key's next change, where Redis sends it. That one is excused
//! until the client reads the key again; from then on both sides track it.

use std::{
    collections::{BTreeSet, HashSet},
    net::SocketAddr,
};

use crate::support::{
    Client,
    resp::{Frame, decode, show},
};

pub struct Early {
    /// Invalidations (as `compare_pushes` writes them) the proxy sent early.
    sent: BTreeSet<String>,
    /// Read-only commands and subcommands (`object|freq`), from Redis's COMMAND INFO,
    /// read when first needed.
    readonly: Option<HashSet<String>>,
    direct: SocketAddr,
}

/// How `compare_pushes` writes the invalidation of `key`.
pub fn invalidation(key: &[u8]) -> String {
    format!("invalidate {}", show(key))
}

impl Early {
    pub fn new(direct: SocketAddr) -> Early {
        Early {
            sent: BTreeSet::new(),
            readonly: None,
            direct,
        }
    }

    /// The proxy sent `push` (an invalidation) that Redis did not.
    pub fn took(&mut self, push: String) {
        self.sent.insert(push);
    }

    /// Redis sent `push` and the proxy did not: fine if the proxy sent it early.
    pub fn excuses(&mut self, push: &str) -> bool {
        self.sent.remove(push)
    }

    /// After a command: the keys a read names are tracked again on both sides.
    pub fn after(&mut self, args: &[Vec<u8>]) {
        if self.sent.is_empty() || !args.iter().any(|a| self.sent.contains(&invalidation(a))) {
            return;
        }
        if self.reads(args) {
            for a in args {
                self.sent.remove(&invalidation(a));
            }
        }
    }

    /// A new connection tracks nothing.
    pub fn clear(&mut self) {
        self.sent.clear();
    }

    /// Whether `args` is a read-only command (EVAL_RO and FCALL_RO included). A
    /// script that may write is not taken for a read even when it reads its keys:
    /// that leaves an excuse in place where Redis would track the key again (a laxer
    /// check, never a false failure).
    fn reads(&mut self, args: &[Vec<u8>]) -> bool {
        let lower = |a: Option<&Vec<u8>>| {
            String::from_utf8_lossy(a.map_or(&[][..], Vec::as_slice)).to_ascii_lowercase()
        };
        let name = lower(args.first());
        let readonly = self
            .readonly
            .get_or_insert_with(|| readonly_commands(self.direct));
        let sub = format!("{name}|{}", lower(args.get(1)));
        readonly.contains(&name) || readonly.contains(&sub)
    }
}

fn readonly_commands(direct: SocketAddr) -> HashSet<String> {
    let mut client = Client::connect(direct);
    let info = decode(&client.call(&["COMMAND", "INFO"]));
    let mut names = HashSet::new();
    for entry in info.children() {
        add_readonly(entry, &mut names);
        if let Some(subs) = entry.children().get(9) {
            subs.children()
                .iter()
                .for_each(|s| add_readonly(s, &mut names));
        }
    }
    assert!(names.contains("get"), "COMMAND INFO without GET");
    names
}

fn add_readonly(entry: &Frame, names: &mut HashSet<String>) {
    let fields = entry.children();
    let (Some(name), Some(flags)) = (fields.first().and_then(Frame::text), fields.get(2)) else {
        return;
    };
    if flags
        .children()
        .iter()
        .any(|f| f.text() == Some(b"readonly"))
    {
        names.insert(String::from_utf8_lossy(name).to_ascii_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::RedisServer;

    fn args(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn an_early_invalidation_excuses_one_later_until_the_key_is_read() {
        let redis = RedisServer::start();
        let mut early = Early::new(redis.addr());
        let push = invalidation(b"z:k");
        assert!(!early.excuses(&push), "nothing was sent early");
        early.took(push.clone());
        early.after(&args(&["DEL", "z:k"]));
        early.after(&args(&["GET", "z:other"]));
        assert!(early.excuses(&push), "writes and other keys leave it");
        assert!(!early.excuses(&push), "one invalidation excuses one");
        early.took(push.clone());
        early.after(&args(&["OBJECT", "FREQ", "z:k"]));
        assert!(
            !early.excuses(&push),
            "a read subcommand tracks the key again"
        );
        early.took(push.clone());
        early.after(&args(&[
            "EVAL",
            "redis.call('SET', KEYS[1], 1)",
            "1",
            "z:k",
        ]));
        assert!(early.excuses(&push), "a script that may write is no read");
        early.took(push.clone());
        early.after(&args(&["EVAL_RO", "return 1", "1", "z:k"]));
        assert!(
            !early.excuses(&push),
            "a read-only script's keys are tracked again"
        );
    }
}
