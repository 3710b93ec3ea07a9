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

use crate::names::{Function, Name};

/// The most bytes of hints a cache holds (keys and tags, with an allowance
/// per hint and per tag for the bookkeeping); past it, the least used are
/// forgotten, which costs their keys one more miss.
pub(crate) const HINT_BYTES: u64 = 16 << 20;

/// The most tags a hint holds: what an entry can record besides the key's
/// version and the namespace's epoch. A value that derives more could
/// never be stored, so it is not remembered.
pub(crate) const MAX_HINTED_TAGS: usize = crate::entry::MAX_VERSIONS - 2;

/// The remembered derived tags of each key: sorted, without duplicates.
/// Owned by the cache (its `derived`), like its flights: a part that knows
/// nothing of the cache around it.
pub(crate) struct Hints(moka::sync::Cache<String, Arc<[String]>>);

/// An empty set of hints, bounded by [`HINT_BYTES`].
pub(crate) fn hints() -> Hints {
    Hints(
        moka::sync::Cache::builder()
            .max_capacity(HINT_BYTES)
            .weigher(|key: &String, tags: &Arc<[String]>| {
                let tags: usize = tags.iter().map(|t| t.len() + 24).sum();
                u32::try_from(key.len() + tags + 96).unwrap_or(u32::MAX)
            })
            .build(),
    )
}

/// The hint's key: the function, and the key as the backend names it
/// (shortened when long, so a long argument costs no more than a short
/// one).
fn hint_key(function: &Function, key: &str) -> String {
    let name = Name::new(key);
    let mut out = String::with_capacity(18 + name.text().len());
    out.push_str(function.id());
    out.push(if name.is_shortened() { '#' } else { ':' });
    out.push_str(name.text());
    out
}

/// Tags in the one order a hint keeps them in.
pub(crate) fn normalize(mut tags: Vec<String>) -> Vec<String> {
    tags.sort_unstable();
    tags.dedup();
    tags
}

impl Hints {
    /// The derived tags remembered for `key` of `function`.
    pub(crate) fn hinted(&self, function: &Function, key: &str) -> Option<Arc<[String]>> {
        self.0.get(&hint_key(function, key))
    }

    /// Remembers what `key`'s value derived, unless it is more than an
    /// entry can record.
    pub(crate) fn hint(&self, function: &Function, key: &str, tags: Vec<String>) {
        if tags.len() > MAX_HINTED_TAGS {
            self.0.invalidate(&hint_key(function, key));
            return;
        }
        self.0.insert(hint_key(function, key), tags.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes the hints hold: their keys and tags.
    fn held(hints: &Hints) -> usize {
        hints.0.run_pending_tasks();
        hints
            .0
            .iter()
            .map(|(k, tags)| k.len() + tags.iter().map(String::len).sum::<usize>())
            .sum()
    }

    /// Hints are bounded by bytes, whatever the keys and tags: 2,000 keys
    /// of 200 KB, and as many hints of 200 KB of tags, stay within the
    /// hints' budget. Counted by entries, they held 400 MB each.
    #[test]
    fn hints_are_bounded_by_bytes() {
        let hints = hints();
        let function = Function::named("hints", "test");
        for i in 0..2_000 {
            let key = format!("{i}:{}", "k".repeat(200_000));
            hints.hint(&function, &key, vec![format!("t{i}")]);
        }
        let held_keys = held(&hints);
        assert!(
            held_keys <= HINT_BYTES as usize,
            "{held_keys} bytes of hints"
        );
        for i in 0..2_000 {
            let tags = (0..100)
                .map(|t| format!("{i}:{t}:{}", "t".repeat(2_000)))
                .collect();
            hints.hint(&function, &format!("key {i}"), tags);
        }
        let held_tags = held(&hints);
        assert!(
            held_tags <= HINT_BYTES as usize,
            "{held_tags} bytes of hints"
        );
        // A long key is remembered under its shortened name.
        let key = format!("1:{}", "k".repeat(200_000));
        hints.hint(&function, &key, vec!["one".into()]);
        assert_eq!(
            hints.hinted(&function, &key).as_deref(),
            Some(&["one".to_string()][..])
        );
    }

    /// A value that derives more tags than an entry can record is not
    /// remembered: no fill could store it.
    #[test]
    fn a_hint_holds_no_more_tags_than_an_entry_records() {
        let hints = hints();
        let function = Function::named("hints", "test");
        let many: Vec<String> = (0..300).map(|t| format!("t{t}")).collect();
        hints.hint(&function, "k", many);
        assert_eq!(hints.hinted(&function, "k"), None);
        hints.hint(&function, "k", vec!["a".into()]);
        assert!(hints.hinted(&function, "k").is_some());
    }
}
