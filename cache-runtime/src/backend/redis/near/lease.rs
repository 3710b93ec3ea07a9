//! Lease reads: a kept lookup served at once, with no ordering round trip,
//! while a recent one on its connection is known.
//!
//! Why it holds. Each tracked connection remembers its confirmation: the
//! instant, taken before an ordering round trip was queued, of the latest
//! one whose reply has arrived (`Confirmation`). A hit of a lookup kept
//! from that connection is served at once while `now - confirmed <= L`,
//! where `L` is the reader's lease (the smaller of its own and the
//! namespace's, below). Every bust returns only once `wait(W)` has passed
//! on the writer's monotonic clock since Redis acknowledged it, `W` being
//! at least every reader's `L` (the larger of the writer's own lease and
//! the namespace's, learned in the bust's own round trip). So a read that
//! starts after a bust returned, and is served under a confirmation, has
//! that confirmation queued after the acknowledgement, even with both
//! clocks off in rate by up to 500 ppm each: its round trip reached Redis
//! after the bust, and its reply came behind the bust's invalidation
//! message, which was applied before the reply was handed out (the I12
//! facts). Assumed: a bounded clock rate error (NTP slews
//! `CLOCK_MONOTONIC` by at most 500 ppm) and a FIFO connection; and every
//! writer of the namespace on a version of cachette that waits.
//!
//! The namespace's lease. A process with a lease adds it to a sorted set
//! under `names::lease_name` (`ZADD`: it only ever grows) and every
//! ordering round trip of a single server reads the largest one back
//! (`ZRANGE name -1 -1`). Every bust reads it after its writes. A reader
//! uses the smaller of its own lease and what it knows of the namespace's:
//! none while it knows none (the name missing, evicted, flushed, changed
//! and not read again: lost bookkeeping costs round trips). A value learned
//! lower applies at once; a value learned higher applies only to
//! confirmations queued after the reply that carried it arrived, since a
//! bust that read the old value read it before that reply was sent, so
//! before any such confirmation reached Redis.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::policy::Monotonic;
use crate::shim::{self as checked, AtomicBool, AtomicU64, Weakening};

/// The longest lease there is: a confirmation packs it in 20 bits of
/// microseconds, and no writer waits longer whatever Redis holds.
pub(crate) const MAX_LEASE: Duration = Duration::from_micros((1 << 20) - 1);

/// Bits of a packed confirmation that hold its lease.
const LEASE_BITS: u32 = 20;

/// What a bust waits after its acknowledgement for a lease of `lease`:
/// the lease, padded for two clocks each off in rate by up to 500 ppm,
/// plus a fixed margin.
pub(crate) fn wait(lease: Duration) -> Duration {
    if lease.is_zero() {
        return Duration::ZERO;
    }
    let lease = lease.min(MAX_LEASE);
    lease + lease / 500 + Duration::from_micros(100)
}

/// Microseconds in `d`, saturating.
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A lease read back from Redis (`ZRANGE name -1 -1`): the member, in
/// microseconds. Anything else is none.
pub(crate) fn parse(reply: &redis::Value) -> Option<Duration> {
    let member = match reply {
        redis::Value::Array(members) | redis::Value::Set(members) => members.first()?,
        _ => return None,
    };
    let text = match member {
        redis::Value::BulkString(b) => std::str::from_utf8(b).ok()?,
        redis::Value::SimpleString(s) => s.as_str(),
        _ => return None,
    };
    let us: u64 = text.parse().ok()?;
    (us > 0).then(|| Duration::from_micros(us).min(MAX_LEASE))
}

/// The process's leases: its own, and what it knows of the namespace's.
pub(crate) struct Lease {
    /// This process's lease (zero: it serves no hit under a lease).
    own: Duration,
    /// The name of the namespace's lease in Redis.
    pub name: Box<str>,
    /// The namespace's lease as last learned, in microseconds (0: none
    /// known).
    namespace: AtomicU64,
    /// The largest namespace lease a bust of this process learned: its
    /// busts keep waiting that long, should the name be lost.
    largest_seen: AtomicU64,
    pub clock: Arc<dyn Monotonic>,
}

impl Lease {
    pub(crate) fn new(own: Duration, name: String, clock: Arc<dyn Monotonic>) -> Lease {
        Lease {
            own: own.min(MAX_LEASE),
            name: name.into(),
            namespace: AtomicU64::new(0),
            largest_seen: AtomicU64::new(0),
            clock,
        }
    }

    /// Whether hits may be served under a lease.
    pub(crate) fn reads(&self) -> bool {
        !self.own.is_zero()
    }

    /// The lease a hit may use now, in microseconds: the smaller of this
    /// process's and the namespace's as known (0: none).
    pub(crate) fn now_us(&self) -> u64 {
        micros(self.own).min(self.namespace.load(Ordering::Acquire))
    }

    /// Learns the namespace's lease from a reply that has arrived: lower
    /// applies at once, higher to confirmations queued from now on (they
    /// take `now_us` when queued).
    pub(crate) fn learn(&self, namespace: Option<Duration>) {
        let us = namespace.map_or(0, micros);
        self.namespace.store(us, Ordering::Release);
    }

    /// The namespace's lease changed in Redis (its invalidation message):
    /// none is known until it is read again.
    pub(crate) fn forget(&self) {
        self.namespace.store(0, Ordering::Release);
    }

    /// What a bust waits after its acknowledgement, having read the
    /// namespace's lease as `namespace`.
    pub(crate) fn writer_wait(&self, namespace: Option<Duration>) -> Duration {
        let read = namespace.map_or(0, micros);
        let largest = self
            .largest_seen
            .fetch_max(read, Ordering::AcqRel)
            .max(read);
        wait(self.own.max(Duration::from_micros(largest)))
    }
}

/// Adds this process's lease to the namespace's (`ZADD`: the set keeps
/// every lease its readers use, so what a bust reads never shrinks while
/// the name lives), with the epoch's lifetime.
pub(crate) fn assert_cmd(lease: &Lease) -> redis::Pipeline {
    let us = micros(lease.own);
    let mut pipe = redis::pipe();
    pipe.cmd("ZADD")
        .arg(&*lease.name)
        .arg(us)
        .arg(us)
        .ignore()
        .cmd("PEXPIRE")
        .arg(&*lease.name)
        .arg(crate::policy::millis(crate::backend::stored::EPOCH_TTL))
        .ignore();
    pipe
}

/// Reads the namespace's lease, the largest of its set.
pub(crate) fn read_cmd(name: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("ZRANGE");
    cmd.arg(name).arg(-1).arg(-1);
    cmd
}

/// A tracked connection's latest confirmation: when (before it was queued)
/// the latest ordering round trip whose reply arrived was sent, and the
/// lease known then; gone with the connection's session.
pub(crate) struct Confirmation {
    /// The instant confirmations count from.
    base: Instant,
    /// Microseconds since `base` of the confirmation, shifted left by
    /// `LEASE_BITS`, or'ed with the lease known when it was queued (0: no
    /// confirmation). One word, so that a hit never reads half of one.
    packed: AtomicU64,
    /// The lease in a word of its own: only under the weakening that
    /// shows why it is packed (`Weakening::TornConfirmation`).
    torn_lease: AtomicU64,
    /// A refresh round trip is in flight.
    refreshing: AtomicBool,
}

impl Confirmation {
    pub(crate) fn new(base: Instant) -> Confirmation {
        Confirmation {
            base,
            packed: AtomicU64::new(0),
            torn_lease: AtomicU64::new(0),
            refreshing: AtomicBool::new(false),
        }
    }

    /// Records a round trip queued at `sent`, with `lease_us` known then,
    /// whose reply has arrived; an older one than the one recorded is
    /// ignored.
    pub(crate) fn record(&self, sent: Instant, lease_us: u64) {
        let Some(since) = sent.checked_duration_since(self.base) else {
            return;
        };
        let since = micros(since);
        if since >= 1 << (64 - LEASE_BITS) || lease_us == 0 {
            return;
        }
        let lease_us = lease_us.min((1 << LEASE_BITS) - 1);
        if checked::weakened(Weakening::TornConfirmation) {
            self.torn_lease.store(lease_us, Ordering::Release);
        }
        let packed = (since << LEASE_BITS) | lease_us;
        let mut current = self.packed.load(Ordering::Acquire);
        while current == 0 || current >> LEASE_BITS < since {
            match self.packed.compare_exchange_weak(
                current,
                packed,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }

    /// How much of the lease is left at `now` under `cap_us` (the lease a
    /// hit may use now), if the confirmation still covers a hit.
    pub(crate) fn left(&self, now: Instant, cap_us: u64) -> Option<Duration> {
        let packed = self.packed.load(Ordering::Acquire);
        if packed == 0 || cap_us == 0 {
            return None;
        }
        let sent = packed >> LEASE_BITS;
        let lease = if checked::weakened(Weakening::TornConfirmation) {
            self.torn_lease.load(Ordering::Acquire)
        } else {
            packed & ((1 << LEASE_BITS) - 1)
        };
        let lease = lease.min(cap_us);
        let now = micros(now.checked_duration_since(self.base)?);
        let age = now.checked_sub(sent)?;
        (age <= lease).then(|| Duration::from_micros(lease - age))
    }

    /// Takes the refresh slot: `None` while a refresh is in flight.
    pub(crate) fn start_refresh(self: &Arc<Self>) -> Option<Refreshing> {
        if checked::weakened(Weakening::RefreshCheckedThenSet) {
            if self.refreshing.load(Ordering::Acquire) {
                return None;
            }
            self.refreshing.store(true, Ordering::Release);
            return Some(Refreshing(self.clone()));
        }
        (!self.refreshing.swap(true, Ordering::AcqRel)).then(|| Refreshing(self.clone()))
    }
}

/// The connection's one refresh in flight; frees the slot when dropped.
pub(crate) struct Refreshing(Arc<Confirmation>);

impl Drop for Refreshing {
    fn drop(&mut self) {
        self.0.refreshing.store(false, Ordering::Release);
    }
}

/// The confirmation under loom (`crate::loom`): a hit that reads it while
/// a newer one with a raised lease is recorded sees the old one or the new
/// one, never the old instant with the new lease.
#[cfg(all(test, feature = "__loom"))]
pub(crate) fn a_hit_reads_one_confirmation_whole() {
    let base = Instant::now();
    let at = move |us| base + Duration::from_micros(us);
    let c = Arc::new(Confirmation::new(base));
    c.record(at(100), 2_000);
    let newer = {
        let c = c.clone();
        loom::thread::spawn(move || c.record(at(200), 9_000))
    };
    let left = c.left(at(2_150), 9_000);
    newer.join().unwrap();
    assert!(
        left.is_none() || left == Some(Duration::from_micros(9_000 - 1_950)),
        "a hit used the old confirmation with the new lease ({left:?})"
    );
}

/// The refresh slot under loom: of two hits that want a refresh at once,
/// one sends it.
#[cfg(all(test, feature = "__loom"))]
pub(crate) fn one_refresh_is_in_flight() {
    let c = Arc::new(Confirmation::new(Instant::now()));
    let other = {
        let c = c.clone();
        loom::thread::spawn(move || c.start_refresh().map(std::mem::forget).is_some())
    };
    let mine = c.start_refresh().map(std::mem::forget).is_some();
    let theirs = other.join().unwrap();
    assert!(
        !(mine && theirs),
        "two refreshes in flight on one connection"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confirmation_covers_its_lease_and_no_more() {
        let base = Instant::now();
        let c = Confirmation::new(base);
        let at = |us| base + Duration::from_micros(us);
        assert_eq!(c.left(at(10), 2_000), None, "no confirmation yet");
        c.record(at(0), 2_000);
        assert!(c.left(at(0), 2_000).is_some(), "one at the base instant");
        c.record(at(100), 2_000);
        assert_eq!(c.left(at(100), 2_000), Some(Duration::from_micros(2_000)));
        assert_eq!(c.left(at(2_100), 2_000), Some(Duration::ZERO));
        assert_eq!(c.left(at(2_101), 2_000), None, "older than the lease");
        assert_eq!(
            c.left(at(1_100), 1_000),
            Some(Duration::ZERO),
            "a lower cap applies at once"
        );
        assert_eq!(c.left(at(1_101), 1_000), None);
        assert_eq!(
            c.left(at(2_200), 5_000),
            None,
            "a higher cap does not raise it"
        );
        // An older round trip's reply, arriving late, changes nothing.
        c.record(at(50), 9_000);
        assert_eq!(c.left(at(2_101), 9_000), None);
        c.record(at(3_000), 2_000);
        assert!(c.left(at(4_000), 2_000).is_some());
        assert_eq!(
            c.left(at(10), 2_000),
            None,
            "a clock before the confirmation"
        );
    }

    #[test]
    fn busts_wait_the_larger_lease_padded_for_clock_rates() {
        let clock: Arc<dyn Monotonic> = Arc::new(crate::policy::SystemMonotonic);
        let lease = Lease::new(Duration::from_millis(2), "n".into(), clock);
        let two = Duration::from_millis(2);
        assert!(lease.writer_wait(None) >= two + two / 500);
        let five = Duration::from_millis(5);
        assert!(lease.writer_wait(Some(five)) >= five + five / 500);
        // Once learned, a lost name still waits it.
        assert!(lease.writer_wait(None) >= five);
        assert_eq!(wait(Duration::ZERO), Duration::ZERO);
        assert!(wait(Duration::from_secs(3600)) < Duration::from_millis(1_100));
    }

    #[test]
    fn a_reader_uses_the_smaller_of_its_lease_and_the_namespace_s() {
        let clock: Arc<dyn Monotonic> = Arc::new(crate::policy::SystemMonotonic);
        let lease = Lease::new(Duration::from_millis(5), "n".into(), clock);
        assert_eq!(lease.now_us(), 0, "no namespace lease known: none");
        lease.learn(Some(Duration::from_millis(2)));
        assert_eq!(lease.now_us(), 2_000);
        lease.learn(Some(Duration::from_millis(9)));
        assert_eq!(lease.now_us(), 5_000);
        lease.forget();
        assert_eq!(lease.now_us(), 0);
    }

    #[test]
    fn the_namespace_lease_parses_from_its_reply_or_is_none() {
        use redis::Value;
        let member = |s: &str| Value::Array(vec![Value::BulkString(s.as_bytes().to_vec())]);
        assert_eq!(parse(&member("2000")), Some(Duration::from_millis(2)));
        assert_eq!(parse(&member("99999999999")), Some(MAX_LEASE));
        assert_eq!(parse(&member("-5")), None);
        assert_eq!(parse(&member("0")), None);
        assert_eq!(parse(&member("two")), None);
        assert_eq!(parse(&Value::Array(vec![])), None);
        assert_eq!(parse(&Value::Nil), None);
    }

    #[test]
    fn one_refresh_at_a_time() {
        let c = Arc::new(Confirmation::new(Instant::now()));
        let first = c.start_refresh();
        assert!(first.is_some());
        assert!(c.start_refresh().is_none());
        drop(first);
        assert!(c.start_refresh().is_some());
    }
}
