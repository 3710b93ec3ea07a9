//! A circuit breaker in front of the backend: after consecutive failures the
//! read path stops calling Redis for a cool-down (calls run their bodies with
//! no added latency), then lets one call probe; success closes it.
//!
//! The probe is a [`Permit`]: if its call is dropped before the backend
//! answered (a caller's timeout, a `select!`), dropping the permit lets the
//! next call probe, so a cancelled probe cannot keep the breaker open.

use std::sync::atomic::Ordering::Relaxed;

use crate::shim::{self, AtomicU32, AtomicU64, Weakening};
use std::time::{Duration, Instant};

pub(crate) struct Breaker {
    threshold: u32,
    cool_down: Duration,
    failures: AtomicU32,
    /// When it opened, in nanoseconds since `base` plus one; 0 while closed.
    opened_at: AtomicU64,
    /// The id of the probe in flight (half-open), 0 when none.
    probing: AtomicU64,
    /// When that probe was let through (as `opened_at`): one out for
    /// [`STRANDED`] or a cool-down, whichever is longer, is presumed
    /// stranded (its call parked on a runtime nobody drives) and no longer
    /// keeps another from probing.
    probe_since: AtomicU64,
    next_probe: AtomicU64,
    base: Instant,
}

/// The least time a probe may be out before another may probe.
const STRANDED: Duration = Duration::from_secs(1);

/// Leave to use the backend for one call.
#[must_use]
pub(crate) struct Permit<'a> {
    /// The breaker and the probe's id, when this call is the probe.
    probe: Option<(&'a Breaker, u64)>,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Some((breaker, id)) = self.probe {
            if shim::weakened(Weakening::ProbeKeptWhenDropped) {
                return;
            }
            // Unanswered (or already answered, then this changes nothing).
            let _ = breaker.probing.compare_exchange(id, 0, Relaxed, Relaxed);
        }
    }
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
            probing: AtomicU64::new(0),
            probe_since: AtomicU64::new(0),
            next_probe: AtomicU64::new(1),
            base: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }

    /// Whether this call may use the backend: a permit to hold until the
    /// backend answered.
    pub(crate) fn allow(&self) -> Option<Permit<'_>> {
        let opened = self.opened_at.load(Relaxed);
        if opened == 0 {
            return Some(Permit { probe: None });
        }
        let cool = u64::try_from(self.cool_down.as_nanos()).unwrap_or(u64::MAX);
        if self.now().saturating_sub(opened) < cool {
            return None;
        }
        // Half-open: one caller probes, unless the probe out is stranded.
        let now = self.now();
        let current = self.probing.load(Relaxed);
        let stranded = cool.max(STRANDED.as_nanos() as u64);
        if current != 0 && now.saturating_sub(self.probe_since.load(Relaxed)) < stranded {
            return None;
        }
        let id = self.next_probe.fetch_add(1, Relaxed);
        self.probing
            .compare_exchange(current, id, Relaxed, Relaxed)
            .ok()
            .map(|_| {
                self.probe_since.store(now, Relaxed);
                Permit {
                    probe: Some((self, id)),
                }
            })
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
        self.probing.store(0, Relaxed);
        true
    }

    /// Records a failure.
    pub(crate) fn failure(&self) -> Tripped {
        if self.opened_at.load(Relaxed) != 0 {
            // A failed probe: stay open for another cool-down.
            self.opened_at.store(self.now(), Relaxed);
            self.probing.store(0, Relaxed);
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
        assert!(b.allow().is_some());
        assert_eq!(b.failure(), Tripped::Opened);
        assert!(b.allow().is_none());
        std::thread::sleep(Duration::from_millis(30));
        let probe = b.allow();
        assert!(probe.is_some(), "one probe");
        assert!(b.allow().is_none(), "only one probe");
        assert_eq!(b.failure(), Tripped::No); // the probe failed
        drop(probe);
        assert!(b.allow().is_none());
        std::thread::sleep(Duration::from_millis(30));
        let probe = b.allow();
        assert!(probe.is_some());
        assert!(b.success(), "the probe closed it");
        drop(probe);
        assert!(b.allow().is_some() && b.allow().is_some());
    }

    #[test]
    fn a_stranded_probe_lets_another_probe() {
        let b = Breaker::new(1, Duration::from_millis(20));
        assert_eq!(b.failure(), Tripped::Opened);
        std::thread::sleep(Duration::from_millis(30));
        // Its call is parked on a runtime that is never driven again.
        let stranded = b.allow().expect("the probe");
        assert!(b.allow().is_none(), "only one probe");
        std::thread::sleep(STRANDED + Duration::from_millis(30));
        let next = b.allow().expect("another probe");
        assert!(b.allow().is_none(), "one probe again");
        assert!(b.success());
        drop((stranded, next));
        assert!(b.allow().is_some());
    }

    #[test]
    fn a_dropped_probe_lets_the_next_call_probe() {
        let b = Breaker::new(1, Duration::from_millis(10));
        assert_eq!(b.failure(), Tripped::Opened);
        std::thread::sleep(Duration::from_millis(20));
        let probe = b.allow().expect("the probe");
        assert!(b.allow().is_none());
        drop(probe); // its caller was cancelled before the backend answered
        let next = b.allow();
        assert!(next.is_some(), "the breaker stayed half-open for good");
        assert!(b.success());
    }
}
