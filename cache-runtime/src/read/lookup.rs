//! The lookup, or following a flight: read the entry and serve it if it is
//! valid; on a miss, lead this process's flight for the entry or follow
//! another caller's, and read again once it ended (I1, I8).

use std::future::Future;

use super::{leads, Call, Miss};
use crate::backend::Lookup;
use crate::cache::Cache;
use crate::deferred::Reading;
use crate::flight::{Ended, FlightGuard, Role};
use crate::hooks::Hooks;
use crate::keep::Keeper;
use crate::mode::Mode;
use crate::policy::{xfetch_due, Strategy};
use crate::stats::Counters;
use crate::telemetry::Outcome;

/// What [`Cache::look_up`] ended with.
pub(super) enum Looked<R> {
    /// A valid entry, or a flight's "not found" this call may return.
    Served(R),
    /// Nothing to serve: run the body and fill.
    Missed(Miss),
    /// Derived tags were learned while this call followed a flight: call
    /// again under them (`tags_from`).
    Rehint,
    /// The backend failed: run the body without the cache, ending the
    /// flight this call leads (if any) only after it.
    Bypass(Option<FlightGuard>),
}

impl Cache {
    /// Reads `call`'s entry and serves it if it is valid; else leads the
    /// entry's flight in this process, or follows another caller's and
    /// reads again once it ended.
    ///
    /// # Cancel safety
    /// Dropping the future while it leads ends the flight (its guard
    /// drops), and followers take over; while it follows, it only stops
    /// waiting.
    pub(super) async fn look_up<M, R, Mk, RF>(
        &self,
        call: &Call<'_>,
        keep: Keeper<M::Value>,
        deferring: Reading,
        refresh: &mut Option<Mk>,
        hooks: &Hooks<'_, M::Value>,
    ) -> Looked<R>
    where
        M: Mode<R>,
        Mk: FnOnce() -> RF,
        RF: Future<Output = ()> + Send + 'static,
    {
        let inner = &*self.inner;
        let entry = call.subject.entry();
        let forced = call.forced;
        let mut flight = None;
        let nested = leads(entry);
        // Waited `lock_wait` for a flight that did not end: go alone.
        let mut alone = false;
        // The versions a flight we followed read for its "not found".
        let mut handed: crate::flight::Handed = None;
        // The flight we followed found nothing, and we joined it too late to
        // take its answer: join the next one before reading again.
        let mut rejoin = false;
        let lookup = loop {
            if std::mem::take(&mut rejoin) && flight.is_none() && !nested && !alone {
                match inner.flights.join(entry) {
                    Role::Leader(guard) => {
                        flight = Some(guard);
                        // The others woken with us join before our body.
                        crate::flight::YieldOnce::new().await;
                    }
                    Role::Follower(follower) => {
                        let ended = self.follow(call, follower).await;
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
                    return Looked::Bypass(flight);
                }
            };
            if forced {
                break lookup;
            }
            // A bust that names the entry failed while this call followed
            // a flight: neither the flight's value nor its "not found" may
            // be served, and the call reads around the cache as `gates`
            // would have sent it (I9).
            if inner.pending.blocks(&call.subject) {
                return Looked::Bypass(flight);
            }
            if let Some(out) = self.serve::<M, R, _, _>(call, keep, &lookup, refresh) {
                return Looked::Served(out);
            }
            // The flight we followed found nothing to store, having read
            // the very versions read now: no bust came in between.
            if let Some(tokens) = handed.take() {
                if super::valid::same_versions(&lookup.versions, &tokens) {
                    if let Some(out) = M::absent() {
                        self.ended(call, Outcome::Coalesced);
                        return Looked::Served(out);
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
                    let ended = self.follow(call, follower).await;
                    (handed, alone, rejoin) = after_following(ended);
                    // With `tags_from`, a leader whose value derived other
                    // tags than it read stored nothing and learned them:
                    // read again under them rather than lead in turn.
                    if let (Some(_), Some(read), true) =
                        (hooks.tags_from, &call.derived, call.rehint)
                    {
                        let learned = inner.derived.hinted(&call.subject.function(), call.text);
                        if learned.as_deref().unwrap_or(&[]) != &**read {
                            return Looked::Rehint;
                        }
                    }
                }
            }
        };
        Looked::Missed(Miss {
            lookup,
            flight,
            lock: None,
            nested,
        })
    }

    /// Follows another caller's flight: `None` when it did not end within
    /// `lock_wait` (a leader that waits, through a task it spawned, for this
    /// very call cannot hold its followers forever).
    pub(super) async fn follow(
        &self,
        call: &Call<'_>,
        follower: crate::flight::Follower,
    ) -> Option<Ended> {
        Counters::bump(&self.inner.counters.coalesced);
        self.stepped(call, Outcome::Coalesced);
        // On cachette's timer: the caller's runtime may have none.
        crate::background::timeout(call.policy.lock_wait, follower.wait()).await
    }

    /// The value of a valid entry, counting the hit; for swr and early it
    /// may start a background refresh. `None` is a miss.
    pub(super) fn serve<M, R, Mk, RF>(
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
        let policy = call.policy;
        // An undelivered bust that names the entry (I9), made after this
        // call's gates were passed (it followed a flight, waited for a
        // lock or a refresh): what it names is not served.
        if inner.pending.blocks(&call.subject) {
            return None;
        }
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
                self.ended(call, Outcome::Stale);
                self.spawn_refresh(call, refresh.take());
            }
            Strategy::Early if until != 0 => {
                if now >= until {
                    return None;
                }
                inner.counters.hits.bump();
                if xfetch_due(
                    now,
                    until,
                    meta.compute_ms,
                    policy.beta,
                    inner.random.unit(),
                ) {
                    self.spawn_refresh(call, refresh.take());
                }
                self.ended_near(call, Outcome::Hit, lookup.near);
            }
            // Past its TTL, kept only to be returned if the body fails
            // (`stale_if_error`).
            _ if until != 0 && now >= until => return None,
            _ => {
                inner.counters.hits.bump();
                self.ended_near(call, Outcome::Hit, lookup.near);
            }
        }
        Some(M::from_cached(value))
    }
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
