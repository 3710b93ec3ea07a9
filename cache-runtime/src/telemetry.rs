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
    /// With a signing key, the hash is keyed: not reversible by guessing.
    pub signer: Option<&'a crate::signing::Signer>,
}

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.full {
            return f.write_str(self.text);
        }
        let hash: [u8; 4] = match self.signer {
            Some(signer) => signer.hash_for_logs(self.text),
            None => {
                use sha2::Digest;
                let d = sha2::Sha256::digest(self.text.as_bytes());
                [d[0], d[1], d[2], d[3]]
            }
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
