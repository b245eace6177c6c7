//! `INFO memory`, `INFO stats`, `INFO keyspace` and `INFO clients` (one command each:
//! Redis before 7 takes one section at a time, and a refused one does not take the
//! others with it), the figures kept from them ([`Info`]), and what in them deserves a
//! warning ([`warnings`]).

use redis_protocol::resp3::types::BytesFrame;

use super::side::{Side, command, error_text};

const SECTIONS: [&str; 4] = ["memory", "stats", "keyspace", "clients"];

/// What respite reports of Redis's INFO; a field is None when its section was not
/// answered (or the server does not report it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Info {
    pub used_memory: Option<u64>,
    pub maxmemory: Option<u64>,
    pub maxmemory_policy: Option<String>,
    pub evicted_keys: Option<u64>,
    pub expired_keys: Option<u64>,
    pub keyspace_hits: Option<u64>,
    pub keyspace_misses: Option<u64>,
    pub connected_clients: Option<u64>,
    /// Keys per db, by db number (dbs without keys are not listed).
    pub keys: Option<Vec<(u32, u64)>>,
}

impl Info {
    /// The figures of INFO text (any sections, concatenated).
    pub fn parse(text: &str) -> Info {
        let mut info = Info::default();
        for line in text.lines().map(str::trim) {
            if line.eq_ignore_ascii_case("# keyspace") {
                info.keys.get_or_insert_with(Vec::new);
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let number = value.parse::<u64>().ok();
            match name {
                "used_memory" => info.used_memory = number,
                "maxmemory" => info.maxmemory = number,
                "maxmemory_policy" => info.maxmemory_policy = Some(value.to_owned()),
                "evicted_keys" => info.evicted_keys = number,
                "expired_keys" => info.expired_keys = number,
                "keyspace_hits" => info.keyspace_hits = number,
                "keyspace_misses" => info.keyspace_misses = number,
                "connected_clients" => info.connected_clients = number,
                _ => {
                    if let Some(entry) = keyspace_line(name, value) {
                        info.keys.get_or_insert_with(Vec::new).push(entry);
                    }
                }
            }
        }
        info
    }

    /// Keys in every db.
    pub fn total_keys(&self) -> Option<u64> {
        Some(self.keys.as_ref()?.iter().map(|(_, n)| n).sum())
    }
}

/// `db3:keys=10,expires=2,avg_ttl=0` -> (3, 10).
fn keyspace_line(name: &str, value: &str) -> Option<(u32, u64)> {
    let db = name.strip_prefix("db")?.parse().ok()?;
    let keys = value
        .split(',')
        .find_map(|kv| kv.strip_prefix("keys="))?
        .parse()
        .ok()?;
    Some((db, keys))
}

/// One poll: None when no section was answered.
pub(super) async fn poll(side: &Side) -> Option<Info> {
    let commands: Vec<_> = SECTIONS.iter().map(|s| command(&["INFO", s])).collect();
    let replies = side.call(&commands).await?;
    let mut text = String::new();
    let mut answered = false;
    for (section, reply) in SECTIONS.iter().zip(&replies) {
        match reply {
            BytesFrame::BlobString { data, .. } | BytesFrame::VerbatimString { data, .. } => {
                text.push_str(&String::from_utf8_lossy(data));
                text.push('\n');
                answered = true;
            }
            other => {
                let error = error_text(other).unwrap_or_else(|| format!("{other:?}"));
                side.refused(&format!("INFO {section}"), &error);
            }
        }
    }
    answered.then(|| Info::parse(&text))
}

/// What in Redis's memory settings can hurt a cache, one sentence each, with the
/// figures: no maxmemory at all, or a maxmemory policy that evicts keys without a
/// TTL (`allkeys-*`) or makes writes fail (`noeviction`). With a limit, the
/// `volatile-*` policies evict only keys with a TTL (as respite's `ttl` rules give
/// them): no warning.
pub fn warnings(info: &Info) -> Vec<String> {
    let mut out = Vec::new();
    let used = info
        .used_memory
        .map_or_else(|| "unknown".into(), |u| format!("{u} bytes"));
    let Some(max) = info.maxmemory else {
        return out;
    };
    if max == 0 {
        out.push(format!(
            "Redis has no memory limit (maxmemory 0; used_memory {used}): it grows until the machine runs out and the OS kills it; set maxmemory, with a volatile-* maxmemory-policy so that only keys with a TTL are evicted"
        ));
        return out;
    }
    match info.maxmemory_policy.as_deref() {
        Some(p @ ("allkeys-lru" | "allkeys-lfu" | "allkeys-random")) => out.push(format!(
            "Redis's maxmemory-policy {p} evicts any key once used_memory ({used}) reaches maxmemory ({max} bytes), including keys without a TTL that the application expects to persist; volatile-lru, volatile-lfu, volatile-random and volatile-ttl evict only keys with a TTL (such as those respite's namespace `ttl` rules give one)"
        )),
        Some("noeviction") => out.push(format!(
            "Redis's maxmemory-policy noeviction evicts nothing: once used_memory ({used}) reaches maxmemory ({max} bytes) every write fails with an -OOM error the clients see, cache fills included; a volatile-* policy evicts keys with a TTL instead"
        )),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMORY: &str = "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\nmaxmemory:104857600\r\nmaxmemory_human:100.00M\r\nmaxmemory_policy:allkeys-lru\r\n";
    const STATS: &str = "# Stats\r\nexpired_keys:7\r\nevicted_keys:3\r\nkeyspace_hits:100\r\nkeyspace_misses:20\r\n";
    const KEYSPACE: &str = "# Keyspace\r\ndb0:keys=10,expires=2,avg_ttl=0\r\ndb3:keys=5,expires=0,avg_ttl=0,subexpiry=0\r\n";
    const CLIENTS: &str = "# Clients\r\nconnected_clients:4\r\nblocked_clients:0\r\n";

    #[test]
    fn parses_the_four_sections() {
        let info = Info::parse(&[MEMORY, STATS, KEYSPACE, CLIENTS].join("\n"));
        assert_eq!(
            info,
            Info {
                used_memory: Some(1_048_576),
                maxmemory: Some(104_857_600),
                maxmemory_policy: Some("allkeys-lru".into()),
                evicted_keys: Some(3),
                expired_keys: Some(7),
                keyspace_hits: Some(100),
                keyspace_misses: Some(20),
                connected_clients: Some(4),
                keys: Some(vec![(0, 10), (3, 5)]),
            }
        );
        assert_eq!(info.total_keys(), Some(15));
    }

    #[test]
    fn a_missing_section_leaves_its_fields_unknown() {
        let info = Info::parse(&[MEMORY, "# Keyspace\r\n"].join("\n"));
        assert_eq!(info.used_memory, Some(1_048_576));
        assert_eq!(info.evicted_keys, None);
        assert_eq!(info.connected_clients, None);
        assert_eq!(info.keys, Some(vec![]), "an empty keyspace is 0 keys");
        assert_eq!(info.total_keys(), Some(0));
        assert_eq!(Info::parse(STATS).total_keys(), None);
    }

    fn memory(max: u64, policy: &str) -> Info {
        Info {
            used_memory: Some(5000),
            maxmemory: Some(max),
            maxmemory_policy: Some(policy.into()),
            ..Info::default()
        }
    }

    #[test]
    fn warns_of_no_limit_and_of_policies_that_hurt_a_cache() {
        let w = warnings(&memory(0, "noeviction"));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("maxmemory 0") && w[0].contains("5000 bytes"),
            "{w:?}"
        );
        assert!(w[0].contains("OS kills it"), "{w:?}");
        for p in ["allkeys-lru", "allkeys-lfu", "allkeys-random"] {
            let w = warnings(&memory(1000, p));
            assert_eq!(w.len(), 1, "{p}: {w:?}");
            assert!(w[0].contains(p) && w[0].contains("without a TTL"), "{w:?}");
            assert!(w[0].contains("(1000 bytes)") && w[0].contains("5000 bytes"));
        }
        let w = warnings(&memory(1000, "noeviction"));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("-OOM") && w[0].contains("(1000 bytes)"),
            "{w:?}"
        );
        for p in [
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
        ] {
            assert_eq!(warnings(&memory(1000, p)), Vec::<String>::new(), "{p}");
        }
        assert!(warnings(&Info::default()).is_empty(), "nothing known");
    }
}
