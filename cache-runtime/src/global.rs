//! The process-wide default cache used by annotated functions that do not
//! name one with `cache = ...`, and the guard rails around it: a function
//! that silently falls back to the default in a process that built caches
//! of its own is almost always missing its `cache = ...` (I9 and I1 then
//! break quietly, since its invalidations go elsewhere), so that is warned
//! about, and can be forbidden.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::RwLock;

use crate::cache::Cache;

static DEFAULT: RwLock<Option<Cache>> = RwLock::new(None);
/// `init` was called.
static INIT: AtomicBool = AtomicBool::new(false);
/// `forbid_default_cache` was called.
static FORBIDDEN: AtomicBool = AtomicBool::new(false);
/// Caches the application built itself.
static BUILT: AtomicUsize = AtomicUsize::new(0);

/// Makes `cache` the default for annotated functions without `cache = ...`.
///
/// Calling it again replaces the default; calls already running keep the
/// cache they started with.
///
/// ```
/// cachette::init(cachette::Cache::memory());
/// ```
pub fn init(cache: Cache) {
    tracing::info!(
        backend = cache.backend_name(),
        "cachette: default cache set"
    );
    INIT.store(true, Ordering::Relaxed);
    *crate::sync::write(&DEFAULT) = Some(cache);
}

/// Forbids the default cache: from now on, an annotated function without
/// `cache = ...` panics on its first call, naming itself, instead of using
/// the process-wide default.
///
/// For services whose caches all live in their repositories: a method that
/// forgot `cache = self.cache` would otherwise read and fill another cache
/// than the one its `#[invalidates]` methods bust, and serve stale data.
/// Call it at startup (and in tests) to catch that at once.
///
/// ```should_panic
/// #[cachette::cached(ttl = 60)]
/// async fn forgot_its_cache(id: u64) -> u64 { id }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// cachette::forbid_default_cache();
/// forgot_its_cache(1).await; // panics: no `cache = ...`
/// # }
/// ```
pub fn forbid_default_cache() {
    FORBIDDEN.store(true, Ordering::Relaxed);
}

/// A cache was built by the application (not as the default).
pub(crate) fn built_explicitly() {
    BUILT.fetch_add(1, Ordering::Relaxed);
}

/// The default cache, for `function`, which names none.
///
/// # Panics
/// After [`forbid_default_cache`].
pub(crate) fn default_cache_for(function: &'static str) -> Cache {
    if FORBIDDEN.load(Ordering::Relaxed) {
        panic!(
            "cachette: `{function}` has no `cache = ...` and the default cache is forbidden \
             (cachette::forbid_default_cache); give it `cache = ...`"
        );
    }
    if !INIT.load(Ordering::Relaxed) && BUILT.load(Ordering::Relaxed) > 0 {
        crate::loud::warn_once("default cache", function, || {
            format!(
                "cachette: `{function}` has no `cache = ...` and uses the process default cache, \
                 but this process built caches of its own and never called cachette::init: if it \
                 belongs to one of them, its invalidations and theirs do not meet. Give it \
                 `cache = ...` (or put it in a `#[cached_impl(cache = self.cache)]` impl), call \
                 cachette::init, or forbid the default with cachette::forbid_default_cache"
            )
        });
    }
    default_cache()
}

/// The default cache, built on first use when [`init`] was not called:
/// Redis at `CACHETTE_REDIS_URL` (or else `REDIS_URL`) when either is set,
/// connected lazily; else, with the `upstash` feature, Upstash's REST API
/// at `UPSTASH_REDIS_REST_URL` with `UPSTASH_REDIS_REST_TOKEN` when both
/// are set (the variables Upstash's own SDKs read); the embedded backend
/// otherwise. In the namespace `CACHETTE_NAMESPACE` when set.
pub(crate) fn default_cache() -> Cache {
    if let Some(cache) = &*crate::sync::read(&DEFAULT) {
        return cache.clone();
    }
    let mut slot = crate::sync::write(&DEFAULT);
    slot.get_or_insert_with(from_env).clone()
}

fn from_env() -> Cache {
    let namespace = std::env::var("CACHETTE_NAMESPACE")
        .ok()
        .filter(|ns| !ns.is_empty());
    let builder = || {
        let mut builder = Cache::builder();
        builder.implicit = true;
        match &namespace {
            Some(ns) => builder.namespace(ns.clone()),
            None => builder,
        }
    };
    #[cfg(feature = "redis")]
    for var in ["CACHETTE_REDIS_URL", "REDIS_URL"] {
        let Ok(url) = std::env::var(var) else {
            continue;
        };
        if url.is_empty() {
            continue;
        }
        match builder().connect_lazy(&url) {
            Ok(cache) => {
                tracing::info!(
                    "cachette: default cache is Redis at {} (from {var})",
                    redact(&url)
                );
                if var == "REDIS_URL" && namespace.is_none() {
                    tracing::warn!(
                        "cachette: the default cache took the generic REDIS_URL and the shared \
                         namespace `cachette`: every application on that Redis doing the same \
                         shares its entries and invalidations. Set CACHETTE_NAMESPACE (or \
                         CACHETTE_REDIS_URL), or build the cache with a namespace and call \
                         cachette::init"
                    );
                }
                return cache;
            }
            Err(e) => {
                tracing::error!("cachette: {var} is not usable ({e}); default cache is in memory");
                return builder().memory();
            }
        }
    }
    #[cfg(feature = "upstash")]
    if let (Ok(url), Ok(token)) = (
        std::env::var("UPSTASH_REDIS_REST_URL"),
        std::env::var("UPSTASH_REDIS_REST_TOKEN"),
    ) {
        if !url.is_empty() && !token.is_empty() {
            return match builder().connect_upstash_lazy(&url, &token) {
                Ok(cache) => {
                    tracing::info!(
                        "cachette: default cache is Upstash at {} (from UPSTASH_REDIS_REST_URL)",
                        redact(&url)
                    );
                    cache
                }
                Err(e) => {
                    tracing::error!(
                        "cachette: UPSTASH_REDIS_REST_URL is not usable ({e}); default cache is in memory"
                    );
                    builder().memory()
                }
            };
        }
    }
    tracing::info!(
        "cachette: default cache is the embedded in-memory backend \
         (set CACHETTE_REDIS_URL or REDIS_URL to use Redis)"
    );
    builder().memory()
}

/// The URL without its secrets, for logs: the password of the user part
/// and any query parameter but the protocol and database (`redis+unix://`
/// URLs carry the password as `?pass=`). A URL that does not parse is not
/// shown at all.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn redact(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "(an unparseable URL)".to_string();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| {
            let shown = matches!(k.as_ref(), "protocol" | "db");
            (
                k.into_owned(),
                if shown { v.into_owned() } else { "***".into() },
            )
        })
        .collect();
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    parsed.set_fragment(None);
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_hides_credentials() {
        use super::redact;
        assert_eq!(redact("redis://u:pw@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact("redis://:pw@h:1"), "redis://:***@h:1");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
        let unix = redact("redis+unix:///run/redis.sock?db=2&pass=s3cret&user=app");
        assert!(!unix.contains("s3cret"), "{unix}");
        assert!(unix.contains("db=2"), "{unix}");
        let at_in_password = redact("redis://u:p@ss@h:1");
        assert!(
            !at_in_password.contains("p@ss") && !at_in_password.contains("ss@"),
            "{at_in_password}"
        );
        assert_eq!(redact("not a url"), "(an unparseable URL)");
    }
}
