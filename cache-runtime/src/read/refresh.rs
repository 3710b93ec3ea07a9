//! Background refreshes (`swr`, `early`): at most one per entry in this
//! process, and one across the fleet through the entry's lock.

use std::future::Future;

use super::lock::LockGuard;
use super::{Call, REFRESHING};
use crate::cache::Cache;
use crate::stats::Counters;
use crate::telemetry::{self, Outcome};

/// Removes an entry from the in-process set of running refreshes, if it is
/// still this refresh's.
struct RefreshDone {
    cache: Cache,
    entry: String,
    id: u64,
}

impl Drop for RefreshDone {
    fn drop(&mut self) {
        let mut set = crate::sync::lock(&self.cache.inner.refreshing);
        if set.get(&self.entry).is_some_and(|(id, _)| *id == self.id) {
            set.remove(&self.entry);
        }
        drop(set);
        self.cache.inner.refreshes_done.notify_waiters();
    }
}

/// Refresh ids, unique in the process.
static NEXT_REFRESH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Cache {
    /// Starts one background refresh of the entry, deduplicated in this
    /// process (a set of running refreshes) and across processes (the lock).
    ///
    /// - It runs the function's body, so it runs on the caller's runtime,
    ///   with the application's resources, never on cachette's own. That
    ///   runtime may stop being driven: a refresh that has not ended within
    ///   the lock's TTL no longer keeps another from starting (a refresh
    ///   is an optimisation; versions keep it correct, I1).
    /// - None starts inside `deferred`: the scope's calls store nothing,
    ///   and a refresh would store outside it. The next hit outside a
    ///   scope refreshes.
    ///
    /// Whether a refresh of the entry runs now in this process (this one,
    /// or one started before).
    pub(super) fn spawn_refresh<Mk, RF>(&self, call: &Call<'_>, make: Option<Mk>) -> bool
    where
        Mk: FnOnce() -> RF,
        RF: Future<Output = ()> + Send + 'static,
    {
        let Some(make) = make else { return false };
        if crate::deferred::in_scope() {
            return false;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let entry = call.subject.entry().to_string();
        let id = NEXT_REFRESH.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        {
            let now = self.inner.clock.now_millis();
            let bound = call.policy.lock_ttl.as_millis() as u64;
            let mut set = crate::sync::lock(&self.inner.refreshing);
            if set.get(&entry).is_some_and(|(_, until)| now < *until) {
                return true;
            }
            set.insert(entry.clone(), (id, now.saturating_add(bound)));
        }
        let done = RefreshDone {
            cache: self.clone(),
            entry: entry.clone(),
            id,
        };
        let refresh = make();
        let lock_key = call.subject.lock();
        let lock_ttl = call.policy.lock_ttl;
        let (function, key) = (call.label(), call.key.to_string());
        // Its own root: the caller's trace may have ended long before.
        let span = crate::spans::refresh(&call.span, call.policy, function);
        let refresh = async move {
            let cache = done.cache.clone();
            let lock = match LockGuard::take(&cache, lock_key, || key.clone(), lock_ttl).await {
                Ok(Some(lock)) => lock,
                Ok(None) => return, // another process is refreshing
                Err(e) => {
                    cache.backend_error("lock", &key, &e);
                    return;
                }
            };
            Counters::bump(&cache.inner.counters.refreshes);
            telemetry::step(function, &key, Outcome::Refresh);
            REFRESHING.scope(entry, refresh).await;
            lock.release().await;
            drop(done);
        };
        handle.spawn(async move { crate::spans::within(&span, refresh).await });
        true
    }
}
