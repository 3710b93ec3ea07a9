//! The read path shared by every strategy: validate, serve (fresh, stale or
//! refreshing early), or coalesce, lock, run the body and fill.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::backend::{Lookup, Names};
use crate::cache::Cache;
use crate::entry::{self, Check, Meta};
use crate::error::Error;
use crate::flight::Role;
use crate::mode::Mode;
use crate::policy::{xfetch_due, Policy, Strategy};
use crate::stats::Counters;
use crate::telemetry::{self, Outcome, Started};
use crate::version::Token;

tokio::task_local! {
    /// Set while a background refresh re-runs a function: the entry key it
    /// refreshes. The read path then skips serving and coalescing.
    static REFRESHING: String;
}

/// No background refresh (aside and lock strategies).
pub(crate) type NoRefresh = fn() -> std::future::Ready<()>;

/// How a lock-strategy leader got on.
enum Locked<R> {
    /// Another caller's value arrived while waiting.
    Served(R),
    /// This caller holds the lock; the lookup was read after taking it.
    Held(LockGuard, Lookup),
    /// The wait bound passed: compute without the lock.
    TimedOut(Lookup),
}

/// A held stampede lock. Released explicitly; if dropped unreleased
/// (cancelled or panicking holder) the release is spawned, and failing that
/// the lock lapses after its TTL.
struct LockGuard {
    cache: Cache,
    key: String,
    token: Token,
    released: bool,
}

impl LockGuard {
    async fn release(mut self) {
        self.released = true;
        if let Err(e) = self.cache.inner.backend.unlock(&self.key, self.token).await {
            self.cache.backend_error("unlock", &self.key, &e);
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let (cache, key, token) = (
                self.cache.clone(),
                std::mem::take(&mut self.key),
                self.token,
            );
            handle.spawn(async move {
                let _ = cache.inner.backend.unlock(&key, token).await;
            });
        }
    }
}

/// Removes an entry from the in-process set of running refreshes.
struct RefreshDone {
    cache: Cache,
    entry: String,
}

impl Drop for RefreshDone {
    fn drop(&mut self) {
        let mut set = self
            .cache
            .inner
            .refreshing
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        set.remove(&self.entry);
        drop(set);
        self.cache.inner.refreshes_done.notify_waiters();
    }
}

impl Cache {
    /// Reads `key` under `policy`, or runs `body` and fills.
    ///
    /// `refresh`, for swr and early, makes an owned future that calls the
    /// function again; it is spawned to refresh in the background.
    ///
    /// # Cancel safety
    /// Dropping the future mid-body ends this caller's flight (followers
    /// take over) and releases its lock.
    pub(crate) async fn fetch<M, R, Fut, Mk, RF>(
        &self,
        policy: &Policy,
        key: &str,
        tags: &[impl AsRef<str>],
        body: Fut,
        refresh: Option<Mk>,
    ) -> R
    where
        M: Mode<R>,
        Fut: Future<Output = R>,
        Mk: FnOnce() -> RF,
        RF: Future<Output = ()> + Send + 'static,
    {
        let inner = &*self.inner;
        let started = Started::now();
        let names = self.names(key, tags);
        let forced = REFRESHING
            .try_with(|entry| *entry == names.entry())
            .unwrap_or(false);
        if inner.pending.blocks(&names) || !inner.breaker.allow() {
            // An undelivered invalidation may cover this entry (I9), or the
            // breaker is open.
            return self.bypass(policy, key, body, started).await;
        }
        let mut refresh = refresh;
        let mut flight = None;
        let mut lookup = loop {
            let epoch = inner.flights.epoch(names.entry());
            let lookup = match inner.backend.lookup(&names).await {
                Ok(lookup) => {
                    self.backend_ok();
                    lookup
                }
                Err(e) => {
                    self.backend_error("lookup", key, &e);
                    return self.bypass(policy, key, body, started).await;
                }
            };
            if forced {
                break lookup;
            }
            if let Some(out) =
                self.serve::<M, R, _, _>(policy, key, &names, &lookup, &mut refresh, started)
            {
                return out;
            }
            if flight.is_some() {
                break lookup; // read again as the leader
            }
            match inner.flights.join(names.entry()) {
                Role::Leader(guard) => {
                    flight = Some(guard);
                    if inner.flights.epoch(names.entry()) == epoch {
                        break lookup;
                    }
                    // A flight ended since the read: its value may be there.
                }
                Role::Follower(follower) => {
                    Counters::bump(&inner.counters.coalesced);
                    telemetry::step(policy.function, key, Outcome::Coalesced);
                    follower.wait().await;
                }
            }
        };

        let mut lock = None;
        if policy.strategy == Strategy::Lock && !forced {
            match self
                .lock_or_wait::<M, R>(policy, key, &names, started)
                .await
            {
                Ok(Locked::Served(out)) => return out,
                Ok(Locked::Held(guard, fresh)) => {
                    lock = Some(guard);
                    lookup = fresh;
                }
                Ok(Locked::TimedOut(fresh)) => lookup = fresh,
                Err(e) => {
                    self.backend_error("lock", key, &e);
                    return self.bypass(policy, key, body, started).await;
                }
            }
        }

        if !forced {
            Counters::bump(&inner.counters.misses);
        }
        // The versions must be known before the body reads its source: a bust
        // after this point changes one of them, and the entry written below
        // can then never validate.
        let tokens = match self
            .capture(&names, lookup.versions, policy.storage_ttl())
            .await
        {
            Ok(tokens) => tokens,
            Err(e) => {
                self.backend_error("version", key, &e);
                return self.bypass(policy, key, body, started).await;
            }
        };
        let body_started = inner.clock.now_millis();
        let out = body.await;
        if let Some(value) = M::cacheable(&out) {
            let now = inner.clock.now_millis();
            let fresh_until_ms = match policy.strategy {
                Strategy::Swr | Strategy::Early => {
                    now.saturating_add(u64::try_from(policy.ttl.as_millis()).unwrap_or(u64::MAX))
                }
                _ => 0,
            };
            let meta = Meta {
                fresh_until_ms,
                compute_ms: u32::try_from(now.saturating_sub(body_started)).unwrap_or(u32::MAX),
            };
            self.fill(
                names.entry(),
                key,
                &tokens,
                meta,
                value,
                policy.storage_ttl(),
            )
            .await;
        }
        if let Some(lock) = lock {
            lock.release().await;
        }
        if !forced {
            telemetry::end(policy.function, key, Outcome::Miss, started);
        }
        out
    }

    /// Runs the body without the cache, after a backend failure.
    async fn bypass<R>(
        &self,
        policy: &Policy,
        key: &str,
        body: impl Future<Output = R>,
        started: Started,
    ) -> R {
        let out = body.await;
        telemetry::end(policy.function, key, Outcome::Bypass, started);
        out
    }

    /// The value of a valid entry, counting the hit; for swr and early it
    /// may start a background refresh. `None` is a miss.
    fn serve<M, R, Mk, RF>(
        &self,
        policy: &Policy,
        key: &str,
        names: &Names,
        lookup: &Lookup,
        refresh: &mut Option<Mk>,
        started: Started,
    ) -> Option<R>
    where
        M: Mode<R>,
        Mk: FnOnce() -> RF,
        RF: Future<Output = ()> + Send + 'static,
    {
        let inner = &*self.inner;
        let blob = lookup.entry.as_ref()?;
        let blob = match &inner.signer {
            None => &blob[..],
            Some(signer) => match signer.verify(names.entry(), blob) {
                Some(entry) => entry,
                None => {
                    Counters::bump(&inner.counters.signature_failures);
                    tracing::warn!(
                        key,
                        "cachette: stored value failed its signature check; refetching"
                    );
                    return None;
                }
            },
        };
        let (bytes, meta) = match entry::check(blob, &lookup.versions) {
            Check::Valid(bytes, meta) => (bytes, meta),
            Check::Invalidated => return None,
            Check::Corrupt => {
                self.decode_failure(key, &"not an entry of this format");
                return None;
            }
        };
        let value = match inner.codec.decode::<M::Value>(bytes) {
            Ok(value) => value,
            Err(e) => {
                self.decode_failure(key, &e);
                return None;
            }
        };
        let until = meta.fresh_until_ms;
        let now = if until == 0 {
            0
        } else {
            inner.clock.now_millis()
        };
        match policy.strategy {
            Strategy::Swr if until != 0 && now >= until => {
                let stale_ms = u64::try_from(policy.stale_ttl.as_millis()).unwrap_or(u64::MAX);
                if now >= until.saturating_add(stale_ms) {
                    return None;
                }
                Counters::bump(&inner.counters.stale_hits);
                telemetry::end(policy.function, key, Outcome::Stale, started);
                self.spawn_refresh(policy, key, refresh.take());
            }
            Strategy::Early if until != 0 => {
                if now >= until {
                    return None;
                }
                Counters::bump(&inner.counters.hits);
                if xfetch_due(
                    now,
                    until,
                    meta.compute_ms,
                    policy.beta,
                    inner.random.unit(),
                ) {
                    self.spawn_refresh(policy, key, refresh.take());
                }
                telemetry::end(policy.function, key, Outcome::Hit, started);
            }
            _ => {
                Counters::bump(&inner.counters.hits);
                telemetry::end(policy.function, key, Outcome::Hit, started);
            }
        }
        Some(M::from_cached(value))
    }

    /// Takes the fleet-wide lock of `key`, or waits (bounded) for the value
    /// its holder computes, polling with backoff.
    async fn lock_or_wait<M: Mode<R>, R>(
        &self,
        policy: &Policy,
        key: &str,
        names: &Names,
        started: Started,
    ) -> Result<Locked<R>, Error> {
        let inner = &*self.inner;
        let lock_key = self.lock_key(key);
        let token = Token::random();
        let deadline = Instant::now() + policy.lock_wait;
        let mut delay = Duration::from_millis(2);
        let mut waited = false;
        loop {
            if inner
                .backend
                .try_lock(&lock_key, token, policy.lock_ttl)
                .await?
            {
                let guard = LockGuard {
                    cache: self.clone(),
                    key: lock_key,
                    token,
                    released: false,
                };
                // Read again: the previous holder may have filled just now.
                // These versions are read before the body runs.
                let lookup = inner.backend.lookup(names).await?;
                if let Some(out) = self
                    .serve::<M, R, NoRefresh, _>(policy, key, names, &lookup, &mut None, started)
                {
                    guard.release().await;
                    return Ok(Locked::Served(out));
                }
                return Ok(Locked::Held(guard, lookup));
            }
            if !waited {
                waited = true;
                Counters::bump(&inner.counters.lock_waits);
                telemetry::step(policy.function, key, Outcome::LockWait);
            }
            let now = Instant::now();
            if now >= deadline {
                Counters::bump(&inner.counters.lock_timeouts);
                telemetry::step(policy.function, key, Outcome::LockTimeout);
                return Ok(Locked::TimedOut(inner.backend.lookup(names).await?));
            }
            tokio::time::sleep(delay.min(deadline - now)).await;
            delay = (delay * 2).min(Duration::from_millis(50));
            let lookup = inner.backend.lookup(names).await?;
            if let Some(out) =
                self.serve::<M, R, NoRefresh, _>(policy, key, names, &lookup, &mut None, started)
            {
                return Ok(Locked::Served(out));
            }
        }
    }

    /// Starts one background refresh of `key`, deduplicated in this process
    /// (a set of running refreshes) and across processes (the lock).
    fn spawn_refresh<Mk, RF>(&self, policy: &Policy, key: &str, make: Option<Mk>)
    where
        Mk: FnOnce() -> RF,
        RF: Future<Output = ()> + Send + 'static,
    {
        let Some(make) = make else { return };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let entry = self.names(key, &[] as &[&str]).entry().to_string();
        {
            let mut set = self
                .inner
                .refreshing
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if !set.insert(entry.clone()) {
                return;
            }
        }
        let done = RefreshDone {
            cache: self.clone(),
            entry: entry.clone(),
        };
        let call = make();
        let lock_key = self.lock_key(key);
        let lock_ttl = policy.lock_ttl;
        let (function, key) = (policy.function, key.to_string());
        handle.spawn(async move {
            let cache = done.cache.clone();
            let token = Token::random();
            match cache
                .inner
                .backend
                .try_lock(&lock_key, token, lock_ttl)
                .await
            {
                Ok(true) => {}
                Ok(false) => return, // another process is refreshing
                Err(e) => {
                    cache.backend_error("lock", &lock_key, &e);
                    return;
                }
            }
            Counters::bump(&cache.inner.counters.refreshes);
            telemetry::step(function, &key, Outcome::Refresh);
            REFRESHING.scope(entry, call).await;
            if let Err(e) = cache.inner.backend.unlock(&lock_key, token).await {
                cache.backend_error("unlock", &lock_key, &e);
            }
            drop(done);
        });
    }
}
