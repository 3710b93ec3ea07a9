//! `tracing` spans: one per cached call, with children for the body, each
//! backend round trip and each bust. Every span is made here, so that
//! their names, fields and target (`cache_runtime::spans`) are in one place.
//!
//! - **Level `DEBUG`.** A cached call is usually a small part of a request
//!   (a hit costs microseconds), and a service calls many per request: at
//!   `INFO`, a service's usual filter would export a span per hit. The
//!   events of the hot path are at `debug` too (`telemetry.rs`); one filter
//!   (`cache_runtime=debug`) turns both on.
//! - **Nothing when nobody listens.** A disabled `span!` is a load of the
//!   global max level (and of its callsite's interest): no allocation, no
//!   field is evaluated. A disabled span's [`InSpan`] polls its future and
//!   nothing else: no task-local scope, no `Instant::now`.
//! - **No copy of the future.** Every wrapper here is [`InSpan`], a future
//!   that holds the one it runs in place. An `async fn` taking a future
//!   and awaiting it (or `.instrument` of it) keeps both the argument and
//!   the awaited copy in its state: with a wrapper at every layer, a
//!   cached call's future tripled, and cached calls nested in bodies
//!   overflowed a test thread's stack in debug builds
//!   (`tests/suite/spans.rs`, `a_cached_call_future_is_not_copied_by_its_spans`).
//! - **No names, no values.** A span records the key *template*, never the
//!   rendered key (an email, a name), except as `cache.key` under
//!   `CacheBuilder::log_full_names(true)`; busts record how many names they
//!   carry, never the names. No value is ever recorded.
//! - **Backend time.** A call's span records `cache.backend_us`, the sum of
//!   the time its `cache.backend` spans took; it is measured only while
//!   those spans are enabled, through a task-local total scoped to the
//!   call (a body gets none of its own: what it does is not the call's
//!   backend time).
//! - **Errors.** A body that failed (`Err`) leaves `cache.outcome` as what
//!   the cache did (`miss`, `bypass`) and sets `error.type = "body"` and
//!   `otel.status_code = "ERROR"` on the call's span (OpenTelemetry's
//!   convention: the status says the operation failed, the outcome says
//!   what the cache did). A backend failure sets them on its `cache.backend`
//!   span (`error.type = "backend"`); the call fails open, and its outcome
//!   says `bypass`.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use tracing::field::Empty;
use tracing::Span;

use crate::cache::Cache;
use crate::error::Error;
use crate::policy::{Policy, Strategy};
use crate::telemetry::Outcome;

tokio::task_local! {
    /// The microseconds spent in backend round trips by the call whose
    /// span is enabled; `None` inside its body.
    static BACKEND_US: Option<Arc<AtomicU64>>;
}

/// A count as an integer attribute: OpenTelemetry's are signed (an
/// unsigned field would be exported as text).
fn int<N: TryInto<i64>>(n: N) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// `cache.strategy`.
fn strategy(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::Aside => "aside",
        Strategy::Lock => "lock",
        Strategy::Swr => "swr",
        Strategy::Early => "early",
    }
}

/// `db.system`: see `Backend::system`.
fn system(cache: &Cache) -> &'static str {
    cache.inner.backend.system()
}

/// The fields every call span records once it is made (only when enabled):
/// the rendered key under `log_full_names`, and the server.
fn describe(span: &Span, cache: &Cache, key: Option<&str>) {
    let inner = &*cache.inner;
    if let (true, Some(key)) = (inner.log_full_names, key) {
        span.record("cache.key", key);
    }
    if let Some((host, port)) = inner.backend.address() {
        span.record("server.address", host);
        if let Some(port) = port {
            span.record("server.port", i64::from(port));
        }
    }
}

/// The span of one call of a single-key cached function: `cache.get`.
pub(crate) fn get(cache: &Cache, policy: &Policy, function: &'static str, key: &str) -> Span {
    let span = tracing::debug_span!(
        "cache.get",
        code.function = function,
        cache.strategy = strategy(policy.strategy),
        cache.key.template = policy.template,
        cache.key = Empty,
        cache.outcome = Empty,
        cache.hit = Empty,
        cache.backend_us = Empty,
        db.system = system(cache),
        server.address = Empty,
        server.port = Empty,
        error.type = Empty,
        otel.status_code = Empty,
    );
    if !span.is_disabled() {
        describe(&span, cache, Some(key));
    }
    span
}

/// The span of one call of a batch function: `cache.get_many`. Its
/// outcome is `hit` when every element was served, else `miss`, and
/// `cache.misses` says how many elements the body was given.
pub(crate) fn get_many(cache: &Cache, policy: &Policy, function: &'static str, n: usize) -> Span {
    let span = tracing::debug_span!(
        "cache.get_many",
        code.function = function,
        cache.strategy = strategy(policy.strategy),
        cache.key.template = policy.template,
        cache.items = int(n),
        cache.misses = Empty,
        cache.outcome = Empty,
        cache.hit = Empty,
        cache.backend_us = Empty,
        db.system = system(cache),
        server.address = Empty,
        server.port = Empty,
        error.type = Empty,
        otel.status_code = Empty,
    );
    if !span.is_disabled() {
        describe(&span, cache, None);
    }
    span
}

/// The backend time of a call whose span is enabled, shared by the steps
/// of the call (a rehinted call fetches more than once); `None` when it
/// is disabled.
pub(crate) fn total(span: &Span) -> Option<Arc<AtomicU64>> {
    (!span.is_disabled()).then(|| Arc::new(AtomicU64::new(0)))
}

/// Runs a step of a call in its span, adding its backend round trips to
/// `total` and recording it as `cache.backend_us`.
pub(crate) fn call<F: Future>(
    span: &Span,
    total: &Option<Arc<AtomicU64>>,
    fut: F,
) -> InSpan<F, impl FnMut(&F::Output, &Span)> {
    let sums = match total {
        Some(total) => Sums::Own(total.clone()),
        None => Sums::Keep,
    };
    InSpan::new(fut, span.clone(), sums, false, |_: &F::Output, _: &Span| {})
}

/// Records how a call ended on its span: `cache.outcome`, and
/// `cache.hit`, true when the call returned a value from the cache
/// without running its own body (`hit`, `near_hit`, `stale`, and
/// `coalesced`, another caller's "not found").
pub(crate) fn ended(span: &Span, outcome: Outcome, near: bool) {
    if span.is_disabled() {
        return;
    }
    let (label, hit) = match outcome {
        Outcome::Hit if near => ("near_hit", true),
        Outcome::Hit | Outcome::Stale | Outcome::Coalesced => (outcome.as_str(), true),
        _ => (outcome.as_str(), false),
    };
    span.record("cache.outcome", label);
    span.record("cache.hit", hit);
}

/// Records on a batch call's span how many elements its body was given.
pub(crate) fn ended_many(span: &Span, misses: usize) {
    if span.is_disabled() {
        return;
    }
    span.record("cache.misses", int(misses));
    span.record("cache.outcome", if misses == 0 { "hit" } else { "miss" });
    span.record("cache.hit", misses == 0);
}

/// Marks a call whose body failed.
pub(crate) fn failed(span: &Span) {
    span.record("error.type", "body");
    span.record("otel.status_code", "ERROR");
}

/// Runs a body in its span, `cache.body`, a child of the call's (its
/// backend round trips are not the call's).
pub(crate) fn body<F: Future>(fut: F) -> InSpan<F, impl FnMut(&F::Output, &Span)> {
    let span = tracing::debug_span!("cache.body");
    InSpan::new(fut, span, Sums::Hide, false, |_: &F::Output, _: &Span| {})
}

/// Runs a batch body, given `n` elements, in its span.
pub(crate) fn batch_body<F: Future>(n: usize, fut: F) -> InSpan<F, impl FnMut(&F::Output, &Span)> {
    let span = tracing::debug_span!("cache.body", cache.items = int(n));
    InSpan::new(fut, span, Sums::Hide, false, |_: &F::Output, _: &Span| {})
}

/// Runs one backend operation in its span, `cache.backend`, with
/// `db.operation.name = op`, adding its time to the call's.
pub(crate) fn backend<T, F: Future<Output = Result<T, Error>>>(
    system: &'static str,
    op: &'static str,
    fut: F,
) -> InSpan<F, impl FnMut(&F::Output, &Span)> {
    let span = tracing::debug_span!(
        "cache.backend",
        db.system = system,
        db.operation.name = op,
        error.type = Empty,
        otel.status_code = Empty,
    );
    InSpan::new(
        fut,
        span,
        Sums::Keep,
        true,
        |out: &Result<T, Error>, span: &Span| {
            if out.is_err() {
                span.record("error.type", "backend");
                span.record("otel.status_code", "ERROR");
            }
        },
    )
}

/// The span of a bust: `cache.invalidate`, with how many keys and tags it
/// names (never the names) and, at the end, `cache.outcome`
/// (`invalidated`, `held` by a deferred scope, `failed`: kept and retried).
pub(crate) fn invalidate(cache: &Cache, function: &'static str, names: usize) -> Span {
    tracing::debug_span!(
        "cache.invalidate",
        code.function = function,
        cache.names = int(names),
        cache.outcome = Empty,
        db.system = system(cache),
        error.type = Empty,
        otel.status_code = Empty,
    )
}

/// Runs a future in `span`.
pub(crate) fn within<F: Future>(span: &Span, fut: F) -> InSpan<F, impl FnMut(&F::Output, &Span)> {
    InSpan::new(
        fut,
        span.clone(),
        Sums::Keep,
        false,
        |_: &F::Output, _: &Span| {},
    )
}

/// The root span of a background refresh (`swr`, `early`), which follows
/// from the call that started it.
pub(crate) fn refresh(caller: &Span, policy: &Policy, function: &'static str) -> Span {
    let span = tracing::debug_span!(
        parent: None,
        "cache.refresh",
        code.function = function,
        cache.strategy = strategy(policy.strategy),
        cache.key.template = policy.template,
    );
    span.follows_from(caller);
    span
}

/// What an [`InSpan`] does with the backend time of the calls it polls.
enum Sums {
    /// Nothing: its round trips count for whichever call polls it.
    Keep,
    /// Its round trips are the call's (`cache.backend_us`).
    Own(Arc<AtomicU64>),
    /// Its round trips are nobody's: a body's.
    Hide,
}

pin_project_lite::pin_project! {
    /// A future run in a span, held in place (never copied), and polled
    /// as it is when the span is disabled. When enabled, each poll enters
    /// the span and, by [`Sums`], sets the backend total the future's
    /// round trips add to; `timed` adds the time from the first poll to
    /// the last to the total of the call polling it. `done` sees the
    /// output before it is returned.
    pub(crate) struct InSpan<F, D> {
        #[pin]
        inner: F,
        span: Span,
        sums: Sums,
        timed: bool,
        started: Option<std::time::Instant>,
        done: D,
    }
}

impl<F: Future, D: FnMut(&F::Output, &Span)> InSpan<F, D> {
    fn new(inner: F, span: Span, sums: Sums, timed: bool, done: D) -> Self {
        InSpan {
            inner,
            span,
            sums,
            timed,
            started: None,
            done,
        }
    }
}

impl<F: Future, D: FnMut(&F::Output, &Span)> Future for InSpan<F, D> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        use std::task::Poll;
        let this = self.project();
        if this.span.is_disabled() {
            return this.inner.poll(cx);
        }
        if *this.timed && this.started.is_none() {
            *this.started = Some(std::time::Instant::now());
        }
        let polled = {
            let _entered = this.span.enter();
            match this.sums {
                Sums::Keep => this.inner.poll(cx),
                Sums::Own(total) => {
                    BACKEND_US.sync_scope(Some(total.clone()), || this.inner.poll(cx))
                }
                Sums::Hide => BACKEND_US.sync_scope(None, || this.inner.poll(cx)),
            }
        };
        let Poll::Ready(out) = polled else {
            return Poll::Pending;
        };
        if let Some(started) = *this.started {
            let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            let _ = BACKEND_US.try_with(|total| {
                if let Some(total) = total {
                    total.fetch_add(us, Relaxed);
                }
            });
        }
        if let Sums::Own(total) = this.sums {
            this.span
                .record("cache.backend_us", int(total.load(Relaxed)));
        }
        (this.done)(&out, this.span);
        Poll::Ready(out)
    }
}
