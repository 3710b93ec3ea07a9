//! The read path shared by every strategy: validate, serve (fresh, stale or
//! refreshing early), or coalesce, lock, run the body and fill.
//!
//! [`Cache::fetch`] runs three steps: the gates (`gates`, here), which send
//! a call around the cache; the lookup, or following another caller's
//! flight (`look_up`, in `lookup.rs`, with serving); and, on a miss, the
//! body and the fill (`run_and_fill`, in `fill.rs`). Between the last two,
//! a lock-strategy call takes the fleet-wide lock (`lock.rs`). Whether an
//! entry is valid is decided in `valid.rs`; background refreshes are in
//! `refresh.rs`.

mod batch;
mod fill;
mod lock;
mod lookup;
mod refresh;
mod soft;
mod valid;

pub use self::batch::BatchItem;
use self::lock::{LockGuard, Locked};
use self::lookup::Looked;

use std::future::Future;
use std::time::Duration;

use crate::backend::Lookup;
use crate::breaker::Permit;
use crate::cache::Cache;
use crate::deferred::Reading;
use crate::flight::FlightGuard;
use crate::hooks::Hooks;
use crate::keep::Keeper;
use crate::mode::{Mode, ResultNoneMode};
use crate::names::{Function, Subject};
use crate::policy::{Policy, Strategy};
use crate::stats::Counters;
use crate::telemetry::{self, Outcome, Shown, Started};

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

/// Why calls go around the cache at the application's request
/// ([`Cache::left_alone`]), which says how they are reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LeftAlone {
    /// `scope::off`: as if there were no cache, nothing is reported.
    Off,
    /// `scope::bypass` or a disabled cache: reported as bypasses.
    Bypass,
}

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
    /// Skip serving and coalescing: run the body and fill (a refresh; set
    /// by `fetch` too inside a background refresh of this very entry).
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
    /// The call's span (`spans.rs`), where its outcome is recorded; none
    /// for the elements of a batch, whose span is the batch's.
    pub span: tracing::Span,
    /// The call is a background refresh (`swr`, `early`, `soft_timeout`)
    /// re-running the function for its own entry: forced, and not a call
    /// anyone made (it raises no event of its own).
    pub background: bool,
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
            span: tracing::Span::none(),
            background: false,
        }
    }

    pub(crate) fn label(&self) -> &'static str {
        self.subject.function().label
    }
}

/// Whether the running code is the body of a cached call (it leads a
/// flight, or refreshes an entry).
pub(crate) fn in_a_body() -> bool {
    LEADING.try_with(|l| !l.is_empty()).unwrap_or(false) || REFRESHING.try_with(|_| ()).is_ok()
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

/// A call that missed, on its way to the body and the fill.
struct Miss {
    /// What the fill records the versions of: read before the body.
    lookup: Lookup,
    /// The flight this call leads, if any: ended (dropped) after the fill.
    flight: Option<FlightGuard>,
    /// The fleet-wide lock this call holds, if any (`strategy = "lock"`).
    lock: Option<LockGuard>,
    /// The call is nested in its own flight.
    nested: bool,
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
        mut call: Call<'_>,
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
        let refreshing = crate::scope::current() == Some(crate::scope::Scope::Refresh);
        if refreshing {
            Counters::bump(&inner.counters.scope_refreshes);
        }
        call.background = REFRESHING
            .try_with(|refreshing| refreshing == call.subject.entry())
            .unwrap_or(false);
        call.forced = call.forced || refreshing || call.background;
        // The permit is held until the lookup answered: a probe dropped
        // earlier is given back, so the breaker cannot stay half-open for
        // good.
        let Some((deferring, permit)) = self.gates(&call) else {
            return Fetched::Done(self.bypass::<M, R>(&call, body).await);
        };
        let mut refresh = refresh;
        let looked = self
            .look_up::<M, R, Mk, RF>(&call, keep, deferring, &mut refresh, hooks)
            .await;
        let mut miss = match looked {
            Looked::Missed(miss) => miss,
            Looked::Served(out) => return Fetched::Done(out),
            Looked::Rehint => return Fetched::Rehint(body, refresh),
            Looked::Bypass(flight) => {
                // A flight this call leads ends once the body has run.
                let _flight = flight;
                return Fetched::Done(self.bypass::<M, R>(&call, body).await);
            }
        };
        drop(permit);
        if deferring == Reading::Inside {
            if !call.forced {
                Counters::bump(&inner.counters.misses);
            }
            return Fetched::Done(self.bypass::<M, R>(&call, body).await);
        }

        // With `soft_timeout` and a value kept past its TTL: the body runs
        // in the background, and the kept value is returned if it outruns
        // the soft timeout.
        if !call.policy.soft_timeout.is_zero() && !call.forced && !miss.nested {
            if let Some(out) = self
                .soft::<M, R, Mk, RF>(&call, keep, &miss.lookup, &mut refresh)
                .await
            {
                return Fetched::Done(out);
            }
        }

        // Nested in its own flight, the call would wait for its own lock.
        if call.policy.strategy == Strategy::Lock && !call.forced && !miss.nested {
            match self.lock_or_wait::<M, R>(&call, keep).await {
                Ok(Locked::Served(out)) => return Fetched::Done(out),
                Ok(Locked::Held(guard, fresh)) => {
                    miss.lock = Some(guard);
                    miss.lookup = fresh;
                }
                Ok(Locked::TimedOut(fresh)) => miss.lookup = fresh,
                Ok(Locked::Blocked) => {
                    return Fetched::Done(self.bypass::<M, R>(&call, body).await)
                }
                Err(e) => {
                    self.backend_error("lock", &call.key, &e);
                    return Fetched::Done(self.bypass::<M, R>(&call, body).await);
                }
            }
        }
        let out = self.run_and_fill::<M, R, Fut>(&call, keep, body, miss, hooks);
        Fetched::Done(out.await)
    }

    /// The gates a call passes before the cache is read: `None` sends it
    /// around the cache (its body runs without it). Else how the read stands
    /// with a deferred scope, and the breaker's permit.
    fn gates(&self, call: &Call<'_>) -> Option<(Reading, Permit<'_>)> {
        let inner = &*self.inner;
        if inner.disabled {
            return None;
        }
        match crate::scope::current() {
            Some(crate::scope::Scope::Bypass) => {
                Counters::bump(&inner.counters.scope_bypasses);
                return None;
            }
            Some(crate::scope::Scope::Off) => return None,
            _ => {}
        }
        if inner.pending.any() {
            self.ensure_retrying();
            if inner.pending.blocks(&call.subject) {
                // An undelivered invalidation may cover this entry (I9).
                return None;
            }
        }
        if call.policy.ttl.is_zero() {
            // A TTL from an expression that came out zero: nothing to keep.
            self.zero_ttl(call);
            return None;
        }
        // Inside a deferred scope (a transaction may be open): an entry a
        // held bust names is not served, and nothing is stored.
        let mut deferring = crate::deferred::reading(self, &call.subject);
        if call.stores_nothing && deferring == Reading::Outside {
            deferring = Reading::Inside;
        }
        if deferring == Reading::Busted {
            return None;
        }
        let permit = inner.breaker.allow()?;
        Some((deferring, permit))
    }

    /// Reports how `call` ended: the one place every outcome of a call
    /// passes through (logs, metrics).
    pub(crate) fn ended(&self, call: &Call<'_>, outcome: Outcome) {
        self.ended_near(call, outcome, false);
    }

    /// [`ended`](Self::ended), for a hit the near-cache may have served:
    /// its span says `near_hit`.
    pub(crate) fn ended_near(&self, call: &Call<'_>, outcome: Outcome, near: bool) {
        crate::spans::ended(&call.span, outcome, near);
        telemetry::end(call.label(), call.key, outcome, call.started);
        use crate::events::{Event, EventKind};
        let kind = match outcome {
            Outcome::Hit => EventKind::Hit,
            Outcome::Miss => EventKind::Miss,
            Outcome::Stale | Outcome::StaleOnError | Outcome::StaleOnTimeout => {
                EventKind::StaleServed
            }
            Outcome::Bypass => EventKind::Bypass,
            Outcome::Coalesced => EventKind::Coalesced,
            Outcome::TimedOut => EventKind::TimedOut,
            Outcome::Refresh => EventKind::Refreshed,
            // Steps, not ends.
            Outcome::LockWait | Outcome::LockTimeout => return,
        };
        self.inner
            .events
            .emit(|| Event::new(kind, call.label()).template(call.policy.template));
    }

    /// Reports a step of `call` (waiting for another caller, a lock).
    pub(crate) fn stepped(&self, call: &Call<'_>, outcome: Outcome) {
        telemetry::step(call.label(), call.key, outcome);
    }

    /// Whether calls go around the cache because the application asked
    /// (`scope::bypass`, `scope::off`, a disabled cache), rather than
    /// because of the cache's own state: such calls leave the cache alone.
    pub(super) fn left_alone(&self) -> Option<LeftAlone> {
        match crate::scope::current() {
            Some(crate::scope::Scope::Off) => Some(LeftAlone::Off),
            Some(crate::scope::Scope::Bypass) => Some(LeftAlone::Bypass),
            _ if self.inner.disabled => Some(LeftAlone::Bypass),
            _ => None,
        }
    }

    /// Runs the body without the cache.
    ///
    /// A refresh sent around the cache (a deferred scope, the breaker, an
    /// undelivered bust, a failed version read) replaces nothing, so it
    /// invalidates its key as one that stores nothing does
    /// ([`replaced_by_nothing`](Self::replaced_by_nothing)); unless it was
    /// sent around by `scope::bypass`, `scope::off` or a disabled cache,
    /// which ask that the cache be left alone, or its body failed.
    async fn bypass<M: Mode<R>, R>(&self, call: &Call<'_>, body: impl Future<Output = R>) -> R {
        let out = crate::spans::body(body).await;
        let left_alone = self.left_alone();
        if left_alone != Some(LeftAlone::Off) {
            self.ended(call, Outcome::Bypass);
        }
        if call.forced && left_alone.is_none() && !M::failed(&out) {
            self.replaced_by_nothing(call).await;
        }
        out
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
        let mut call = Call::new(self, &policy, function, key, tags);
        let span = crate::spans::get(self, &policy, function.label, key);
        call.span = span.clone();
        let hooks = Hooks::none();
        let fetched = self.fetch::<ResultNoneMode, _, _, NoRefresh, _>(
            call,
            Keeper::none(),
            fetch,
            None,
            &hooks,
        );
        match crate::spans::call(&span, &crate::spans::total(&span), fetched).await {
            Fetched::Done(out) => {
                if out.is_err() {
                    crate::spans::failed(&span);
                }
                out
            }
            Fetched::Rehint(..) => unreachable!("only with tags_from"),
        }
    }
}
