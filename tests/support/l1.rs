//! Watching the L1 cache from outside: `RESPITE STATS` through the proxy, Redis's own
//! command counters (what really reached Redis), and the proxy's `respite-tracking`
//! connection as Redis lists it.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use super::{
    client::Client,
    resp::{self, show},
    wait_until,
};

/// The name the proxy gives its invalidation connection (`CLIENT LIST`).
pub const TRACKING_NAME: &str = "respite-tracking";

/// `RESPITE STATS` as field -> value text; the reply must be a flat array (RESP2) or
/// a map (RESP3) of pairs.
pub fn stats(c: &mut Client) -> HashMap<String, String> {
    let reply = c.cmd("RESPITE STATS");
    let frame = resp::decode(&reply);
    let pairs = frame.children();
    assert!(
        matches!(reply.first(), Some(b'*' | b'%')) && pairs.len() % 2 == 0 && !pairs.is_empty(),
        "RESPITE STATS is not field/value pairs: {}",
        show(&reply)
    );
    pairs
        .chunks(2)
        .map(|p| (text(&p[0]), text(&p[1])))
        .collect()
}

fn text(f: &resp::Frame) -> String {
    String::from_utf8_lossy(f.text().unwrap_or_default()).into_owned()
}

/// One field of `RESPITE STATS`.
pub fn stat(c: &mut Client, field: &str) -> String {
    let all = stats(c);
    match all.get(field) {
        Some(v) => v.clone(),
        None => panic!("RESPITE STATS has no `{field}`: {all:?}"),
    }
}

/// An integer field of `RESPITE STATS`.
pub fn stat_int(c: &mut Client, field: &str) -> i64 {
    let v = stat(c, field);
    v.parse()
        .unwrap_or_else(|_| panic!("RESPITE STATS `{field}` is not an integer: {v:?}"))
}

/// Polls `RESPITE STATS` until `tracking` reads `state`.
pub fn wait_tracking(c: &mut Client, state: &str, within: Duration) {
    let mut last = String::new();
    let ok = wait_until(within, || {
        last = stat(c, "tracking");
        last == state
    });
    assert!(
        ok,
        "RESPITE STATS tracking is {last:?}, not {state:?}, after {within:?}"
    );
}

/// `calls` of `cmdstat_<command>` in Redis's `INFO commandstats` (0 when absent):
/// how many times that command ran in Redis, whoever sent it.
pub fn calls(direct: &mut Client, command: &str) -> u64 {
    let reply = direct.call(&["INFO", "commandstats"]);
    let text = String::from_utf8_lossy(&reply).into_owned();
    let prefix = format!("cmdstat_{}:calls=", command.to_ascii_lowercase());
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|rest| {
            rest.split(',')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("bad commandstats line for {command}: {rest}"))
        })
        .unwrap_or(0)
}

/// The sum of `calls` over several commands.
pub fn calls_of(direct: &mut Client, commands: &[&str]) -> u64 {
    commands.iter().map(|c| calls(direct, c)).sum()
}

/// Ids of the connections named `respite-tracking`, from `CLIENT LIST`.
pub fn tracking_ids(direct: &mut Client) -> Vec<u64> {
    let reply = direct.call(&["CLIENT", "LIST"]);
    let frame = resp::decode(&reply);
    let text = String::from_utf8_lossy(frame.text().unwrap_or_default()).into_owned();
    let name = format!("name={TRACKING_NAME}");
    text.lines()
        .filter(|l| l.split(' ').any(|f| f == name))
        .filter_map(|l| {
            l.split(' ')
                .find_map(|f| f.strip_prefix("id="))
                .and_then(|id| id.parse().ok())
        })
        .collect()
}

/// Polls until exactly one `respite-tracking` connection other than `old` exists;
/// returns its id.
pub fn wait_new_tracking_connection(
    direct: &mut Client,
    old: Option<u64>,
    within: Duration,
) -> u64 {
    let started = Instant::now();
    let mut ids = Vec::new();
    let ok = wait_until(within, || {
        ids = tracking_ids(direct);
        ids.len() == 1 && Some(ids[0]) != old
    });
    assert!(
        ok,
        "no new {TRACKING_NAME} connection within {within:?} (old {old:?}, now {ids:?})"
    );
    eprintln!(
        "{TRACKING_NAME} connection {} after {:?}",
        ids[0],
        started.elapsed()
    );
    ids[0]
}

/// The RESP2 encoding of a bulk string.
pub fn bulk(v: &str) -> Vec<u8> {
    format!("${}\r\n{v}\r\n", v.len()).into_bytes()
}
