//! Read pressure: while the clients run, a few readers keep reading the shared keys of
//! cached namespaces through the proxy, two at a time, so that L1 misses and fills are
//! in flight whenever a client writes a key and reads it back. Issue 12 item 6 needs
//! exactly that (a read joining a fill that began before the reader's own write);
//! lockstep clients alone read too seldom to meet it. The readers' reads go to the
//! model like any other (they write nothing, so only "a value nobody wrote" and, with
//! `RESPITE_FUZZ_RYW=all`, staleness apply to them).

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use rand::{SeedableRng, rngs::StdRng, seq::IndexedRandom};

use crate::{
    args,
    check::{self, Reg},
    config::Target,
    keys,
    model::{At, Event},
    support::{Client, resp},
};

/// The registers the readers read: every shared key and field of cached namespaces.
fn registers(target: &Target) -> Vec<Reg> {
    let mut regs = Vec::new();
    for ns in target.namespaces.iter().filter(|ns| ns.l1) {
        for n in 0..keys::shared_keys() {
            regs.push(Reg {
                key: keys::shared_key(ns, n),
                field: None,
            });
            for f in ["f1", "f2"] {
                regs.push(Reg {
                    key: keys::shared_hash(ns, n),
                    field: Some(f.into()),
                });
            }
        }
    }
    regs
}

/// Reader `id` (numbered after the clients): reads until `done`, returns its events.
pub fn reader(
    id: usize,
    seed: u64,
    target: &Target,
    proxy: SocketAddr,
    done: &AtomicBool,
) -> Vec<Event> {
    let regs = registers(target);
    let mut events = Vec::new();
    if regs.is_empty() {
        return events;
    }
    let mut rng = StdRng::seed_from_u64(seed ^ id as u64);
    let mut client = Client::connect(proxy);
    client.set_read_timeout(Duration::from_secs(10));
    let mut n = 0;
    while !done.load(Ordering::Relaxed) {
        let pair = [
            regs.choose(&mut rng).expect("regs").clone(),
            regs.choose(&mut rng).expect("regs").clone(),
        ];
        let cmds: Vec<Vec<Vec<u8>>> = pair
            .iter()
            .map(|r| match &r.field {
                None => args!["GET", &r.key],
                Some(f) => args!["HGET", &r.key, f],
            })
            .collect();
        let bytes: Vec<u8> = cmds.iter().flat_map(|c| resp::encode_command(c)).collect();
        let send = Instant::now();
        if client.try_send_raw(&bytes).is_err() {
            break;
        }
        for (reg, cmd) in pair.into_iter().zip(&cmds) {
            let Ok(reply) = client.try_read_reply() else {
                return events;
            };
            let ack = Instant::now();
            n += 1;
            if let Ok(got) = check::read_value(&resp::decode(&reply), None) {
                let at = At {
                    client: id,
                    step: format!("reader read {n}: {}", resp::show_command(cmd)),
                };
                events.push(Event::Read {
                    reg: (0, reg),
                    got,
                    send,
                    ack,
                    at,
                    order: (0, n),
                });
            }
        }
    }
    events
}
