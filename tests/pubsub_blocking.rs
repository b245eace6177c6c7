//! Stateful connections through the proxy: pub/sub (RESP2 and RESP3 push), blocking
//! commands woken by other clients, MONITOR, client tracking, and the connection
//! commands that change per-client state (CLIENT SETNAME/ID, QUIT, RESET).

mod support;

use std::time::{Duration, Instant};

use support::{
    Client, Stack, contains,
    redis::info_field,
    resp::{decode, encode_command},
    show, wait_until,
};

const WAIT: Duration = Duration::from_secs(5);

fn read_expect(c: &mut Client, expected: &[u8], what: &str) {
    let got = c.read_reply();
    assert!(
        got == expected,
        "{what}: got {}, expected {}",
        show(&got),
        show(expected)
    );
}

#[test]
fn subscribe_publish_unsubscribe_resp2() {
    let stack = Stack::start();
    let mut sub = stack.client();
    let mut publisher = stack.client();

    sub.assert_cmd(
        "SUBSCRIBE news",
        b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n",
    );
    publisher.assert_cmd("PUBLISH news hello", b":1\r\n");
    read_expect(
        &mut sub,
        b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n",
        "message published through the proxy",
    );
    stack.direct().assert_cmd("PUBLISH news direct", b":1\r\n");
    read_expect(
        &mut sub,
        b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$6\r\ndirect\r\n",
        "message published to Redis directly",
    );

    // More channels on the same subscription.
    sub.send(&["SUBSCRIBE", "a", "b"]);
    read_expect(
        &mut sub,
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:2\r\n",
        "second channel",
    );
    read_expect(
        &mut sub,
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:3\r\n",
        "third channel",
    );
    publisher.assert_cmd("PUBLISH b x", b":1\r\n");
    read_expect(
        &mut sub,
        b"*3\r\n$7\r\nmessage\r\n$1\r\nb\r\n$1\r\nx\r\n",
        "message on b",
    );

    // PING works in subscribe mode, with the pub/sub reply shape.
    sub.assert_cmd("PING", b"*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    sub.assert_cmd("PING hi", b"*2\r\n$4\r\npong\r\n$2\r\nhi\r\n");
    // Other commands are refused in RESP2 subscribe mode, as Redis does.
    let refused = sub.cmd("GET k");
    assert!(
        refused.starts_with(b"-ERR Can't execute 'get'"),
        "GET while subscribed: {}",
        show(&refused)
    );

    sub.assert_cmd(
        "UNSUBSCRIBE news",
        b"*3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:2\r\n",
    );
    publisher.assert_cmd("PUBLISH news nobody", b":0\r\n");
    // Without arguments: one reply per channel, in an order Redis leaves open.
    sub.send(&["UNSUBSCRIBE"]);
    let (first, second) = (sub.read_frame(), sub.read_frame());
    let mut channels = [&first, &second].map(|f| {
        f.children()
            .get(1)
            .and_then(|c| c.text())
            .map(<[u8]>::to_vec)
    });
    channels.sort();
    assert!(
        channels == [Some(b"a".to_vec()), Some(b"b".to_vec())],
        "{first:?} {second:?}"
    );
    for (frame, left) in [(&first, "1"), (&second, "0")] {
        let kids = frame.children();
        assert!(
            kids.first().and_then(|k| k.text()) == Some(b"unsubscribe".as_slice()),
            "{frame:?}"
        );
        assert!(
            kids.get(2).and_then(|k| k.text()) == Some(left.as_bytes()),
            "{frame:?}"
        );
    }
    // Back in normal mode: ordinary commands work again on the same connection.
    sub.assert_cmd("SET k v", b"+OK\r\n");
    sub.assert_cmd("GET k", b"$1\r\nv\r\n");
    publisher.assert_cmd("PUBLISH b gone", b":0\r\n");
}

#[test]
fn every_subscriber_receives_and_is_counted() {
    let stack = Stack::start();
    let mut subs: Vec<Client> = (0..3).map(|_| stack.client()).collect();
    for s in &mut subs {
        s.assert_cmd(
            "SUBSCRIBE fan",
            b"*3\r\n$9\r\nsubscribe\r\n$3\r\nfan\r\n:1\r\n",
        );
    }
    // PUBLISH counts the receiving clients, as each would count connected to Redis.
    stack.client().assert_cmd("PUBLISH fan out", b":3\r\n");
    stack
        .direct()
        .assert_cmd("PUBSUB NUMSUB fan", b"*2\r\n$3\r\nfan\r\n:3\r\n");
    for s in &mut subs {
        read_expect(
            s,
            b"*3\r\n$7\r\nmessage\r\n$3\r\nfan\r\n$3\r\nout\r\n",
            "fan-out",
        );
    }
    subs[0].assert_cmd(
        "UNSUBSCRIBE fan",
        b"*3\r\n$11\r\nunsubscribe\r\n$3\r\nfan\r\n:0\r\n",
    );
    stack.client().assert_cmd("PUBLISH fan again", b":2\r\n");
    for s in &mut subs[1..] {
        read_expect(
            s,
            b"*3\r\n$7\r\nmessage\r\n$3\r\nfan\r\n$5\r\nagain\r\n",
            "fan-out",
        );
    }
    subs[0].assert_cmd("PING", b"+PONG\r\n");
}

#[test]
fn subscribe_pipelined_with_other_commands() {
    let stack = Stack::start();
    let mut c = stack.client();
    c.send_raw(
        &[
            encode_command(&["SET", "before", "1"]),
            encode_command(&["SUBSCRIBE", "pipe"]),
            encode_command(&["PING"]),
            encode_command(&["UNSUBSCRIBE", "pipe"]),
            encode_command(&["GET", "before"]),
        ]
        .concat(),
    );
    c.assert_reply(b"+OK\r\n");
    c.assert_reply(b"*3\r\n$9\r\nsubscribe\r\n$4\r\npipe\r\n:1\r\n");
    c.assert_reply(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    c.assert_reply(b"*3\r\n$11\r\nunsubscribe\r\n$4\r\npipe\r\n:0\r\n");
    c.assert_reply(b"$1\r\n1\r\n");
}

#[test]
fn psubscribe_pattern_messages() {
    let stack = Stack::start();
    let mut sub = stack.client();
    let mut publisher = stack.client();
    sub.assert_cmd(
        "PSUBSCRIBE news.*",
        b"*3\r\n$10\r\npsubscribe\r\n$6\r\nnews.*\r\n:1\r\n",
    );
    publisher.assert_cmd("PUBLISH news.tech rust", b":1\r\n");
    read_expect(
        &mut sub,
        b"*4\r\n$8\r\npmessage\r\n$6\r\nnews.*\r\n$9\r\nnews.tech\r\n$4\r\nrust\r\n",
        "pattern message",
    );
    publisher.assert_cmd("PUBLISH sport.x nope", b":0\r\n");
    sub.assert_cmd(
        "PUNSUBSCRIBE news.*",
        b"*3\r\n$12\r\npunsubscribe\r\n$6\r\nnews.*\r\n:0\r\n",
    );
    publisher.assert_cmd("PUBLISH news.tech again", b":0\r\n");
    sub.assert_cmd("PING", b"+PONG\r\n");
}

#[test]
fn ssubscribe_shard_messages() {
    let stack = Stack::start();
    let mut sub = stack.client();
    let mut publisher = stack.client();
    sub.assert_cmd(
        "SSUBSCRIBE orders",
        b"*3\r\n$10\r\nssubscribe\r\n$6\r\norders\r\n:1\r\n",
    );
    publisher.assert_cmd("SPUBLISH orders o1", b":1\r\n");
    read_expect(
        &mut sub,
        b"*3\r\n$8\r\nsmessage\r\n$6\r\norders\r\n$2\r\no1\r\n",
        "shard message",
    );
    sub.assert_cmd(
        "SUNSUBSCRIBE orders",
        b"*3\r\n$12\r\nsunsubscribe\r\n$6\r\norders\r\n:0\r\n",
    );
    publisher.assert_cmd("SPUBLISH orders o2", b":0\r\n");
}

#[test]
fn resp3_push_messages_and_commands_while_subscribed() {
    let stack = Stack::start();
    let mut sub = stack.client();
    let mut publisher = stack.client();
    let hello = decode(&sub.cmd("HELLO 3"));
    let proto = hello
        .children()
        .chunks(2)
        .find(|kv| kv[0].text() == Some(b"proto"));
    assert!(
        proto.map(|kv| kv[1].encode()) == Some(b":3\r\n".to_vec()),
        "HELLO 3 reply: {hello:?}"
    );

    sub.assert_cmd(
        "SUBSCRIBE ch",
        b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n",
    );
    publisher.assert_cmd("PUBLISH ch m1", b":1\r\n");
    read_expect(
        &mut sub,
        b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nm1\r\n",
        "RESP3 push message",
    );

    // RESP3 lets a subscribed client run any command; replies and pushes keep their order.
    sub.assert_cmd("SET k v", b"+OK\r\n");
    publisher.assert_cmd("PUBLISH ch m2", b":1\r\n");
    sub.send(&["GET", "k"]);
    read_expect(
        &mut sub,
        b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nm2\r\n",
        "push sent before the GET reply",
    );
    read_expect(&mut sub, b"$1\r\nv\r\n", "GET reply after the push");
    sub.assert_cmd("GET nope", b"_\r\n");
    sub.assert_cmd("PING", b"+PONG\r\n");
    sub.assert_cmd(
        "UNSUBSCRIBE ch",
        b">3\r\n$11\r\nunsubscribe\r\n$2\r\nch\r\n:0\r\n",
    );
    publisher.assert_cmd("PUBLISH ch m3", b":0\r\n");
    sub.assert_cmd("HSET h f v", b":1\r\n");
    sub.assert_cmd("HGETALL h", b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n");
}

#[test]
fn subscriber_disconnect_releases_its_subscription() {
    let stack = Stack::start();
    let mut sub = stack.client();
    sub.assert_cmd(
        "SUBSCRIBE gone",
        b"*3\r\n$9\r\nsubscribe\r\n$4\r\ngone\r\n:1\r\n",
    );
    sub.assert_cmd(
        "PSUBSCRIBE gone.*",
        b"*3\r\n$10\r\npsubscribe\r\n$6\r\ngone.*\r\n:2\r\n",
    );
    drop(sub);
    let mut direct = stack.direct();
    let released = wait_until(WAIT, || {
        direct.cmd("PUBSUB NUMSUB gone") == b"*2\r\n$4\r\ngone\r\n:0\r\n"
            && direct.cmd("PUBSUB NUMPAT") == b":0\r\n"
    });
    assert!(
        released,
        "Redis still has the subscription of a client that left the proxy: NUMSUB {} NUMPAT {}",
        show(&direct.cmd("PUBSUB NUMSUB gone")),
        show(&direct.cmd("PUBSUB NUMPAT"))
    );
}

/// Sends `blocking` through the proxy, waits until Redis reports the client blocked,
/// runs `wake` from another proxy client and checks the blocked call's reply.
fn assert_woken(setup: &[&str], blocking: &[&str], wake: &str, expected: &[u8]) {
    let stack = Stack::start();
    let mut other = stack.client();
    for cmd in setup {
        let reply = other.cmd(cmd);
        assert!(!reply.starts_with(b"-"), "setup {cmd}: {}", show(&reply));
    }
    let mut waiter = stack.client();
    waiter.send(blocking);
    stack.redis.wait_blocked_clients(1, WAIT);
    let reply = other.cmd(wake);
    assert!(!reply.starts_with(b"-"), "{wake}: {}", show(&reply));
    let started = Instant::now();
    read_expect(
        &mut waiter,
        expected,
        &format!("{blocking:?} woken by {wake}"),
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "wake-up took {:?}",
        started.elapsed()
    );
}

#[test]
fn blpop_woken_by_lpush() {
    assert_woken(
        &[],
        &["BLPOP", "bl", "5"],
        "LPUSH bl v1",
        b"*2\r\n$2\r\nbl\r\n$2\r\nv1\r\n",
    );
}

#[test]
fn brpop_woken_by_rpush() {
    assert_woken(
        &[],
        &["BRPOP", "nothing", "br", "5"],
        "RPUSH br a b",
        b"*2\r\n$2\r\nbr\r\n$1\r\nb\r\n",
    );
}

#[test]
fn blmove_woken_by_lpush() {
    assert_woken(
        &[],
        &["BLMOVE", "src", "dst", "LEFT", "RIGHT", "5"],
        "LPUSH src moved",
        b"$5\r\nmoved\r\n",
    );
}

#[test]
fn bzpopmin_woken_by_zadd() {
    assert_woken(
        &[],
        &["BZPOPMIN", "z", "5"],
        "ZADD z 1.5 m",
        b"*3\r\n$1\r\nz\r\n$1\r\nm\r\n$3\r\n1.5\r\n",
    );
}

#[test]
fn xread_block_woken_by_xadd() {
    assert_woken(
        &["XADD s 1-1 old v"],
        &["XREAD", "BLOCK", "5000", "STREAMS", "s", "$"],
        "XADD s 5-1 f v",
        b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n5-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
    );
}

#[test]
fn xreadgroup_block_woken_by_xadd() {
    assert_woken(
        &["XGROUP CREATE s g $ MKSTREAM"],
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c1",
            "BLOCK",
            "5000",
            "STREAMS",
            "s",
            ">",
        ],
        "XADD s 7-1 f v",
        b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n7-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
    );
}

#[test]
fn commands_pipelined_behind_a_blocking_one_wait_for_it() {
    let stack = Stack::start();
    let mut waiter = stack.client();
    waiter.send_raw(
        &[
            encode_command(&["SET", "seen", "before"]),
            encode_command(&["BLPOP", "gate", "5"]),
            encode_command(&["GET", "seen"]),
            encode_command(&["PING"]),
        ]
        .concat(),
    );
    waiter.assert_reply(b"+OK\r\n");
    stack.redis.wait_blocked_clients(1, WAIT);
    // The GET after BLPOP runs only once BLPOP returns, so it sees this write.
    let mut other = stack.client();
    other.assert_cmd("SET seen after", b"+OK\r\n");
    other.assert_cmd("RPUSH gate open", b":1\r\n");
    waiter.assert_reply(b"*2\r\n$4\r\ngate\r\n$4\r\nopen\r\n");
    waiter.assert_reply(b"$5\r\nafter\r\n");
    waiter.assert_reply(b"+PONG\r\n");
}

#[test]
fn blocked_clients_do_not_stall_others() {
    // More blocked clients than pooled upstream connections.
    let stack = Stack::start_with("[upstream]\npool_size = 2");
    let mut waiters: Vec<Client> = (0..4)
        .map(|i| {
            let mut w = stack.client();
            w.send(&["BLPOP", &format!("wait{i}"), "0"]);
            w
        })
        .collect();
    stack.redis.wait_blocked_clients(4, WAIT);

    let mut other = stack.client();
    other.set_read_timeout(Duration::from_secs(1));
    let started = Instant::now();
    for i in 0..20 {
        other.assert_cmd("PING", b"+PONG\r\n");
        other.assert_cmd(&format!("SET free{i} x"), b"+OK\r\n");
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "40 commands took {:?} while 4 clients were blocked",
        started.elapsed()
    );
    // A second client that connects now is served too.
    let mut late = stack.client();
    late.set_read_timeout(Duration::from_secs(1));
    late.assert_cmd("GET free3", b"$1\r\nx\r\n");

    for (i, w) in waiters.iter_mut().enumerate() {
        other.assert_cmd(&format!("LPUSH wait{i} v{i}"), b":1\r\n");
        let expected = format!("*2\r\n$5\r\nwait{i}\r\n$2\r\nv{i}\r\n");
        read_expect(w, expected.as_bytes(), "blocked client woken");
    }
}

#[test]
fn blocking_commands_are_exempt_from_request_timeout() {
    let stack = Stack::start_with("[upstream]\nrequest_timeout = \"200ms\"");
    let mut c = stack.client();
    let started = Instant::now();
    c.assert_cmd("BLPOP nope 1", b"*-1\r\n");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "BLPOP returned early"
    );
    c.assert_cmd("BZPOPMIN nope 0.5", b"*-1\r\n");
    c.assert_cmd("XREAD BLOCK 500 STREAMS nope $", b"*-1\r\n");
    c.assert_cmd("WAIT 0 500", b":0\r\n");
    c.assert_cmd("PING", b"+PONG\r\n");
}

#[test]
fn disconnected_blocked_client_does_not_steal_values() {
    let stack = Stack::start();
    let mut waiter = stack.client();
    waiter.send(&["BLPOP", "orphan", "0"]);
    stack.redis.wait_blocked_clients(1, WAIT);
    drop(waiter);
    // The proxy must end the blocked upstream call when its client goes away,
    // otherwise the next push is popped for nobody.
    let mut direct = stack.direct();
    let released = wait_until(WAIT, || {
        info_field(&mut direct, "clients", "blocked_clients") == Some(0)
    });
    let mut c = stack.client();
    c.assert_cmd("LPUSH orphan v", b":1\r\n");
    let len = c.cmd("LLEN orphan");
    assert!(
        released && len == b":1\r\n",
        "a BLPOP whose client disconnected is still blocked in Redis after {WAIT:?} \
         (blocked_clients never went back to 0), and the next LPUSH was popped for nobody: \
         LLEN {}",
        show(&len)
    );
}

#[test]
fn monitor_sees_commands_from_other_clients() {
    let stack = Stack::start();
    let mut monitor = stack.client();
    monitor.assert_cmd("MONITOR", b"+OK\r\n");
    let mut other = stack.client();
    other.assert_cmd("SET monkey business", b"+OK\r\n");
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let line = monitor.read_reply();
        if contains(&line, b"\"SET\" \"monkey\" \"business\"") {
            break;
        }
        seen.push(show(&line));
        assert!(
            Instant::now() < deadline,
            "MONITOR never showed the SET; saw {seen:?}"
        );
    }
}

#[test]
fn client_setname_getname_round_trip() {
    let stack = Stack::start();
    let mut a = stack.client();
    let mut b = stack.client();
    a.assert_cmd("CLIENT GETNAME", b"$-1\r\n");
    a.assert_cmd("CLIENT SETNAME app-one", b"+OK\r\n");
    a.assert_cmd("CLIENT GETNAME", b"$7\r\napp-one\r\n");
    // Names belong to one client, not to a shared upstream connection.
    b.assert_cmd("CLIENT GETNAME", b"$-1\r\n");
    b.assert_cmd("CLIENT SETNAME app-two", b"+OK\r\n");
    for _ in 0..10 {
        a.assert_cmd("PING", b"+PONG\r\n");
    }
    a.assert_cmd("CLIENT GETNAME", b"$7\r\napp-one\r\n");
    b.assert_cmd("CLIENT GETNAME", b"$7\r\napp-two\r\n");
    a.assert_cmd(
        "CLIENT SETNAME",
        b"-ERR wrong number of arguments for 'client|setname' command\r\n",
    );
}

#[test]
fn client_id_is_a_stable_integer() {
    let stack = Stack::start();
    let mut a = stack.client();
    let first = a.cmd("CLIENT ID");
    let id = decode(&first);
    assert!(
        matches!(&id, support::Frame::Line(b':', digits) if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)),
        "CLIENT ID: {}",
        show(&first)
    );
    a.assert_cmd("SET x 1", b"+OK\r\n");
    assert!(
        a.cmd("CLIENT ID") == first,
        "CLIENT ID changed between two calls of one client"
    );
}

#[test]
fn quit_replies_ok_and_closes() {
    let stack = Stack::start();
    let mut a = stack.client();
    a.assert_cmd("SET q 1", b"+OK\r\n");
    a.assert_cmd("QUIT", b"+OK\r\n");
    assert!(a.closed_within(WAIT), "connection still open after QUIT");

    // Commands pipelined after QUIT are not run.
    let mut b = stack.client();
    b.send_raw(b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nQUIT\r\n*2\r\n$4\r\nINCR\r\n$1\r\nq\r\n");
    read_expect(&mut b, b"+PONG\r\n", "PING before QUIT");
    read_expect(&mut b, b"+OK\r\n", "QUIT");
    assert!(
        b.closed_within(WAIT),
        "connection still open after pipelined QUIT"
    );

    // QUIT ended only those clients, not the proxy's upstream connections.
    let mut c = stack.client();
    c.assert_cmd("PING", b"+PONG\r\n");
    let q = c.cmd("GET q");
    assert!(
        q == b"$1\r\n1\r\n",
        "the INCR pipelined after QUIT was run (GET q = {}); Redis runs nothing after QUIT",
        show(&q)
    );
}

#[test]
fn reset_restores_connection_defaults() {
    let stack = Stack::start();
    let mut c = stack.client();
    c.assert_cmd("SELECT 1", b"+OK\r\n");
    c.assert_cmd("SET rk one", b"+OK\r\n");
    c.assert_cmd("CLIENT SETNAME named", b"+OK\r\n");
    c.assert_cmd("RESET", b"+RESET\r\n");
    c.assert_cmd("GET rk", b"$-1\r\n");
    c.assert_cmd("CLIENT GETNAME", b"$-1\r\n");
    c.assert_cmd("SELECT 1", b"+OK\r\n");
    c.assert_cmd("GET rk", b"$3\r\none\r\n");

    // RESET leaves MULTI.
    c.assert_cmd("MULTI", b"+OK\r\n");
    c.assert_cmd("SET rk two", b"+QUEUED\r\n");
    c.assert_cmd("RESET", b"+RESET\r\n");
    c.assert_cmd("SELECT 1", b"+OK\r\n");
    c.assert_cmd("GET rk", b"$3\r\none\r\n");

    // RESET goes back to RESP2.
    let hello = c.cmd("HELLO 3");
    assert!(hello.starts_with(b"%"), "HELLO 3: {}", show(&hello));
    c.assert_cmd("GET nope", b"_\r\n");
    c.assert_cmd("RESET", b"+RESET\r\n");
    c.assert_cmd("GET nope", b"$-1\r\n");

    // RESET leaves subscribe mode and drops the subscription.
    c.assert_cmd(
        "SUBSCRIBE rch",
        b"*3\r\n$9\r\nsubscribe\r\n$3\r\nrch\r\n:1\r\n",
    );
    c.assert_cmd("RESET", b"+RESET\r\n");
    c.assert_cmd("GET nope", b"$-1\r\n");
    stack.direct().assert_cmd("PUBLISH rch x", b":0\r\n");
}

#[test]
fn client_tracking_sends_invalidation_push() {
    let stack = Stack::start();
    let mut tracker = stack.client();
    let mut writer = stack.client();
    assert!(tracker.cmd("HELLO 3").starts_with(b"%"));
    tracker.assert_cmd("CLIENT TRACKING ON", b"+OK\r\n");
    writer.assert_cmd("SET tk v1", b"+OK\r\n");
    tracker.assert_cmd("GET tk", b"$2\r\nv1\r\n");
    writer.assert_cmd("SET tk v2", b"+OK\r\n");
    read_expect(
        &mut tracker,
        b">2\r\n$10\r\ninvalidate\r\n*1\r\n$2\r\ntk\r\n",
        "invalidation push",
    );
    tracker.assert_cmd("GET tk", b"$2\r\nv2\r\n");
    tracker.assert_cmd("CLIENT TRACKING OFF", b"+OK\r\n");
    writer.assert_cmd("SET tk v3", b"+OK\r\n");
    tracker.assert_cmd("PING", b"+PONG\r\n");
}

#[test]
fn client_tracking_redirect_to_a_subscribed_client() {
    // The RESP2 client-side-caching flow: one connection learns its CLIENT ID and
    // subscribes to __redis__:invalidate, another redirects its invalidations there.
    let stack = Stack::start();
    let mut listener = stack.client();
    let id_reply = listener.cmd("CLIENT ID");
    let id = String::from_utf8_lossy(&id_reply)
        .trim_start_matches(':')
        .trim()
        .to_string();
    listener.assert_cmd(
        "SUBSCRIBE __redis__:invalidate",
        b"*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n",
    );
    let mut tracked = stack.client();
    tracked.assert_cmd(&format!("CLIENT TRACKING ON REDIRECT {id}"), b"+OK\r\n");
    tracked.assert_cmd("SET rk v1", b"+OK\r\n");
    tracked.assert_cmd("GET rk", b"$2\r\nv1\r\n");
    stack.client().assert_cmd("SET rk v2", b"+OK\r\n");
    read_expect(
        &mut listener,
        b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$2\r\nrk\r\n",
        "invalidation redirected to the client whose CLIENT ID was given",
    );
}
