//! The read path shared by every strategy: validate, serve (fresh, stale or
//! refreshing early), or coalesce, lock, run the body and fill.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::backend::{Lookup, Wanted, EPOCH_TTL};
use crate::breaker::Tripped;
use crate::cache::Cache;
use crate::entry::{self, Check, Meta};
use crate::error::Error;
use crate::flight::Role;
use crate::mode::Mode;
use crate::names::{Function, Subject};
use crate::policy::{xfetch_due, Policy, Strategy};
use crate::stats::Counters;
use crate::telemetry::{self, Outcome, Shown, Started};
use crate::version::{Seen, Token};

tokio::task_local! {
    /// Set while a background refresh re-runs a function: the entry it
    /// refreshes. The read path then skips serving and coalescing.
    static REFRESHING: String;
    /// The entries whose flights the running code leads, innermost last:
    /// a call nested in its own flight must not wait for it.
    static LEADING: Vec<String>;
}

/// How far the clocks of the processes sharing a namespace may disagree:
/// a signed entry is served up to this long past its TTL by the writer's
/// clock, and never after.
const CLOCK_SLACK: Duration = Duration::from_secs(60);

/// No background refresh (aside and lock strategies).
pub(crate) type NoRefresh = fn() -> std::future::Ready<()>;

/// One call of a cached function: what it reads and how.
pub(crate) struct Call<'a> {
    pub policy: &'a Policy,
    pub subject: Subject<'a>,
    /// The key as logs show it.
    pub key: Shown<'a>,
    pub started: Started,
}

impl<'a> Call<'a> {
    pub(crate) fn new<S: AsRef<str>>(
        cache: &'a Cache,
        policy: &'a Policy,
        function: Function,
        key: &'a str,
        tags: &'a [S],
    ) -> Call<'a> {
        Call {
            policy,
            subject: Subject::new(
                &cache.inner.namespace,
                function,
                key,
                tags,
                cache.inner.backend.epoch_of(),
            ),
            key: cache.shown(key, policy.template),
            started: Started::now(),
        }
    }

    fn label(&self) -> &'static str {
        self.subject.function().label
    }
}

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
    async fn take(
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

    async fn release(mut self) {
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
        let mut set = crate::sync::lock(&self.cache.inner.refreshing);
        set.remove(&self.entry);
        drop(set);
        self.cache.inner.refreshes_done.notify_waiters();
    }
}

/// Whether the running code leads the flight of `entry`.
fn leads(entry: &str) -> bool {
    LEADING
        .try_with(|leading| leading.iter().any(|e| e == entry))
        .unwrap_or(false)
}

/// Runs `body` as the leader of `entry`'s flight, so that calls nested in
/// it know.
async fn as_leader<F: Future>(entry: &str, body: F) -> F::Output {
    let mut leading = LEADING.try_with(Clone::clone).unwrap_or_default();
    leading.push(entry.to_string());
    LEADING.scope(leading, body).await
}

impl Cache {
    /// Reads `call`'s entry under its policy, or runs `body` and fills.
    ///
    /// `refresh`, for swr and early, makes an owned future that calls the
    /// function again; it is spawned to refresh in the background.
    ///
    /// # Cancel safety
    /// Dropping the future mid-body ends this caller's flight (followers
    /// take over), releases its lock, and gives back a breaker probe.
    pub(crate) async fn fetch<M, R, Fut, Mk, RF>(
        &self,
        call: Call<'_>,
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
        let entry = call.subject.entry();
        let forced = REFRESHING
            .try_with(|refreshing| refreshing == entry)
            .unwrap_or(false);
        if inner.pending.any() {
            self.ensure_retrying();
            if inner.pending.blocks(&call.subject) {
                // An undelivered invalidation may cover this entry (I9).
                return self.bypass(&call, body).await;
            }
        }
        // Held until the lookup answered: a probe dropped earlier is given
        // back, so the breaker cannot stay half-open for good.
        let Some(permit) = inner.breaker.allow() else {
            return self.bypass(&call, body).await;
        };
        let mut refresh = refresh;
        let mut flight = None;
        let nested = leads(entry);
        // Waited `lock_wait` for a flight that did not end: go alone.
        let mut alone = false;
        let mut lookup = loop {
            let epoch = inner.flights.epoch(entry);
            let lookup = match inner.backend.lookup(&call.subject).await {
                Ok(lookup) => {
                    self.backend_ok();
                    lookup
                }
                Err(e) => {
                    self.backend_error("lookup", &call.key, &e);
                    return self.bypass(&call, body).await;
                }
            };
            if forced {
                break lookup;
            }
            if let Some(out) = self.serve::<M, R, _, _>(&call, &lookup, &mut refresh) {
                return out;
            }
            if flight.is_some() || nested || alone {
                // Read again as the leader; or nested in our own flight; or
                // tired of waiting for another.
                break lookup;
            }
            match inner.flights.join(entry) {
                Role::Leader(guard) => {
                    flight = Some(guard);
                    if inner.flights.epoch(entry) == epoch {
                        break lookup;
                    }
                    // A flight ended since the read: its value may be there.
                }
                Role::Follower(follower) => {
                    Counters::bump(&inner.counters.coalesced);
                    telemetry::step(call.label(), call.key, Outcome::Coalesced);
                    // Bounded: a leader that never ends (it waits, through
                    // a task it spawned, for this very call) cannot hold
                    // its followers forever.
                    let waited = tokio::time::timeout(call.policy.lock_wait, follower.wait());
                    alone = waited.await.is_err();
                }
            }
        };
        drop(permit);

        let mut lock = None;
        // Nested in its own flight, the call would wait for its own lock.
        if call.policy.strategy == Strategy::Lock && !forced && !nested {
            match self.lock_or_wait::<M, R>(&call).await {
                Ok(Locked::Served(out)) => return out,
                Ok(Locked::Held(guard, fresh)) => {
                    lock = Some(guard);
                    lookup = fresh;
                }
                Ok(Locked::TimedOut(fresh)) => lookup = fresh,
                Err(e) => {
                    self.backend_error("lock", &call.key, &e);
                    return self.bypass(&call, body).await;
                }
            }
        }

        if !forced {
            Counters::bump(&inner.counters.misses);
        }
        // The versions must be known before the body reads its source: a bust
        // after this point changes one of them, and the entry written below
        // can then never validate.
        let (tokens, created) = match self
            .capture(&call.subject, &lookup, call.policy.storage_ttl())
            .await
        {
            Ok(captured) => captured,
            Err(e) => {
                self.backend_error("version", &call.key, &e);
                return self.bypass(&call, body).await;
            }
        };
        let body_started = inner.clock.now_millis();
        let out = if flight.is_some() {
            as_leader(entry, body).await
        } else {
            body.await
        };
        if let Some(value) = M::cacheable(&out) {
            let now = inner.clock.now_millis();
            let fresh_until_ms = match call.policy.strategy {
                Strategy::Swr | Strategy::Early => now
                    .saturating_add(u64::try_from(call.policy.ttl.as_millis()).unwrap_or(u64::MAX)),
                _ => 0,
            };
            let meta = Meta {
                fresh_until_ms,
                compute_ms: u32::try_from(now.saturating_sub(body_started)).unwrap_or(u32::MAX),
                expires_ms: 0, // set by the fill
            };
            self.fill(&call, &tokens, meta, value).await;
        } else if !created.is_empty() {
            // Nothing to keep (an error, `None`): the versions created for
            // it would only take room.
            if let Err(e) = inner.backend.forget(&created).await {
                tracing::debug!(error = %e, "cachette: could not drop unused versions");
            }
        }
        if let Some(lock) = lock {
            lock.release().await;
        }
        if !forced {
            telemetry::end(call.label(), call.key, Outcome::Miss, call.started);
        }
        out
    }

    /// Runs the body without the cache.
    async fn bypass<R>(&self, call: &Call<'_>, body: impl Future<Output = R>) -> R {
        let out = body.await;
        telemetry::end(call.label(), call.key, Outcome::Bypass, call.started);
        out
    }

    /// The value of a valid entry, counting the hit; for swr and early it
    /// may start a background refresh. `None` is a miss.
    fn serve<M, R, Mk, RF>(
        &self,
        call: &Call<'_>,
        lookup: &Lookup,
        refresh: &mut Option<Mk>,
    ) -> Option<R>
    where
        M: Mode<R>,
        Mk: FnOnce() -> RF,
        RF: Future<Output = ()> + Send + 'static,
    {
        let inner = &*self.inner;
        let (policy, key) = (call.policy, call.key);
        if lookup.oversized {
            Counters::bump(&inner.counters.too_large);
            return None;
        }
        let blob = lookup.entry.as_ref()?;
        let blob = match &inner.signer {
            None => &blob[..],
            Some(signer) => match signer.verify(call.subject.entry(), blob) {
                Some(entry) => entry,
                None => {
                    Counters::bump(&inner.counters.signature_failures);
                    tracing::warn!(
                        key = %key,
                        "cachette: stored value failed its signature check; refetching"
                    );
                    return None;
                }
            },
        };
        let tokens = lookup.versions.iter().map(Seen::token);
        let checked = match &inner.signer {
            None => entry::check(blob, tokens),
            // Signed entries record keyed hashes of their tokens.
            Some(signer) => entry::check(blob, tokens.map(|t| t.map(|t| signer.hash_token(&t)))),
        };
        let (bytes, meta) = match checked {
            Check::Valid(bytes, meta) => (bytes, meta),
            Check::Invalidated => return None,
            Check::Corrupt => {
                self.decode_failure(key, &"not an entry of this format");
                return None;
            }
        };
        if inner.signer.is_some() && inner.clock.now_millis() >= meta.expires_ms {
            // Kept past its signed expiry (`PERSIST`, or a replayed copy).
            Counters::bump(&inner.counters.signature_failures);
            return None;
        }
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
                telemetry::end(call.label(), key, Outcome::Stale, call.started);
                self.spawn_refresh(call, refresh.take());
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
                    self.spawn_refresh(call, refresh.take());
                }
                telemetry::end(call.label(), key, Outcome::Hit, call.started);
            }
            _ => {
                Counters::bump(&inner.counters.hits);
                telemetry::end(call.label(), key, Outcome::Hit, call.started);
            }
        }
        Some(M::from_cached(value))
    }

    /// Takes the fleet-wide lock of the entry, or waits (bounded) for the
    /// value its holder computes, polling with backoff.
    async fn lock_or_wait<M: Mode<R>, R>(&self, call: &Call<'_>) -> Result<Locked<R>, Error> {
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
                if let Some(out) = self.serve::<M, R, NoRefresh, _>(call, &lookup, &mut None) {
                    guard.release().await;
                    return Ok(Locked::Served(out));
                }
                return Ok(Locked::Held(guard, lookup));
            }
            if !waited {
                waited = true;
                Counters::bump(&inner.counters.lock_waits);
                telemetry::step(call.label(), call.key, Outcome::LockWait);
            }
            let now = Instant::now();
            if now >= deadline {
                Counters::bump(&inner.counters.lock_timeouts);
                telemetry::step(call.label(), call.key, Outcome::LockTimeout);
                return Ok(Locked::TimedOut(inner.backend.lookup(&call.subject).await?));
            }
            tokio::time::sleep(delay.min(deadline - now)).await;
            delay = (delay * 2).min(Duration::from_millis(50));
            let lookup = inner.backend.lookup(&call.subject).await?;
            if let Some(out) = self.serve::<M, R, NoRefresh, _>(call, &lookup, &mut None) {
                return Ok(Locked::Served(out));
            }
        }
    }

    /// Starts one background refresh of the entry, deduplicated in this
    /// process (a set of running refreshes) and across processes (the lock).
    fn spawn_refresh<Mk, RF>(&self, call: &Call<'_>, make: Option<Mk>)
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

    /// The tokens to record in a fill: the ones just read, with any missing
    /// or foreign version replaced first (living as long as the entry), and
    /// the names of the versions this call wrote.
    async fn capture<'l>(
        &self,
        subject: &'l Subject<'_>,
        lookup: &Lookup,
        ttl: Duration,
    ) -> Result<(Vec<Token>, Vec<&'l str>), Error> {
        let read = &lookup.versions;
        if let Some(tokens) = read.iter().map(Seen::token).collect::<Option<Vec<Token>>>() {
            return Ok((tokens, Vec::new()));
        }
        let names = subject.names();
        // The versions to write, and for each the name to drop if nothing
        // is filled (none for the epoch, which the namespace shares).
        let (wanted, droppable): (Vec<Wanted<'_>>, Vec<Option<&'l str>>) = names
            .versions()
            .zip(read)
            .enumerate()
            .filter_map(|(i, (name, seen))| {
                let epoch = names.is_epoch(i);
                let ttl = if epoch { EPOCH_TTL } else { ttl };
                let drop = (!epoch).then_some(name);
                match seen {
                    Seen::Current(_) => None,
                    Seen::Missing => Some(((name, None, ttl), drop)),
                    Seen::Foreign(raw) => Some(((name, Some(raw.as_slice()), ttl), drop)),
                }
            })
            .unzip();
        let ensured = self.inner.backend.ensure(&wanted).await?;
        let written = droppable
            .into_iter()
            .zip(&ensured)
            .filter_map(|(name, (_, wrote))| name.filter(|_| *wrote))
            .collect();
        let mut ensured = ensured.into_iter().map(|(token, _)| token);
        let tokens = read
            .iter()
            .map(|seen| {
                seen.token()
                    .or_else(|| ensured.next())
                    .expect("one token per missing or foreign version")
            })
            .collect();
        Ok((tokens, written))
    }

    /// Stores `value` as the entry of `call`, valid under `tokens`.
    async fn fill<T: serde::Serialize>(
        &self,
        call: &Call<'_>,
        tokens: &[Token],
        meta: Meta,
        value: &T,
    ) {
        let inner = &*self.inner;
        let (key, ttl) = (call.key, call.policy.storage_ttl());
        if ttl.is_zero() {
            return;
        }
        let meta = Meta {
            expires_ms: inner.clock.now_millis().saturating_add(
                u64::try_from(ttl.saturating_add(CLOCK_SLACK).as_millis()).unwrap_or(u64::MAX),
            ),
            ..meta
        };
        let hashed: Vec<Token>;
        let tokens = match &inner.signer {
            None => tokens,
            Some(signer) => {
                hashed = tokens.iter().map(|t| signer.hash_token(t)).collect();
                &hashed
            }
        };
        let Some(mut blob) = entry::begin(tokens, meta, 128) else {
            tracing::warn!(key = %key, "cachette: more than 254 tags; not cached");
            return;
        };
        if let Err(e) = inner.codec.encode_into(&mut blob, value) {
            tracing::warn!(key = %key, error = %e, "cachette: value failed to serialize; returned uncached");
            return;
        }
        if let Some(signer) = &inner.signer {
            signer.sign(call.subject.entry(), &mut blob);
        }
        if blob.len() > inner.max_value_bytes {
            Counters::bump(&inner.counters.too_large);
            if inner.warned_too_large.first_time(call.subject.entry()) {
                tracing::warn!(
                    key = %key,
                    bytes = blob.len(),
                    limit = inner.max_value_bytes,
                    "cachette: value larger than max_value_bytes; not cached (warned once per key)"
                );
            }
            return;
        }
        if let Err(e) = inner.backend.store(call.subject.entry(), blob, ttl).await {
            self.backend_error("fill", &key, &e);
        }
    }

    pub(crate) fn backend_error(&self, op: &str, key: &dyn fmt::Display, e: &Error) {
        Counters::bump(&self.inner.counters.errors);
        tracing::warn!(key = %key, op, error = %e, "cachette: backend failed; reading through");
        if self.inner.breaker.failure() == Tripped::Opened {
            Counters::bump(&self.inner.counters.breaker_opens);
            tracing::warn!("cachette: circuit breaker opened; calls read through without Redis");
        }
    }

    fn backend_ok(&self) {
        if self.inner.breaker.success() {
            tracing::info!("cachette: circuit breaker closed; the backend answers again");
        }
    }

    fn decode_failure(&self, key: Shown<'_>, e: &dyn fmt::Display) {
        Counters::bump(&self.inner.counters.decode_failures);
        tracing::debug!(key = %key, error = %e, "cachette: stored value did not decode; refetching");
    }

    /// `text` as logs show it.
    pub(crate) fn shown<'a>(&'a self, text: &'a str, template: &'a str) -> Shown<'a> {
        Shown {
            text,
            template,
            full: self.inner.log_full_names,
            signer: self.inner.signer.as_ref(),
        }
    }
}
