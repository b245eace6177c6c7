//! Failed `RESPITE AUTH` attempts, per source address: after [`MAX_FAILURES`] within
//! [`WINDOW`] of the first, further attempts from that address are refused without
//! looking at the password until the window has passed. IPv6 addresses count per /64
//! (what one host is usually given). The table is bounded ([`CAPACITY`] addresses):
//! when it is full, windows that ended are dropped, then the one that ends first.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::Mutex,
    time::{Duration, Instant},
};

pub const MAX_FAILURES: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(60);
pub const CAPACITY: usize = 10_000;

/// The failures of one address since its window started.
#[derive(Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

pub struct AuthThrottle {
    table: Mutex<HashMap<IpAddr, Window>>,
    capacity: usize,
}

impl Default for AuthThrottle {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl AuthThrottle {
    pub fn with_capacity(capacity: usize) -> Self {
        AuthThrottle {
            table: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// `Err(wait)`: `ip` failed too often and may try again in `wait`.
    pub fn check(&self, ip: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let table = self.table.lock().expect("auth throttle");
        match table.get(&key(ip)) {
            Some(w) if w.failures >= MAX_FAILURES && now < w.started + WINDOW => {
                Err(w.started + WINDOW - now)
            }
            _ => Ok(()),
        }
    }

    /// Counts a wrong password from `ip`.
    pub fn failed(&self, ip: Option<IpAddr>, now: Instant) {
        let mut table = self.table.lock().expect("auth throttle");
        let key = key(ip);
        if !table.contains_key(&key) && table.len() >= self.capacity {
            make_room(&mut table, self.capacity, now);
        }
        let fresh = Window {
            started: now,
            failures: 0,
        };
        let w = table.entry(key).or_insert(fresh);
        if now >= w.started + WINDOW {
            *w = fresh;
        }
        w.failures += 1;
    }

    /// The right password from `ip`: its failures are forgotten.
    pub fn succeeded(&self, ip: Option<IpAddr>) {
        self.table.lock().expect("auth throttle").remove(&key(ip));
    }
}

/// Drops the windows that ended, or else the one that ends first.
fn make_room(table: &mut HashMap<IpAddr, Window>, capacity: usize, now: Instant) {
    table.retain(|_, w| now < w.started + WINDOW);
    if table.len() < capacity {
        return;
    }
    let oldest = table.iter().min_by_key(|(_, w)| w.started).map(|(k, _)| *k);
    if let Some(k) = oldest {
        table.remove(&k);
    }
}

/// What failures are counted under: the address, an IPv6 one cut to its /64; an
/// unknown source is one address of its own.
fn key(ip: Option<IpAddr>) -> IpAddr {
    match ip.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V6(v6)) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        Some(v4) => v4,
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn refuses_after_max_failures_until_the_window_passes() {
        let t = AuthThrottle::default();
        let start = Instant::now();
        for i in 0..MAX_FAILURES {
            assert!(t.check(ip("10.0.0.1"), start).is_ok(), "attempt {i}");
            t.failed(ip("10.0.0.1"), start);
        }
        let wait = t.check(ip("10.0.0.1"), start + Duration::from_secs(1));
        assert_eq!(wait, Err(WINDOW - Duration::from_secs(1)));
        assert!(t.check(ip("10.0.0.2"), start).is_ok(), "another address");
        assert!(
            t.check(ip("10.0.0.1"), start + WINDOW).is_ok(),
            "window over"
        );
        // A new window starts with the next failure.
        t.failed(ip("10.0.0.1"), start + WINDOW);
        assert!(t.check(ip("10.0.0.1"), start + WINDOW).is_ok());
    }

    #[test]
    fn success_forgets_the_failures() {
        let t = AuthThrottle::default();
        let now = Instant::now();
        for _ in 0..MAX_FAILURES - 1 {
            t.failed(ip("10.0.0.1"), now);
        }
        t.succeeded(ip("10.0.0.1"));
        t.failed(ip("10.0.0.1"), now);
        assert!(t.check(ip("10.0.0.1"), now).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let t = AuthThrottle::default();
        let now = Instant::now();
        for i in 0..MAX_FAILURES {
            t.failed(ip(&format!("2001:db8:1:2::{i:x}")), now);
        }
        assert!(t.check(ip("2001:db8:1:2:ffff::1"), now).is_err());
        assert!(t.check(ip("2001:db8:1:3::1"), now).is_ok());
        for _ in 0..MAX_FAILURES {
            t.failed(ip("::ffff:10.0.0.9"), now);
        }
        assert!(t.check(ip("10.0.0.9"), now).is_err());
    }

    #[test]
    fn the_table_stays_bounded() {
        let t = AuthThrottle::with_capacity(100);
        let start = Instant::now();
        for i in 0..1000u32 {
            let at = start + Duration::from_millis(u64::from(i));
            t.failed(Some(IpAddr::V4(Ipv4Addr::from(i))), at);
        }
        assert!(t.table.lock().unwrap().len() <= 100);
        // The newest addresses were kept.
        assert!(
            t.table
                .lock()
                .unwrap()
                .contains_key(&IpAddr::V4(Ipv4Addr::from(999)))
        );
    }
}
