//! Loopback ports for the servers tests start. A Redis that is stopped and restarted
//! keeps its port reserved in between, so a test running in parallel cannot bind it
//! and receive the other test's reconnecting proxy.

use std::{
    collections::HashSet,
    net::TcpListener,
    sync::{Mutex, MutexGuard},
};

static RESERVED: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

fn reserved() -> MutexGuard<'static, Option<HashSet<u16>>> {
    RESERVED.lock().unwrap_or_else(|e| e.into_inner())
}

/// A listener on a free loopback port that no stopped server has reserved.
pub fn bind_loopback() -> TcpListener {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        if !reserved().get_or_insert_with(HashSet::new).contains(&port) {
            return listener;
        }
    }
}

/// A port nobody listens on now, reserved until `release`.
pub fn reserve() -> u16 {
    loop {
        let port = bind_loopback().local_addr().unwrap().port();
        if reserved().get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

pub fn release(port: u16) {
    if let Some(set) = reserved().as_mut() {
        set.remove(&port);
    }
}
