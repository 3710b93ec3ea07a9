//! The read path shared by every strategy: validate, serve (fresh, stale or
//! refreshing early), or coalesce, lock, run the body and fill. The lock is
//! in `lock.rs`, background refreshes in `refresh.rs`, filling and error
//! accounting in `fill.rs`.

mod fill;
mod lock;
mod refresh;

use self::lock::Locked;

use std::future::Future;
use std::time::Duration;

use crate::backend::Lookup;
use crate::cache::Cache;
use crate::deferred::Reading;
use crate::entry::{self, Check, Meta};
use crate::flight::{Ended, Role};
use crate::hooks::Hooks;
use crate::keep::Keeper;
use crate::mode::{Mode, ResultNoneMode};
use crate::names::{Function, Subject};
use crate::policy::{xfetch_due, Policy, Strategy};
use crate::stats::Counters;
use crate::telemetry::{self, Outcome, Shown, Started};
use crate::version::Seen;

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

/// What [`Cache::fetch`] ended with.
pub(crate) enum Fetched<R, Fut, Mk> {
    Done(R),
    /// Derived tags were learned while this call waited: call again with
    /// them (the body was not polled).
    Rehint(Fut, Option<Mk>),
}

/// No background refresh (aside and lock strategies).
pub type NoRefresh = fn() -> std::future::Ready<()>;

/// One call of a cached function: what it reads and how.
pub(crate) struct Call<'a> {
    pub policy: &'a Policy,
    pub subject: Subject<'a>,
    /// The key as logs show it.
    pub key: Shown<'a>,
    pub started: Started,
    /// Skip serving and coalescing: run the body and fill (a refresh).
    pub forced: bool,
    /// With `tags_from`: a follower may hand its body back to be called
    /// again under newly learned derived tags.
    pub rehint: bool,
    /// The key as rendered.
    pub text: &'a str,
    /// With `tags_from`: the derived tags this call read (the hint), the
    /// last of the call's tags.
    pub derived: Option<std::sync::Arc<[String]>>,
    /// Serve a valid entry, but store nothing, as inside a deferred scope
    /// (a generic argument was a `&mut`, perhaps a transaction).
    pub stores_nothing: bool,
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
            forced: false,
            rehint: false,
            text: key,
            derived: None,
            stores_nothing: false,
        }
    }

    pub(crate) fn label(&self) -> &'static str {
        self.subject.function().label
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
    /// Reads `call`'s entry under its policy, or runs `body` and fills;
    /// with `tags_from`, may hand the body back unpolled to be called again
    /// under newly learned derived tags (`Fetched::Rehint`).
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
        keep: Keeper<M::Value>,
        body: Fut,
        refresh: Option<Mk>,
        hooks: &Hooks<'_, M::Value>,
    ) -> Fetched<R, Fut, Mk>
    where
        M: Mode<R>,
        Fut: Future<Output = R>,
        Mk: FnOnce() -> RF,
        RF: Future<Output = ()> + Send + 'static,
    {
        let inner = &*self.inner;
        let keep = if inner.keep_decoded {
            keep
        } else {
            Keeper::none()
        };
        let entry = call.subject.entry();
        let forced = call.forced
            || REFRESHING
                .try_with(|refreshing| refreshing == entry)
                .unwrap_or(false);
        if inner.pending.any() {
            self.ensure_retrying();
            if inner.pending.blocks(&call.subject) {
                // An undelivered invalidation may cover this entry (I9).
                return Fetched::Done(self.bypass(&call, body).await);
            }
        }
        if call.policy.ttl.is_zero() {
            // A TTL from an expression that came out zero: nothing to keep.
            self.zero_ttl(&call);
            return Fetched::Done(self.bypass(&call, body).await);
        }
        // Inside a deferred scope (a transaction may be open): an entry a
        // held bust names is not served, and nothing is stored.
        let mut deferring = crate::deferred::reading(self, &call.subject);
        if call.stores_nothing && deferring == Reading::Outside {
            deferring = Reading::Inside;
        }
        if deferring == Reading::Busted {
            return Fetched::Done(self.bypass(&call, body).await);
        }
        // Held until the lookup answered: a probe dropped earlier is given
        // back, so the breaker cannot stay half-open for good.
        let Some(permit) = inner.breaker.allow() else {
            return Fetched::Done(self.bypass(&call, body).await);
        };
        let mut refresh = refresh;
        let mut flight = None;
        let nested = leads(entry);
        // Waited `lock_wait` for a flight that did not end: go alone.
        let mut alone = false;
        // The versions a flight we followed read for its "not found".
        let mut handed: crate::flight::Handed = None;
        // The flight we followed found nothing, and we joined it too late to
        // take its answer: join the next one before reading again.
        let mut rejoin = false;
        let mut lookup = loop {
            if std::mem::take(&mut rejoin) && flight.is_none() && !nested && !alone {
                match inner.flights.join(entry) {
                    Role::Leader(guard) => {
                        flight = Some(guard);
                        // The others woken with us join before our body.
                        crate::flight::YieldOnce::new().await;
                    }
                    Role::Follower(follower) => {
                        let ended = self.follow(&call, follower).await;
                        (handed, alone, rejoin) = after_following(ended);
                        continue;
                    }
                }
            }
            let epoch = inner.flights.epoch(entry);
            let lookup = match inner.backend.lookup(&call.subject).await {
                Ok(lookup) => {
                    self.backend_ok();
                    lookup
                }
                Err(e) => {
                    self.backend_error("lookup", &call.key, &e);
                    return Fetched::Done(self.bypass(&call, body).await);
                }
            };
            if forced {
                break lookup;
            }
            if let Some(out) = self.serve::<M, R, _, _>(&call, keep, &lookup, &mut refresh) {
                return Fetched::Done(out);
            }
            // The flight we followed found nothing to store, having read
            // the very versions read now: no bust came in between.
            if let Some(tokens) = handed.take() {
                if same_versions(&lookup.versions, &tokens) {
                    if let Some(out) = M::absent() {
                        telemetry::end(call.label(), call.key, Outcome::Coalesced, call.started);
                        return Fetched::Done(out);
                    }
                }
            }
            if flight.is_some() || nested || alone || deferring == Reading::Inside {
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
                    let ended = self.follow(&call, follower).await;
                    (handed, alone, rejoin) = after_following(ended);
                    // With `tags_from`, a leader whose value derived other
                    // tags than it read stored nothing and learned them:
                    // read again under them rather than lead in turn.
                    if let (Some(_), Some(read), true) =
                        (hooks.tags_from, &call.derived, call.rehint)
                    {
                        let learned = self.hinted(&call.subject.function(), call.text);
                        if learned.as_deref().unwrap_or(&[]) != &**read {
                            return Fetched::Rehint(body, refresh);
                        }
                    }
                }
            }
        };
        drop(permit);
        if deferring == Reading::Inside {
            if !forced {
                Counters::bump(&inner.counters.misses);
            }
            return Fetched::Done(self.bypass(&call, body).await);
        }

        let mut lock = None;
        // Nested in its own flight, the call would wait for its own lock.
        if call.policy.strategy == Strategy::Lock && !forced && !nested {
            match self.lock_or_wait::<M, R>(&call, keep).await {
                Ok(Locked::Served(out)) => return Fetched::Done(out),
                Ok(Locked::Held(guard, fresh)) => {
                    lock = Some(guard);
                    lookup = fresh;
                }
                Ok(Locked::TimedOut(fresh)) => lookup = fresh,
                Err(e) => {
                    self.backend_error("lock", &call.key, &e);
                    return Fetched::Done(self.bypass(&call, body).await);
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
                return Fetched::Done(self.bypass(&call, body).await);
            }
        };
        let body_started = inner.clock.now_millis();
        let out = if let Some(guard) = &flight {
            guard.start();
            as_leader(entry, body).await
        } else {
            body.await
        };
        // The body failed: with `stale_if_error`, the value kept past its
        // TTL, if it is still valid (nothing is stored either way).
        let recovered = if !call.policy.stale_if_error.is_zero() && M::failed(&out) {
            self.stale_on_error::<M, R>(&call, keep).await
        } else {
            None
        };
        // With `tags_from`, only a value that derives the tags whose
        // versions were read before the body may be stored (`derived.rs`).
        let derives_what_was_read = |value: &M::Value| match (hooks.tags_from, &call.derived) {
            (Some(derive), Some(read)) => {
                let derived = crate::derived::normalize(derive(value));
                let same = *derived == **read;
                if !same {
                    self.hint(&call.subject.function(), call.text, derived);
                }
                same
            }
            _ => true,
        };
        let stored = M::cacheable(&out)
            .filter(|v| !hooks.rejects(v))
            .filter(|v| derives_what_was_read(v));
        if let Some(value) = stored {
            let ttl = hooks.ttl(value, call.policy.ttl);
            let now = inner.clock.now_millis();
            let fresh_until_ms = match call.policy.strategy {
                Strategy::Swr | Strategy::Early => now.saturating_add(crate::policy::millis(ttl)),
                // Kept past its TTL for `stale_if_error`: marks the TTL.
                _ if !call.policy.stale_if_error.is_zero() => {
                    now.saturating_add(crate::policy::millis(ttl))
                }
                _ => 0,
            };
            let meta = Meta {
                fresh_until_ms,
                compute_ms: u32::try_from(now.saturating_sub(body_started)).unwrap_or(u32::MAX),
                ..Meta::default() // the expiry, flags and fingerprint: set by the fill
            };
            let storage = call.policy.storage_ttl_for(ttl);
            if storage > call.policy.storage_ttl() {
                // The value chose a longer TTL than the versions captured
                // for it may have (`ttl_fn`, `none_ttl`): lengthen them.
                let names = call.subject.names();
                let versions: Vec<(&str, crate::version::Token)> = names
                    .versions()
                    .zip(&tokens)
                    .enumerate()
                    .filter(|(i, _)| !names.is_epoch(*i))
                    .map(|(_, (name, token))| (name, *token))
                    .collect();
                if let Err(e) = inner.backend.extend(&versions, storage).await {
                    tracing::debug!(error = %e, "cachette: could not lengthen versions; the entry may miss early");
                }
            }
            self.fill(&call, &tokens, meta, value, ttl).await;
        } else if let Some(guard) = flight
            .as_ref()
            .filter(|g| g.followed() && M::is_absent(&out))
        {
            // "Not found", with callers waiting: hand them the versions read
            // (kept, since they check them again).
            guard.absent(tokens.clone().into());
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
        if let Some(recovered) = recovered {
            return Fetched::Done(recovered);
        }
        if !forced {
            telemetry::end(call.label(), call.key, Outcome::Miss, call.started);
        }
        Fetched::Done(out)
    }

    /// Follows another caller's flight: `None` when it did not end within
    /// `lock_wait` (a leader that waits, through a task it spawned, for this
    /// very call cannot hold its followers forever).
    async fn follow(&self, call: &Call<'_>, follower: crate::flight::Follower) -> Option<Ended> {
        Counters::bump(&self.inner.counters.coalesced);
        telemetry::step(call.label(), call.key, Outcome::Coalesced);
        // On cachette's timer: the caller's runtime may have none.
        crate::background::timeout(call.policy.lock_wait, follower.wait()).await
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
        let (policy, key) = (call.policy, call.key);
        let (value, meta) = self.valid_value::<M, R>(call, keep, lookup)?;
        let until = meta.fresh_until_ms;
        let now = if until == 0 {
            0
        } else {
            inner.clock.now_millis()
        };
        match policy.strategy {
            Strategy::Swr if until != 0 && now >= until => {
                let stale_ms = crate::policy::millis(policy.stale_ttl);
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
            // Past its TTL, kept only to be returned if the body fails
            // (`stale_if_error`).
            _ if until != 0 && now >= until => return None,
            _ => {
                Counters::bump(&inner.counters.hits);
                telemetry::end(call.label(), key, Outcome::Hit, call.started);
            }
        }
        Some(M::from_cached(value))
    }

    /// The value of `lookup`'s entry if it is valid by versions (and its
    /// signature), whatever its freshness, with its header.
    fn valid_value<M, R>(
        &self,
        call: &Call<'_>,
        keep: Keeper<M::Value>,
        lookup: &Lookup,
    ) -> Option<(M::Value, Meta)>
    where
        M: Mode<R>,
    {
        let inner = &*self.inner;
        let key = call.key;
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
        // A value kept decoded beside these very bytes: it passed the checks
        // below when it was decoded, for this very type.
        if let Some(value) = lookup.decoded.as_deref().and_then(|slot| keep.take(slot)) {
            return Some((value, meta));
        }
        let codec = call.policy.codec.unwrap_or(inner.codec);
        if meta.fingerprint != codec.fingerprint::<M::Value>(call.policy.version) {
            self.decode_failure(key, &"written for another type, version or codec");
            return None;
        }
        let decompressed;
        let bytes = if meta.flags & entry::COMPRESSED != 0 {
            match crate::codec::compression::decompress(bytes, inner.max_value_bytes) {
                Ok(plain) => {
                    decompressed = plain;
                    &decompressed[..]
                }
                Err(e) => {
                    self.decode_failure(key, &e);
                    return None;
                }
            }
        } else {
            bytes
        };
        // Decoded now, and kept for a type that can be.
        let value = match codec.decode::<M::Value>(bytes) {
            Ok(value) => value,
            Err(e) => {
                self.decode_failure(key, &e);
                return None;
            }
        };
        if let Some(slot) = lookup.decoded.as_deref() {
            keep.store(slot, &value, bytes.len());
        }
        Some((value, meta))
    }

    /// With `stale_if_error`, after the body failed: the entry as it is
    /// now, if it is still valid by versions (an invalidated entry is never
    /// returned) and within its window past the TTL.
    async fn stale_on_error<M, R>(&self, call: &Call<'_>, keep: Keeper<M::Value>) -> Option<R>
    where
        M: Mode<R>,
    {
        let inner = &*self.inner;
        // A bust this process could not deliver names it: not served (I9).
        if inner.pending.blocks(&call.subject) {
            return None;
        }
        let lookup = inner.backend.lookup(&call.subject).await.ok()?;
        if inner.pending.blocks(&call.subject) {
            return None;
        }
        let (value, meta) = self.valid_value::<M, R>(call, keep, &lookup)?;
        let until = meta.fresh_until_ms;
        if until == 0 {
            return None; // filled without a window
        }
        let policy = call.policy;
        let mut window = policy.stale_if_error;
        if policy.strategy == Strategy::Swr {
            window = window.saturating_add(policy.stale_ttl);
        }
        let end = until.saturating_add(crate::policy::millis(window));
        if inner.clock.now_millis() >= end {
            return None;
        }
        Counters::bump(&inner.counters.stale_on_error);
        // At most one line per period: a failing database fails every call.
        if let Some(held) = inner.warned_stale_on_error.now() {
            tracing::warn!(
                function = call.label(),
                key = %call.key,
                more_since_last = held,
                "cachette: the body failed; returned the value kept past its TTL (stale_if_error; counted in stats().stale_on_error, logged at most every 10 s)"
            );
        }
        telemetry::end(call.label(), call.key, Outcome::StaleOnError, call.started);
        Some(M::from_cached(value))
    }
}

impl Cache {
    /// Returns the cached value of `key` if it is valid, else awaits `fetch`
    /// and caches its `Ok` value for `ttl` under `key`, tagged with `tags`.
    ///
    /// `key` and `tags` name what the attributes name when their templates
    /// render the same text (see [`KeyBuilder`](crate::KeyBuilder) and
    /// [`escape`](crate::escape)): an invalidation of the key or a tag
    /// reaches these entries too. The entries themselves are this
    /// function's, for values of type `T`: an annotated function with the
    /// same key, or a call with another `T`, has entries of its own. `T` is
    /// known by [`std::any::type_name`], which names no crate version: two
    /// semver-incompatible versions of one crate used here with the same
    /// key would share entries, so give them keys of their own (the
    /// attributes tell such versions apart by themselves).
    ///
    /// The cache fails open: if the backend fails, `fetch` runs and its
    /// result is returned.
    pub async fn get_or_fetch<T, E, Fut>(
        &self,
        key: &str,
        tags: &[&str],
        ttl: Duration,
        fetch: Fut,
    ) -> Result<T, E>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
        Fut: Future<Output = Result<T, E>>,
    {
        const POLICY: Policy = Policy::new(Strategy::Aside, Duration::ZERO);
        let policy = Policy { ttl, ..POLICY };
        let function = Function::named(
            "Cache::get_or_fetch",
            &["Cache::get_or_fetch<", std::any::type_name::<T>(), ">"].concat(),
        );
        let call = Call::new(self, &policy, function, key, tags);
        let hooks = Hooks::none();
        match self
            .fetch::<ResultNoneMode, _, _, NoRefresh, _>(call, Keeper::none(), fetch, None, &hooks)
            .await
        {
            Fetched::Done(out) => out,
            Fetched::Rehint(..) => unreachable!("only with tags_from"),
        }
    }
}

/// Whether `seen` are exactly the versions `tokens`, each current.
fn same_versions(seen: &[crate::version::Seen], tokens: &[crate::version::Token]) -> bool {
    seen.len() == tokens.len()
        && seen
            .iter()
            .zip(tokens)
            .all(|(s, t)| matches!(s, crate::version::Seen::Current(c) if c == t))
}

/// What a follower does once the flight it followed ended (`None`: not
/// within `lock_wait`): the versions it was handed, whether it goes alone,
/// whether it joins the next flight before reading.
fn after_following(ended: Option<Ended>) -> (crate::flight::Handed, bool, bool) {
    match ended {
        None => (None, true, false),
        Some(Ended::Plain) => (None, false, false),
        Some(Ended::Absent(Some(tokens))) => (Some(tokens), false, false),
        Some(Ended::Absent(None)) => (None, false, true),
    }
}
