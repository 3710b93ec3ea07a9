//! The fleet-wide stampede lock of an entry: taken with a random token,
//! released by its owner only, and waited on (bounded) by everyone else.

use std::time::Duration;
use tokio::time::Instant;

use super::{Call, NoRefresh};
use crate::backend::Lookup;
use crate::cache::Cache;
use crate::error::Error;
use crate::keep::Keeper;
use crate::mode::Mode;
use crate::stats::Counters;
use crate::telemetry::Outcome;
use crate::version::Token;

/// How a lock-strategy leader got on.
pub(super) enum Locked<R> {
    /// Another caller's value arrived while waiting.
    Served(R),
    /// This caller holds the lock; the lookup was read after taking it.
    Held(LockGuard, Lookup),
    /// The wait bound passed: compute without the lock.
    TimedOut(Lookup),
    /// A bust that names the entry failed while waiting, and is kept
    /// (I9): read around the cache.
    Blocked,
}

/// A held stampede lock. Released explicitly; if dropped unreleased
/// (cancelled or panicking holder) the release is spawned, and failing that
/// the lock lapses after its TTL.
pub(crate) struct LockGuard {
    cache: Cache,
    key: String,
    /// The entry's key as logs show it (never the lock's backend name,
    /// which holds the full key).
    shown: String,
    token: Token,
    released: bool,
}

impl LockGuard {
    /// Takes the lock `key` unless someone holds it.
    pub(super) async fn take(
        cache: &Cache,
        key: String,
        shown: impl FnOnce() -> String,
        ttl: Duration,
    ) -> Result<Option<LockGuard>, Error> {
        let token = Token::random();
        let taken = cache.inner.backend.try_lock(&key, token, ttl).await?;
        Ok(taken.then(|| LockGuard {
            cache: cache.clone(),
            key,
            shown: shown(),
            token,
            released: false,
        }))
    }

    pub(super) async fn release(mut self) {
        self.released = true;
        if let Err(e) = self.cache.inner.backend.unlock(&self.key, self.token).await {
            self.cache.backend_error("unlock", &self.shown, &e);
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // On cachette's own runtime: the holder's may be going away.
        let (cache, key, token) = (
            self.cache.clone(),
            std::mem::take(&mut self.key),
            self.token,
        );
        let _ = crate::background::spawn(async move {
            let _ = cache.inner.backend.unlock(&key, token).await;
        });
    }
}

impl Cache {
    /// Takes the fleet-wide lock of the entry, or waits (bounded) for the
    /// value its holder computes, polling with backoff.
    pub(super) async fn lock_or_wait<M: Mode<R>, R>(
        &self,
        call: &Call<'_>,
        keep: Keeper<M::Value>,
    ) -> Result<Locked<R>, Error> {
        let inner = &*self.inner;
        let policy = call.policy;
        let lock_key = call.subject.lock();
        let deadline = Instant::now() + policy.lock_wait;
        let mut delay = Duration::from_millis(2);
        let mut waited = false;
        loop {
            if let Some(guard) = LockGuard::take(
                self,
                lock_key.clone(),
                || call.key.to_string(),
                policy.lock_ttl,
            )
            .await?
            {
                // Read again: the previous holder may have filled just now.
                // These versions are read before the body runs.
                let lookup = inner.backend.lookup(&call.subject).await?;
                if inner.pending.blocks(&call.subject) {
                    guard.release().await;
                    return Ok(Locked::Blocked);
                }
                if let Some(out) = self.serve::<M, R, NoRefresh, _>(call, keep, &lookup, &mut None)
                {
                    guard.release().await;
                    return Ok(Locked::Served(out));
                }
                return Ok(Locked::Held(guard, lookup));
            }
            if !waited {
                waited = true;
                Counters::bump(&inner.counters.lock_waits);
                self.stepped(call, Outcome::LockWait);
            }
            let now = Instant::now();
            if now >= deadline {
                Counters::bump(&inner.counters.lock_timeouts);
                self.stepped(call, Outcome::LockTimeout);
                return Ok(Locked::TimedOut(inner.backend.lookup(&call.subject).await?));
            }
            crate::background::sleep(delay.min(deadline - now)).await;
            delay = (delay * 2).min(Duration::from_millis(50));
            let lookup = inner.backend.lookup(&call.subject).await?;
            if inner.pending.blocks(&call.subject) {
                return Ok(Locked::Blocked);
            }
            if let Some(out) = self.serve::<M, R, NoRefresh, _>(call, keep, &lookup, &mut None) {
                return Ok(Locked::Served(out));
            }
        }
    }
}
