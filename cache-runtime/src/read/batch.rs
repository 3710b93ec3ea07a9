//! Batch reads: one call for many elements, each with an entry of its own.
//!
//! [`Cache::fetch_batch`] reads every element's entry and versions at once
//! (`Backend::lookup_many`: near-cache hits from memory, the rest in
//! bounded chunks, one request each), serves the valid ones, and runs the
//! body once for the others, in the caller's order, without duplicates.
//! Each element it returns is stored under the versions captured for that
//! element before the body ran (I1 per element): a bust of one element
//! while the body runs leaves only that element unstored.
//!
//! Elements coalesce one by one with every other read of the process (I8
//! per element): an element whose flight is running elsewhere (another
//! batch, or a single-key call of the same entries) is followed, then read
//! again. A batch never holds a flight of its own while it waits for
//! another's, so two overlapping batches cannot wait on each other: it
//! waits first, then leads what is still missing; if another flight of an
//! element started meanwhile, it ends the flights it just began and waits
//! again, a bounded number of rounds, after which it reads the rest alone.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use super::{Call, LeftAlone, NoRefresh, LEADING};
use crate::backend::Lookup;
use crate::cache::Cache;
use crate::deferred::Reading;
use crate::flight::{Ended, FlightGuard, Role};
use crate::hooks::Hooks;
use crate::keep::Keeper;
use crate::mode::Mode;
use crate::names::Function;
use crate::policy::{Policy, Strategy};
use crate::stats::Counters;
use crate::telemetry::Outcome;

/// Rounds of following other flights before the rest is read alone.
const ROUNDS: usize = 3;

/// One element of a batch call: its element, key and tags, as rendered.
pub struct BatchItem<K> {
    /// The element, as the body is given it and returns it.
    pub element: K,
    /// The element's key.
    pub key: String,
    /// The element's tags (the call's, and any that name the element).
    pub tags: Vec<String>,
}

/// Where an element stands.
enum State<V> {
    /// To look up (or look up again, after following a flight).
    Unread,
    /// Served from the cache: `None` is a stored "not found".
    Served(Option<V>),
    /// A followed flight handed "not found" under versions read again.
    Absent,
    /// Following another caller's flight.
    Following(crate::flight::Follower),
    /// To fetch: the lookup read before the body (its versions are
    /// captured), and whether to store what the body returns.
    Fetch { lookup: Lookup, store: bool },
}

/// What the body is given, and what is stored after it.
struct Fetching {
    index: usize,
    lookup: Lookup,
    store: bool,
}

impl Cache {
    /// Reads `items` (unique elements, in the caller's order) under
    /// `policy`, runs `body` once for the elements that missed, and stores
    /// each element it returned; returns every element found, hits and
    /// fetched, in the order of `items`.
    ///
    /// # Cancel safety
    /// Dropping the future ends the flights it leads (followers take
    /// over) and releases its locks.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn fetch_batch<M, K, V, E, B, Fut>(
        &self,
        policy: &Policy,
        function: Function,
        items: &[BatchItem<K>],
        keep: Keeper<M::Value>,
        hooks: &Hooks<'_, M::Value>,
        forced: bool,
        stores_nothing: bool,
        body: B,
    ) -> (Result<Vec<(K, V)>, E>, usize)
    where
        M: Mode<Option<V>>,
        K: Hash + Eq + Clone,
        B: FnOnce(Vec<K>) -> Fut,
        Fut: Future<Output = Result<Vec<(K, V)>, E>>,
    {
        let inner = &*self.inner;
        let keep = if inner.keep_decoded {
            keep
        } else {
            Keeper::none()
        };
        // A request-wide scope: around the cache, or a refresh of every
        // element.
        let scope = crate::scope::current();
        let around = self.left_alone().is_some();
        match scope {
            Some(crate::scope::Scope::Bypass) => {
                Counters::add(&inner.counters.scope_bypasses, items.len() as u64)
            }
            Some(crate::scope::Scope::Refresh) => {
                Counters::add(&inner.counters.scope_refreshes, items.len() as u64)
            }
            _ => {}
        }
        let forced = forced || scope == Some(crate::scope::Scope::Refresh);
        // The derived tags each element's entry was last filled with
        // (`tags_from`): read, so that a value deriving other ones is not
        // stored under them (`derived.rs`).
        let hinted: Vec<Option<Arc<[String]>>> = items
            .iter()
            .map(|item| {
                hooks.tags_from.map(|_| {
                    inner
                        .derived
                        .hinted(&function, &item.key)
                        .unwrap_or_else(|| Arc::from(Vec::new()))
                })
            })
            .collect();
        let tags: Vec<std::borrow::Cow<'_, [String]>> = items
            .iter()
            .zip(&hinted)
            .map(|(item, hinted)| match hinted {
                Some(h) if !h.is_empty() => std::borrow::Cow::Owned([&item.tags[..], h].concat()),
                _ => std::borrow::Cow::Borrowed(&item.tags[..]),
            })
            .collect();
        let calls: Vec<Call<'_>> = items
            .iter()
            .zip(&tags)
            .zip(&hinted)
            .map(|((item, tags), hinted)| {
                let mut call = Call::new(self, policy, function, &item.key, tags);
                call.forced = forced;
                call.derived = hinted.clone();
                call.stores_nothing = stores_nothing;
                call
            })
            .collect();
        let mut requests = 0;
        let everything = || {
            (0..items.len())
                .map(|index| Fetching {
                    index,
                    lookup: Lookup::default(),
                    store: false,
                })
                .collect::<Vec<_>>()
        };

        // The gates, per element (an undelivered or held bust names it) and
        // for the whole call (a zero TTL, the breaker).
        let zero_ttl = policy.ttl.is_zero();
        if zero_ttl {
            if let Some(call) = calls.first() {
                self.zero_ttl(call);
            }
        }
        if inner.pending.any() {
            self.ensure_retrying();
        }
        let mut reading = Vec::with_capacity(calls.len());
        let mut states: Vec<State<V>> = Vec::with_capacity(calls.len());
        for call in &calls {
            let mut deferring = crate::deferred::reading(self, &call.subject);
            if call.stores_nothing && deferring == Reading::Outside {
                deferring = Reading::Inside;
            }
            let blocked = deferring == Reading::Busted
                || (inner.pending.any() && inner.pending.blocks(&call.subject));
            states.push(if blocked {
                State::Fetch {
                    lookup: Lookup::default(),
                    store: false,
                }
            } else {
                State::Unread
            });
            reading.push(deferring);
        }
        // Around the cache: the body is given every element, and nothing
        // is stored.
        let permit = if zero_ttl || around {
            None
        } else {
            inner.breaker.allow()
        };
        let Some(permit) = permit else {
            return (
                self.run_batch::<M, K, V, E, B, Fut>(
                    &calls,
                    items,
                    everything(),
                    Vec::new(),
                    body,
                    hooks,
                )
                .await,
                requests,
            );
        };
        let mut permit = Some(permit);

        let mut guards: Vec<Option<FlightGuard>> = (0..calls.len()).map(|_| None).collect();
        let mut epochs: Vec<u64> = vec![0; calls.len()];
        // Elements whose followed flight did not end within `lock_wait`.
        let mut tired: Vec<bool> = vec![false; calls.len()];
        for round in 0..=ROUNDS {
            // Look up every element not yet served (again after a flight).
            let unread: Vec<usize> = (0..calls.len())
                .filter(|&i| matches!(states[i], State::Unread))
                .collect();
            if !unread.is_empty() {
                let subjects: Vec<_> = unread.iter().map(|&i| &calls[i].subject).collect();
                // A flight of an element that ends after this read may have
                // filled it: read again rather than lead (see below).
                for &i in &unread {
                    epochs[i] = inner.flights.epoch(calls[i].subject.entry());
                }
                let looked = inner.backend.lookup_many(&subjects).await;
                drop(permit.take());
                let lookups = match looked {
                    Ok((lookups, sent)) => {
                        self.backend_ok();
                        requests += sent;
                        Counters::add(&inner.counters.batch_lookups, sent as u64);
                        lookups
                    }
                    Err(e) => {
                        self.backend_error("lookup", &calls[unread[0]].key, &e);
                        // Fails open: the body runs for every element left,
                        // and nothing is stored.
                        let leave = |s: &mut State<V>| {
                            if !matches!(s, State::Served(_) | State::Absent) {
                                *s = State::Fetch {
                                    lookup: Lookup::default(),
                                    store: false,
                                };
                            }
                        };
                        states.iter_mut().for_each(leave);
                        break;
                    }
                };
                for (&i, lookup) in unread.iter().zip(lookups) {
                    let call = &calls[i];
                    if !forced {
                        let mut none: Option<NoRefresh> = None;
                        if let Some(out) =
                            self.serve::<M, Option<V>, _, _>(call, keep, &lookup, &mut none)
                        {
                            states[i] = State::Served(out);
                            continue;
                        }
                    }
                    // Nested in its own flight, inside a scope, forced, or
                    // past the rounds: fetch, without coalescing.
                    let alone = forced
                        || round == ROUNDS
                        || tired[i]
                        || reading[i] == Reading::Inside
                        || super::leads(call.subject.entry());
                    if alone {
                        states[i] = State::Fetch {
                            lookup,
                            store: true,
                        };
                        continue;
                    }
                    // Another caller's flight is running: follow it (holding
                    // no flight of this call's meanwhile).
                    states[i] = match inner.flights.running(call.subject.entry()) {
                        Some(follower) => State::Following(follower),
                        None => State::Fetch {
                            lookup,
                            store: true,
                        },
                    };
                }
            }
            // Lead every element to fetch that no flight was running for;
            // if one started since, end the flights just begun and follow.
            if !states.iter().any(|s| matches!(s, State::Following(_))) {
                let mut raced = false;
                for (i, state) in states.iter_mut().enumerate() {
                    let State::Fetch { store: true, .. } = state else {
                        continue;
                    };
                    let call = &calls[i];
                    if forced || reading[i] == Reading::Inside || super::leads(call.subject.entry())
                    {
                        continue;
                    }
                    if round == ROUNDS || tired[i] {
                        continue;
                    }
                    match inner.flights.join(call.subject.entry()) {
                        Role::Leader(guard) => {
                            if inner.flights.epoch(call.subject.entry()) == epochs[i] {
                                guards[i] = Some(guard);
                            } else {
                                // A flight ended since the read: its value
                                // may be there.
                                raced = true;
                            }
                        }
                        Role::Follower(follower) => {
                            *state = State::Following(follower);
                            raced = true;
                        }
                    }
                }
                if !raced {
                    break;
                }
                // Never wait for another flight while leading one.
                guards.iter_mut().for_each(|g| *g = None);
                for state in &mut states {
                    if let State::Fetch { store: true, .. } = state {
                        *state = State::Unread;
                    }
                }
            }
            // Follow, all at once, then read those elements again.
            let waits: Vec<_> = states
                .iter_mut()
                .enumerate()
                .filter_map(|(i, s)| match std::mem::replace(s, State::Unread) {
                    State::Following(f) => Some((i, f)),
                    other => {
                        *s = other;
                        None
                    }
                })
                .collect();
            let ended = futures_util::future::join_all(waits.into_iter().map(|(i, f)| {
                let call = &calls[i];
                async move { (i, self.follow(call, f).await) }
            }))
            .await;
            let mut handed: HashMap<usize, Arc<[crate::version::Token]>> = HashMap::new();
            for (i, ended) in ended {
                match ended {
                    Some(Ended::Absent(Some(tokens))) => {
                        handed.insert(i, tokens);
                    }
                    // Waited `lock_wait` for a flight that did not end: go
                    // alone, as a single-key follower does.
                    None => tired[i] = true,
                    Some(_) => {}
                }
            }
            if !handed.is_empty() {
                // "Not found", handed under the versions read before the
                // leader's body: returned if they still hold.
                let subjects: Vec<_> = handed.keys().map(|&i| &calls[i].subject).collect();
                let order: Vec<usize> = handed.keys().copied().collect();
                if let Ok((lookups, sent)) = inner.backend.lookup_many(&subjects).await {
                    requests += sent;
                    Counters::add(&inner.counters.batch_lookups, sent as u64);
                    for (i, lookup) in order.into_iter().zip(lookups) {
                        // Not past a bust that names the element and failed
                        // while it followed (I9): it is fetched instead.
                        if super::valid::same_versions(&lookup.versions, &handed[&i])
                            && !inner.pending.blocks(&calls[i].subject)
                        {
                            states[i] = State::Absent;
                        }
                    }
                }
            }
        }
        drop(permit);

        // The fleet-wide locks of the elements this call leads.
        let mut locks = Vec::new();
        if policy.strategy == Strategy::Lock && !forced {
            locks = self
                .lock_batch::<M, V>(&calls, &mut states, &guards, keep)
                .await;
        }

        let mut fetching = Vec::new();
        let mut served = Vec::new();
        for (index, state) in states.into_iter().enumerate() {
            match state {
                State::Served(out) => served.push((index, out)),
                State::Absent => {
                    self.ended(&calls[index], Outcome::Coalesced);
                }
                State::Fetch { lookup, store } => fetching.push(Fetching {
                    index,
                    lookup,
                    store: store && reading[index] == Reading::Outside,
                }),
                State::Unread | State::Following(_) => fetching.push(Fetching {
                    index,
                    lookup: Lookup::default(),
                    store: false,
                }),
            }
        }
        let out = self
            .run_batch_with::<M, K, V, E, B, Fut>(
                &calls, items, fetching, served, body, hooks, guards, locks,
            )
            .await;
        (out, requests)
    }

    /// Takes the fleet-wide lock of each element this call leads, trying
    /// each once: a batch never waits for a lock while it holds one (two
    /// batches of two processes would each hold some and wait for the
    /// others'). Each element locked is read again (its last holder may
    /// have just filled it). The elements whose locks other callers hold
    /// are fetched without them if this call holds any lock; if it holds
    /// none, it waits for their values (up to `lock_wait`, reading them
    /// again with backoff), then fetches the rest without their locks.
    async fn lock_batch<M, V>(
        &self,
        calls: &[Call<'_>],
        states: &mut [State<V>],
        guards: &[Option<FlightGuard>],
        keep: Keeper<M::Value>,
    ) -> Vec<super::lock::LockGuard>
    where
        M: Mode<Option<V>>,
    {
        use super::lock::LockGuard;
        let inner = &*self.inner;
        let leading: Vec<usize> = (0..calls.len()).filter(|&i| guards[i].is_some()).collect();
        let tried = bounded(
            leading
                .iter()
                .map(|&i| {
                    let call = &calls[i];
                    LockGuard::take(
                        self,
                        call.subject.lock(),
                        || call.key.to_string(),
                        call.policy.lock_ttl,
                    )
                })
                .collect(),
        )
        .await;
        let (mut taken, mut contested) = (Vec::new(), Vec::new());
        for (i, tried) in leading.into_iter().zip(tried) {
            match tried {
                Ok(Some(guard)) => taken.push((i, guard)),
                Ok(None) => contested.push(i),
                Err(e) => {
                    self.backend_error("lock", &calls[i].key, &e);
                    states[i] = State::Fetch {
                        lookup: Lookup::default(),
                        store: false,
                    };
                }
            }
        }
        let mut locks = Vec::new();
        let mut released = Vec::new();
        if !taken.is_empty() {
            let subjects: Vec<_> = taken.iter().map(|(i, _)| &calls[*i].subject).collect();
            match inner.backend.lookup_many(&subjects).await {
                Ok((lookups, sent)) => {
                    Counters::add(&inner.counters.batch_lookups, sent as u64);
                    for ((i, guard), lookup) in taken.into_iter().zip(lookups) {
                        let mut none: Option<NoRefresh> = None;
                        match self.serve::<M, Option<V>, _, _>(&calls[i], keep, &lookup, &mut none)
                        {
                            Some(out) => {
                                states[i] = State::Served(out);
                                released.push(guard);
                            }
                            None => {
                                states[i] = State::Fetch {
                                    lookup,
                                    store: true,
                                };
                                locks.push(guard);
                            }
                        }
                    }
                }
                Err(e) => {
                    self.backend_error("lookup", &calls[taken[0].0].key, &e);
                    for (i, guard) in taken {
                        states[i] = State::Fetch {
                            lookup: Lookup::default(),
                            store: false,
                        };
                        released.push(guard);
                    }
                }
            }
        }
        for guard in released {
            guard.release().await;
        }
        if contested.is_empty() || !locks.is_empty() {
            // Holding locks: the contested elements are fetched without
            // theirs, under the versions read before.
            return locks;
        }
        // Holding none: wait for the holders' values.
        for &i in &contested {
            Counters::bump(&inner.counters.lock_waits);
            self.stepped(&calls[i], Outcome::LockWait);
        }
        let deadline = tokio::time::Instant::now() + calls[contested[0]].policy.lock_wait;
        let mut delay = std::time::Duration::from_millis(2);
        while !contested.is_empty() {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                for &i in &contested {
                    Counters::bump(&inner.counters.lock_timeouts);
                    self.stepped(&calls[i], Outcome::LockTimeout);
                }
                break;
            }
            crate::background::sleep(delay.min(deadline - now)).await;
            delay = (delay * 2).min(std::time::Duration::from_millis(50));
            let subjects: Vec<_> = contested.iter().map(|&i| &calls[i].subject).collect();
            let Ok((lookups, sent)) = inner.backend.lookup_many(&subjects).await else {
                break;
            };
            Counters::add(&inner.counters.batch_lookups, sent as u64);
            let mut left = Vec::new();
            for (i, lookup) in contested.into_iter().zip(lookups) {
                let mut none: Option<NoRefresh> = None;
                match self.serve::<M, Option<V>, _, _>(&calls[i], keep, &lookup, &mut none) {
                    Some(out) => states[i] = State::Served(out),
                    None => {
                        // Read after the holder's lock was seen: these
                        // versions, read before the body, are the ones
                        // to capture.
                        states[i] = State::Fetch {
                            lookup,
                            store: true,
                        };
                        left.push(i);
                    }
                }
            }
            contested = left;
        }
        locks
    }

    /// The body and the fill, without flights or locks.
    async fn run_batch<M, K, V, E, B, Fut>(
        &self,
        calls: &[Call<'_>],
        items: &[BatchItem<K>],
        fetching: Vec<Fetching>,
        served: Vec<(usize, Option<V>)>,
        body: B,
        hooks: &Hooks<'_, M::Value>,
    ) -> Result<Vec<(K, V)>, E>
    where
        M: Mode<Option<V>>,
        K: Hash + Eq + Clone,
        B: FnOnce(Vec<K>) -> Fut,
        Fut: Future<Output = Result<Vec<(K, V)>, E>>,
    {
        let guards = (0..calls.len()).map(|_| None).collect();
        self.run_batch_with::<M, K, V, E, B, Fut>(
            calls,
            items,
            fetching,
            served,
            body,
            hooks,
            guards,
            Vec::new(),
        )
        .await
    }

    /// Captures the versions of each element to store, runs the body once
    /// for the elements in `fetching`, stores each one it returned, and
    /// merges them with `served`, in the order of `items`.
    #[allow(clippy::too_many_arguments)]
    async fn run_batch_with<M, K, V, E, B, Fut>(
        &self,
        calls: &[Call<'_>],
        items: &[BatchItem<K>],
        mut fetching: Vec<Fetching>,
        served: Vec<(usize, Option<V>)>,
        body: B,
        hooks: &Hooks<'_, M::Value>,
        guards: Vec<Option<FlightGuard>>,
        locks: Vec<super::lock::LockGuard>,
    ) -> Result<Vec<(K, V)>, E>
    where
        M: Mode<Option<V>>,
        K: Hash + Eq + Clone,
        B: FnOnce(Vec<K>) -> Fut,
        Fut: Future<Output = Result<Vec<(K, V)>, E>>,
    {
        let inner = &*self.inner;
        let mut results: Vec<Option<Option<V>>> = (0..items.len()).map(|_| None).collect();
        for (index, out) in served {
            results[index] = Some(out);
        }
        if fetching.is_empty() {
            return Ok(merge(items, results));
        }
        // The versions, captured before the body reads its source: a bust
        // of an element after this point changes one of its versions, and
        // its entry written below can then never validate.
        let captured = bounded(
            fetching
                .iter()
                .map(|f| async {
                    if !f.store {
                        return None;
                    }
                    let call = &calls[f.index];
                    match self
                        .capture(&call.subject, &f.lookup, call.policy.storage_ttl())
                        .await
                    {
                        Ok(captured) => Some(captured),
                        Err(e) => {
                            self.backend_error("version", &call.key, &e);
                            None
                        }
                    }
                })
                .collect(),
        )
        .await;
        for (f, captured) in fetching.iter_mut().zip(&captured) {
            f.store &= captured.is_some();
            if !calls[f.index].forced {
                Counters::bump(&inner.counters.misses);
            }
        }
        let asked: Vec<K> = fetching
            .iter()
            .map(|f| items[f.index].element.clone())
            .collect();
        let body_started = inner.clock.now_millis();
        // Callers that join the flights from now on come too late to be
        // handed a "not found".
        for guard in guards.iter().flatten() {
            guard.start();
        }
        let entries: Vec<String> = fetching
            .iter()
            .filter(|f| guards[f.index].is_some())
            .map(|f| calls[f.index].subject.entry().to_string())
            .collect();
        let out = as_leaders(entries, body(asked)).await;
        let pairs = match out {
            Ok(pairs) => pairs,
            Err(e) => {
                // Nothing is stored: drop the versions made for it.
                let created: Vec<&str> = captured
                    .iter()
                    .flatten()
                    .flat_map(|(_, created)| created.iter().copied())
                    .collect();
                if !created.is_empty() {
                    if let Err(e) = inner.backend.forget(&created).await {
                        tracing::debug!(error = %e, "cachette: could not drop unused versions");
                    }
                }
                for lock in locks {
                    lock.release().await;
                }
                return Err(e);
            }
        };
        // What the body returned, by element: the first of each, and only
        // the elements it was given.
        let mut returned: HashMap<K, V> = HashMap::with_capacity(pairs.len());
        let wanted: std::collections::HashSet<&K> =
            fetching.iter().map(|f| &items[f.index].element).collect();
        let mut unasked = 0usize;
        for (k, v) in pairs {
            if wanted.contains(&k) {
                returned.entry(k).or_insert(v);
            } else {
                unasked += 1;
            }
        }
        if unasked > 0 {
            if let Some(call) = calls.first() {
                self.unasked(call, unasked);
            }
        }
        let fills = fetching.iter().zip(captured).map(|(f, captured)| {
            let call = &calls[f.index];
            let out: Option<V> = returned.remove(&items[f.index].element);
            let guard = guards[f.index].as_ref();
            async move {
                let mut replaced = false;
                if let (true, Some((tokens, created))) = (f.store, captured) {
                    replaced = self
                        .fill_one::<M, V>(call, &tokens, &created, &out, hooks, guard, body_started)
                        .await;
                }
                // Around the cache by a scope or a disabled cache: reported
                // as a single-key call would be, and the cache left alone.
                let left_alone = self.left_alone();
                if call.forced && !replaced && left_alone.is_none() {
                    self.replaced_by_nothing(call).await;
                }
                match left_alone {
                    Some(LeftAlone::Off) => {}
                    Some(LeftAlone::Bypass) => self.ended(call, Outcome::Bypass),
                    None if call.forced => self.ended(call, Outcome::Refresh),
                    None => self.ended(call, Outcome::Miss),
                }
                (f.index, out)
            }
        });
        let filled = bounded(fills.collect()).await;
        for lock in locks {
            lock.release().await;
        }
        drop(guards);
        for (index, out) in filled {
            results[index] = Some(out);
        }
        Ok(merge(items, results))
    }

    /// Stores one element's value (`None`: the body did not return it)
    /// under the versions captured for it, as a single-key fill does; or
    /// hands "not found" to the flight's followers. Whether it was stored.
    #[allow(clippy::too_many_arguments)]
    async fn fill_one<M, V>(
        &self,
        call: &Call<'_>,
        tokens: &[crate::version::Token],
        created: &[&str],
        out: &Option<V>,
        hooks: &Hooks<'_, M::Value>,
        guard: Option<&FlightGuard>,
        body_started: u64,
    ) -> bool
    where
        M: Mode<Option<V>>,
    {
        let inner = &*self.inner;
        let stored = M::cacheable(out)
            .filter(|v| !hooks.rejects(v))
            .filter(|v| self.derives_what_was_read(call, hooks, v));
        if let Some(value) = stored {
            let ttl = hooks.ttl(value, call.policy.ttl);
            self.store(call, tokens, value, ttl, body_started).await;
            return true;
        } else if let Some(guard) = guard.filter(|g| g.followed() && M::is_absent(out)) {
            guard.absent(tokens.to_vec().into());
        } else if !created.is_empty() {
            if let Err(e) = inner.backend.forget(created).await {
                tracing::debug!(error = %e, "cachette: could not drop unused versions");
            }
        }
        false
    }

    /// A batch body returned elements it was not given: they are neither
    /// stored nor returned (warned once per function).
    fn unasked(&self, call: &Call<'_>, count: usize) {
        if self.inner.warned_unasked.first_time(call.label()) {
            crate::loud::warn(&format!(
                "cachette: the batch function `{}` returned {count} element(s) it was not given \
                 (it is given only the elements that missed): they are neither stored nor \
                 returned (warned once per function)",
                call.label()
            ));
        }
    }
}

/// Every element found, in the order of `items`.
fn merge<K: Clone, V>(items: &[BatchItem<K>], results: Vec<Option<Option<V>>>) -> Vec<(K, V)> {
    items
        .iter()
        .zip(results)
        .filter_map(|(item, out)| Some((item.element.clone(), out.flatten()?)))
        .collect()
}

/// At most this many of a batch's per-element requests (locks, version
/// writes, fills) are in flight at once.
const IN_FLIGHT: usize = 64;

/// Runs `futures` [`IN_FLIGHT`] at a time (each group once the one
/// before it ended); their outputs in order.
async fn bounded<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures = futures.into_iter();
    let mut out = Vec::new();
    loop {
        let some: Vec<F> = futures.by_ref().take(IN_FLIGHT).collect();
        if some.is_empty() {
            return out;
        }
        out.extend(futures_util::future::join_all(some).await);
    }
}

/// Runs `body` as the leader of every flight in `entries`.
async fn as_leaders<F: Future>(entries: Vec<String>, body: F) -> F::Output {
    if entries.is_empty() {
        return body.await;
    }
    let mut leading = LEADING.try_with(Clone::clone).unwrap_or_default();
    leading.extend(entries);
    LEADING.scope(leading, body).await
}
