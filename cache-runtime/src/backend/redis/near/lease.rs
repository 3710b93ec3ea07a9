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
//! The namespace's lease. A process with a lease whose round trip finds
//! none sets its own under `names::lease_name` (`SET NX`, with a lifetime
//! that is never renewed, so that `PTTL` says how old it is: `YOUNG`), and
//! every ordering round trip of a single server reads it back, at most 32
//! bytes of it (`GETRANGE`, then `PTTL`). Every bust reads it after its
//! writes (`Read`, `Lease::writer_wait`: lost or young, the longest). A reader
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

/// Whole milliseconds in `d`, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// How long after the namespace's lease was (re)created a bust still waits
/// the longest lease: readers may hold confirmations under a larger lease
/// that was lost (evicted, flushed, expired) before it was created again.
/// Past it, every such confirmation has run out, clocks off in rate
/// included, with room to spare. Measured on the server's clock, by the
/// name's remaining lifetime (`PTTL`): it is given `EPOCH_TTL` when it is
/// created and never renewed.
pub(crate) const YOUNG: Duration = Duration::from_millis(2_200);

/// How long what a reader learned of the namespace's lease may be used,
/// from the instant before the round trip that read it was queued. A
/// confirmation is used at most a lease past that, so at most
/// `FRESH + MAX_LEASE` (padded for clock rates, under `YOUNG`) after the
/// read: if the name was lost after it and made again with a smaller
/// lease, the busts that trust the smaller one (once it is no longer
/// young) come after every such use. On a single server every round trip
/// reads the lease again; on a cluster, where round trips to other masters
/// do not, the reader reads it again at least this often.
pub(crate) const FRESH: Duration = Duration::from_millis(1_000);

/// The bytes of the namespace's lease a read takes (`GETRANGE 0 31`): a
/// lease is at most 7 digits, so a longer value (planted, or from another
/// program) is unreadable, and never read whole.
const READ_BYTES: usize = 32;

/// A lease read back from Redis (`GETRANGE name 0 31`): decimal
/// microseconds, 1 to 7 digits; anything else (another type, a longer or
/// empty value) is none.
pub(crate) fn parse(reply: &redis::Value) -> Option<Duration> {
    let text: &[u8] = match reply {
        redis::Value::BulkString(b) => b,
        redis::Value::SimpleString(s) => s.as_bytes(),
        _ => return None,
    };
    if text.is_empty() || text.len() > 7 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let us: u64 = std::str::from_utf8(text).ok()?.parse().ok()?;
    (us > 0).then(|| Duration::from_micros(us).min(MAX_LEASE))
}

/// What a bust learned of the namespace's lease (`read_cmds`, after its
/// writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// There, and created longer than `YOUNG` ago: its value.
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
    /// From the replies of `read_cmds`, in their order: the value, then
    /// the remaining lifetime. Read in that order, a value of an older
    /// name comes with the lifetime of a newer one only if the newer was
    /// made after the value was read: young.
    pub(crate) fn of(value: &redis::Value, pttl: &redis::Value) -> Read {
        let lifetime = i64::try_from(crate::policy::millis(crate::backend::stored::EPOCH_TTL))
            .unwrap_or(i64::MAX);
        let young = i64::try_from(YOUNG.as_millis()).unwrap_or(i64::MAX);
        match pttl {
            redis::Value::Int(-2) => Read::Missing,
            redis::Value::Int(left) if *left < 0 || *left > lifetime || lifetime - left < young => {
                Read::Young
            }
            redis::Value::Int(_) => parse(value).map_or(Read::Unreadable, Read::Settled),
            // The age cannot be read (an ACL without `PTTL`): a lease there
            // may be in use and may be young, whoever busts.
            _ if parse(value).is_some() => Read::Young,
            // Nothing there either (or nothing `GETRANGE` shows).
            _ if matches!(value, redis::Value::BulkString(b) if b.is_empty()) => Read::Missing,
            _ => Read::Unreadable,
        }
    }
}

/// The reads of the namespace's lease, appended to `pipe` (two replies, in
/// this order): its value (`value_cmd`), and its remaining lifetime
/// (`pttl_cmd`).
pub(crate) fn read_cmds(pipe: &mut redis::Pipeline, name: &str) {
    pipe.add_command(value_cmd(name))
        .add_command(pttl_cmd(name));
}

/// Reads the namespace's lease, at most `READ_BYTES` of it.
pub(crate) fn value_cmd(name: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("GETRANGE");
    cmd.arg(name).arg(0).arg(READ_BYTES - 1);
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
    /// The namespace's lease as last learned, in microseconds, and when:
    /// milliseconds since `base` of the instant before the round trip that
    /// read it was queued (`FRESH`), shifted left by `LEASE_BITS`. One word,
    /// so that the value and its instant are always read together (0: none
    /// known).
    known: AtomicU64,
    base: Instant,
    /// The largest namespace lease a bust of this process learned: its
    /// busts keep waiting that long, should the name be lost.
    largest_seen: AtomicU64,
    /// On a cluster, a round trip to the master holding the namespace's
    /// lease is in flight to learn it.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    learning: Arc<AtomicBool>,
    pub clock: Arc<dyn Monotonic>,
}

/// A round trip to learn the namespace's lease in flight; the next may
/// start once it is dropped.
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
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
        if own > MAX_LEASE {
            crate::loud::warn_once("lease cut", "", || {
                format!("cachette: near_cache_lease({own:?}) is longer than the longest lease ({MAX_LEASE:?}): cut to that")
            });
        }
        Lease {
            own: own.min(MAX_LEASE),
            assume_readers,
            name: name.into(),
            known: AtomicU64::new(0),
            base: clock.now(),
            largest_seen: AtomicU64::new(0),
            learning: Arc::new(AtomicBool::new(false)),
            clock,
        }
    }

    /// Takes the one slot for a round trip that learns the namespace's
    /// lease (on a cluster): `None` while one is in flight.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn start_learning(&self) -> Option<Learning> {
        (!self.learning.swap(true, Ordering::AcqRel)).then(|| Learning(self.learning.clone()))
    }

    /// Whether hits may be served under a lease.
    pub(crate) fn reads(&self) -> bool {
        !self.own.is_zero()
    }

    /// The lease a hit may use at `now`, in microseconds: the smaller of
    /// this process's and the namespace's as known, if learned at most
    /// `FRESH` ago (0: none).
    pub(crate) fn now_us(&self, now: Instant) -> u64 {
        let packed = self.known.load(Ordering::Acquire);
        let known = packed & ((1 << LEASE_BITS) - 1);
        if known == 0 {
            return 0;
        }
        // Learned at a whole millisecond at or before the instant: its age
        // is never taken for less than it is.
        let at = packed >> LEASE_BITS;
        let age = now
            .checked_duration_since(self.base)
            .map_or(u64::MAX, |d| millis(d).saturating_sub(at));
        if age > millis(FRESH) {
            return 0;
        }
        micros(self.own).min(known)
    }

    /// Learns the namespace's lease from a reply that has arrived, read by
    /// a round trip queued at `queued`: lower applies at once, higher to
    /// confirmations queued from now on (they take `now_us` when queued).
    pub(crate) fn learn(&self, namespace: Option<Duration>, queued: Instant) {
        let us = namespace.map_or(0, micros);
        if us > 0 && us < micros(self.own) {
            crate::loud::warn_once("lease above the namespace's", "", || {
                format!(
                    "cachette: this process's near_cache_lease ({:?}) is larger than the namespace's ({:?}, set by the first process that read with one): hits are served under the smaller; raise the namespace's with `SET {} {} KEEPTTL` (guide::redis, \"Lease reads\")",
                    self.own,
                    Duration::from_micros(us),
                    self.name,
                    micros(self.own)
                )
            });
        }
        let at = queued.checked_duration_since(self.base).map_or(0, millis);
        let packed = if us == 0 || at >= 1 << (64 - LEASE_BITS) {
            0
        } else {
            (at << LEASE_BITS) | us.min((1 << LEASE_BITS) - 1)
        };
        self.known.store(packed, Ordering::Release);
    }

    /// The namespace's lease changed in Redis (its invalidation message),
    /// or may have without one (a flush, a lost connection): none is known
    /// until it is read again.
    pub(crate) fn forget(&self) {
        self.known.store(0, Ordering::Release);
    }

    /// Learns from a reader's round trip queued at `queued` (the replies
    /// of `read_cmds`), and says what to send after it, if anything: the
    /// name created again when it is missing (`SET NX` with its lifetime,
    /// in one step), or its lifetime put back when it has one cachette
    /// never gives it (busts would take it for young for ever).
    pub(crate) fn after_read(
        &self,
        replies: &[redis::Value],
        queued: Instant,
    ) -> Option<redis::Pipeline> {
        let (value, pttl) = match replies {
            [value, pttl, ..] => (value, pttl),
            _ => return None,
        };
        let present = matches!(pttl, redis::Value::Int(left) if *left != -2);
        self.learn(parse(value).filter(|_| present), queued);
        let lifetime = crate::policy::millis(crate::backend::stored::EPOCH_TTL);
        let mut pipe = redis::pipe();
        match (Read::of(value, pttl), pttl) {
            (Read::Missing, _) => {
                pipe.add_command(self.create_cmd()?).ignore();
            }
            (Read::Young, redis::Value::Int(left))
                if *left == -1 || u64::try_from(*left).is_ok_and(|l| l > lifetime) =>
            {
                pipe.cmd("PEXPIRE").arg(&*self.name).arg(lifetime).ignore();
            }
            _ => return None,
        }
        Some(pipe)
    }

    /// Makes the namespace's lease this process's own, if it is missing
    /// (`SET NX`, with its lifetime, in one step); `None` without a lease
    /// of its own. A reader's round trip that finds it missing sends it,
    /// and so does a bust: a writer deployed with the lease before any
    /// reader then waits the longest lease only while the name is young.
    pub(crate) fn create_cmd(&self) -> Option<redis::Cmd> {
        if self.own.is_zero() {
            return None;
        }
        let mut cmd = redis::cmd("SET");
        cmd.arg(&*self.name)
            .arg(micros(self.own))
            .arg("NX")
            .arg("PX")
            .arg(crate::policy::millis(crate::backend::stored::EPOCH_TTL));
        Some(cmd)
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
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
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
    }

    #[test]
    fn what_a_bust_reads_of_the_lease() {
        use redis::Value;
        let life = i64::try_from(crate::policy::millis(crate::backend::stored::EPOCH_TTL)).unwrap();
        let old = Value::Int(life - 10_000);
        let value = |v: &str| Value::BulkString(v.as_bytes().to_vec());
        let ms = Duration::from_millis;
        assert_eq!(Read::of(&value("2000"), &old), Read::Settled(ms(2)));
        assert_eq!(Read::of(&value("9999999"), &old), Read::Settled(MAX_LEASE));
        assert_eq!(Read::of(&value(""), &Value::Int(-2)), Read::Missing);
        // Created 1 s ago, with no lifetime, or a longer one than cachette
        // gives: young, whatever it holds.
        assert_eq!(
            Read::of(&value("2000"), &Value::Int(life - 1_000)),
            Read::Young
        );
        assert_eq!(Read::of(&value("2000"), &Value::Int(-1)), Read::Young);
        assert_eq!(Read::of(&value("2000"), &Value::Int(life + 5)), Read::Young);
        assert_eq!(Read::of(&value(""), &Value::Int(life - 5)), Read::Young);
        // Lost between the two reads.
        assert_eq!(Read::of(&value("2000"), &Value::Int(-2)), Read::Missing);
        // Refused, or not what cachette writes (a value of 32 bytes is
        // what a longer one reads as).
        let refused = redis::parse_redis_value(b"-WRONGTYPE planted\r\n").unwrap();
        assert!(matches!(refused, Value::ServerError(_)));
        assert_eq!(Read::of(&refused, &old), Read::Unreadable);
        // The age refused (an ACL without `PTTL`): a lease there is taken
        // for young, whoever busts; nothing there, for missing.
        assert_eq!(Read::of(&value("2000"), &refused), Read::Young);
        assert_eq!(Read::of(&value(""), &refused), Read::Missing);
        assert_eq!(Read::of(&refused, &refused), Read::Unreadable);
        for planted in [
            "",
            "born",
            "-5",
            "0",
            "2e3",
            "00000000000000000000000000005000",
        ] {
            assert_eq!(
                Read::of(&value(planted), &old),
                Read::Unreadable,
                "{planted:?}"
            );
        }
        assert_eq!(Read::of(&Value::Nil, &old), Read::Unreadable);
    }

    #[test]
    fn a_reader_creates_a_missing_lease_and_puts_a_lifetime_back() {
        use redis::Value;
        let life = i64::try_from(crate::policy::millis(crate::backend::stored::EPOCH_TTL)).unwrap();
        let value = Value::BulkString(b"2000".to_vec());
        let l = lease(Duration::from_millis(5), false);
        let now = l.clock.now();
        let commands = |p: Option<redis::Pipeline>| {
            p.map(|p| {
                p.cmd_iter()
                    .map(|c| String::from_utf8_lossy(&c.get_packed_command()).into_owned())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            commands(l.after_read(&[value.clone(), Value::Int(life - 10_000)], now)),
            None
        );
        assert_eq!(l.now_us(now), 2_000, "learned");
        let missing =
            commands(l.after_read(&[Value::BulkString(vec![]), Value::Int(-2)], now)).unwrap();
        assert_eq!(l.now_us(now), 0, "none known");
        assert_eq!(missing.len(), 1, "{missing:?}");
        for part in ["SET", "5000", "NX", "PX"] {
            assert!(missing[0].contains(part), "{missing:?}");
        }
        for pttl in [-1, life + 5] {
            let fixed = commands(l.after_read(&[value.clone(), Value::Int(pttl)], now)).unwrap();
            assert_eq!(fixed.len(), 1, "{fixed:?}");
            assert!(fixed[0].contains("PEXPIRE"), "{fixed:?}");
        }
        // Young from its creation: left alone.
        assert_eq!(
            commands(l.after_read(&[value, Value::Int(life - 5)], now)),
            None
        );
    }

    #[test]
    fn a_reader_uses_the_smaller_of_its_lease_and_the_namespace_s_while_fresh() {
        let lease = lease(Duration::from_millis(5), false);
        let now = lease.clock.now();
        assert_eq!(lease.now_us(now), 0, "no namespace lease known: none");
        lease.learn(Some(Duration::from_millis(2)), now);
        assert_eq!(lease.now_us(now), 2_000);
        lease.learn(Some(Duration::from_millis(9)), now);
        assert_eq!(lease.now_us(now), 5_000);
        assert_eq!(lease.now_us(now + FRESH), 5_000, "fresh for `FRESH`");
        // Its instant is taken at the millisecond: a millisecond past.
        assert_eq!(
            lease.now_us(now + FRESH + Duration::from_millis(1)),
            0,
            "then read again"
        );
        lease.forget();
        assert_eq!(lease.now_us(now), 0);
    }

    #[test]
    fn the_namespace_lease_parses_from_its_reply_or_is_none() {
        use redis::Value;
        let value = |v: &str| Value::BulkString(v.as_bytes().to_vec());
        assert_eq!(parse(&value("2000")), Some(Duration::from_millis(2)));
        assert_eq!(parse(&value("9999999")), Some(MAX_LEASE));
        for planted in ["", "-5", "0", "two", " 2000", "2000 ", "12345678", "2.5"] {
            assert_eq!(parse(&value(planted)), None, "{planted:?}");
        }
        assert_eq!(parse(&Value::Array(vec![])), None);
        assert_eq!(parse(&Value::Nil), None);
    }

    /// Within `FRESH` plus the longest lease of a read of the namespace's
    /// lease, no bust trusts a name made again after a loss: `YOUNG` covers
    /// both, padded for two clocks 500 ppm off.
    #[test]
    fn what_a_reader_knows_runs_out_before_a_new_name_settles() {
        let used_until = FRESH + wait(MAX_LEASE);
        assert!(
            used_until + used_until / 500 < YOUNG,
            "{used_until:?} against {YOUNG:?}"
        );
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
