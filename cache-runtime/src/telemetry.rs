//! What the cache reports about each call: `tracing` events always, and
//! with the `metrics` feature, counters and latency histograms through the
//! `metrics` facade. `Cache::stats` is separate and needs neither.
//!
//! Events on the hot path are at `debug`; backend failures are `warn` and
//! failed invalidations `error` (emitted where they happen).

/// What happened to one call, or one step of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Served from the cache.
    Hit,
    /// Served past its fresh window while a refresh runs (`swr`).
    Stale,
    /// The body ran and its result was cached (if cacheable).
    Miss,
    /// The backend failed: the body ran and nothing was cached.
    Bypass,
    /// Waited for another caller in this process.
    Coalesced,
    /// Waited for another process's lock holder.
    LockWait,
    /// Gave up waiting for the lock holder and computed.
    LockTimeout,
    /// A background refresh started.
    Refresh,
    /// The body failed; a value past its TTL was returned
    /// (`stale_if_error`).
    StaleOnError,
    /// The body outran `soft_timeout`; a value past its TTL, still valid,
    /// was returned while the body goes on in the background.
    StaleOnTimeout,
    /// The call reached `hard_timeout` and returned the timeout error.
    TimedOut,
}

impl Outcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Stale => "stale",
            Outcome::Miss => "miss",
            Outcome::Bypass => "bypass",
            Outcome::Coalesced => "coalesced",
            Outcome::LockWait => "lock_wait",
            Outcome::LockTimeout => "lock_timeout",
            Outcome::Refresh => "refresh",
            Outcome::StaleOnError => "stale_on_error",
            Outcome::StaleOnTimeout => "stale_on_timeout",
            Outcome::TimedOut => "timed_out",
        }
    }
}

/// When a call started, for its latency histogram.
#[derive(Clone, Copy)]
pub(crate) struct Started(#[cfg(feature = "metrics")] std::time::Instant);

impl Started {
    pub(crate) fn now() -> Self {
        Started(
            #[cfg(feature = "metrics")]
            std::time::Instant::now(),
        )
    }
}

/// How a key or tag appears in logs. By default: its template (when the
/// attribute gave one) and a short hash of the rendered text, so logs say
/// which function and which kind of key without carrying the values in it
/// (emails, names). With `CacheBuilder::log_full_names(true)`, the text.
#[derive(Clone, Copy)]
pub(crate) struct Shown<'a> {
    pub text: &'a str,
    pub template: &'a str,
    pub full: bool,
    /// With a signing key, the hash is keyed with it (the same in every
    /// process); without one, with a key of this process's (see
    /// [`process_keyed`]). Either way not reversible by guessing.
    pub signer: Option<&'a crate::signing::Signer>,
}

/// A 4-byte HMAC-SHA256 of `text` under a random key made once per
/// process: without a signing key, a log reader cannot test candidate keys
/// (an email among ten thousand) against a logged hash. The same text
/// hashes alike within a process, not across processes.
fn process_keyed(text: &str) -> [u8; 4] {
    use hmac::Mac;
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(|| {
        // `RandomState` is seeded from the operating system's randomness.
        use std::hash::{BuildHasher, Hasher};
        let mut key = [0u8; 32];
        for (i, chunk) in key.chunks_exact_mut(8).enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(i);
            chunk.copy_from_slice(&h.finish().to_le_bytes());
        }
        key
    });
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(text.as_bytes());
    let d = mac.finalize().into_bytes();
    [d[0], d[1], d[2], d[3]]
}

/// Lets a warning through at most once per [`Every::PERIOD`], and counts
/// the ones held back: a warning per call would be one log line per call.
#[derive(Default)]
pub(crate) struct Every {
    /// Milliseconds since `BASE` of the last one let through, plus one.
    last: std::sync::atomic::AtomicU64,
    held: std::sync::atomic::AtomicU64,
}

impl Every {
    const PERIOD: std::time::Duration = std::time::Duration::from_secs(10);

    /// `Some(held back since the last one)` when this one may be logged.
    pub(crate) fn now(&self) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let now = BASE
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_millis() as u64
            + 1;
        let last = self.last.load(Relaxed);
        let period = Self::PERIOD.as_millis() as u64;
        if last != 0 && now.saturating_sub(last) < period
            || self
                .last
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_err()
        {
            self.held.fetch_add(1, Relaxed);
            return None;
        }
        Some(self.held.swap(0, Relaxed))
    }
}

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.full {
            return f.write_str(self.text);
        }
        let hash: [u8; 4] = match self.signer {
            Some(signer) => signer.hash_for_logs(self.text),
            None => process_keyed(self.text),
        };
        write!(f, "{}#", self.template)?;
        for b in hash {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Reports a step of a call (no latency).
pub(crate) fn step(function: &'static str, key: impl std::fmt::Display, outcome: Outcome) {
    tracing::debug!(function, key = %key, outcome = outcome.as_str(), "cachette");
    #[cfg(feature = "metrics")]
    metrics::counter!("cachette_events_total", "function" => function, "outcome" => outcome.as_str())
        .increment(1);
}

/// Reports how a call ended, with its latency.
pub(crate) fn end(
    function: &'static str,
    key: impl std::fmt::Display,
    outcome: Outcome,
    started: Started,
) {
    tracing::debug!(function, key = %key, outcome = outcome.as_str(), "cachette");
    #[cfg(feature = "metrics")]
    {
        let labels = [("function", function), ("outcome", outcome.as_str())];
        metrics::counter!("cachette_calls_total", &labels).increment(1);
        metrics::histogram!("cachette_call_seconds", &labels)
            .record(started.0.elapsed().as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = started;
}

/// Reports a call that reached its `hard_timeout` (it has no outcome of
/// its own: it was dropped mid-way).
pub(crate) fn timed_out(function: &'static str) {
    let outcome = Outcome::TimedOut.as_str();
    tracing::debug!(function, outcome, "cachette");
    #[cfg(feature = "metrics")]
    metrics::counter!("cachette_calls_total", "function" => function, "outcome" => outcome)
        .increment(1);
}
