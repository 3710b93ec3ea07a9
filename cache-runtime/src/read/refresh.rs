//! Background refreshes (`swr`, `early`): at most one per entry in this
//! process, and one across the fleet through the entry's lock.

use std::future::Future;

use super::lock::LockGuard;
use super::{Call, REFRESHING};
use crate::cache::Cache;
use crate::stats::Counters;
use crate::telemetry::{self, Outcome};

/// Removes an entry from the in-process set of running refreshes.
struct RefreshDone {
    cache: Cache,
    entry: String,
}

impl Drop for RefreshDone {
    fn drop(&mut self) {
        let mut set = crate::sync::lock(&self.cache.inner.refreshing);
        set.remove(&self.entry);
        drop(set);
        self.cache.inner.refreshes_done.notify_waiters();
    }
}

impl Cache {
    /// Starts one background refresh of the entry, deduplicated in this
    /// process (a set of running refreshes) and across processes (the lock).
    pub(super) fn spawn_refresh<Mk, RF>(&self, call: &Call<'_>, make: Option<Mk>)
    where
        Mk: FnOnce() -> RF,
        RF: Future<Output = ()> + Send + 'static,
    {
        let Some(make) = make else { return };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let entry = call.subject.entry().to_string();
        {
            let mut set = crate::sync::lock(&self.inner.refreshing);
            if !set.insert(entry.clone()) {
                return;
            }
        }
        let done = RefreshDone {
            cache: self.clone(),
            entry: entry.clone(),
        };
        let refresh = make();
        let lock_key = call.subject.lock();
        let lock_ttl = call.policy.lock_ttl;
        let (function, key) = (call.label(), call.key.to_string());
        handle.spawn(async move {
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
        });
    }
}
