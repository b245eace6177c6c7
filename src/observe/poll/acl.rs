//! The ACL check: every `[l1] acl_check`, `ACL LIST` on the poll's connection,
//! compared per user with the last answer. A user whose rule line changed or vanished
//! may now be refused what L1 holds for it: its entries go (`L1::drop_users`). The
//! first answer only records.
//!
//! Polling, because Redis tells nobody about ACL changes made on it directly (or
//! through another respite): no tracking message, no keyspace event, and `ACL LOG`
//! records refusals, not changes. A change is seen within one interval; one through
//! this respite is applied at once (`session/cache.rs`). A URL user that may not run
//! `ACL LIST` gets one warning, and only changes through this respite (and refused
//! re-AUTHs) drop entries.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    time::Duration,
};

use redis_protocol::resp3::types::BytesFrame;
use tracing::warn;

use super::side::{Side, command, error_text};
use crate::l1::L1;

/// Each user's rule line, hashed (keys chosen at random per process, so nobody can
/// pick a change whose line hashes the same).
#[derive(Default)]
pub(super) struct Digest {
    hasher: RandomState,
    users: Option<HashMap<String, u64>>,
}

impl Digest {
    /// Takes a new `ACL LIST` answer; returns the users whose line changed or
    /// vanished since the last one (none the first time).
    pub(super) fn update<'a>(&mut self, lines: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let now: HashMap<String, u64> = lines
            .into_iter()
            .filter_map(|line| {
                let user = line.strip_prefix("user ")?.split(' ').next()?;
                Some((user.to_owned(), self.hasher.hash_one(line)))
            })
            .collect();
        let Some(before) = self.users.replace(now) else {
            return Vec::new();
        };
        let now = self.users.as_ref().expect("just set");
        before
            .into_iter()
            .filter(|(user, line)| now.get(user) != Some(line))
            .map(|(user, _)| user)
            .collect()
    }
}

/// Runs the check every `every` (none when zero).
pub(super) async fn run(side: &Side, l1: &L1, every: Duration) {
    if every.is_zero() {
        return;
    }
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut digest = Digest::default();
    let mut warned = false;
    loop {
        tick.tick().await;
        let Some(replies) = side.call(&[command(&["ACL", "LIST"])]).await else {
            continue; // unreachable: compared with the last answer when it is back
        };
        match replies.into_iter().next() {
            Some(BytesFrame::Array { data, .. }) => {
                let lines: Vec<String> = data.iter().filter_map(text).collect();
                let changed = digest.update(lines.iter().map(String::as_str));
                l1.drop_users(changed.iter().map(String::as_str));
            }
            Some(refused) if !warned => {
                warned = true;
                warn!(
                    error = error_text(&refused).unwrap_or_default(),
                    "Redis refused ACL LIST to the upstream URL's user: an ACL change made directly on Redis or through another respite reaches L1 only when the user's connections are refused or its entries expire (l1_ttl); allow +acl|list, or set [l1] acl_check = \"off\""
                );
            }
            _ => {}
        }
    }
}

fn text(frame: &BytesFrame) -> Option<String> {
    match frame {
        BytesFrame::BlobString { data, .. } | BytesFrame::SimpleString { data, .. } => {
            Some(String::from_utf8_lossy(data).into_owned())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_and_vanished_users_after_the_first_answer() {
        let mut d = Digest::default();
        let first = [
            "user a on #1 ~doc:* +@all",
            "user b on #1 ~doc:* +@all",
            "user c on nopass ~* +@all",
        ];
        assert!(d.update(first).is_empty(), "the first answer only records");
        assert!(d.update(first).is_empty());
        let mut changed = d.update([
            "user a on #1 ~other:* +@all",
            "user b on #1 ~doc:* +@all",
            "user new on #2 ~* +@all",
        ]);
        changed.sort();
        assert_eq!(changed, ["a", "c"]);
    }
}
