//! `soft_timeout`: a miss whose entry is kept past its TTL, still valid by
//! versions, hands the body to a background refresh and waits for it at
//! most the soft timeout; past it, the kept value is returned, read again
//! first so that a bust since the miss is seen (I1). The refresh is an
//! ordinary one (`refresh.rs`): one per entry in this process, one across
//! the fleet through the entry's lock, and its value is stored as any fill
//! is, under the versions it read before its body.

use std::future::Future;

use super::Call;
use crate::backend::Lookup;
use crate::cache::Cache;
use crate::keep::Keeper;
use crate::mode::Mode;
use crate::stats::Counters;
use crate::telemetry::Outcome;

impl Cache {
    /// For a call that missed with `soft_timeout`: `Some` when it is
    /// answered without running the body itself (by the background run's
    /// fresh value, or by the kept value); `None` when it must run the body
    /// as any miss does (nothing kept, the kept value was invalidated
    /// meanwhile, or no background run could start).
    ///
    /// # Cancel safety
    /// Dropping the future only stops waiting; the background run goes on.
    pub(super) async fn soft<M, R, Mk, RF>(
        &self,
        call: &Call<'_>,
        keep: Keeper<M::Value>,
        lookup: &Lookup,
        refresh: &mut Option<Mk>,
    ) -> Option<R>
    where
        M: Mode<R>,
        Mk: FnOnce() -> RF,
        RF: Future<Output = ()> + Send + 'static,
    {
        let inner = &*self.inner;
        let soft = call.policy.soft_timeout;
        // Nothing kept to fall back on: wait for the body.
        self.kept_in::<M, R>(call, keep, lookup)?;
        let deadline = tokio::time::Instant::now() + soft;
        if !self.spawn_refresh(call, refresh.take()) {
            return None; // no background run: this call runs the body
        }
        let entry = call.subject.entry();
        let ended = loop {
            let notified = inner.refreshes_done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.refresh_running(entry) {
                break true;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            // On cachette's timer: the caller's runtime may have none.
            if crate::background::timeout(left, notified).await.is_none() {
                break false;
            }
        };
        if ended {
            // The background run ended in time: its value, if it stored
            // one.
            let lookup = inner.backend.lookup(&call.subject).await.ok()?;
            // A bust that names the entry failed during the wait: the
            // refresh's value may be older than it (I9). `serve` and
            // `kept_now` refuse to serve; the call runs its own body.
            let mut none = None::<fn() -> std::future::Ready<()>>;
            if let Some(out) = self.serve::<M, R, _, _>(call, keep, &lookup, &mut none) {
                return Some(out);
            }
            // It stored nothing (its body failed, or another process holds
            // the entry's lock): the kept value, if it is still valid.
            let value = self.kept_now::<M, R>(call, keep).await?;
            Counters::bump(&inner.counters.stale_on_error);
            self.ended(call, Outcome::StaleOnError);
            return Some(M::from_cached(value));
        }
        let value = self.kept_now::<M, R>(call, keep).await?;
        Counters::bump(&inner.counters.soft_timeouts);
        self.ended(call, Outcome::StaleOnTimeout);
        Some(M::from_cached(value))
    }

    /// Whether a background refresh of `entry` is running in this process.
    fn refresh_running(&self, entry: &str) -> bool {
        let now = self.inner.clock.now_millis();
        crate::sync::lock(&self.inner.refreshing)
            .get(entry)
            .is_some_and(|(_, until)| now < *until)
    }
}
