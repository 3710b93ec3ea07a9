//! Tags derived from a cached value (`#[cached(tags_from = ...)]`).
//!
//! An entry is valid only while the versions its fill read *before its
//! body ran* are current; a tag known only from the value is known only
//! after. Reading its version then would miss a bust made while the body
//! ran, and the entry would validate with a value computed before that
//! bust. So the tags a key's value derived last time are remembered in
//! this process (the hint), read with the entry like any tag, and
//! captured before the body; a fill stores only when the value derives
//! exactly the hinted tags. When it derives others (the first miss of a
//! key in this process, or a value that moved to other tags), the hint is
//! updated and nothing is stored: the next miss stores.

use std::sync::Arc;

use crate::cache::Cache;
use crate::names::Function;

/// Keys whose derived tags are remembered, per cache.
pub(crate) const HINTS: u64 = 100_000;

/// The remembered derived tags of each key: sorted, without duplicates.
pub(crate) type Hints = moka::sync::Cache<String, Arc<[String]>>;

pub(crate) fn hints() -> Hints {
    moka::sync::Cache::new(HINTS)
}

fn hint_key(function: &Function, key: &str) -> String {
    let mut out = String::with_capacity(17 + key.len());
    out.push_str(function.id());
    out.push(':');
    out.push_str(key);
    out
}

/// Tags in the one order a hint keeps them in.
pub(crate) fn normalize(mut tags: Vec<String>) -> Vec<String> {
    tags.sort_unstable();
    tags.dedup();
    tags
}

impl Cache {
    /// The derived tags remembered for `key` of `function`.
    pub(crate) fn hinted(&self, function: &Function, key: &str) -> Option<Arc<[String]>> {
        self.inner.derived.get(&hint_key(function, key))
    }

    /// Remembers what `key`'s value derived.
    pub(crate) fn hint(&self, function: &Function, key: &str, tags: Vec<String>) {
        self.inner
            .derived
            .insert(hint_key(function, key), tags.into());
    }
}
