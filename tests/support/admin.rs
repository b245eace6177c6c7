//! Helpers for the admin-command tests: bulk data loaded fast, whole key sets read
//! back with pipelined MGETs, and waits on `RESPITE STATS` fields.

use std::time::Duration;

use super::{
    client::Client,
    l1::{stat, stats},
    resp::{self, Frame, show},
    wait_until,
};

/// `DEBUG POPULATE n prefix`: keys `prefix:0`…`prefix:{n-1}` with values `value:N`.
pub fn populate(direct: &mut Client, n: usize, prefix: &str) {
    let reply = direct.call(&["DEBUG", "POPULATE", &n.to_string(), prefix]);
    assert_eq!(reply, b"+OK\r\n", "DEBUG POPULATE: {}", show(&reply));
}

/// The keys `DEBUG POPULATE` made for `prefix`, `range` of them.
pub fn keys(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}:{i}")).collect()
}

/// MGETs `keys` (pipelined, 500 a command) and returns each value (None: nil).
pub fn mget_all(c: &mut Client, keys: &[String]) -> Vec<Option<Vec<u8>>> {
    let chunks: Vec<&[String]> = keys.chunks(500).collect();
    for chunk in &chunks {
        let mut args = vec!["MGET"];
        args.extend(chunk.iter().map(String::as_str));
        c.send(&args);
    }
    let mut values = Vec::with_capacity(keys.len());
    for _ in &chunks {
        let reply = c.read_reply();
        let frame = resp::decode(&reply);
        assert!(
            matches!(frame, Frame::Agg(b'*', Some(_))),
            "MGET replied {}",
            show(&reply)
        );
        values.extend(
            frame
                .children()
                .iter()
                .map(|f| f.text().map(<[u8]>::to_vec)),
        );
    }
    values
}

/// Asserts `values` (of `keys` made by DEBUG POPULATE) are their original values.
pub fn assert_populated(keys: &[String], values: &[Option<Vec<u8>>]) {
    for (k, v) in keys.iter().zip(values) {
        let n = k.rsplit(':').next().unwrap();
        let expected = format!("value:{n}");
        assert_eq!(
            v.as_deref(),
            Some(expected.as_bytes()),
            "{k}: got {:?}",
            v.as_ref().map(|v| String::from_utf8_lossy(v).into_owned())
        );
    }
}

/// Polls `RESPITE STATS` until `field` reads `value`.
pub fn wait_stat(c: &mut Client, field: &str, value: &str, within: Duration) {
    let mut last = String::new();
    let ok = wait_until(within, || {
        last = stat(c, field);
        last == value
    });
    assert!(
        ok,
        "RESPITE STATS {field} is {last:?}, not {value:?}, after {within:?}: {:?}",
        stats(c)
    );
}

/// Every key `SCAN … MATCH pattern` finds, straight from Redis.
pub fn scan_all(direct: &mut Client, pattern: &str) -> Vec<String> {
    let mut cursor = "0".to_owned();
    let mut found = Vec::new();
    loop {
        let reply = direct.call(&["SCAN", &cursor, "MATCH", pattern, "COUNT", "1000"]);
        let frame = resp::decode(&reply);
        let parts = frame.children();
        cursor = String::from_utf8_lossy(parts[0].text().unwrap()).into_owned();
        found.extend(
            parts[1]
                .children()
                .iter()
                .map(|k| String::from_utf8_lossy(k.text().unwrap()).into_owned()),
        );
        if cursor == "0" {
            return found;
        }
    }
}

/// DBSIZE of the current db.
pub fn dbsize(direct: &mut Client) -> i64 {
    let reply = direct.call(&["DBSIZE"]);
    String::from_utf8_lossy(&reply[1..reply.len() - 2])
        .parse()
        .unwrap_or_else(|_| panic!("DBSIZE replied {}", show(&reply)))
}
