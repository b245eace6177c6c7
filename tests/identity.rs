//! Clients see themselves: `CLIENT LIST`, `INFO`, `KILL`, `ID`, `SETINFO`, `UNBLOCK`
//! and `TRACKING … REDIRECT` through respite answer about respite's own clients, as
//! Redis answers about its clients. Each scenario runs twice, against a Redis of its
//! own (no proxy in front of it, so its clients are exactly the test's) and through
//! respite, and the two must agree.

mod support;

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use support::{Client, RedisServer, Stack, show};

/// Where a scenario's clients connect.
enum Side {
    Direct(RedisServer),
    Proxy(Stack),
}

impl Side {
    fn both() -> [Side; 2] {
        support::init_tracing();
        [
            Side::Direct(RedisServer::start()),
            Side::Proxy(Stack::start()),
        ]
    }

    fn name(&self) -> &'static str {
        match self {
            Side::Direct(_) => "redis",
            Side::Proxy(_) => "respite",
        }
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Side::Direct(r) => r.addr(),
            Side::Proxy(s) => s.proxy.addr(),
        }
    }

    fn client(&self) -> Client {
        Client::connect(self.addr())
    }

    /// A client straight to the Redis (the proxy's upstream on the proxy side).
    fn redis(&self) -> Client {
        match self {
            Side::Direct(r) => r.client(),
            Side::Proxy(s) => s.direct(),
        }
    }
}

fn id_of(c: &mut Client) -> u64 {
    let reply = c.cmd("CLIENT ID");
    let text = String::from_utf8_lossy(&reply);
    text.trim_start_matches(':')
        .trim()
        .parse()
        .unwrap_or_else(|_| {
            panic!("CLIENT ID: {}", show(&reply));
        })
}

/// The text of a bulk or verbatim string reply.
fn text_of(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply);
    let body = text.split_once("\r\n").map_or("", |(_, b)| b);
    let body = body.strip_suffix("\r\n").unwrap_or(body);
    body.strip_prefix("txt:").unwrap_or(body).to_string()
}

type Line = Vec<(String, String)>;

fn parse_line(line: &str) -> Line {
    line.split(' ')
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `CLIENT INFO` of `c`, and one field of it.
fn info_of(c: &mut Client) -> Line {
    parse_line(text_of(&c.cmd("CLIENT INFO")).trim_end())
}

fn field(line: &Line, name: &str) -> Option<String> {
    line.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
}

/// The replies to `cmds`, shown.
fn replies_to<const N: usize>(c: &mut Client, cmds: [&str; N]) -> [String; N] {
    cmds.map(|cmd| show(&c.cmd(cmd)))
}

fn lines(c: &mut Client, cmd: &str) -> Vec<HashMap<String, String>> {
    let reply = c.cmd(cmd);
    assert!(!reply.starts_with(b"-"), "{cmd}: {}", show(&reply));
    text_of(&reply)
        .lines()
        .map(|l| parse_line(l).into_iter().collect())
        .collect()
}

fn ids_listed(c: &mut Client, cmd: &str) -> Vec<u64> {
    let mut ids: Vec<u64> = lines(c, cmd)
        .iter()
        .map(|l| l["id"].parse().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

fn local_addr(c: &Client) -> String {
    c.stream().local_addr().unwrap().to_string()
}

const CLOSE_BOUND: Duration = Duration::from_secs(3);

/// Waits until the server (or proxy) has exactly `n` clients: earlier ones' closes
/// are processed.
fn only_clients(c: &mut Client, n: usize) {
    let settled = support::wait_until(CLOSE_BOUND, || lines(c, "CLIENT LIST").len() == n);
    assert!(settled, "clients: {:?}", lines(c, "CLIENT LIST"));
}

#[test]
fn client_info_has_the_servers_fields_in_its_order() {
    let mut fields = Vec::new();
    for side in Side::both() {
        let mut c = side.client();
        c.assert_cmd("CLIENT SETNAME app1", b"+OK\r\n");
        let id = id_of(&mut c);
        let line = info_of(&mut c);
        let get = |k: &str| field(&line, k);
        let who = side.name();
        assert_eq!(get("id"), Some(id.to_string()), "{who}: id");
        assert_eq!(get("addr"), Some(local_addr(&c)), "{who}: addr");
        assert_eq!(get("laddr"), Some(side.addr().to_string()), "{who}: laddr");
        assert_eq!(get("name").as_deref(), Some("app1"), "{who}: name");
        assert_eq!(get("cmd").as_deref(), Some("client|info"), "{who}: cmd");
        assert_eq!(get("flags").as_deref(), Some("N"), "{who}: flags");
        assert_eq!(get("resp").as_deref(), Some("2"), "{who}: resp");
        assert_eq!(get("user").as_deref(), Some("default"), "{who}: user");
        let names: Vec<String> = line.into_iter().map(|(n, _)| n).collect();
        fields.push(names);
    }
    assert_eq!(fields[0], fields[1], "field names and order");
}

#[test]
fn client_list_shows_every_client_with_its_name_db_and_protocol() {
    for side in Side::both() {
        let who = side.name();
        let mut a = side.client();
        let mut b = side.client();
        a.assert_cmd("CLIENT SETNAME app1", b"+OK\r\n");
        a.assert_cmd("SELECT 3", b"+OK\r\n");
        let hello = b.cmd("HELLO 3");
        assert!(hello.starts_with(b"%"), "{who}: HELLO 3: {}", show(&hello));
        let (ia, ib) = (id_of(&mut a), id_of(&mut b));
        let listed = lines(&mut b, "CLIENT LIST");
        let line = |id: u64| {
            listed
                .iter()
                .find(|l| l["id"] == id.to_string())
                .unwrap_or_else(|| panic!("{who}: client {id} not in {listed:?}"))
        };
        assert_eq!(line(ia)["name"], "app1", "{who}");
        assert_eq!(line(ia)["db"], "3", "{who}");
        assert_eq!(line(ia)["addr"], local_addr(&a), "{who}");
        assert_eq!(line(ia)["cmd"], "client|id", "{who}");
        assert_eq!(line(ib)["resp"], "3", "{who}");
        assert_eq!(line(ib)["cmd"], "client|list", "{who}");
        // RESP3 gets a verbatim string, as from Redis.
        assert!(b.cmd("CLIENT LIST").starts_with(b"="), "{who}: verbatim");
        assert_eq!(
            ids_listed(&mut b, &format!("CLIENT LIST ID {ia}")),
            vec![ia],
            "{who}: LIST ID"
        );
        if side.name() == "respite" {
            // Only respite's clients: the proxy's upstream connections are not listed.
            assert_eq!(listed.len(), 2, "{who}: {listed:?}");
        }
    }
}

#[test]
fn client_list_type_pubsub_lists_subscribed_clients() {
    for side in Side::both() {
        let who = side.name();
        let mut sub = side.client();
        let sub_id = id_of(&mut sub);
        sub.send(&["SUBSCRIBE", "news"]);
        sub.read_reply();
        let mut psub = side.client();
        assert!(psub.cmd("HELLO 3").starts_with(b"%"), "{who}: HELLO 3");
        let psub_id = id_of(&mut psub);
        psub.cmd("PSUBSCRIBE n*");
        let mut c = side.client();
        let me = id_of(&mut c);
        assert_eq!(
            ids_listed(&mut c, "CLIENT LIST TYPE pubsub"),
            vec![sub_id, psub_id],
            "{who}"
        );
        assert_eq!(
            ids_listed(&mut c, "CLIENT LIST TYPE normal"),
            vec![me],
            "{who}"
        );
        let listed = lines(&mut c, "CLIENT LIST TYPE pubsub");
        assert_eq!(listed[0]["sub"], "1", "{who}: {listed:?}");
        assert_eq!(listed[0]["flags"], "P", "{who}: {listed:?}");
        assert_eq!(listed[1]["psub"], "1", "{who}: {listed:?}");
        assert!(lines(&mut c, "CLIENT LIST TYPE master").is_empty(), "{who}");
    }
}

#[test]
fn client_kill_by_each_filter_closes_that_client_only() {
    for side in Side::both() {
        let who = side.name();
        for filter in ["ID", "ADDR", "LADDR", "USER", "TYPE", "OLD"] {
            let mut victim = side.client();
            let mut killer = side.client();
            let id = id_of(&mut victim);
            only_clients(&mut killer, 2);
            let (cmd, expected): (String, &[u8]) = match filter {
                "ID" => (format!("CLIENT KILL ID {id}"), b":1\r\n"),
                "ADDR" => (
                    format!("CLIENT KILL ADDR {}", local_addr(&victim)),
                    b":1\r\n",
                ),
                "LADDR" => (
                    format!("CLIENT KILL LADDR {} SKIPME yes", side.addr()),
                    b":1\r\n",
                ),
                "USER" => ("CLIENT KILL USER default".into(), b":1\r\n"),
                "TYPE" => ("CLIENT KILL TYPE normal".into(), b":1\r\n"),
                _ => (format!("CLIENT KILL {}", local_addr(&victim)), b"+OK\r\n"),
            };
            killer.assert_cmd(&cmd, expected);
            assert!(victim.closed_within(CLOSE_BOUND), "{who}: {cmd}");
            killer.assert_cmd("PING", b"+PONG\r\n");
        }
    }
}

#[test]
fn client_kill_skipme_no_closes_the_caller_after_its_reply() {
    for side in Side::both() {
        let mut c = side.client();
        let id = id_of(&mut c);
        c.assert_cmd(&format!("CLIENT KILL ID {id} SKIPME no"), b":1\r\n");
        assert!(c.closed_within(CLOSE_BOUND), "{}", side.name());
        let mut c = side.client();
        let me = id_of(&mut c);
        c.assert_cmd(&format!("CLIENT KILL ID {me}"), b":0\r\n");
    }
}

#[test]
fn client_kill_through_respite_never_reaches_the_proxys_upstream_connections() {
    let stack = Stack::start();
    let mut bystander = stack.client();
    bystander.assert_cmd("SET k v", b"+OK\r\n");
    let mut direct = stack.direct();
    let upstream = ids_listed(&mut direct, "CLIENT LIST TYPE normal");
    let mut killer = stack.client();
    killer.assert_cmd("CLIENT KILL TYPE normal SKIPME yes", b":1\r\n");
    assert!(bystander.closed_within(CLOSE_BOUND));
    let after = ids_listed(&mut direct, "CLIENT LIST TYPE normal");
    for id in upstream {
        assert!(
            after.contains(&id),
            "upstream connection {id} killed: {after:?}"
        );
    }
    killer.assert_cmd("GET k", b"$1\r\nv\r\n");
    // Inside MULTI, too: refused (EXEC then aborts), never queued in Redis.
    killer.assert_cmd("MULTI", b"+OK\r\n");
    let refused = killer.cmd("CLIENT KILL TYPE normal");
    assert!(
        refused.starts_with(b"-ERR CLIENT KILL inside MULTI"),
        "{}",
        show(&refused)
    );
    let exec = killer.cmd("EXEC");
    assert!(exec.starts_with(b"-EXECABORT"), "{}", show(&exec));
    let last = ids_listed(&mut direct, "CLIENT LIST TYPE normal");
    assert!(
        after.iter().all(|id| last.contains(id)),
        "{after:?} then {last:?}"
    );
}

#[test]
fn client_kill_of_a_blocked_client_releases_its_redis_connection() {
    let stack = Stack::start();
    let mut blocked = stack.client();
    let id = id_of(&mut blocked);
    blocked.send(&["BLPOP", "nothing", "0"]);
    stack.redis.wait_blocked_clients(1, CLOSE_BOUND);
    stack
        .client()
        .assert_cmd(&format!("CLIENT KILL ID {id}"), b":1\r\n");
    assert!(blocked.closed_within(CLOSE_BOUND));
    stack.redis.wait_blocked_clients(0, CLOSE_BOUND);
}

#[test]
fn client_unblock_takes_the_id_client_id_gave() {
    for side in Side::both() {
        let who = side.name();
        let mut blocked = side.client();
        let id = id_of(&mut blocked);
        blocked.send(&["BLPOP", "nothing", "0"]);
        let mut redis = side.redis();
        assert!(
            support::wait_until(CLOSE_BOUND, || {
                support::redis::info_field(&mut redis, "clients", "blocked_clients") == Some(1)
            }),
            "{who}: never blocked"
        );
        let mut other = side.client();
        other.assert_cmd(&format!("CLIENT UNBLOCK {id}"), b":1\r\n");
        blocked.assert_reply(b"*-1\r\n");
        other.assert_cmd(&format!("CLIENT UNBLOCK {id}"), b":0\r\n");
        blocked.assert_cmd("PING", b"+PONG\r\n");
    }
}

/// Replies compared byte for byte: errors are the server's own, whatever its version.
#[test]
fn argument_errors_are_the_servers_own() {
    let cmds = [
        "CLIENT KILL ID 0",
        "CLIENT KILL ID x",
        "CLIENT KILL ID 99999 99998",
        "CLIENT KILL TYPE foo",
        "CLIENT KILL MAXAGE 5",
        "CLIENT KILL 1.2.3.4:5",
        "CLIENT KILL ADDR 1.2.3.4:5",
        "CLIENT KILL SKIPME maybe",
        "CLIENT KILL ID 5 TYPE",
        "CLIENT KILL TYPE foo SKIPME",
        "CLIENT KILL USER nosuch",
        "CLIENT KILL LADDR 1.2.3.4:5 USER nosuch",
        "CLIENT KILL TYPE master",
        "CLIENT LIST ID x",
        "CLIENT LIST TYPE foo",
        "CLIENT LIST ID 99999 TYPE normal",
        "CLIENT LIST foo",
        "CLIENT INFO x",
        "CLIENT SETINFO foo x",
        "CLIENT SETINFO lib-name",
        "CLIENT NO-EVICT maybe",
        "CLIENT NO-EVICT on",
        "CLIENT NO-TOUCH on",
    ];
    let mut replies: Vec<Vec<Vec<u8>>> = Vec::new();
    for side in Side::both() {
        let mut c = side.client();
        replies.push(cmds.iter().map(|cmd| c.cmd(cmd)).collect());
        let setinfo = c.call(&["CLIENT", "SETINFO", "LIB-NAME", "a b"]);
        replies.last_mut().unwrap().push(setinfo);
    }
    for (i, cmd) in cmds
        .iter()
        .chain(["CLIENT SETINFO LIB-NAME 'a b'"].iter())
        .enumerate()
    {
        assert_eq!(
            show(&replies[0][i]),
            show(&replies[1][i]),
            "{cmd}: redis vs respite"
        );
    }
}

#[test]
fn client_setinfo_is_shown_when_the_server_knows_it() {
    let mut infos = Vec::new();
    for side in Side::both() {
        let mut c = side.client();
        let set = c.cmd("CLIENT SETINFO lib-name mylib");
        let ver = c.cmd("CLIENT SETINFO LIB-VER 1.2");
        let line = info_of(&mut c);
        let get = |k: &str| field(&line, k);
        infos.push((set, ver, get("lib-name"), get("lib-ver")));
    }
    assert_eq!(infos[0], infos[1], "redis vs respite");
    if infos[0].0 == b"+OK\r\n" {
        assert_eq!(infos[1].2.as_deref(), Some("mylib"));
    }
}

#[test]
fn a_subscribed_resp2_client_gets_the_servers_context_errors() {
    let mut replies = Vec::new();
    for side in Side::both() {
        let mut c = side.client();
        c.send(&["SUBSCRIBE", "ch"]);
        c.read_reply();
        let cmds = [
            "CLIENT ID",
            "CLIENT SETNAME x",
            "CLIENT LIST",
            "CLIENT KILL TYPE normal",
        ];
        replies.push(replies_to(&mut c, cmds));
    }
    assert_eq!(replies[0], replies[1], "redis vs respite");
}

#[test]
fn tracking_redirect_survives_the_target_resubscribing() {
    for side in Side::both() {
        let who = side.name();
        let mut listener = side.client();
        let id = id_of(&mut listener);
        listener.cmd("SUBSCRIBE __redis__:invalidate");
        let mut tracked = side.client();
        tracked.assert_cmd(&format!("CLIENT TRACKING ON REDIRECT {id}"), b"+OK\r\n");
        // The target leaves pub/sub and comes back: Redis still knows its connection.
        listener.cmd("UNSUBSCRIBE");
        // Another client subscribes meanwhile (through respite: on a connection of
        // its own, which must not be the one Redis redirects to).
        let mut other = side.client();
        other.cmd("SUBSCRIBE other");
        listener.cmd("SUBSCRIBE __redis__:invalidate");
        tracked.assert_cmd("GET rk", b"$-1\r\n");
        side.client().assert_cmd("SET rk v", b"+OK\r\n");
        let got = listener.read_reply();
        assert_eq!(
            show(&got),
            show(b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$2\r\nrk\r\n"),
            "{who}"
        );
    }
}

#[test]
fn getredir_trackinginfo_and_client_list_name_the_redirect_target_by_its_id() {
    for side in Side::both() {
        let who = side.name();
        let mut listener = side.client();
        let id = id_of(&mut listener);
        listener.cmd("SUBSCRIBE __redis__:invalidate");
        let mut tracked = side.client();
        tracked.assert_cmd("CLIENT GETREDIR", b":-1\r\n");
        tracked.assert_cmd(&format!("CLIENT TRACKING ON REDIRECT {id}"), b"+OK\r\n");
        tracked.assert_cmd("CLIENT GETREDIR", format!(":{id}\r\n").as_bytes());
        let info = show(&tracked.cmd("CLIENT TRACKINGINFO"));
        let redirect = show(format!("$8\r\nredirect\r\n:{id}\r\n").as_bytes());
        assert!(info.contains(redirect.trim_matches('"')), "{who}: {info}");
        let line = info_of(&mut tracked);
        let get = |k: &str| field(&line, k);
        assert_eq!(get("flags").as_deref(), Some("t"), "{who}");
        assert_eq!(get("redir"), Some(id.to_string()), "{who}");
        tracked.assert_cmd("CLIENT TRACKING OFF", b"+OK\r\n");
        tracked.assert_cmd("CLIENT GETREDIR", b":-1\r\n");
    }
}

#[test]
fn pipelined_commands_are_seen_in_order() {
    // An asynchronous client writes its commands at once: CLIENT INFO sees the name
    // the command before it set, and CLIENT LIST counts the commands before it.
    for side in Side::both() {
        let who = side.name();
        let mut c = side.client();
        let mut batch = Vec::new();
        for cmd in [
            &["SET", "pk", "v"][..],
            &["CLIENT", "SETNAME", "piped"],
            &["GET", "pk"],
            &["CLIENT", "INFO"],
        ] {
            batch.extend(support::resp::encode_command(cmd));
        }
        c.send_raw(&batch);
        c.assert_reply(b"+OK\r\n");
        c.assert_reply(b"+OK\r\n");
        c.assert_reply(b"$1\r\nv\r\n");
        let line = parse_line(text_of(&c.read_reply()).trim_end());
        let get = |k: &str| field(&line, k);
        assert_eq!(get("name").as_deref(), Some("piped"), "{who}");
        assert_eq!(get("cmd").as_deref(), Some("client|info"), "{who}");
    }
}

#[test]
fn a_user_without_client_permissions_gets_the_servers_refusal() {
    let mut replies = Vec::new();
    for side in Side::both() {
        side.redis()
            .assert_cmd("ACL SETUSER noclient on >pw ~* +@all -client", b"+OK\r\n");
        let mut c = side.client();
        c.assert_cmd("AUTH noclient pw", b"+OK\r\n");
        let cmds = [
            "CLIENT LIST",
            "CLIENT INFO",
            "CLIENT KILL TYPE normal",
            "CLIENT KILL 1.2.3.4:5",
        ];
        replies.push(replies_to(&mut c, cmds));
    }
    assert_eq!(replies[0], replies[1], "redis vs respite");
    assert!(replies[1][0].contains("NOPERM"), "{:?}", replies[1]);
}

#[test]
fn client_kill_maxage_where_the_server_has_it() {
    // Valkey 8 (and Redis 7.4): clients older than MAXAGE seconds. Redis 7.0 refuses the
    // filter, through respite as directly.
    for side in Side::both() {
        let who = side.name();
        let mut victim = side.client();
        let id = id_of(&mut victim);
        let mut killer = side.client();
        let kill = format!("CLIENT KILL ID {id} MAXAGE 1");
        let first = killer.cmd(&kill);
        if first.starts_with(b"-ERR syntax error") {
            continue;
        }
        assert_eq!(first, b":0\r\n", "{who}: a new client is younger than 1 s");
        // Age is counted in whole seconds: the victim is killed once it is 2 s old.
        let mut last = first;
        let killed = support::wait_until(Duration::from_secs(5), || {
            last = killer.cmd(&kill);
            last == b":1\r\n"
        });
        assert!(killed, "{who}: {kill}: {}", show(&last));
        assert!(victim.closed_within(CLOSE_BOUND), "{who}");
    }
}
