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

/// How long after the namespace's lease was (re)created a bust still waits
/// the longest lease: readers may hold confirmations under a larger lease
/// that was lost (evicted, flushed, expired) before it was created again.
/// Past it, every such confirmation has run out, clocks off in rate
/// included, with room to spare. Measured on the server's clock, by the
/// set's remaining lifetime (`PTTL`): it is given `EPOCH_TTL` when it is
/// created and never renewed.
pub(crate) const YOUNG: Duration = Duration::from_millis(2_200);

/// The largest lease a set's top member and score give, the smaller
/// (`reader`) or the larger of the two: readers take the one, writers the
/// other, so that a member and score set apart by hand never make a reader
/// use more than a writer waits.
fn top(reply: &redis::Value, reader: bool) -> Result<Option<Duration>, ()> {
    let items = match reply {
        redis::Value::Array(items) | redis::Value::Set(items) => items,
        _ => return Err(()),
    };
    // RESP3 gives `[[member, score]]`, RESP2 `[member, score]`.
    let pair: &[redis::Value] = match items.as_slice() {
        [] => return Ok(None),
        [redis::Value::Array(pair)] => pair,
        pair => pair,
    };
    let us = |v: &redis::Value| -> Option<u64> {
        let n = match v {
            redis::Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse::<f64>().ok()?,
            redis::Value::SimpleString(s) => s.parse::<f64>().ok()?,
            redis::Value::Double(d) => *d,
            redis::Value::Int(i) => *i as f64,
            _ => return None,
        };
        (n.is_finite() && n >= 1.0).then(|| (n as u64).min(micros(MAX_LEASE)))
    };
    let (member, score) = match pair {
        [m, s] => (us(m), us(s)),
        [m] => (us(m), None),
        _ => return Err(()),
    };
    let us = if reader {
        member.zip(score).map(|(m, s)| m.min(s))
    } else {
        member.max(score)
    };
    match us {
        Some(us) => Ok(Some(Duration::from_micros(us))),
        None => Err(()),
    }
}

/// The lease a reader may use, from its round trip's read of the set
/// (`read_cmds`'s first reply): none when missing, refused or not what
/// cachette writes.
pub(crate) fn parse(reply: &redis::Value) -> Option<Duration> {
    top(reply, true).ok().flatten()
}

/// What a bust learned of the namespace's lease (`read_cmds`, after its
/// writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// There, and created longer than `YOUNG` ago: its largest lease.
    Settled(Duration),
    /// Created lately, or with a lifetime cachette never gives it (none,
    /// or longer than `EPOCH_TTL`): a lost, larger lease may still be in
    /// use.
    Young,
    /// Not there: never set, or lost and not read again by a reader.
    Missing,
    /// Refused (an ACL, another type planted there), or not what cachette
    /// writes.
    Unreadable,
}

impl Read {
    /// From the replies of `read_cmds`: the set's top and its `PTTL`.
    pub(crate) fn of(top_reply: &redis::Value, pttl: &redis::Value) -> Read {
        let top = match top(top_reply, false) {
            Ok(Some(top)) => top,
            Ok(None) => return Read::Missing,
            Err(()) => return Read::Unreadable,
        };
        let lifetime = crate::policy::millis(crate::backend::stored::EPOCH_TTL);
        match pttl {
            redis::Value::Int(-2) => Read::Missing,
            redis::Value::Int(left) if *left >= 0 => {
                let age = i64::try_from(lifetime).unwrap_or(i64::MAX) - left;
                if age < i64::try_from(YOUNG.as_millis()).unwrap_or(i64::MAX) {
                    Read::Young
                } else {
                    Read::Settled(top)
                }
            }
            redis::Value::Int(_) => Read::Young,
            _ => Read::Unreadable,
        }
    }
}

/// The reads of the namespace's lease, appended to `pipe` (two replies):
/// its largest member with its score (`top_cmd`), and its remaining
/// lifetime (`pttl_cmd`).
pub(crate) fn read_cmds(pipe: &mut redis::Pipeline, name: &str) {
    pipe.add_command(top_cmd(name)).add_command(pttl_cmd(name));
}

/// Reads the largest member of the namespace's lease, with its score.
pub(crate) fn top_cmd(name: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("ZRANGE");
    cmd.arg(name).arg(-1).arg(-1).arg("WITHSCORES");
    cmd
}

/// Reads the remaining lifetime of the namespace's lease.
pub(crate) fn pttl_cmd(name: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("PTTL");
    cmd.arg(name);
    cmd
}

/// The process's leases: its own, and what it knows of the namespace's.
pub(crate) struct Lease {
    /// This process's lease (zero: it serves no hit under a lease).
    own: Duration,
    /// Its busts take a missing or unreadable namespace lease for a lost
    /// one even with no lease of its own
    /// (`CacheBuilder::assume_lease_readers`).
    assume_readers: bool,
    /// The name of the namespace's lease in Redis.
    pub name: Box<str>,
    /// The namespace's lease as last learned, in microseconds (0: none
    /// known).
    namespace: AtomicU64,
    /// The largest namespace lease a bust of this process learned: its
    /// busts keep waiting that long, should the name be lost.
    largest_seen: AtomicU64,
    /// On a cluster, a round trip to the master holding the namespace's
    /// lease is in flight to learn it.
    learning: Arc<AtomicBool>,
    pub clock: Arc<dyn Monotonic>,
}

/// A round trip to learn the namespace's lease in flight; the next may
/// start once it is dropped.
pub(crate) struct Learning(Arc<AtomicBool>);

impl Drop for Learning {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Lease {
    pub(crate) fn new(
        own: Duration,
        assume_readers: bool,
        name: String,
        clock: Arc<dyn Monotonic>,
    ) -> Lease {
        Lease {
            own: own.min(MAX_LEASE),
            assume_readers,
            name: name.into(),
            namespace: AtomicU64::new(0),
            largest_seen: AtomicU64::new(0),
            learning: Arc::new(AtomicBool::new(false)),
            clock,
        }
    }

    /// Takes the one slot for a round trip that learns the namespace's
    /// lease (on a cluster): `None` while one is in flight.
    pub(crate) fn start_learning(&self) -> Option<Learning> {
        (!self.learning.swap(true, Ordering::AcqRel)).then(|| Learning(self.learning.clone()))
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

    /// Learns from a reader's round trip (the replies of `read_cmds`), and
    /// says what to send after it, if anything: the set created again when
    /// it is missing, or its lifetime put back when it has one cachette
    /// never gives it (busts would take it for young for ever).
    pub(crate) fn after_read(&self, replies: &[redis::Value]) -> Option<redis::Pipeline> {
        let (top, pttl) = match replies {
            [top, pttl, ..] => (top, pttl),
            _ => return None,
        };
        self.learn(parse(top));
        let lifetime = crate::policy::millis(crate::backend::stored::EPOCH_TTL);
        let mut pipe = redis::pipe();
        match (Read::of(top, pttl), pttl) {
            (Read::Missing, _) => {
                let us = micros(self.own);
                pipe.cmd("ZADD").arg(&*self.name).arg(us).arg(us).ignore();
            }
            (Read::Young, redis::Value::Int(left))
                if *left == -1 || u64::try_from(*left).is_ok_and(|l| l > lifetime) => {}
            _ => return None,
        }
        pipe.cmd("PEXPIRE").arg(&*self.name).arg(lifetime).ignore();
        Some(pipe)
    }

    /// What a bust waits after its acknowledgement, having read the
    /// namespace's lease as `read`.
    ///
    /// A process that knows leases are in use (one of its own, one it has
    /// read, or `assume_readers`) takes a missing or unreadable lease for a
    /// lost one: a reader may still hold a confirmation under it, so it
    /// waits the longest lease there is. So does every bust while the set
    /// is young (`YOUNG`): a reader with a smaller lease may have created
    /// it again after a larger one was lost. Otherwise the larger of its
    /// own lease, the namespace's and the largest it has read.
    pub(crate) fn writer_wait(&self, read: Read) -> Duration {
        let seen = self.largest_seen.load(Ordering::Acquire);
        let aware = self.assume_readers || !self.own.is_zero() || seen > 0;
        let lease = match read {
            Read::Settled(lease) => {
                let read = micros(lease);
                let largest = self
                    .largest_seen
                    .fetch_max(read, Ordering::AcqRel)
                    .max(read);
                self.own.max(Duration::from_micros(largest))
            }
            Read::Young => MAX_LEASE,
            Read::Missing | Read::Unreadable if aware => MAX_LEASE,
            Read::Missing | Read::Unreadable => self.own,
        };
        wait(lease)
    }

    /// What a bust that cannot read the namespace's lease waits (over
    /// REST, where no reply may hold the set): the longest lease with
    /// `assume_readers`, else this process's own, which must then be at
    /// least every reader's (`guide::redis`, "Lease reads").
    pub(crate) fn writer_wait_unread(&self) -> Duration {
        wait(if self.assume_readers {
            MAX_LEASE
        } else {
            self.own
        })
    }
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
    /// On a cluster, one packed confirmation per slot, of the latest
    /// round trip whose probes read that slot (made at the first).
    slots: std::sync::OnceLock<Box<[AtomicU64]>>,
}

/// Slots of a Redis Cluster.
const SLOTS: usize = 16_384;

impl Confirmation {
    pub(crate) fn new(base: Instant) -> Confirmation {
        Confirmation {
            base,
            packed: AtomicU64::new(0),
            torn_lease: AtomicU64::new(0),
            refreshing: AtomicBool::new(false),
            slots: std::sync::OnceLock::new(),
        }
    }

    /// `sent` and `lease_us` in one word, if they fit (and there is a
    /// lease).
    fn pack(&self, sent: Instant, lease_us: u64) -> Option<u64> {
        let since = micros(sent.checked_duration_since(self.base)?);
        if since >= 1 << (64 - LEASE_BITS) || lease_us == 0 {
            return None;
        }
        Some((since << LEASE_BITS) | lease_us.min((1 << LEASE_BITS) - 1))
    }

    /// Records a round trip queued at `sent`, with `lease_us` known then,
    /// whose reply has arrived; an older one than the one recorded is
    /// ignored.
    pub(crate) fn record(&self, sent: Instant, lease_us: u64) {
        let Some(packed) = self.pack(sent, lease_us) else {
            return;
        };
        let since = packed >> LEASE_BITS;
        if checked::weakened(Weakening::TornConfirmation) {
            self.torn_lease
                .store(packed & ((1 << LEASE_BITS) - 1), Ordering::Release);
        }
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

    /// The same on a cluster, for each slot the round trip's probes read
    /// (the node served each of them then): a hit is served under a lease
    /// only if every slot it read is confirmed.
    pub(crate) fn record_slots(&self, sent: Instant, lease_us: u64, slots: &[u16]) {
        let Some(packed) = self.pack(sent, lease_us) else {
            return;
        };
        let all = self
            .slots
            .get_or_init(|| (0..SLOTS).map(|_| AtomicU64::new(0)).collect());
        for &slot in slots {
            // Packed instants order as the instants do: the newer stays.
            all[usize::from(slot) % SLOTS].fetch_max(packed, Ordering::AcqRel);
        }
    }

    /// How much of the lease is left at `now` under `cap_us` (the lease a
    /// hit may use now), if the confirmation still covers a hit.
    pub(crate) fn left(&self, now: Instant, cap_us: u64) -> Option<Duration> {
        let packed = self.packed.load(Ordering::Acquire);
        let lease = if checked::weakened(Weakening::TornConfirmation) {
            Some(self.torn_lease.load(Ordering::Acquire))
        } else {
            None
        };
        self.left_of(packed, lease, now, cap_us)
    }

    /// The same on a cluster for a hit that read `slots`: the least left
    /// of any of them, if every one is covered.
    pub(crate) fn left_slots(
        &self,
        now: Instant,
        cap_us: u64,
        slots: impl Iterator<Item = u16>,
    ) -> Option<Duration> {
        let all = self.slots.get()?;
        let mut least: Option<Duration> = None;
        for slot in slots {
            let packed = all[usize::from(slot) % SLOTS].load(Ordering::Acquire);
            let left = self.left_of(packed, None, now, cap_us)?;
            least = Some(least.map_or(left, |l| l.min(left)));
        }
        least
    }

    /// What is left at `now` of the confirmation `packed` (its lease
    /// replaced by `torn`, under that weakening), under `cap_us`.
    fn left_of(
        &self,
        packed: u64,
        torn: Option<u64>,
        now: Instant,
        cap_us: u64,
    ) -> Option<Duration> {
        if packed == 0 || cap_us == 0 {
            return None;
        }
        let sent = packed >> LEASE_BITS;
        let lease = torn.unwrap_or(packed & ((1 << LEASE_BITS) - 1)).min(cap_us);
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

    fn lease(own: Duration, assume_readers: bool) -> Lease {
        let clock: Arc<dyn Monotonic> = Arc::new(crate::policy::SystemMonotonic);
        Lease::new(own, assume_readers, "n".into(), clock)
    }

    #[test]
    fn busts_wait_the_larger_lease_padded_for_clock_rates() {
        let two = Duration::from_millis(2);
        let five = Duration::from_millis(5);
        let lease = lease(two, false);
        let settled = |d| Read::Settled(d);
        assert!(lease.writer_wait(settled(Duration::from_micros(1))) >= two + two / 500);
        assert!(lease.writer_wait(settled(five)) >= five + five / 500);
        // Once learned, a smaller one read later still waits it.
        assert!(lease.writer_wait(settled(two)) >= five);
        assert_eq!(wait(Duration::ZERO), Duration::ZERO);
        assert!(wait(Duration::from_secs(3600)) < Duration::from_millis(1_100));
    }

    #[test]
    fn a_lost_or_young_lease_makes_a_bust_wait_the_longest() {
        let longest = wait(MAX_LEASE);
        let two = Duration::from_millis(2);
        // Young: whoever busts, a larger lease may have been lost.
        assert_eq!(
            lease(Duration::ZERO, false).writer_wait(Read::Young),
            longest
        );
        // Missing or unreadable: the longest for a process that knows
        // leases are in use (its own, assumed, or read once), else its own.
        for read in [Read::Missing, Read::Unreadable] {
            assert_eq!(lease(two, false).writer_wait(read), longest, "{read:?}");
            assert_eq!(lease(Duration::ZERO, true).writer_wait(read), longest);
            assert_eq!(
                lease(Duration::ZERO, false).writer_wait(read),
                Duration::ZERO
            );
            let seen = lease(Duration::ZERO, false);
            seen.writer_wait(Read::Settled(two));
            assert_eq!(
                seen.writer_wait(read),
                longest,
                "{read:?} after reading one"
            );
        }
        // Over REST, unread: its own, or the longest when assumed.
        assert_eq!(lease(two, false).writer_wait_unread(), wait(two));
        assert_eq!(lease(Duration::ZERO, true).writer_wait_unread(), longest);
        assert_eq!(
            lease(Duration::ZERO, false).writer_wait_unread(),
            Duration::ZERO
        );
    }

    #[test]
    fn what_a_bust_reads_of_the_lease() {
        use redis::Value;
        let life = i64::try_from(crate::policy::millis(crate::backend::stored::EPOCH_TTL)).unwrap();
        let old = Value::Int(life - 10_000);
        let top = |m: &str, s: f64| {
            Value::Array(vec![Value::Array(vec![
                Value::BulkString(m.as_bytes().to_vec()),
                Value::Double(s),
            ])])
        };
        let ms = Duration::from_millis;
        assert_eq!(Read::of(&top("2000", 2000.0), &old), Read::Settled(ms(2)));
        // RESP2's flat pair.
        let flat = Value::Array(vec![
            Value::BulkString(b"2000".to_vec()),
            Value::BulkString(b"2000".to_vec()),
        ]);
        assert_eq!(Read::of(&flat, &old), Read::Settled(ms(2)));
        // A member and score set apart by hand: the writer takes the larger.
        assert_eq!(Read::of(&top("100", 5000.0), &old), Read::Settled(ms(5)));
        assert_eq!(
            Read::of(&top("9999999999", 1.0), &old),
            Read::Settled(MAX_LEASE)
        );
        assert_eq!(
            Read::of(&Value::Array(vec![]), &Value::Int(-2)),
            Read::Missing
        );
        // Created 1 s ago, with no lifetime, or a longer one than cachette
        // gives: young.
        assert_eq!(
            Read::of(&top("2000", 2000.0), &Value::Int(life - 1_000)),
            Read::Young
        );
        assert_eq!(Read::of(&top("2000", 2000.0), &Value::Int(-1)), Read::Young);
        assert_eq!(
            Read::of(&top("2000", 2000.0), &Value::Int(life + 5)),
            Read::Young
        );
        // Lost between the two reads.
        assert_eq!(
            Read::of(&top("2000", 2000.0), &Value::Int(-2)),
            Read::Missing
        );
        // Refused, or not what cachette writes.
        let refused = redis::parse_redis_value(b"-WRONGTYPE planted\r\n").unwrap();
        assert!(matches!(refused, Value::ServerError(_)));
        assert_eq!(Read::of(&refused, &old), Read::Unreadable);
        assert_eq!(Read::of(&top("born", -5.0), &old), Read::Unreadable);
        assert_eq!(Read::of(&Value::Nil, &old), Read::Unreadable);
    }

    #[test]
    fn a_reader_creates_a_missing_lease_and_puts_a_lifetime_back() {
        use redis::Value;
        let life = i64::try_from(crate::policy::millis(crate::backend::stored::EPOCH_TTL)).unwrap();
        let top = Value::Array(vec![Value::Array(vec![
            Value::BulkString(b"2000".to_vec()),
            Value::Double(2000.0),
        ])]);
        let l = lease(Duration::from_millis(5), false);
        let commands = |p: Option<redis::Pipeline>| {
            p.map(|p| {
                p.cmd_iter()
                    .map(|c| String::from_utf8_lossy(&c.get_packed_command()).into_owned())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            commands(l.after_read(&[top.clone(), Value::Int(life - 10_000)])),
            None
        );
        assert_eq!(l.now_us(), 2_000, "learned");
        let missing = commands(l.after_read(&[Value::Array(vec![]), Value::Int(-2)])).unwrap();
        assert_eq!(l.now_us(), 0, "none known");
        assert!(
            missing[0].contains("ZADD") && missing[0].contains("5000"),
            "{missing:?}"
        );
        assert!(missing[1].contains("PEXPIRE"), "{missing:?}");
        for pttl in [-1, life + 5] {
            let fixed = commands(l.after_read(&[top.clone(), Value::Int(pttl)])).unwrap();
            assert_eq!(fixed.len(), 1, "{fixed:?}");
            assert!(fixed[0].contains("PEXPIRE"), "{fixed:?}");
        }
        // Young from its creation: left alone.
        assert_eq!(commands(l.after_read(&[top, Value::Int(life - 5)])), None);
    }

    #[test]
    fn a_reader_uses_the_smaller_of_its_lease_and_the_namespace_s() {
        let lease = lease(Duration::from_millis(5), false);
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
        let pair = |m: &str, s: &str| {
            Value::Array(vec![
                Value::BulkString(m.as_bytes().to_vec()),
                Value::BulkString(s.as_bytes().to_vec()),
            ])
        };
        assert_eq!(parse(&pair("2000", "2000")), Some(Duration::from_millis(2)));
        assert_eq!(parse(&pair("99999999999", "99999999999")), Some(MAX_LEASE));
        // A reader takes the smaller of a member and score set apart.
        assert_eq!(
            parse(&pair("5000", "100")),
            Some(Duration::from_micros(100))
        );
        assert_eq!(parse(&pair("-5", "-5")), None);
        assert_eq!(parse(&pair("0", "0")), None);
        assert_eq!(parse(&pair("two", "2")), None);
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
