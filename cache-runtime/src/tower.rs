//! A tower layer that puts a trusted request in a request-wide
//! [scope](crate::scope) when its `Cache-Control` asks: `no-cache` is
//! [`Scope::Refresh`], `no-store` is [`Scope::Bypass`].
//!
//! ```
//! use cachette::scope::Scope;
//! use cachette::tower::{cache_control, ScopeLayer};
//! use http::{HeaderMap, HeaderValue, Request};
//!
//! // Only requests carrying the operators' token may ask; in axum the
//! // body type is `axum::body::Body`.
//! let token = std::env::var("CACHE_ADMIN_TOKEN").unwrap_or_default();
//! let layer = ScopeLayer::new(move |req: &Request<String>| {
//!     !token.is_empty()
//!         && req.headers().get("x-cache-admin").map(|v| v.as_bytes()) == Some(token.as_bytes())
//! });
//! # let _ = layer;
//!
//! // What the layer reads from the headers of an allowed request.
//! let mut headers = HeaderMap::new();
//! headers.insert("cache-control", HeaderValue::from_static("max-age=0, No-Cache"));
//! assert_eq!(cache_control(&headers), Some(Scope::Refresh));
//! ```
//!
//! `examples/service` adds it to an axum router and drives it over HTTP.
//!
//! - **Off unless the application says yes.** The only constructor takes
//!   the predicate. A request it refuses goes through untouched, its
//!   headers ignored: a refresh runs the body (the database query) of
//!   every cached call the request makes, and a bypass does so without
//!   even storing, so an anonymous client allowed to ask could multiply
//!   the load on the source at will (SECURITY.md).
//! - **The predicate is asked only of requests that ask for a scope**:
//!   the headers are read first (a few byte comparisons), so an ordinary
//!   request costs no call of it.
//! - **`no-store` wins over `no-cache`**: a request with both neither reads
//!   nor stores. Directives are comma-separated, compared without regard
//!   to case, their arguments (`no-cache="field"`) ignored; anything else
//!   (`max-age=0`, `no-transform`) asks for nothing. `Pragma: no-cache`
//!   counts only when there is no `Cache-Control` (RFC 9111, 5.4).
//! - **A request that asks for nothing keeps the scope it is in**: the
//!   inner future is returned as it is, not wrapped.
//! - **No boxing**: the future is the inner one, or the inner one inside
//!   the scope's task-local, so the layer needs no `Send` or `'static`
//!   the inner service does not already have. `poll_ready` is the inner
//!   service's.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::Either;
use http::header::{CACHE_CONTROL, PRAGMA};
use http::{HeaderMap, Request};
use tokio::task::futures::TaskLocalFuture;
use tower_layer::Layer;
use tower_service::Service;

use crate::scope::Scope;

/// How headers are mapped to a scope unless [`ScopeLayer::with_mapping`]
/// says otherwise: [`cache_control`].
pub type DefaultMapping = fn(&HeaderMap) -> Option<Scope>;

/// Wraps a service in a [`ScopeService`]. See the [module](self).
pub struct ScopeLayer<P, M = DefaultMapping> {
    allow: Arc<P>,
    mapping: Arc<M>,
}

impl<P> ScopeLayer<P> {
    /// A layer that reads `Cache-Control` (see [`cache_control`]) of the
    /// requests `allow` says yes to, and of no other.
    ///
    /// `allow` is asked only of a request whose headers ask for a scope.
    /// Make it check something a client cannot forge: an internal header
    /// that your edge proxy strips from outside requests, compared with a
    /// secret, or the peer address (axum's `ConnectInfo` extension).
    pub fn new<B>(allow: P) -> Self
    where
        P: Fn(&Request<B>) -> bool,
    {
        ScopeLayer {
            allow: Arc::new(allow),
            mapping: Arc::new(cache_control as DefaultMapping),
        }
    }
}

impl<P, M> ScopeLayer<P, M> {
    /// The same layer, mapping the headers of an allowed request to a
    /// scope with `mapping` instead of [`cache_control`] (which it may
    /// call). The predicate is asked only when `mapping` returns a scope.
    pub fn with_mapping<N>(self, mapping: N) -> ScopeLayer<P, N>
    where
        N: Fn(&HeaderMap) -> Option<Scope>,
    {
        ScopeLayer {
            allow: self.allow,
            mapping: Arc::new(mapping),
        }
    }
}

impl<P, M> Clone for ScopeLayer<P, M> {
    fn clone(&self) -> Self {
        ScopeLayer {
            allow: self.allow.clone(),
            mapping: self.mapping.clone(),
        }
    }
}

impl<P, M> std::fmt::Debug for ScopeLayer<P, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopeLayer").finish_non_exhaustive()
    }
}

impl<S, P, M> Layer<S> for ScopeLayer<P, M> {
    type Service = ScopeService<S, P, M>;

    fn layer(&self, inner: S) -> Self::Service {
        ScopeService {
            inner,
            allow: self.allow.clone(),
            mapping: self.mapping.clone(),
        }
    }
}

/// A service whose allowed requests run in the scope their headers ask
/// for. Built by [`ScopeLayer`].
pub struct ScopeService<S, P, M = DefaultMapping> {
    inner: S,
    allow: Arc<P>,
    mapping: Arc<M>,
}

impl<S: Clone, P, M> Clone for ScopeService<S, P, M> {
    fn clone(&self) -> Self {
        ScopeService {
            inner: self.inner.clone(),
            allow: self.allow.clone(),
            mapping: self.mapping.clone(),
        }
    }
}

impl<S: std::fmt::Debug, P, M> std::fmt::Debug for ScopeService<S, P, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopeService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, P, M, B> Service<Request<B>> for ScopeService<S, P, M>
where
    S: Service<Request<B>>,
    P: Fn(&Request<B>) -> bool,
    M: Fn(&HeaderMap) -> Option<Scope>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ScopeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let scope = (self.mapping)(req.headers()).filter(|_| (self.allow)(&req));
        let future = self.inner.call(req);
        ScopeFuture {
            inner: match scope {
                Some(scope) => Either::Right(crate::scope::scoped(scope, future)),
                None => Either::Left(future),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of a [`ScopeService`]: the inner service's, in the
    /// request's scope if it has one.
    pub struct ScopeFuture<F> {
        #[pin]
        inner: Either<F, TaskLocalFuture<Scope, F>>,
    }
}

impl<F: Future> Future for ScopeFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}

impl<F> std::fmt::Debug for ScopeFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scoped = matches!(self.inner, Either::Right(_));
        f.debug_struct("ScopeFuture")
            .field("scoped", &scoped)
            .finish()
    }
}

/// The scope a request's headers ask for: [`Scope::Bypass`] for
/// `Cache-Control: no-store`, else [`Scope::Refresh`] for `no-cache`
/// (or, with no `Cache-Control` at all, `Pragma: no-cache`), else none.
/// Every `Cache-Control` line is read; directives are comma-separated and
/// compared without regard to case or surrounding whitespace.
///
/// ```
/// use cachette::scope::Scope;
/// use cachette::tower::cache_control;
/// use http::{HeaderMap, HeaderValue};
///
/// let mut headers = HeaderMap::new();
/// headers.append("cache-control", HeaderValue::from_static("no-cache"));
/// headers.append("cache-control", HeaderValue::from_static("NO-STORE"));
/// assert_eq!(cache_control(&headers), Some(Scope::Bypass));
/// ```
pub fn cache_control(headers: &HeaderMap) -> Option<Scope> {
    let (mut no_cache, mut no_store) = (false, false);
    let mut any = false;
    for value in headers.get_all(CACHE_CONTROL) {
        any = true;
        for name in directives(value.as_bytes()) {
            no_store |= name.eq_ignore_ascii_case(b"no-store");
            no_cache |= name.eq_ignore_ascii_case(b"no-cache");
        }
    }
    if !any {
        no_cache = headers
            .get_all(PRAGMA)
            .iter()
            .flat_map(|value| directives(value.as_bytes()))
            .any(|name| name.eq_ignore_ascii_case(b"no-cache"));
    }
    match (no_store, no_cache) {
        (true, _) => Some(Scope::Bypass),
        (false, true) => Some(Scope::Refresh),
        (false, false) => None,
    }
}

/// The names of a header's comma-separated directives, trimmed, each
/// without its `=argument`.
fn directives(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(|directive| {
        let name = directive.split(|&b| b == b'=').next().unwrap_or_default();
        name.trim_ascii()
    })
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Answers every request with the scope its future ran in, and counts
    /// the `poll_ready` calls it is asked.
    #[derive(Clone, Default)]
    struct Record {
        readies: Arc<AtomicUsize>,
    }

    type Answer = Pin<Box<dyn Future<Output = Result<Option<Scope>, Infallible>> + Send>>;

    impl Service<Request<()>> for Record {
        type Response = Option<Scope>;
        type Error = Infallible;
        type Future = Answer;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            self.readies.fetch_add(1, Ordering::Relaxed);
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<()>) -> Answer {
            Box::pin(async { Ok(crate::scope::current()) })
        }
    }

    fn request(headers: &[(&'static str, &'static str)]) -> Request<()> {
        let mut req = Request::new(());
        for (name, value) in headers {
            req.headers_mut()
                .append(*name, http::HeaderValue::from_static(value));
        }
        req
    }

    fn admin(req: &Request<()>) -> bool {
        req.headers().get("x-cache-admin").map(|v| v.as_bytes()) == Some(b"secret")
    }

    async fn scope_of<P, M>(layer: &ScopeLayer<P, M>, req: Request<()>) -> Option<Scope>
    where
        P: Fn(&Request<()>) -> bool,
        M: Fn(&HeaderMap) -> Option<Scope>,
    {
        let mut service = layer.layer(Record::default());
        std::future::poll_fn(|cx| service.poll_ready(cx))
            .await
            .unwrap();
        service.call(req).await.unwrap()
    }

    fn scope_of_headers(headers: &[(&'static str, &'static str)]) -> Option<Scope> {
        cache_control(request(headers).headers())
    }

    #[tokio::test]
    async fn headers_are_ignored_without_the_predicates_yes() {
        let layer = ScopeLayer::new(admin);
        for asks in ["no-cache", "no-store", "no-cache, no-store"] {
            let req = request(&[("cache-control", asks), ("x-cache-admin", "guess")]);
            assert_eq!(scope_of(&layer, req).await, None, "{asks}");
        }
        let never = ScopeLayer::new(|_: &Request<()>| false);
        let req = request(&[("cache-control", "no-store"), ("pragma", "no-cache")]);
        assert_eq!(scope_of(&never, req).await, None);
    }

    #[tokio::test]
    async fn an_allowed_no_cache_refreshes_and_no_store_bypasses() {
        let layer = ScopeLayer::new(admin);
        let ask = |asks| request(&[("cache-control", asks), ("x-cache-admin", "secret")]);
        assert_eq!(
            scope_of(&layer, ask("no-cache")).await,
            Some(Scope::Refresh)
        );
        assert_eq!(scope_of(&layer, ask("no-store")).await, Some(Scope::Bypass));
        let both = ask("no-cache, no-store");
        assert_eq!(scope_of(&layer, both).await, Some(Scope::Bypass));
        let req = request(&[("pragma", "no-cache"), ("x-cache-admin", "secret")]);
        assert_eq!(scope_of(&layer, req).await, Some(Scope::Refresh));
        let plain = request(&[("x-cache-admin", "secret")]);
        assert_eq!(scope_of(&layer, plain).await, None);
    }

    #[test]
    fn directives_are_comma_separated_and_case_insensitive() {
        let cc = |value| scope_of_headers(&[("cache-control", value)]);
        assert_eq!(cc("No-Cache"), Some(Scope::Refresh));
        assert_eq!(cc("  no-cache  "), Some(Scope::Refresh));
        assert_eq!(cc("max-age=0,no-cache"), Some(Scope::Refresh));
        assert_eq!(cc("no-cache=\"set-cookie\""), Some(Scope::Refresh));
        assert_eq!(cc("private , NO-STORE , no-cache"), Some(Scope::Bypass));
        assert_eq!(cc("no-store, no-cache"), Some(Scope::Bypass));
        let lines = [("cache-control", "no-cache"), ("cache-control", "no-store")];
        assert_eq!(scope_of_headers(&lines), Some(Scope::Bypass));
    }

    #[test]
    fn other_directives_ask_for_nothing() {
        for value in [
            "max-age=0",
            "no-transform",
            "",
            ",",
            "no-cachex",
            "xno-store",
        ] {
            assert_eq!(
                scope_of_headers(&[("cache-control", value)]),
                None,
                "{value}"
            );
        }
        assert_eq!(scope_of_headers(&[("pragma", "x-no-cache")]), None);
        assert_eq!(scope_of_headers(&[]), None);
    }

    #[test]
    fn pragma_counts_only_without_cache_control() {
        let headers = [("pragma", "no-cache"), ("cache-control", "max-age=0")];
        assert_eq!(scope_of_headers(&headers), None);
        let headers = [("pragma", "no-cache"), ("cache-control", "no-store")];
        assert_eq!(scope_of_headers(&headers), Some(Scope::Bypass));
    }

    #[tokio::test]
    async fn a_request_that_asks_for_nothing_keeps_the_scope_it_is_in() {
        let asked = Arc::new(AtomicUsize::new(0));
        let counted = asked.clone();
        let layer = ScopeLayer::new(move |_: &Request<()>| {
            counted.fetch_add(1, Ordering::Relaxed);
            true
        });
        let plain = scope_of(&layer, request(&[]));
        assert_eq!(crate::scope::off(plain).await, Some(Scope::Off));
        assert_eq!(asked.load(Ordering::Relaxed), 0, "the predicate was asked");
        let refresh = scope_of(&layer, request(&[("cache-control", "no-cache")]));
        let inner = crate::scope::bypass(refresh).await;
        assert_eq!(
            inner,
            Some(Scope::Refresh),
            "the request's scope is the innermost"
        );
        assert_eq!(asked.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_custom_mapping_is_asked_before_the_predicate() {
        let layer = ScopeLayer::new(admin).with_mapping(|headers: &HeaderMap| {
            match headers.get("x-cache").map(|v| v.as_bytes()) {
                Some(b"off") => Some(Scope::Off),
                _ => cache_control(headers),
            }
        });
        let req = request(&[("x-cache", "off"), ("x-cache-admin", "secret")]);
        assert_eq!(scope_of(&layer, req).await, Some(Scope::Off));
        let req = request(&[("cache-control", "no-cache"), ("x-cache-admin", "secret")]);
        assert_eq!(scope_of(&layer, req).await, Some(Scope::Refresh));
        let req = request(&[("x-cache", "off")]);
        assert_eq!(scope_of(&layer, req).await, None);
    }

    #[tokio::test]
    async fn poll_ready_is_the_inner_services() {
        let inner = Record::default();
        let readies = inner.readies.clone();
        let mut service = ScopeLayer::new(admin).layer(inner);
        std::future::poll_fn(|cx| service.poll_ready(cx))
            .await
            .unwrap();
        assert_eq!(readies.load(Ordering::Relaxed), 1);
    }
}
