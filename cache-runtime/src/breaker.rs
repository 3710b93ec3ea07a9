//! A circuit breaker in front of the backend: after consecutive failures the
//! read path stops calling Redis for a cool-down (calls run their bodies with
//! no added latency), then lets one call probe; success closes it.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

pub(crate) struct Breaker {
    threshold: u32,
    cool_down: Duration,
    failures: AtomicU32,
    /// When it opened, in nanoseconds since `base` plus one; 0 while closed.
    opened_at: AtomicU64,
    /// A probe is in flight (half-open).
    probing: AtomicBool,
    base: Instant,
}

/// What a failure did to the breaker.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tripped {
    No,
    Opened,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cool_down: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            cool_down,
            failures: AtomicU32::new(0),
            opened_at: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            base: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }

    /// Whether this call may use the backend.
    pub(crate) fn allow(&self) -> bool {
        let opened = self.opened_at.load(Relaxed);
        if opened == 0 {
            return true;
        }
        let cool = u64::try_from(self.cool_down.as_nanos()).unwrap_or(u64::MAX);
        if self.now().saturating_sub(opened) < cool {
            return false;
        }
        // Half-open: one caller probes.
        self.probing
            .compare_exchange(false, true, Relaxed, Relaxed)
            .is_ok()
    }

    /// Whether it is open now (for stats).
    pub(crate) fn is_open(&self) -> bool {
        self.opened_at.load(Relaxed) != 0
    }

    /// Records a success; returns true if it closed the breaker.
    pub(crate) fn success(&self) -> bool {
        if self.failures.load(Relaxed) != 0 {
            self.failures.store(0, Relaxed);
        }
        if self.opened_at.load(Relaxed) == 0 {
            return false;
        }
        self.opened_at.store(0, Relaxed);
        self.probing.store(false, Relaxed);
        true
    }

    /// Records a failure.
    pub(crate) fn failure(&self) -> Tripped {
        if self.opened_at.load(Relaxed) != 0 {
            // A failed probe: stay open for another cool-down.
            self.opened_at.store(self.now(), Relaxed);
            self.probing.store(false, Relaxed);
            return Tripped::No;
        }
        let failures = self.failures.fetch_add(1, Relaxed) + 1;
        if failures >= self.threshold
            && self
                .opened_at
                .compare_exchange(0, self.now(), Relaxed, Relaxed)
                .is_ok()
        {
            return Tripped::Opened;
        }
        Tripped::No
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_probes_after_the_cool_down() {
        let b = Breaker::new(3, Duration::from_millis(20));
        assert_eq!(b.failure(), Tripped::No);
        assert_eq!(b.failure(), Tripped::No);
        assert!(b.allow());
        assert_eq!(b.failure(), Tripped::Opened);
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(30));
        assert!(b.allow(), "one probe");
        assert!(!b.allow(), "only one probe");
        assert_eq!(b.failure(), Tripped::No); // the probe failed
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(30));
        assert!(b.allow());
        assert!(b.success(), "the probe closed it");
        assert!(b.allow() && b.allow());
    }
}
