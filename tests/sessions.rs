//! Per-client state on shared upstream connections: what one client changes (db,
//! protocol, name, MULTI, WATCH, CLIENT REPLY) must never show up for another client,
//! even when all of them share a single pooled connection, and replies must reach the
//! right client in the right order under concurrency.

mod support;

use std::{thread, time::Duration};

use support::{Client, Proxy, RedisServer, ServerKind, Stack, resp::encode_command, show};

/// Every client shares one pooled upstream connection (one event loop, one connection
/// in its pool), so leaks are visible.
const ONE_POOLED: &str = "[server]\nthreads = 1\n[upstream]\npool_size = 1";

#[test]
fn db_protocol_and_name_stay_with_their_client() {
    let stack = Stack::start_with(ONE_POOLED);
    let mut a = stack.client();
    let mut b = stack.client();
    a.assert_cmd("SELECT 5", b"+OK\r\n");
    assert!(a.cmd("HELLO 3").starts_with(b"%"));
    a.assert_cmd("CLIENT SETNAME alpha", b"+OK\r\n");
    for i in 0..20 {
        a.assert_cmd(&format!("SET k{i} in-db5"), b"+OK\r\n");
        b.assert_cmd(&format!("GET k{i}"), b"$-1\r\n");
        a.assert_cmd("GET nope", b"_\r\n");
        b.assert_cmd("CLIENT GETNAME", b"$-1\r\n");
    }
    b.assert_cmd("DBSIZE", b":0\r\n");
    a.assert_cmd("DBSIZE", b":20\r\n");
    drop(a);
    // A client arriving after one that changed its state starts from the defaults.
    let mut c = stack.client();
    c.assert_cmd("GET k0", b"$-1\r\n");
    c.assert_cmd("GET nope", b"$-1\r\n");
    c.assert_cmd("CLIENT GETNAME", b"$-1\r\n");
    c.assert_cmd("SELECT 5", b"+OK\r\n");
    c.assert_cmd("GET k0", b"$6\r\nin-db5\r\n");
}

#[test]
fn abandoned_transaction_does_not_leak() {
    let stack = Stack::start_with(ONE_POOLED);
    let mut a = stack.client();
    a.assert_cmd("MULTI", b"+OK\r\n");
    a.assert_cmd("SET leaked 1", b"+QUEUED\r\n");
    drop(a);
    let mut b = stack.client();
    b.assert_cmd("SET other 2", b"+OK\r\n");
    b.assert_cmd("GET leaked", b"$-1\r\n");
    b.assert_cmd("EXEC", b"-ERR EXEC without MULTI\r\n");
    stack.direct().assert_cmd("EXISTS leaked", b":0\r\n");
}

#[test]
fn abandoned_watch_does_not_abort_another_clients_transaction() {
    let stack = Stack::start_with(ONE_POOLED);
    let mut a = stack.client();
    a.assert_cmd("WATCH w", b"+OK\r\n");
    drop(a);
    let mut b = stack.client();
    stack.direct().assert_cmd("SET w changed", b"+OK\r\n");
    b.assert_cmd("MULTI", b"+OK\r\n");
    b.assert_cmd("SET w mine", b"+QUEUED\r\n");
    b.assert_cmd("EXEC", b"*1\r\n+OK\r\n");
}

#[test]
fn abandoned_client_reply_off_does_not_silence_others() {
    let stack = Stack::start_with(ONE_POOLED);
    let mut a = stack.client();
    a.send(&["CLIENT", "REPLY", "OFF"]);
    a.send(&["SET", "quiet", "1"]);
    // The silenced commands were carried out before the client goes away.
    let mut d = stack.direct();
    let stored = support::wait_until(Duration::from_secs(5), || {
        d.call(&["EXISTS", "quiet"]) == b":1\r\n"
    });
    assert!(
        stored,
        "SET sent after CLIENT REPLY OFF never reached Redis"
    );
    drop(a);
    let mut b = stack.client();
    b.set_read_timeout(Duration::from_secs(3));
    b.assert_cmd("PING", b"+PONG\r\n");
    b.assert_cmd("SET loud 2", b"+OK\r\n");
    b.assert_cmd("GET loud", b"$1\r\n2\r\n");
}

#[test]
fn client_reply_off_on_the_same_client() {
    let stack = Stack::start_with(ONE_POOLED);
    let mut a = stack.client();
    let mut b = stack.client();
    a.send(&["CLIENT", "REPLY", "OFF"]);
    a.send(&["SET", "r", "1"]);
    b.assert_cmd("PING", b"+PONG\r\n");
    a.assert_cmd("CLIENT REPLY ON", b"+OK\r\n");
    a.assert_cmd("GET r", b"$1\r\n1\r\n");
}

/// A command that must wait for the replies before it (MULTI takes a connection of
/// its own) is sent once they are in, even when the client skipped them (found by the
/// fuzzer: the MULTI was never answered).
#[test]
fn multi_after_a_skipped_reply_is_answered() {
    let stack = Stack::start_with(ONE_POOLED);
    let mut a = stack.client();
    let mut batch = encode_command(&["CLIENT", "REPLY", "SKIP"]);
    batch.extend(encode_command(&["HSET", "h", "f", "1"]));
    batch.extend(encode_command(&["MULTI"]));
    a.send_raw(&batch);
    let ok = a.read_reply();
    assert!(ok == b"+OK\r\n", "{}", show(&ok));
    a.assert_cmd("HGET h f", b"+QUEUED\r\n");
    a.assert_cmd("EXEC", b"*1\r\n$1\r\n1\r\n");
}

/// HELLO … SETNAME sent while the client holds a connection of its own (subscribed,
/// in RESP3) names the client as it does on a shared one (found by the fuzzer: CLIENT
/// GETNAME then said nil).
#[test]
fn hello_setname_on_an_own_connection_names_the_client() {
    let stack = Stack::start_with(ONE_POOLED);
    let mut a = stack.client();
    assert!(a.cmd("HELLO 3").starts_with(b"%"));
    a.assert_cmd(
        "SUBSCRIBE ch",
        b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n",
    );
    assert!(a.cmd("HELLO 3 SETNAME named").starts_with(b"%"));
    a.assert_cmd("CLIENT GETNAME", b"$5\r\nnamed\r\n");
}

/// SELECTs queued in MULTI move the client's db only when they succeed (found by
/// the fuzzer: after a failed SELECT 99 every command answered "DB index is out of
/// range").
#[test]
fn a_select_that_fails_inside_multi_keeps_the_db() {
    let stack = Stack::start_with(ONE_POOLED);
    let mut a = stack.client();
    for line in ["MULTI", "SELECT 3", "SELECT 99"] {
        a.cmd(line);
    }
    let exec = a.cmd("EXEC");
    assert!(exec.starts_with(b"*2\r\n+OK\r\n-ERR"), "{}", show(&exec));
    a.assert_cmd("SET x in-db3", b"+OK\r\n");
    let mut d = stack.direct();
    d.assert_cmd("SELECT 3", b"+OK\r\n");
    d.assert_cmd("GET x", b"$6\r\nin-db3\r\n");
}

/// A push on the client's own connection comes where Redis put it: after the reply
/// to the write that caused it, before the reply to a later command the proxy answers
/// itself (found by the fuzzer: the invalidation came after CLIENT ID's reply).
#[test]
fn a_push_comes_before_the_replies_of_later_commands() {
    let stack = Stack::start_with(ONE_POOLED);
    let mut a = stack.client();
    assert!(a.cmd("HELLO 3").starts_with(b"%"));
    a.assert_cmd("CLIENT TRACKING ON", b"+OK\r\n");
    a.assert_cmd("GET tracked", b"_\r\n");
    let mut batch = encode_command(&["SET", "tracked", "v"]);
    batch.extend(encode_command(&["CLIENT", "GETNAME"]));
    a.send_raw(&batch);
    a.assert_reply(b"+OK\r\n");
    a.assert_reply(b">2\r\n$10\r\ninvalidate\r\n*1\r\n$7\r\ntracked\r\n");
    a.assert_reply(b"_\r\n");
}

/// RESET and QUIT from a subscribed client: once it has the answer, Redis has dropped
/// its subscriptions, as when it talks to Redis directly (found by the fuzzer: a
/// PUBLISH right after still reached the connection being closed).
#[test]
fn subscriptions_are_gone_when_reset_or_quit_is_answered() {
    let stack = Stack::start_with(ONE_POOLED);
    let mut direct = stack.direct();
    for round in 0..20 {
        let mut a = stack.client();
        a.assert_cmd(
            "SUBSCRIBE ch",
            b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n",
        );
        a.assert_cmd("RESET", b"+RESET\r\n");
        direct.assert_cmd("PUBLISH ch m", b":0\r\n");
        a.assert_cmd(
            "SUBSCRIBE ch",
            b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n",
        );
        a.assert_cmd("QUIT", b"+OK\r\n");
        let n = direct.cmd("PUBLISH ch m");
        assert!(n == b":0\r\n", "round {round}: {}", show(&n));
    }
}

/// Redis sends pushes whatever CLIENT REPLY says (found by the fuzzer: the proxy
/// dropped invalidations while replies were off).
#[test]
fn pushes_arrive_while_replies_are_off() {
    let stack = Stack::start_with(ONE_POOLED);
    let mut a = stack.client();
    assert!(a.cmd("HELLO 3").starts_with(b"%"));
    a.assert_cmd("CLIENT TRACKING ON", b"+OK\r\n");
    a.assert_cmd("GET watched", b"_\r\n");
    a.send(&["CLIENT", "REPLY", "OFF"]);
    stack.client().assert_cmd("SET watched 1", b"+OK\r\n");
    a.assert_reply(b">2\r\n$10\r\ninvalidate\r\n*1\r\n$7\r\nwatched\r\n");
    a.assert_cmd("CLIENT REPLY ON", b"+OK\r\n");
}

/// `DEBUG PROTOCOL push` (RESP3) writes a push besides its reply: Redis 7.0 before the
/// reply, Valkey 8.1 after it. Either way the push belongs to the client that sent the
/// command, in the server's order, never to the client whose reply comes next.
#[test]
fn a_push_reaches_the_client_whose_command_caused_it() {
    let stack = Stack::start_with(ONE_POOLED);
    let push = encode_command(&["DEBUG", "PROTOCOL", "push"]);
    let mut direct = stack.direct();
    direct.cmd("HELLO 3");
    direct.send_raw(&push);
    let expected = [direct.read_reply(), direct.read_reply()];
    let mut a = stack.client();
    let mut b = stack.client();
    a.cmd("HELLO 3");
    b.cmd("HELLO 3");
    a.send_raw(&push);
    let first = a.read_reply();
    b.assert_cmd("PING", b"+PONG\r\n");
    let second = a.read_reply();
    assert_eq!(
        [show(&first), show(&second)],
        [show(&expected[0]), show(&expected[1])]
    );
    a.assert_cmd("PING", b"+PONG\r\n");
}

/// Valkey 8.1's `CLIENT IMPORT-SOURCE ON` (allowed with `import-mode yes`) lets that
/// connection read keys past their expiry. One client's switch must not reach the
/// others sharing its upstream connection, nor the clients after it.
#[test]
fn import_source_stays_with_its_client() {
    if support::skip_unless(ServerKind::Valkey, (8, 1), "CLIENT IMPORT-SOURCE") {
        return;
    }
    let stack = Stack::start_with_redis(&["--import-mode", "yes"], ONE_POOLED);
    let mut a = stack.client();
    let mut b = stack.client();
    let mut direct = stack.direct();
    b.assert_cmd("SET gone v PX 1", b"+OK\r\n");
    let expired = support::wait_until(Duration::from_secs(5), || {
        direct.cmd("EXISTS gone") == b":0\r\n"
    });
    assert!(expired, "the key did not expire");
    // Whatever respite answers (OK on a connection of a's own, or a refusal)...
    a.cmd("CLIENT IMPORT-SOURCE ON");
    // ...b still sees what a normal connection sees.
    b.assert_cmd("GET gone", b"$-1\r\n");
    drop(a);
    stack.client().assert_cmd("GET gone", b"$-1\r\n");
}

#[test]
fn concurrent_pipelined_clients_get_their_own_replies_in_order() {
    let stack = Stack::start_with("[upstream]\npool_size = 2");
    let addr = stack.proxy.addr();
    let workers: Vec<_> = (0..8)
        .map(|t| {
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                let key = format!("ctr{t}");
                let mut batch = Vec::new();
                for i in 0..500 {
                    batch.extend(encode_command(&["INCR", &key]));
                    batch.extend(encode_command(&["ECHO", &format!("{t}:{i}")]));
                }
                c.send_raw(&batch);
                for i in 1..=500 {
                    let n = c.read_reply();
                    assert!(
                        n == format!(":{i}\r\n").as_bytes(),
                        "client {t}: {}",
                        show(&n)
                    );
                    let echo = c.read_reply();
                    let expected = format!("{t}:{}", i - 1);
                    assert!(
                        echo == format!("${}\r\n{expected}\r\n", expected.len()).as_bytes(),
                        "client {t}: {}",
                        show(&echo)
                    );
                }
            })
        })
        .collect();
    for w in workers {
        w.join()
            .expect("a client got someone else's reply or out of order");
    }
    let mut direct = stack.direct();
    for t in 0..8 {
        direct.assert_cmd(&format!("GET ctr{t}"), b"$3\r\n500\r\n");
    }
}

#[test]
fn concurrent_transactions_and_plain_commands() {
    let stack = Stack::start_with(ONE_POOLED);
    let addr = stack.proxy.addr();
    let workers: Vec<_> = (0..6)
        .map(|t| {
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                for i in 0..100 {
                    if t % 2 == 0 {
                        c.assert_cmd("MULTI", b"+OK\r\n");
                        c.assert_cmd("INCR shared", b"+QUEUED\r\n");
                        c.assert_cmd(&format!("SET t{t} {i}"), b"+QUEUED\r\n");
                        let exec = c.cmd("EXEC");
                        assert!(
                            exec.starts_with(b"*2\r\n:"),
                            "client {t}: EXEC {}",
                            show(&exec)
                        );
                    } else {
                        let n = c.cmd("INCR shared");
                        assert!(n.starts_with(b":"), "client {t}: {}", show(&n));
                        c.assert_cmd(&format!("SET t{t} {i}"), b"+OK\r\n");
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker failed");
    }
    stack.direct().assert_cmd("GET shared", b"$3\r\n600\r\n");
}

#[test]
fn upstream_url_db_is_where_clients_start() {
    let redis = RedisServer::start();
    let proxy = Proxy::start(&format!("{}/3", redis.url()), "");
    let mut c = proxy.client();
    c.assert_cmd("SET in3 yes", b"+OK\r\n");
    let mut direct = redis.client();
    direct.assert_cmd("EXISTS in3", b":0\r\n");
    direct.assert_cmd("SELECT 3", b"+OK\r\n");
    direct.assert_cmd("GET in3", b"$3\r\nyes\r\n");
    c.assert_cmd("SELECT 0", b"+OK\r\n");
    c.assert_cmd("GET in3", b"$-1\r\n");
}

#[test]
fn upstream_credentials_from_the_url() {
    let redis = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let proxy = Proxy::start(&format!("redis://:s3cret@127.0.0.1:{}", redis.port()), "");
    let mut c = proxy.client();
    c.assert_cmd("SET authed yes", b"+OK\r\n");
    c.assert_cmd("GET authed", b"$3\r\nyes\r\n");
    let mut direct = redis.client();
    direct.assert_cmd("AUTH s3cret", b"+OK\r\n");
    direct.assert_cmd("GET authed", b"$3\r\nyes\r\n");
    // A user in the URL.
    direct.assert_cmd("ACL SETUSER app on >apppw ~* &* +@all", b"+OK\r\n");
    let as_app = Proxy::start(&format!("redis://app:apppw@127.0.0.1:{}", redis.port()), "");
    let mut a = as_app.client();
    a.assert_cmd("ACL WHOAMI", b"$3\r\napp\r\n");
    a.assert_cmd("GET authed", b"$3\r\nyes\r\n");
}

/// SELECT then AUTH as a user who may not SELECT, with a user in the URL (the default
/// user may not SELECT): the proxy's connections select the db as the URL's user
/// before they authenticate as the client's, so the client stays in the db, as on a
/// Redis connection authenticated as the URL's user. AUTH then SELECT is refused.
#[test]
fn select_then_auth_with_a_user_in_the_url() {
    let redis = RedisServer::start();
    let mut admin = redis.client();
    for setup in [
        "ACL SETUSER app on >apppw ~* &* +@all",
        "ACL SETUSER limited on >pass ~* &* +@all -select",
        "ACL SETUSER default -select",
    ] {
        admin.assert_cmd(setup, b"+OK\r\n");
    }
    let proxy = Proxy::start(&format!("redis://app:apppw@127.0.0.1:{}", redis.port()), "");
    let same = |lines: &[&str]| {
        let mut direct = redis.client();
        direct.assert_cmd("AUTH app apppw", b"+OK\r\n");
        let mut via = proxy.client();
        for line in lines {
            let want = direct.cmd(line);
            assert_eq!(show(&via.cmd(line)), show(&want), "{line}");
        }
    };
    same(&[
        "SELECT 9",
        "AUTH limited pass",
        "SET k in9",
        "SELECT 0",
        "GET k",
    ]);
    same(&["AUTH limited pass", "SELECT 9", "GET k", "DBSIZE"]);
}

#[test]
fn replies_for_clients_that_left_are_not_delivered_to_others() {
    let stack = Stack::start_with(ONE_POOLED);
    let big = vec![b'B'; 2 << 20];
    stack.direct().call(&[b"SET".as_slice(), b"big", &big]);
    let mut steady = stack.client();
    for i in 0..30 {
        let mut leaver = stack.client();
        leaver.send_raw(&encode_command(&["GET", "big"]).repeat(3));
        drop(leaver);
        steady.assert_cmd(&format!("SET s{i} small"), b"+OK\r\n");
        steady.assert_cmd(&format!("GET s{i}"), b"$5\r\nsmall\r\n");
    }
}

/// The last command Redis saw on each of its client connections (`cmd=` of CLIENT
/// LIST), without the connection asking.
fn last_commands(direct: &mut Client) -> Vec<String> {
    let list = direct.call(&["CLIENT", "LIST"]);
    String::from_utf8_lossy(&list)
        .lines()
        .filter(|l| l.starts_with("id="))
        .filter(|l| !l.contains("cmd=client|list"))
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("cmd=")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn event_loops_have_their_own_connections_and_close_them_on_shutdown() {
    let redis = RedisServer::start();
    let mut proxy = Proxy::start(&redis.url(), "[server]\nthreads = 3");
    let mut direct = redis.client();
    // Six clients, handed to the three loops in turn; each ends with a GET.
    let mut clients: Vec<Client> = (0..6).map(|_| proxy.client()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.assert_cmd(&format!("SET k{i} v{i}"), b"+OK\r\n");
    }
    for (i, c) in clients.iter_mut().enumerate() {
        c.assert_cmd(&format!("GET k{i}"), format!("$2\r\nv{i}\r\n").as_bytes());
    }
    // Every loop sent its clients' commands on a connection of its own.
    let gets = last_commands(&mut direct)
        .iter()
        .filter(|c| *c == "get")
        .count();
    assert_eq!(gets, 3, "connections whose last command is a client's GET");
    // Dedicated connections too, on two loops.
    clients[0].assert_cmd("MULTI", b"+OK\r\n");
    clients[0].assert_cmd("INCR n", b"+QUEUED\r\n");
    clients[1].send(&["BLPOP", "nothing", "0"]);
    redis.wait_blocked_clients(1, Duration::from_secs(5));
    assert!(last_commands(&mut direct).len() >= 3 + 2);

    let stopped = proxy.stop_within(Duration::from_secs(10));
    assert!(matches!(stopped, Ok(Ok(()))), "respite::run: {stopped:?}");
    let closed = support::wait_until(Duration::from_secs(5), || {
        last_commands(&mut direct).is_empty()
    });
    assert!(
        closed,
        "upstream connections left open after shutdown: {:?}",
        last_commands(&mut direct)
    );
    for c in &mut clients {
        assert!(c.closed_within(Duration::from_secs(2)), "client left open");
    }
}
