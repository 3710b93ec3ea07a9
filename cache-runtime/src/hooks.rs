//! What a `#[cached]` function decides per value, at fill time:
//! `tags_from` (see `derived.rs`), `ttl_fn` and `none_ttl` (the value's
//! TTL), and `unless` (not stored at all).

use std::time::Duration;

/// What `tags_from` derives from a value `V`: its tags, as rendered.
pub type DeriveTags<V> = dyn Fn(&V) -> Vec<String> + Sync;

/// The TTL of a value `V` (`None`: the function's `ttl`).
pub type TtlOf<V> = dyn Fn(&V) -> Option<Duration> + Sync;

/// Whether a value `V` is not to be stored.
pub type Unless<V> = dyn Fn(&V) -> bool + Sync;

/// The per-value options of one call.
pub struct Hooks<'a, V> {
    /// Tags derived from the value.
    pub tags_from: Option<&'a DeriveTags<V>>,
    /// The value's TTL.
    pub ttl_of: Option<&'a TtlOf<V>>,
    /// Values not to store.
    pub unless: Option<&'a Unless<V>>,
}

impl<V> Hooks<'_, V> {
    /// No per-value option.
    pub const fn none() -> Self {
        Hooks {
            tags_from: None,
            ttl_of: None,
            unless: None,
        }
    }

    pub(crate) fn rejects(&self, value: &V) -> bool {
        self.unless.is_some_and(|unless| unless(value))
    }

    pub(crate) fn ttl(&self, value: &V, ttl: Duration) -> Duration {
        self.ttl_of.and_then(|of| of(value)).unwrap_or(ttl)
    }
}
