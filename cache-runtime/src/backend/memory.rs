//! The embedded backend: two moka caches bounded by bytes, one for entries
//! and one for versions, with per-item TTLs. Same bytes and rules as Redis:
//! an evicted version only causes misses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::sync::Cache as Moka;
use moka::Expiry;

use super::stored::{Blob, Lookup, Wanted};
use crate::names::{Bust, Namespace, Subject};
use crate::version::Token;
use crate::version::{Seen, TOKEN_LEN};

/// What an item costs, in bytes: its name and value, and an allowance for
/// the bookkeeping around it.
fn weight(bytes: usize) -> u32 {
    const PER_ITEM: usize = 96;
    u32::try_from(bytes.saturating_add(PER_ITEM)).unwrap_or(u32::MAX)
}

#[derive(Clone)]
struct Item<V> {
    value: V,
    ttl: Duration,
}

struct ItemTtl;

impl<K, V> Expiry<K, Item<V>> for ItemTtl {
    fn expire_after_create(&self, _: &K, item: &Item<V>, _: Instant) -> Option<Duration> {
        Some(item.ttl)
    }

    fn expire_after_update(
        &self,
        _: &K,
        item: &Item<V>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(item.ttl)
    }
}

/// How long a version made for a fill lives at least: longer than any
/// entry's TTL a value may choose (`ttl_fn`, `none_ttl`), so that no entry
/// outlives its versions; the versions' share of memory bounds how many
/// there are.
const VERSION_FLOOR: Duration = Duration::from_secs(30 * 24 * 3600);

/// An entry's bytes, and its value once decoded (see `keep.rs`).
type Stored = (Arc<[u8]>, Arc<crate::keep::Decoded>);

pub(crate) struct MemoryBackend {
    entries: Moka<String, Item<Stored>>,
    versions: Moka<String, Item<Token>>,
    /// Stampede locks: the token and when the lock lapses.
    locks: Mutex<HashMap<String, (Token, Instant)>>,
}

impl MemoryBackend {
    /// Entries take at most `bytes` (names, stored bytes and, when values
    /// are kept decoded, the decoded value, with a fixed allowance per
    /// item for moka's own bookkeeping), versions at most a quarter of
    /// that.
    pub(crate) fn new(bytes: u64, keep_decoded: bool) -> Self {
        MemoryBackend {
            entries: Moka::builder()
                .max_capacity(bytes)
                .weigher(move |name: &String, item: &Item<Stored>| {
                    let blob = &item.value.0;
                    let decoded = if keep_decoded {
                        crate::keep::allowance(crate::entry::decoded_len(blob))
                    } else {
                        0
                    };
                    weight(
                        name.len()
                            .saturating_add(blob.len())
                            .saturating_add(decoded),
                    )
                })
                .expire_after(ItemTtl)
                .build(),
            versions: Moka::builder()
                .max_capacity((bytes / 4).max(1))
                .weigher(|name: &String, _: &Item<Token>| weight(name.len() + TOKEN_LEN))
                .expire_after(ItemTtl)
                .build(),
            locks: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn try_lock(&self, key: &str, token: Token, ttl: Duration) -> bool {
        let mut locks = crate::sync::lock(&self.locks);
        let now = Instant::now();
        locks.retain(|_, (_, until)| *until > now);
        if locks.contains_key(key) {
            return false;
        }
        locks.insert(key.to_string(), (token, now + ttl));
        true
    }

    pub(crate) fn unlock(&self, key: &str, token: Token) {
        let mut locks = crate::sync::lock(&self.locks);
        if locks.get(key).is_some_and(|(t, _)| *t == token) {
            locks.remove(key);
        }
    }

    pub(crate) fn lookup(&self, subject: &Subject<'_>) -> Lookup {
        let names = subject.names();
        let entry = self.entries.get(names.entry());
        Lookup {
            decoded: entry.as_ref().map(|i| i.value.1.clone()),
            entry: entry.map(|i| Blob::Shared(i.value.0)),
            oversized: false,
            near: false,
            versions: names
                .versions()
                .map(|k| match self.versions.get(k) {
                    Some(item) => Seen::Current(item.value),
                    None => Seen::Missing,
                })
                .collect(),
        }
    }

    /// Versions here are never foreign: one process writes them all.
    pub(crate) fn ensure(&self, versions: &[Wanted<'_>]) -> Vec<(Token, bool)> {
        versions
            .iter()
            .map(|&(k, _, ttl)| {
                let entry = self.versions.entry(k.to_string()).or_insert_with(|| Item {
                    value: Token::random(),
                    ttl: ttl.max(VERSION_FLOOR),
                });
                (entry.value().value, entry.is_fresh())
            })
            .collect()
    }

    /// Every version dropped: every entry misses.
    pub(crate) fn bust_everything(&self) {
        self.versions.invalidate_all();
    }

    pub(crate) fn forget(&self, keys: &[&str]) {
        for k in keys {
            self.versions.invalidate(*k);
        }
    }

    /// Nothing to do: versions made here already outlive any entry
    /// ([`VERSION_FLOOR`]), and rewriting one could race a bust.
    pub(crate) fn extend(&self, _versions: &[(&str, Token)], _ttl: Duration) {}

    pub(crate) fn store(&self, entry: &str, blob: Vec<u8>, ttl: Duration) {
        self.entries.insert(
            entry.to_string(),
            Item {
                value: (blob.into(), crate::keep::slot()),
                ttl,
            },
        );
    }

    pub(crate) fn bust(&self, ns: &Namespace, bust: &Bust, ttl: Duration) {
        for name in bust.versions(ns) {
            self.versions.insert(
                name,
                Item {
                    value: Token::random(),
                    ttl,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version made for a fill outlives any entry, and `extend` never
    /// writes (a rewrite could race a bust).
    #[test]
    fn fill_versions_outlive_entries_and_extend_writes_nothing() {
        let backend = MemoryBackend::new(1 << 20, true);
        let ns = Namespace::unchecked("ns".into());
        let bust = Bust::of(["k"], std::iter::empty::<&str>());
        let name = bust.versions(&ns).next().unwrap();
        let wanted = [(name.as_str(), None, Duration::from_millis(200))];
        let (read, _) = backend.ensure(&wanted)[0];
        assert_eq!(backend.versions.get(&name).unwrap().ttl, VERSION_FLOOR);
        backend.bust(&ns, &bust, Duration::from_secs(60));
        let busted = backend.versions.get(&name).unwrap().value;
        backend.extend(&[(name.as_str(), read)], Duration::from_secs(3600));
        assert_eq!(backend.versions.get(&name).unwrap().value, busted);
    }
}
