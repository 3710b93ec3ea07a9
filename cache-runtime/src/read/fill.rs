//! The body and the fill: the versions an entry records, running the body,
//! writing its value, and what a failing backend or an undecodable value
//! costs (counted, logged, read through).

use std::fmt;
use std::future::Future;
use std::time::Duration;

use super::{as_leader, Call, Miss, CLOCK_SLACK};
use crate::backend::{Lookup, Wanted, EPOCH_TTL};
use crate::breaker::Tripped;
use crate::cache::Cache;
use crate::entry::{self, Meta};
use crate::error::Error;
use crate::hooks::Hooks;
use crate::keep::Keeper;
use crate::mode::Mode;
use crate::names::Subject;
use crate::policy::Strategy;
use crate::stats::Counters;
use crate::telemetry::{Outcome, Shown};
use crate::version::{Seen, Token};

impl Cache {
    /// The body and the fill, for a call that missed: captures the
    /// versions, runs the body (as the flight's leader, if it leads one),
    /// and stores its value, or hands its "not found" to the flight's
    /// followers; then releases the lock and ends the flight.
    ///
    /// # Cancel safety
    /// Dropping the future mid-body drops the flight's guard (followers
    /// take over) and the lock's, which releases it in the background.
    pub(super) async fn run_and_fill<M, R, Fut>(
        &self,
        call: &Call<'_>,
        keep: Keeper<M::Value>,
        body: Fut,
        miss: Miss,
        hooks: &Hooks<'_, M::Value>,
    ) -> R
    where
        M: Mode<R>,
        Fut: Future<Output = R>,
    {
        let inner = &*self.inner;
        let Miss {
            lookup,
            flight,
            lock,
            nested: _,
        } = miss;
        if !call.forced {
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
                return self.bypass::<M, R>(call, body).await;
            }
        };
        let body_started = inner.clock.now_millis();
        let out = if let Some(guard) = &flight {
            guard.start();
            as_leader(call.subject.entry(), crate::spans::body(body)).await
        } else {
            crate::spans::body(body).await
        };
        // The body failed: with `stale_if_error`, the value kept past its
        // TTL, if it is still valid (nothing is stored either way).
        let recovered = if !call.policy.stale_if_error.is_zero() && M::failed(&out) {
            self.stale_on_error::<M, R>(call, keep).await
        } else {
            None
        };
        let stored = M::cacheable(&out)
            .filter(|v| !hooks.rejects(v))
            .filter(|v| self.derives_what_was_read(call, hooks, v));
        let replaced = stored.is_some();
        if let Some(value) = stored {
            let ttl = hooks.ttl(value, call.policy.ttl);
            self.store(call, &tokens, value, ttl, body_started).await;
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
        if call.forced && !replaced && !M::failed(&out) {
            self.replaced_by_nothing(call).await;
        }
        if let Some(recovered) = recovered {
            return recovered;
        }
        if !call.forced {
            self.ended(call, Outcome::Miss);
        } else if !call.background {
            self.ended(call, Outcome::Refresh);
        } else {
            crate::spans::ended(&call.span, Outcome::Refresh, false);
        }
        out
    }

    /// A refresh (a scope's, a companion's, a background one) whose body
    /// returned a value that is not stored: a `None` not cached, a value
    /// `cache_if` refuses, tags it derives that were not read. The entry it
    /// was to replace must not be served on (the row was deleted), so its
    /// key is invalidated, as the write that changed the source would
    /// have. A failed body (`Err`) leaves the entry: it says nothing of the
    /// source. A bust that fails is kept and retried (I9).
    pub(super) async fn replaced_by_nothing(&self, call: &Call<'_>) {
        let bust = crate::names::Bust::of([call.text], std::iter::empty::<&str>());
        let _ = self.send(call.label(), bust).await;
    }

    /// With `tags_from`, whether `value` derives the tags whose versions
    /// were read before the body (only such a value may be stored,
    /// `derived.rs`); if not, what it derives is remembered for the next
    /// read of its key.
    pub(super) fn derives_what_was_read<V>(
        &self,
        call: &Call<'_>,
        hooks: &Hooks<'_, V>,
        value: &V,
    ) -> bool {
        match (hooks.tags_from, &call.derived) {
            (Some(derive), Some(read)) => {
                let derived = crate::derived::normalize(derive(value));
                let same = *derived == **read;
                if !same {
                    self.inner
                        .derived
                        .hint(&call.subject.function(), call.text, derived);
                }
                same
            }
            _ => true,
        }
    }

    /// Stores `value`, computed by a body that started at `body_started`,
    /// for `ttl`, valid under `tokens`: its header, and versions lengthened
    /// to live as long as the entry.
    pub(super) async fn store<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        call: &Call<'_>,
        tokens: &[Token],
        value: &T,
        ttl: Duration,
        body_started: u64,
    ) {
        let inner = &*self.inner;
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
            let versions: Vec<(&str, Token)> = names
                .versions()
                .zip(tokens)
                .enumerate()
                .filter(|(i, _)| !names.is_epoch(*i))
                .map(|(_, (name, token))| (name, *token))
                .collect();
            if let Err(e) = inner.backend.extend(&versions, storage).await {
                tracing::debug!(error = %e, "cachette: could not lengthen versions; the entry may miss early");
            }
        }
        self.fill(call, tokens, meta, value, ttl).await;
    }

    /// The tokens to record in a fill: the ones just read, with any missing
    /// or foreign version replaced first (living as long as the entry), and
    /// the names of the versions this call wrote.
    pub(super) async fn capture<'l>(
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
                    Seen::Foreign(head) => Some(((name, Some(head.as_bytes()), ttl), drop)),
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
        // The backend checked the shape of both replies; still, what came
        // from it is never trusted to `expect` on.
        let tokens = read
            .iter()
            .map(|seen| seen.token().or_else(|| ensured.next()))
            .collect::<Option<Vec<Token>>>()
            .ok_or_else(|| {
                Error::new(
                    crate::error::ErrorKind::Backend,
                    "fewer versions were written than were missing",
                )
            })?;
        Ok((tokens, written))
    }

    /// Stores `value` as the entry of `call`, valid under `tokens`.
    pub(super) async fn fill<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        call: &Call<'_>,
        tokens: &[Token],
        meta: Meta,
        value: &T,
        ttl: Duration,
    ) {
        let inner = &*self.inner;
        let (key, ttl) = (call.key, call.policy.storage_ttl_for(ttl));
        if ttl.is_zero() {
            self.zero_ttl(call);
            return;
        }
        let codec = call.policy.codec.unwrap_or(inner.codec);
        let now = inner.clock.now_millis();
        let meta = Meta {
            filled_ms: now,
            expires_ms: now.saturating_add(crate::policy::millis(ttl.saturating_add(CLOCK_SLACK))),
            fingerprint: codec.fingerprint::<T>(call.policy.version),
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
            tracing::warn!(key = %key, "cachette: more than 253 tags (an entry records 255 versions: its key's, its tags', the epoch); not cached");
            return;
        };
        let at = entry::value_at(tokens.len());
        if let Err(e) = codec.encode_into(&mut blob, value) {
            tracing::warn!(key = %key, error = %e, "cachette: value failed to serialize; returned uncached");
            return;
        }
        // The bound is on the value as it is decoded (what a reader
        // allocates), compressed or not.
        if blob.len() - at > inner.max_value_bytes {
            self.too_large(call, blob.len() - at);
            return;
        }
        if !codec.round_trips::<T>(&blob[at..]) {
            if inner.warned_round_trip.first_time(call.label()) {
                crate::loud::warn(&format!(
                    "cachette: `{}`'s value does not read back as it was written in the {codec:?} \
                     codec (serde attributes such as skip_serializing_if, or a type the format \
                     cannot describe); not cached (warned once per function)",
                    call.label()
                ));
            }
            return;
        }
        #[cfg(feature = "compression")]
        if let Some(above) = inner.compress_above {
            let at = entry::value_at(tokens.len());
            if blob.len() - at > above {
                let packed = crate::codec::compression::compress(&blob[at..]);
                if packed.len() < blob.len() - at {
                    blob.truncate(at);
                    blob.extend_from_slice(&packed);
                    entry::set_flag(&mut blob, entry::COMPRESSED);
                }
            }
        }
        if let Some(signer) = &inner.signer {
            signer.sign(call.subject.entry(), &mut blob);
        }
        if blob.len() > inner.max_value_bytes {
            self.too_large(call, blob.len());
            return;
        }
        match inner.backend.store(call.subject.entry(), blob, ttl).await {
            Ok(()) => inner.events.emit(|| {
                crate::events::Event::new(crate::events::EventKind::Fill, call.label())
                    .template(call.policy.template)
            }),
            Err(e) => self.backend_error("fill", &key, &e),
        }
    }

    /// A value over `max_value_bytes` is not stored: counted, and warned
    /// once per key.
    fn too_large(&self, call: &Call<'_>, bytes: usize) {
        let inner = &*self.inner;
        Counters::bump(&inner.counters.too_large);
        if inner.warned_too_large.first_time(call.subject.entry()) {
            tracing::warn!(
                key = %call.key,
                bytes,
                limit = inner.max_value_bytes,
                "cachette: value larger than max_value_bytes; not cached (warned once per key)"
            );
        }
    }

    /// A value whose TTL is zero is not stored: warned once per function.
    pub(super) fn zero_ttl(&self, call: &Call<'_>) {
        if self.inner.warned_zero_ttl.first_time(call.label()) {
            crate::loud::warn(&format!(
                "cachette: `{}` had a value with a TTL of zero (its `ttl`, or its `ttl_fn` for that \
                 value): such values are returned and not cached (warned once per function)",
                call.label()
            ));
        }
    }

    pub(crate) fn backend_error(&self, op: &str, key: &dyn fmt::Display, e: &Error) {
        Counters::bump(&self.inner.counters.errors);
        tracing::warn!(key = %key, op, error = %e, "cachette: backend failed; reading through");
        if self.inner.breaker.failure() == Tripped::Opened {
            Counters::bump(&self.inner.counters.breaker_opens);
            tracing::warn!("cachette: circuit breaker opened; calls read through without Redis");
            self.inner
                .events
                .emit(|| crate::events::Event::new(crate::events::EventKind::BreakerOpened, ""));
        }
    }

    pub(super) fn backend_ok(&self) {
        if self.inner.breaker.success() {
            tracing::info!("cachette: circuit breaker closed; the backend answers again");
            self.inner
                .events
                .emit(|| crate::events::Event::new(crate::events::EventKind::BreakerClosed, ""));
        }
    }

    pub(super) fn decode_failure(&self, key: Shown<'_>, e: &dyn fmt::Display) {
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
