//! The embedded backend: two moka caches bounded by bytes, one for entries
//! and one for versions, with per-item TTLs. Same bytes and rules as Redis:
//! an evicted version only causes misses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::sync::Cache as Moka;
use moka::Expiry;

use super::{Blob, Lookup, Wanted};
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

/// An entry's bytes, and its value once decoded (see `keep.rs`).
type Stored = (Arc<[u8]>, Arc<crate::keep::Decoded>);

pub(crate) struct MemoryBackend {
    entries: Moka<String, Item<Stored>>,
    versions: Moka<String, Item<Token>>,
    /// Stampede locks: the token and when the lock lapses.
    locks: Mutex<HashMap<String, (Token, Instant)>>,
}

impl MemoryBackend {
    /// Entries take at most `bytes` (names and values, with a fixed
    /// allowance per item for moka's own bookkeeping), versions at most a
    /// quarter of that.
    pub(crate) fn new(bytes: u64) -> Self {
        MemoryBackend {
            entries: Moka::builder()
                .max_capacity(bytes)
                .weigher(|name: &String, item: &Item<Stored>| {
                    weight(name.len() + item.value.0.len())
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
                    ttl,
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

    pub(crate) fn extend(&self, versions: &[(&str, Token)], ttl: Duration) {
        use moka::ops::compute::Op;
        for &(name, token) in versions {
            // Only the very version the fill read: a bust's new token is
            // left as it is.
            self.versions
                .entry(name.to_string())
                .and_compute_with(|seen| match seen {
                    Some(item) if item.value().value == token && item.value().ttl < ttl => {
                        Op::Put(Item { value: token, ttl })
                    }
                    _ => Op::Nop,
                });
        }
    }

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

    #[test]
    fn a_lapsed_holder_cannot_release_the_next_holders_lock() {
        let m = MemoryBackend::new(10);
        let (a, b, c) = (Token::random(), Token::random(), Token::random());
        assert!(m.try_lock("l", a, Duration::from_millis(1)));
        std::thread::sleep(Duration::from_millis(5));
        assert!(m.try_lock("l", b, Duration::from_secs(10)));
        m.unlock("l", a);
        assert!(
            !m.try_lock("l", c, Duration::from_secs(10)),
            "A released B's lock"
        );
        m.unlock("l", b);
        assert!(m.try_lock("l", c, Duration::from_secs(10)));
    }
}
