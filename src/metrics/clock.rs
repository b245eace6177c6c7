//! A per-thread recent reading of the clock, in nanoseconds since the process started
//! ("ticks"). Whoever reads the clock anyway on an event loop (a client's input read,
//! an upstream connection's reply read) leaves it here, and latencies are differences
//! of ticks: a turn of a client's loop reads no clock of its own.

use std::{
    cell::Cell,
    sync::LazyLock,
    time::{Duration, Instant},
};

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

thread_local! {
    static RECENT: Cell<u64> = const { Cell::new(0) };
}

/// `at` in ticks.
pub fn ticks_of(at: Instant) -> u64 {
    at.saturating_duration_since(*EPOCH).as_nanos() as u64
}

/// Reads the clock, and leaves the reading for this thread.
pub fn now_ticks() -> u64 {
    let now = ticks_of(Instant::now());
    RECENT.set(now);
    now
}

/// Leaves a reading taken anyway for this thread.
#[inline]
pub fn note(at: Instant) {
    RECENT.set(ticks_of(at));
}

/// The last reading left on this thread.
#[inline]
pub fn recent_ticks() -> u64 {
    RECENT.get()
}

/// The last reading left on this thread, as an `Instant`.
pub fn recent() -> Instant {
    *EPOCH + Duration::from_nanos(recent_ticks())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_are_left_for_the_thread() {
        let t = now_ticks();
        assert_eq!(recent_ticks(), t);
        let later = Instant::now() + Duration::from_millis(5);
        note(later);
        assert!(recent_ticks() >= t + 5_000_000);
        assert!(recent() >= later - Duration::from_micros(1));
        std::thread::spawn(|| assert_eq!(recent_ticks(), 0))
            .join()
            .unwrap();
    }
}
