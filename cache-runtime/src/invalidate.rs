//! Invalidation: replacing the versions of keys and tags (I1, I3), and
//! keeping the ones that could not be delivered until they are (I9).
//!
//! A bust is armed before anything can interrupt it: if the future sending
//! it is dropped midway (a caller's timeout, a `select!`), or an
//! `#[invalidates]` body is dropped or panics after its write may have
//! committed, the bust is kept as undelivered. Undelivered busts are sent
//! again by one task per pending set, with backoff, until delivered
//! (`pending/deliver.rs`; a cache is its [`Courier`]).

use crate::cache::Cache;
use crate::error::Error;
use crate::events::{Event, EventKind};
use crate::names::Bust;

use crate::deferred::Share;
use crate::pending::{self, Courier, Work};
use crate::stats::Counters;

impl Cache {
    /// Invalidates keys, exactly as rendered (see [`KeyBuilder`](crate::KeyBuilder)).
    ///
    /// When it returns `Ok`, no read that starts afterwards returns a value
    /// computed before the call. One round trip whatever the number of keys.
    ///
    /// # Errors
    /// The backend failed; the keys may not be invalidated. The bust is
    /// kept and retried, and until it is delivered this process does not
    /// serve what it names.
    pub async fn invalidate_keys<I, S>(&self, keys: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let bust = Bust::of(keys, std::iter::empty::<&str>());
        self.send("Cache::invalidate_keys", bust).await
    }

    /// Invalidates every entry filled with any of these tags, exactly as
    /// rendered. One round trip, whatever the number of tags and entries.
    ///
    /// # Errors
    /// As [`invalidate_keys`](Self::invalidate_keys).
    pub async fn invalidate_tags<I, S>(&self, tags: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let bust = Bust::of(std::iter::empty::<&str>(), tags);
        self.send("Cache::invalidate_tags", bust).await
    }

    /// Invalidates keys and tags together, in one round trip.
    ///
    /// # Errors
    /// As [`invalidate_keys`](Self::invalidate_keys).
    pub async fn invalidate<K, KS, T, TS>(&self, keys: K, tags: T) -> Result<(), Error>
    where
        K: IntoIterator<Item = KS>,
        KS: AsRef<str>,
        T: IntoIterator<Item = TS>,
        TS: AsRef<str>,
    {
        self.send("Cache::invalidate", Bust::of(keys, tags)).await
    }

    /// Sends `bust`, reported as coming from `function`.
    ///
    /// # Cancel safety
    /// Dropping the future before it finished keeps the bust as
    /// undelivered.
    pub(crate) async fn send(&self, function: &'static str, bust: Bust) -> Result<(), Error> {
        let span = crate::spans::invalidate(self, function, bust.len());
        crate::spans::within(&span, self.send_in(&span, function, bust)).await
    }

    /// [`send`](Self::send), in its span.
    async fn send_in(
        &self,
        span: &tracing::Span,
        function: &'static str,
        bust: Bust,
    ) -> Result<(), Error> {
        self.ensure_retrying();
        if bust.is_empty() {
            return Ok(());
        }
        if crate::deferred::hold(self, function, &bust) {
            span.record("cache.outcome", "held");
            return Ok(());
        }
        let armed = Armed::new(self, function, bust);
        let inner = &*self.inner;
        let generation = inner.pending.generation();
        let sent = inner
            .backend
            .bust(&inner.namespace, armed.bust(), inner.version_ttl)
            .await;
        let bust = armed.disarm();
        let n = bust.len() as u64;
        match sent {
            Ok(()) => {
                // Sent after the failures recorded before it: it covers
                // those of the same names.
                inner.pending.covered(&bust, generation);
                span.record("cache.outcome", "invalidated");
                inner
                    .counters
                    .invalidations
                    .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(function, names = ?self.names_for_logs(&bust), outcome = "invalidated", "cachette");
                #[cfg(feature = "metrics")]
                metrics::counter!("cachette_invalidations_total", "function" => function)
                    .increment(n);
                inner
                    .events
                    .emit(|| Event::new(EventKind::Bust, function).names(n as usize));
                Ok(())
            }
            Err(e) => {
                Counters::bump(&inner.counters.errors);
                span.record("cache.outcome", "failed");
                span.record("error.type", "backend");
                span.record("otel.status_code", "ERROR");
                tracing::error!(
                    function,
                    names = ?self.names_for_logs(&bust),
                    error = %e,
                    "cachette: invalidation failed; kept and retried, and what it names is not served until it is delivered"
                );
                #[cfg(feature = "metrics")]
                metrics::counter!("cachette_errors_total", "function" => function, "op" => "invalidate")
                    .increment(1);
                self.keep_undelivered(&bust);
                let names = n as usize;
                inner
                    .events
                    .emit(|| Event::new(EventKind::BustFailed, function).names(names));
                inner
                    .events
                    .emit(|| Event::new(EventKind::BustKept, function).names(names));
                Err(e)
            }
        }
    }

    /// The keys and tags of `bust`, as logs show them.
    pub(crate) fn names_for_logs<'a>(&'a self, bust: &'a Bust) -> NamesForLogs<'a> {
        NamesForLogs { cache: self, bust }
    }

    /// Keeps a bust that may not have been delivered, and makes sure a
    /// task delivers it.
    pub(crate) fn keep_undelivered(&self, bust: &Bust) {
        self.inner.pending.add(bust);
        self.ensure_retrying();
    }

    /// Starts the delivery task when names are pending and no live task
    /// delivers them (none was started, or its runtime went away).
    pub(crate) fn ensure_retrying(&self) {
        if let Some(claim) = self.inner.pending.claim() {
            // The claim moves into the task now: if the task is dropped
            // before its first poll (it could not run), dropping it gives
            // the claim back, and a later caller starts another.
            pending::spawn_delivery(claim, self.clone());
        }
    }
}

/// A cache delivers the work of its pending set through its backend.
impl Courier for Cache {
    async fn deliver(&self, work: &Work) -> Result<(), Error> {
        let inner = &*self.inner;
        let (sent, names) = match work {
            Work::Names(bust) => (
                inner
                    .backend
                    .bust(&inner.namespace, bust, inner.version_ttl)
                    .await,
                bust.len(),
            ),
            Work::Everything => (inner.backend.bust_everything(&inner.namespace).await, 0),
        };
        let kind = match sent {
            Ok(()) => EventKind::BustDelivered,
            Err(_) => EventKind::BustFailed,
        };
        inner.events.emit(|| Event::new(kind, "").names(names));
        sent
    }
}

/// The keys and tags of a bust as logs show them (formatted only when
/// logged).
pub(crate) struct NamesForLogs<'a> {
    cache: &'a Cache,
    bust: &'a Bust,
}

/// The most names a log line shows of one bust; the rest are counted.
const NAMES_SHOWN: usize = 8;

impl std::fmt::Debug for NamesForLogs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let texts = self.bust.texts();
        let mut list = f.debug_list();
        list.entries(
            texts
                .iter()
                .take(NAMES_SHOWN)
                .map(|t| self.cache.shown(t, "")),
        );
        if texts.len() > NAMES_SHOWN {
            list.entry(&format_args!("and {} more", texts.len() - NAMES_SHOWN));
        }
        list.finish()
    }
}

/// A bust that is kept as undelivered if dropped before it is disarmed.
pub(crate) struct Armed<'a> {
    cache: &'a Cache,
    function: &'static str,
    bust: Option<Bust>,
}

impl<'a> Armed<'a> {
    pub(crate) fn new(cache: &'a Cache, function: &'static str, bust: Bust) -> Armed<'a> {
        Armed {
            cache,
            function,
            bust: Some(bust),
        }
    }

    pub(crate) fn bust(&self) -> &Bust {
        self.bust.as_ref().expect("armed until disarmed")
    }

    pub(crate) fn cache(&self) -> &'a Cache {
        self.cache
    }

    pub(crate) fn function(&self) -> &'static str {
        self.function
    }

    /// Adds the names of `other` to the armed bust.
    pub(crate) fn merge(&mut self, other: &Bust) {
        self.bust
            .as_mut()
            .expect("armed until disarmed")
            .merge(other);
    }

    /// The bust, no longer kept on drop.
    pub(crate) fn disarm(mut self) -> Bust {
        self.bust.take().expect("armed until disarmed")
    }
}

impl Share for Armed<'_> {
    fn cache(&self) -> &Cache {
        self.cache
    }

    fn merge(&mut self, bust: &Bust) {
        Armed::merge(self, bust);
    }
}

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        let Some(bust) = self.bust.take() else { return };
        if bust.is_empty() || crate::deferred::hold(self.cache, self.function, &bust) {
            // Held by the running deferred scope, which sends it or keeps
            // it when it ends.
            return;
        }
        tracing::error!(
            function = self.function,
            names = ?self.cache.names_for_logs(&bust),
            "cachette: an invalidation was dropped before it finished; kept and retried, and what it names is not served until it is delivered"
        );
        self.cache.keep_undelivered(&bust);
    }
}
