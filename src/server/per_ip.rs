//! `[server] max_clients_per_ip`: connections open per source address. Touched once
//! when a client is accepted and once when it leaves; an address with no connection
//! left has no entry, so the table is bounded by the connections open.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
};

/// Connections open per address, within `limit`.
pub struct PerIp {
    limit: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection counted for its address until it drops.
pub struct Held {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerIp {
    pub fn new(limit: usize) -> PerIp {
        PerIp {
            limit,
            open: Arc::default(),
        }
    }

    /// Counts a connection from `ip`; `None` when `limit` are open from it already.
    pub fn admit(&self, ip: IpAddr) -> Option<Held> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock().expect("per-ip counts");
        let n = open.entry(ip).or_insert(0);
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(Held {
            ip,
            open: self.open.clone(),
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("per-ip counts");
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_address_and_forgets_closed_ones() {
        let limits = PerIp::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        let first = limits.admit(a).unwrap();
        let _second = limits.admit(a).unwrap();
        assert!(limits.admit(a).is_none());
        assert!(limits.admit(b).is_some(), "another address");
        drop(first);
        let _third = limits.admit(a).expect("room again");
        drop(_third);
        drop(_second);
        assert!(limits.open.lock().unwrap().is_empty(), "no entry left");
    }
}
