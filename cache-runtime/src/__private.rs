//! What the macros' generated code calls. Not a public API: names and
//! signatures change without notice.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

pub use crate::cache::Cache;
pub use crate::key::render;
pub use crate::mode::{Mode, OptionMode, ResultMode, ValueMode};
pub use crate::policy::{Policy, Strategy};

/// The default cache (see `cachette::init`).
pub fn default_cache() -> Cache {
    crate::global::default_cache()
}

/// A duration as written in the attribute, in milliseconds.
pub const fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// The path of the annotated function, from the type name of a marker
/// function declared inside it (`crate::module::Type::method`).
pub fn fn_path<F>(_marker: F) -> &'static str {
    let name = std::any::type_name::<F>();
    name.strip_suffix("::__cachette_fn").unwrap_or(name)
}

/// The key used when `key` is omitted: the function's path, then each
/// argument, escaped, after a `:`.
pub fn default_key(path: &str, values: &[&dyn Display]) -> String {
    let mut pieces = vec![""; values.len() + 1];
    let mut first = String::with_capacity(path.len() + 1);
    first.push_str(path);
    if !values.is_empty() {
        first.push(':');
        for p in &mut pieces[1..values.len()] {
            *p = ":";
        }
    }
    pieces[0] = &first;
    render(&pieces, values)
}

/// `#[cached]` with the aside and lock strategies.
pub async fn cached<M, R, Fut>(
    cache: &Cache,
    policy: &Policy,
    key: &str,
    tags: &[String],
    body: Fut,
) -> R
where
    M: Mode<R>,
    Fut: Future<Output = R>,
{
    cache
        .fetch::<M, R, Fut, crate::read::NoRefresh, _>(policy, key, tags, body, None)
        .await
}

/// `#[cached]` with the swr and early strategies: `refresh` makes an owned
/// future that calls the function again, for background refreshes.
pub async fn cached_refreshing<M, R, Fut, Mk, RF>(
    cache: &Cache,
    policy: &Policy,
    key: &str,
    tags: &[String],
    body: Fut,
    refresh: Mk,
) -> R
where
    M: Mode<R>,
    Fut: Future<Output = R>,
    Mk: FnOnce() -> RF,
    RF: Future<Output = ()> + Send + 'static,
{
    cache
        .fetch::<M, R, Fut, Mk, RF>(policy, key, tags, body, Some(refresh))
        .await
}

/// `#[invalidates]`: armed before the body runs, finished after it.
///
/// If the function's future is dropped before it finishes (a timeout
/// around the call, a `select!`, a panicking body), the write may have
/// committed; the bust is kept as undelivered and retried (I9), which at
/// worst costs the named entries a miss.
pub fn invalidation<'a>(
    cache: &'a Cache,
    function: &'static str,
    keys: &'a [String],
    tags: &'a [String],
) -> Invalidation<'a> {
    Invalidation {
        cache,
        function,
        keys,
        tags,
        armed: true,
    }
}

/// See [`invalidation`].
pub struct Invalidation<'a> {
    cache: &'a Cache,
    function: &'static str,
    keys: &'a [String],
    tags: &'a [String],
    armed: bool,
}

impl Invalidation<'_> {
    /// Busts when the body succeeded. A failed bust is logged, counted and
    /// kept for retry inside; the function's result stands.
    pub async fn finish(mut self, succeeded: bool) {
        self.armed = false;
        if succeeded {
            let _ = self
                .cache
                .invalidate_from(self.function, self.keys, self.tags)
                .await;
        }
    }
}

impl Drop for Invalidation<'_> {
    fn drop(&mut self) {
        if self.armed {
            let bust = self.cache.bust_of(self.keys, self.tags);
            if !bust.versions.is_empty() {
                tracing::error!(
                    function = self.function,
                    names = ?bust.versions,
                    "cachette: an #[invalidates] call was dropped before it finished; its bust is kept and retried, and what it names is not served until it is delivered"
                );
                self.cache.keep_undelivered(&bust);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_keys_separate_every_argument() {
        assert_eq!(default_key("m::f", &[]), "m::f");
        assert_eq!(default_key("m::f", &[&1, &"a:b"]), "m::f:1:a%3Ab");
        fn __cachette_fn() {}
        assert!(fn_path(__cachette_fn).ends_with("tests::default_keys_separate_every_argument"));
    }
}
