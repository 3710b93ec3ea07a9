//! How an annotated function caches: its strategy and windows, and the
//! injectable clock and random source the time-based strategies read.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What happens on a miss and around expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Strategy {
    /// Cache-aside: a miss runs the body (once per process) and fills.
    Aside,
    /// A miss runs the body once across every process sharing the Redis:
    /// the others wait for the value, up to `lock_wait`.
    Lock,
    /// Stale-while-revalidate: for `stale_ttl` past `ttl`, the old value is
    /// returned at once while one background refresh runs.
    Swr,
    /// Probabilistic early refresh (XFetch): hot entries are refreshed in
    /// the background shortly before they expire.
    Early,
}

/// The caching policy of one function, built by the attributes.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// The key template as written in the attribute (empty for a default
    /// key or a programmatic call), for logs.
    pub template: &'static str,
    /// The strategy.
    pub strategy: Strategy,
    /// How long an entry is fresh.
    pub ttl: Duration,
    /// With [`Strategy::Swr`]: how long past `ttl` the old value is served
    /// while it is refreshed.
    pub stale_ttl: Duration,
    /// How long a stampede lock lives if its holder never releases it.
    pub lock_ttl: Duration,
    /// How long a caller waits for another's value before computing it.
    pub lock_wait: Duration,
    /// XFetch's `beta`: above 1 refreshes earlier, below 1 later.
    pub beta: f64,
    /// How long past its TTL (and `stale_ttl`) an entry is kept to be
    /// returned if the body fails (`stale_if_error`); zero: not kept.
    pub stale_if_error: Duration,
    /// The function's codec (`codec = "..."`), else the cache's.
    pub codec: Option<crate::codec::Codec>,
    /// The function's `version`, recorded in every entry's fingerprint.
    pub version: u32,
    /// How long a call waits for the body before returning the value kept
    /// past its TTL (`stale_if_error`), the body going on in the
    /// background; zero: it waits.
    pub soft_timeout: Duration,
    /// How long a call waits at most, after which it returns the timeout
    /// error; zero: no bound.
    pub hard_timeout: Duration,
}

impl Policy {
    /// Default lock TTL: a crashed holder delays the others at most this.
    pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(10);
    /// Default bound on waiting for another caller's value.
    pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(5);

    /// Cache-aside with `ttl` and default settings for the rest.
    pub const fn new(strategy: Strategy, ttl: Duration) -> Self {
        Policy {
            template: "",
            strategy,
            ttl,
            stale_ttl: ttl,
            lock_ttl: Self::DEFAULT_LOCK_TTL,
            lock_wait: Self::DEFAULT_LOCK_WAIT,
            beta: 1.0,
            stale_if_error: Duration::ZERO,
            codec: None,
            version: 0,
            soft_timeout: Duration::ZERO,
            hard_timeout: Duration::ZERO,
        }
    }

    /// Names the key template, for logs.
    pub const fn template(mut self, template: &'static str) -> Self {
        self.template = template;
        self
    }

    /// Sets the TTL (from an expression, per call).
    pub const fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Keeps entries past their TTL for `window`, to be returned if the
    /// body fails.
    pub const fn stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = window;
        self
    }

    /// Sets the codec of this function's values.
    pub const fn codec(mut self, codec: crate::codec::Codec) -> Self {
        self.codec = Some(codec);
        self
    }

    /// Sets the version recorded in this function's entries.
    pub const fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Sets the stale window.
    pub const fn stale_ttl(mut self, stale_ttl: Duration) -> Self {
        self.stale_ttl = stale_ttl;
        self
    }

    /// Sets the lock TTL.
    pub const fn lock_ttl(mut self, lock_ttl: Duration) -> Self {
        self.lock_ttl = lock_ttl;
        self
    }

    /// Sets the bound on waiting.
    pub const fn lock_wait(mut self, lock_wait: Duration) -> Self {
        self.lock_wait = lock_wait;
        self
    }

    /// Sets the soft timeout (`soft_timeout`).
    pub const fn soft_timeout(mut self, timeout: Duration) -> Self {
        self.soft_timeout = timeout;
        self
    }

    /// Sets the hard timeout (`hard_timeout`).
    pub const fn hard_timeout(mut self, timeout: Duration) -> Self {
        self.hard_timeout = timeout;
        self
    }

    /// Sets XFetch's `beta`.
    pub const fn beta(mut self, beta: f64) -> Self {
        self.beta = beta;
        self
    }

    /// How long the backend keeps an entry.
    pub(crate) fn storage_ttl(&self) -> Duration {
        self.storage_ttl_for(self.ttl)
    }

    /// How long an entry whose value is fresh for `ttl` is kept.
    pub(crate) fn storage_ttl_for(&self, ttl: Duration) -> Duration {
        if ttl.is_zero() {
            return ttl;
        }
        let served = match self.strategy {
            Strategy::Swr => ttl.saturating_add(self.stale_ttl),
            _ => ttl,
        };
        served.saturating_add(self.stale_if_error)
    }
}

/// Wall-clock time in milliseconds since the Unix epoch, as the cache
/// reads it for freshness windows and early refresh. Inject one with
/// [`CacheBuilder::clock`](crate::CacheBuilder::clock) to test without
/// sleeping.
///
/// ```
/// use std::sync::{atomic::{AtomicU64, Ordering}, Arc};
///
/// #[derive(Clone, Default)]
/// struct ManualClock(Arc<AtomicU64>);
///
/// impl cachette::Clock for ManualClock {
///     fn now_millis(&self) -> u64 {
///         self.0.load(Ordering::SeqCst)
///     }
/// }
///
/// let clock = ManualClock::default();
/// let cache = cachette::Cache::builder().clock(clock.clone()).memory();
/// clock.0.fetch_add(61_000, Ordering::SeqCst); // a minute later, at once
/// ```
pub trait Clock: Send + Sync + 'static {
    /// Now, in milliseconds since the epoch.
    fn now_millis(&self) -> u64;
}

/// `d` in whole milliseconds, saturating at `u64::MAX` (`Duration::MAX`
/// has more).
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, millis)
    }
}

/// A monotonic clock, for what is measured in microseconds: how old the
/// near-cache's last ordering round trip is, when it serves a hit under a
/// lease ([`CacheBuilder::near_cache_lease`](crate::CacheBuilder::near_cache_lease)).
/// The system's is the default; inject one with
/// [`CacheBuilder::monotonic_clock`](crate::CacheBuilder::monotonic_clock)
/// to move time by hand in tests. Busts wait on tokio's timer whatever
/// this says.
pub trait Monotonic: Send + Sync + 'static {
    /// Now. Never earlier than a value it returned before.
    fn now(&self) -> std::time::Instant;
}

/// The system's monotonic clock (`Instant::now`).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemMonotonic;

impl Monotonic for SystemMonotonic {
    fn now(&self) -> std::time::Instant {
        std::time::Instant::now()
    }
}

/// A uniform random number in `(0, 1]`, for early refresh. Inject one with
/// [`CacheBuilder::random`](crate::CacheBuilder::random).
pub trait Random: Send + Sync + 'static {
    /// A number in `(0, 1]`.
    fn unit(&self) -> f64;
}

/// Random numbers from `fastrand`.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastRandom;

impl Random for FastRandom {
    fn unit(&self) -> f64 {
        1.0 - fastrand::f64()
    }
}

/// XFetch (Vattani, Chierichetti, Lowenstein, PVLDB 2015): refresh now if
/// `now - delta * beta * ln(rand) >= expiry`.
pub(crate) fn xfetch_due(now_ms: u64, expiry_ms: u64, delta_ms: u32, beta: f64, rand: f64) -> bool {
    let rand = rand.clamp(f64::MIN_POSITIVE, 1.0);
    let ahead = f64::from(delta_ms) * beta * -rand.ln();
    now_ms as f64 + ahead >= expiry_ms as f64
}

#[cfg(test)]
mod tests {
    use super::xfetch_due;

    #[test]
    fn xfetch_refreshes_earlier_for_slow_bodies_and_small_draws() {
        // Past expiry: always.
        assert!(xfetch_due(1_000, 1_000, 0, 1.0, 0.5));
        // Fast body: never early.
        assert!(!xfetch_due(900, 1_000, 0, 1.0, 0.001));
        // delta 100 ms, rand = 1/e: due from 100 ms before expiry.
        let r = (-1.0f64).exp();
        assert!(xfetch_due(900, 1_000, 100, 1.0, r));
        assert!(!xfetch_due(899, 1_000, 100, 1.0, r));
        // beta 2 doubles the lead.
        assert!(xfetch_due(800, 1_000, 100, 2.0, r));
    }
}
