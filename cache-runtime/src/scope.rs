//! Request-wide scopes: for the calls a future makes, read around the cache
//! ([`bypass`]), recompute and store ([`refresh`]), or act as if there were
//! no cache ([`off`]).
//!
//! A scope is task-local, as [`deferred`](crate::deferred) is: it covers
//! every cached call the future makes on its own task, through any number
//! of functions, and no task it spawns. The innermost scope decides.
//!
//! Busts are sent in every scope, `off` included. The code in a scope may
//! write to the source; the entries that write makes stale are read by
//! other requests, other processes, and this one once the scope is over.
//! Leaving them unbusted would break the promise that once an
//! invalidation has returned nobody reads stale data.

use std::future::Future;

/// What a scope does to the cached calls in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scope {
    /// Neither read nor store: each call runs its body. Reported as a
    /// bypass (stats, events, logs), as a `Cache-Control: no-store`
    /// request would be.
    Bypass,
    /// Run the body and store its value, whatever the cache holds: a
    /// `Cache-Control: no-cache` request. Reported as a refresh.
    Refresh,
    /// As if there were no cache: each call runs its body, nothing is
    /// read, stored, counted or reported. Busts are still sent.
    Off,
}

tokio::task_local! {
    static SCOPE: Scope;
}

/// Runs `future` with the cached calls it makes in `scope`.
pub async fn within<F: Future>(scope: Scope, future: F) -> F::Output {
    SCOPE.scope(scope, future).await
}

/// [`within`] as a nameable future, for a service's `Future` type.
#[cfg(feature = "tower")]
pub(crate) fn scoped<F: Future>(
    scope: Scope,
    future: F,
) -> tokio::task::futures::TaskLocalFuture<Scope, F> {
    SCOPE.scope(scope, future)
}

/// Runs `future` with every cached call in it reading around the cache:
/// its body runs and nothing is stored. Invalidations still go.
///
/// ```
/// use cachette::{cached, Cache};
///
/// #[cached(ttl = 60, cache = cache)]
/// async fn price(cache: &Cache, sku: u32) -> u32 { sku * 2 }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache = Cache::memory();
/// price(&cache, 7).await; // a miss: stored
/// let fresh = cachette::scope::bypass(price(&cache, 7)).await; // the body runs
/// assert_eq!((fresh, cache.stats().hits), (14, 0));
/// # }
/// ```
pub async fn bypass<F: Future>(future: F) -> F::Output {
    within(Scope::Bypass, future).await
}

/// Runs `future` with every cached call in it running its body and
/// storing the result, even where a valid entry exists. Invalidations
/// still go.
pub async fn refresh<F: Future>(future: F) -> F::Output {
    within(Scope::Refresh, future).await
}

/// Runs `future` as if there were no cache: every cached call in it runs
/// its body, and nothing is read, stored, counted or reported. Busts are
/// still sent (see the [module](self) for why).
pub async fn off<F: Future>(future: F) -> F::Output {
    within(Scope::Off, future).await
}

/// The scope the running code is in, if any (the innermost).
pub fn current() -> Option<Scope> {
    SCOPE.try_with(|s| *s).ok()
}
