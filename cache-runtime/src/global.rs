//! The process-wide default cache used by annotated functions that do not
//! name one with `cache = ...`.

use std::sync::RwLock;

use crate::cache::Cache;

static DEFAULT: RwLock<Option<Cache>> = RwLock::new(None);

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
    *DEFAULT.write().unwrap_or_else(|e| e.into_inner()) = Some(cache);
}

/// The default cache, built on first use when [`init`] was not called:
/// Redis at `CACHETTE_REDIS_URL` (or else `REDIS_URL`) when either is set,
/// the embedded backend otherwise.
pub(crate) fn default_cache() -> Cache {
    if let Some(cache) = &*DEFAULT.read().unwrap_or_else(|e| e.into_inner()) {
        return cache.clone();
    }
    let mut slot = DEFAULT.write().unwrap_or_else(|e| e.into_inner());
    slot.get_or_insert_with(from_env).clone()
}

fn from_env() -> Cache {
    #[cfg(feature = "redis")]
    for var in ["CACHETTE_REDIS_URL", "REDIS_URL"] {
        let Ok(url) = std::env::var(var) else {
            continue;
        };
        if url.is_empty() {
            continue;
        }
        match Cache::builder().connect_lazy(&url) {
            Ok(cache) => {
                tracing::info!(
                    "cachette: default cache is Redis at {} (from {var})",
                    redact(&url)
                );
                return cache;
            }
            Err(e) => {
                tracing::error!("cachette: {var} is not usable ({e}); default cache is in memory");
                return Cache::memory();
            }
        }
    }
    tracing::info!(
        "cachette: default cache is the embedded in-memory backend \
         (set CACHETTE_REDIS_URL or REDIS_URL to use Redis)"
    );
    Cache::memory()
}

/// The URL without its password, for logs.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_hides_credentials() {
        assert_eq!(super::redact("redis://u:pw@h:1/0"), "redis://***@h:1/0");
        assert_eq!(super::redact("redis://h:1"), "redis://h:1");
    }
}
