//! `hard_timeout`: the longest a call of a cached function waits, after
//! which it returns [`Elapsed`] as its error.

use std::future::Future;
use std::time::Duration;

use crate::cache::Cache;
use crate::names::Function;
use crate::policy::Policy;
use crate::stats::Counters;

/// The error a call gets when it reaches its function's `hard_timeout`:
/// it stopped waiting for the cache and the body, and the body it was
/// running was dropped (a body running in the background for
/// `soft_timeout` goes on, within its own hard timeout).
///
/// A function with `hard_timeout` returns `Result<T, E>` where
/// `E: From<Elapsed>`:
///
/// ```
/// use cachette::{cached, Cache, Elapsed};
///
/// #[derive(Debug)]
/// enum DbError { Timeout(Elapsed), Query(String) }
///
/// impl From<Elapsed> for DbError {
///     fn from(e: Elapsed) -> Self { DbError::Timeout(e) }
/// }
///
/// #[cached(key = "report:<id>", ttl = 60, hard_timeout = "20ms", cache = cache)]
/// async fn report(cache: &Cache, id: u64) -> Result<String, DbError> {
///     tokio::time::sleep(std::time::Duration::from_secs(5)).await; // a slow query
///     Ok(format!("report {id}"))
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache = Cache::memory();
/// assert!(matches!(report(&cache, 1).await, Err(DbError::Timeout(_))));
/// assert_eq!(cache.stats().hard_timeouts, 1);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed {
    function: &'static str,
    timeout: Duration,
}

impl Elapsed {
    /// The function whose call timed out (its path, as logs show it).
    pub fn function(&self) -> &'static str {
        self.function
    }

    /// The function's `hard_timeout`.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` did not answer within its hard_timeout of {:?}",
            self.function, self.timeout
        )
    }
}

impl std::error::Error for Elapsed {}

/// What a function with `hard_timeout` returns: a `Result` whose error
/// can be made from [`Elapsed`].
#[diagnostic::on_unimplemented(
    message = "`hard_timeout` needs a function returning `Result<T, E>` with `E: From<cachette::Elapsed>`; `{Self}` is not one",
    label = "returned as `Err(Elapsed.into())` when the call times out",
    note = "implement `From<cachette::Elapsed>` for the error type; an `Option` or a plain value has no way to say that the call timed out"
)]
pub trait TimesOut {
    /// The value returned when the call timed out.
    fn elapsed(elapsed: Elapsed) -> Self;
}

impl<T, E: From<Elapsed>> TimesOut for Result<T, E> {
    fn elapsed(elapsed: Elapsed) -> Self {
        Err(elapsed.into())
    }
}

/// Runs `call`, a cached call of `function`, within `policy`'s hard
/// timeout, on cachette's own timer; past it, `R`'s timeout error.
pub async fn hard_timeout<R: TimesOut>(
    cache: &Cache,
    policy: &Policy,
    function: Function,
    call: impl Future<Output = R>,
) -> R {
    let timeout = policy.hard_timeout;
    let watched = Unyielding {
        call,
        function: function.label,
        timeout,
    };
    match crate::background::timeout(timeout, watched).await {
        Some(out) => out,
        None => {
            Counters::bump(&cache.inner.counters.hard_timeouts);
            crate::telemetry::timed_out(function.label);
            cache.inner.events.emit(|| {
                crate::events::Event::new(crate::events::EventKind::TimedOut, function.label)
                    .template(policy.template)
            });
            R::elapsed(Elapsed {
                function: function.label,
                timeout,
            })
        }
    }
}

pin_project_lite::pin_project! {
    /// A call with a hard timeout, warning (once per function) when one
    /// poll of it alone took the whole timeout: its body blocked the
    /// thread, and no timer can stop that. The timeout is seen only once
    /// the call yields: the call then returns its value if it was done,
    /// or the timeout error if it was still storing it (so a blocking
    /// body's value may never be stored), which is why it must be heard.
    struct Unyielding<F> {
        #[pin]
        call: F,
        function: &'static str,
        timeout: Duration,
    }
}

impl<F: Future> Future for Unyielding<F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = self.project();
        let started = std::time::Instant::now();
        let polled = this.call.poll(cx);
        let took = started.elapsed();
        if took >= *this.timeout {
            let (function, timeout) = (*this.function, *this.timeout);
            crate::loud::warn_once("hard_timeout blocked", function, || {
                format!(
                    "cachette: a call of `{function}` ran {took:?} without yielding, past its \
                     hard_timeout of {timeout:?}: a body that blocks its thread \
                     (std::thread::sleep, blocking I/O, a long computation) cannot be \
                     interrupted, and the call may return its value late or the timeout \
                     error with its value never stored; run such work in \
                     tokio::task::spawn_blocking (warned once per function)"
                )
            });
        }
        polled
    }
}
