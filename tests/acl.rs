//! L1 is per ACL user, and a hit never gives a user what Redis would refuse it now:
//! after `ACL SETUSER`, `ACL DELUSER` or `ACL LOAD` (through this respite, inside
//! MULTI, or directly on Redis), a user's next read gets what a connection of that
//! user gets from Redis directly, byte for byte; the users the change left alone
//! keep their hits. A fill read before the change is not stored after it, and a
//! re-AUTH that Redis refuses is never an outage `stale_if_error` covers.
//!
//! Redis runs with an ACL file (`ACL LOAD` needs one): `alice` and `bob` may read
//! `doc:*`; the URL's user is `default`.

mod support;

use std::{path::PathBuf, thread, time::Duration};

use support::{
    Client, FaultProxy, Proxy, RedisServer,
    l1::{bulk, calls, wait_tracking},
    show, wait_until,
};

const USERS: &str = "user default on nopass ~* &* +@all
user alice on >alicepw ~doc:* &* +@all
user bob on >bobpw ~doc:* &* +@all
";
/// The ACL check's interval in the tests that change the ACL directly on Redis.
const CHECK: Duration = Duration::from_millis(200);
/// A change must be seen within this (a few ACL check intervals; Redis closing a
/// user's connections and the proxy's reconnecting take less).
const SEEN_WITHIN: Duration = Duration::from_secs(2);
const READY: Duration = Duration::from_secs(5);

/// Redis with the ACL file and `doc:1`, `doc:2` written, and respite in front of it
/// caching `doc:*` (with `extra` TOML merged over that).
struct Setup {
    /// Holds the ACL file.
    _dir: tempfile::TempDir,
    acl_file: PathBuf,
    redis: RedisServer,
}

impl Setup {
    fn start() -> Setup {
        let dir = tempfile::tempdir().expect("acl dir");
        let acl_file = dir.path().join("users.acl");
        std::fs::write(&acl_file, USERS).expect("write acl file");
        let redis = RedisServer::start_with(&["--aclfile", acl_file.to_str().unwrap()]);
        let mut d = redis.client();
        for line in ["SET doc:1 v", "SET doc:2 w"] {
            d.assert_cmd(line, b"+OK\r\n");
        }
        Setup {
            _dir: dir,
            acl_file,
            redis,
        }
    }

    /// A direct connection to Redis as `user` (None: as the default user).
    fn direct(&self, user: Option<&str>) -> Client {
        let mut c = self.redis.client();
        if let Some(user) = user {
            c.assert_cmd(&format!("AUTH {user} {user}pw"), b"+OK\r\n");
        }
        c
    }
}

/// The configuration: `doc:*` cached for a minute, the ACL check every `check`.
fn config(check: &str, extra: &str) -> String {
    format!(
        r#"
[l1]
acl_check = "{check}"
{extra}

[[namespace]]
name = "doc"
match = "doc:*"
l1 = true
l1_ttl = "1m"
"#
    )
}

/// A client through `proxy` authenticated as `user`.
fn as_user(proxy: &Proxy, user: &str) -> Client {
    let mut c = proxy.client();
    c.assert_cmd(&format!("AUTH {user} {user}pw"), b"+OK\r\n");
    c
}

/// Asserts `line` through `c` replies `expected` without reaching Redis (`d`: direct).
fn assert_hit(c: &mut Client, d: &mut Client, line: &str, expected: &[u8]) {
    let before = calls(d, "get");
    c.assert_cmd(line, expected);
    assert_eq!(calls(d, "get"), before, "{line} should be an L1 hit");
}

/// Reads `line` (the fill), then asserts the next read of it is a hit.
fn prime(c: &mut Client, d: &mut Client, line: &str, expected: &[u8]) {
    c.assert_cmd(line, expected);
    assert_hit(c, d, line, expected);
}

/// Polls `line` through `c` until it replies `expected` (within `within`), asserting
/// no reply on the way is `never` (the cached value, when the change is known).
fn until_refused(c: &mut Client, line: &str, expected: &[u8], never: Option<&[u8]>) {
    let mut last = Vec::new();
    let seen = wait_until(SEEN_WITHIN, || {
        last = c.cmd(line);
        if let Some(cached) = never {
            assert_ne!(
                last, cached,
                "{line} served the cached value after the change"
            );
        }
        last == expected
    });
    assert!(
        seen,
        "{line} after the ACL change: {}, Redis gives {}",
        show(&last),
        show(expected)
    );
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Change {
    /// `ACL SETUSER alice resetkeys ~other:*`.
    SetUser,
    DelUser,
    /// The file's alice gets `~other:*`, then `ACL LOAD`.
    Load,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Via {
    /// An admin client through this respite (the ACL check off: the change itself
    /// must drop the entries).
    Respite,
    /// The same inside MULTI / EXEC.
    Multi,
    /// A connection straight to Redis: the ACL check must see it.
    Direct,
}

/// Alice and Bob read `doc:1` (cached); `change` is made `via`; Alice's next read
/// gets what Redis gives a connection of hers, and Bob's, when the change was not
/// all users', is still a hit.
fn scenario(change: Change, via: Via) {
    let setup = Setup::start();
    let check = if via == Via::Direct {
        format!("{}ms", CHECK.as_millis())
    } else {
        "off".into()
    };
    let proxy = Proxy::start(&setup.redis.url(), &config(&check, ""));
    let mut d = setup.direct(None);
    let mut admin = proxy.client();
    wait_tracking(&mut admin, "up", READY);
    if via == Via::Direct {
        // The first ACL LIST only records: the change must come after it.
        assert!(wait_until(READY, || calls(&mut d, "acl|list") > 0));
    }
    let (mut alice, mut bob) = (as_user(&proxy, "alice"), as_user(&proxy, "bob"));
    prime(&mut alice, &mut d, "GET doc:1", &bulk("v"));
    prime(&mut bob, &mut d, "GET doc:1", &bulk("v"));

    let command = match change {
        Change::SetUser => "ACL SETUSER alice resetkeys ~other:*",
        Change::DelUser => "ACL DELUSER alice",
        Change::Load => {
            let users = USERS.replace("alice on >alicepw ~doc:*", "alice on >alicepw ~other:*");
            std::fs::write(&setup.acl_file, users).unwrap();
            "ACL LOAD"
        }
    };
    let ok: &[u8] = if change == Change::DelUser {
        b":1\r\n"
    } else {
        b"+OK\r\n"
    };
    match via {
        Via::Respite => admin.assert_cmd(command, ok),
        Via::Direct => setup.direct(None).assert_cmd(command, ok),
        Via::Multi => {
            admin.assert_cmd("MULTI", b"+OK\r\n");
            admin.assert_cmd(command, b"+QUEUED\r\n");
            let exec = admin.cmd("EXEC");
            assert_eq!(exec, [b"*1\r\n", ok].concat(), "{}", show(&exec));
        }
    }

    // What Redis gives Alice now: a connection of hers reading doc:1, or, once she is
    // deleted, her AUTH.
    let expected = if change == Change::DelUser {
        setup.redis.client().cmd("AUTH alice alicepw")
    } else {
        setup.direct(Some("alice")).cmd("GET doc:1")
    };
    assert!(expected.starts_with(b"-"), "{}", show(&expected));
    if change == Change::SetUser && via != Via::Direct {
        // Nothing to wait for: Alice's connections stay, her next read is refused.
        alice.assert_cmd("GET doc:1", &expected);
    } else {
        // Redis closes a deleted or reloaded user's connections: the proxy's come back
        // (or are refused) a moment later. A change made directly is seen by the next
        // ACL check.
        let cached = bulk("v");
        let never = (via != Via::Direct).then_some(&cached[..]);
        until_refused(&mut alice, "GET doc:1", &expected, never);
        alice.assert_cmd("GET doc:1", &expected);
    }
    let everyone = change == Change::Load && via != Via::Direct;
    if !everyone {
        assert_hit(&mut bob, &mut d, "GET doc:1", &bulk("v"));
    }
}

#[test]
fn setuser_through_respite_applies_at_once() {
    scenario(Change::SetUser, Via::Respite);
}

#[test]
fn setuser_inside_multi_applies_at_exec() {
    scenario(Change::SetUser, Via::Multi);
}

#[test]
fn setuser_directly_on_redis_is_seen_by_the_acl_check() {
    scenario(Change::SetUser, Via::Direct);
}

#[test]
fn deluser_through_respite() {
    scenario(Change::DelUser, Via::Respite);
}

#[test]
fn deluser_directly_on_redis() {
    scenario(Change::DelUser, Via::Direct);
}

#[test]
fn acl_load_through_respite_drops_every_user() {
    scenario(Change::Load, Via::Respite);
}

#[test]
fn acl_load_directly_drops_the_changed_user_only() {
    scenario(Change::Load, Via::Direct);
}

/// Alice's read is in flight (replies held back on the way) when an admin changes her
/// ACL through respite: the value Redis read before the change reaches her, but is
/// not stored, so her next read is refused.
#[test]
fn a_fill_in_flight_when_the_acl_changes_is_not_stored() {
    let setup = Setup::start();
    let fault = FaultProxy::start(setup.redis.addr());
    // ttl-only: no tracking connection (whose PINGs the delay would fail).
    let toml = config("off", "coherence = \"ttl-only\"");
    let proxy = Proxy::start(&fault.url(), &toml);
    let mut admin = proxy.client();
    let mut alice = as_user(&proxy, "alice");
    admin.assert_cmd("PING", b"+PONG\r\n"); // the admin's pool is connected
    let mut d = setup.direct(None);
    let gets = calls(&mut d, "get");

    fault.delay(Duration::from_millis(300));
    alice.send(&["GET", "doc:2"]);
    // Redis has read it; its reply takes another 300 ms to reach the proxy.
    assert!(wait_until(Duration::from_secs(2), || calls(&mut d, "get") > gets));
    admin.assert_cmd("ACL SETUSER alice resetkeys ~other:*", b"+OK\r\n");
    alice.assert_reply(&bulk("w")); // read by Redis before the change
    fault.delay(Duration::ZERO);

    let expected = setup.direct(Some("alice")).cmd("GET doc:2");
    assert!(expected.starts_with(b"-NOPERM"), "{}", show(&expected));
    alice.assert_cmd("GET doc:2", &expected);
}

/// Alice's password changes and her connections are killed, directly on Redis (the
/// ACL check off): the proxy's re-AUTH as her is refused. That is Redis's answer, not
/// an outage: her expired entry is not served under `stale_if_error`, she gets what a
/// connection of hers with the old password gets.
#[test]
fn a_refused_reauth_is_not_an_outage() {
    let setup = Setup::start();
    let toml = r#"
[l1]
acl_check = "off"

[[namespace]]
name = "doc"
match = "doc:*"
l1 = true
l1_ttl = "200ms"
stale_if_error = "1m"
"#;
    let proxy = Proxy::start(&setup.redis.url(), toml);
    let mut d = setup.direct(None);
    wait_tracking(&mut proxy.client(), "up", READY);
    let mut alice = as_user(&proxy, "alice");
    alice.assert_cmd("GET doc:1", &bulk("v"));
    thread::sleep(Duration::from_millis(400)); // past l1_ttl: the entry is stale

    d.assert_cmd("ACL SETUSER alice resetpass >newpw", b"+OK\r\n");
    let killed = d.cmd("CLIENT KILL USER alice");
    assert!(killed.starts_with(b":"), "{}", show(&killed));
    let refused = setup.redis.client().cmd("AUTH alice alicepw");
    assert!(refused.starts_with(b"-WRONGPASS"), "{}", show(&refused));
    // A key of no namespace goes to Redis: once it gets the refusal, the proxy has
    // tried to connect as Alice again.
    let mut last = Vec::new();
    let reauth = wait_until(Duration::from_secs(5), || {
        last = alice.cmd("GET other");
        last == refused
    });
    assert!(reauth, "GET other after the kill: {}", show(&last));
    alice.assert_cmd("GET doc:1", &refused);
}

/// The URL's user (here `default`) is a user like the others: a change of its rules
/// made directly on Redis drops what the proxy's own connections cached, and leaves
/// Alice's entries alone.
#[test]
fn the_urls_user_is_a_user_too() {
    let setup = Setup::start();
    let proxy = Proxy::start(&setup.redis.url(), &config("200ms", ""));
    let mut d = setup.direct(None);
    let mut plain = proxy.client();
    wait_tracking(&mut plain, "up", READY);
    assert!(wait_until(READY, || calls(&mut d, "acl|list") > 0));
    let mut alice = as_user(&proxy, "alice");
    prime(&mut plain, &mut d, "GET doc:1", &bulk("v"));
    prime(&mut alice, &mut d, "GET doc:1", &bulk("v"));

    d.assert_cmd("ACL SETUSER default resetkeys ~other:*", b"+OK\r\n");
    let expected = d.cmd("GET doc:1");
    assert!(expected.starts_with(b"-NOPERM"), "{}", show(&expected));
    until_refused(&mut plain, "GET doc:1", &expected, None);
    assert_hit(&mut alice, &mut d, "GET doc:1", &bulk("v"));
}

/// `rejected_calls` of `cmdstat_<command>` in Redis's `INFO commandstats`.
fn rejected_calls(direct: &mut Client, command: &str) -> u64 {
    let reply = String::from_utf8_lossy(&direct.call(&["INFO", "commandstats"])).into_owned();
    let prefix = format!("cmdstat_{command}:");
    reply
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| {
            rest.split(',')
                .find_map(|f| f.strip_prefix("rejected_calls="))
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A URL user that may not run `ACL LIST`: one warning, however many checks Redis
/// refuses, and the proxy serves on.
#[test]
fn a_url_user_without_acl_list_is_warned_about_once() {
    let setup = Setup::start();
    let mut d = setup.direct(None);
    d.assert_cmd(
        "ACL SETUSER app on >apppw ~* &* +@all -acl|list",
        b"+OK\r\n",
    );
    let port = support::redis::free_port();
    let url = format!("redis://app:apppw@127.0.0.1:{}", setup.redis.port());
    let binary = support::binary::Binary::start(&format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[upstream]\nurl = \"{url}\"\n\n\
         [l1]\nacl_check = \"100ms\"\n\n[log]\nlevel = \"warn\"\nformat = \"json\"\n"
    ));
    let warned = |lines: &[String]| {
        let text = "Redis refused ACL LIST";
        lines.iter().filter(|l| l.contains(text)).count()
    };
    assert!(wait_until(READY, || warned(&binary.lines()) > 0));
    let since = rejected_calls(&mut d, "acl|list");
    assert!(wait_until(READY, || rejected_calls(&mut d, "acl|list") >= since + 5));
    let mut c = Client::connect(([127, 0, 0, 1], port).into());
    c.assert_cmd("GET doc:1", &bulk("v"));
    let lines = binary.stop();
    assert_eq!(warned(&lines), 1, "{lines:#?}");
    let line = lines.iter().find(|l| l.contains("ACL LIST")).unwrap();
    assert!(
        line.contains("NOPERM") && line.contains("acl_check"),
        "{line}"
    );
}
