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

/// Reports a step of a call (no latency).
pub(crate) fn step(function: &'static str, key: &str, outcome: Outcome) {
    tracing::debug!(function, key, outcome = outcome.as_str(), "cachette");
    #[cfg(feature = "metrics")]
    metrics::counter!("cachette_events_total", "function" => function, "outcome" => outcome.as_str())
        .increment(1);
}

/// Reports how a call ended, with its latency.
pub(crate) fn end(function: &'static str, key: &str, outcome: Outcome, started: Started) {
    tracing::debug!(function, key, outcome = outcome.as_str(), "cachette");
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
