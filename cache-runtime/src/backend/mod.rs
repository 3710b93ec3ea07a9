//! Where entries and versions live. Both backends store the same bytes and
//! follow the same rules; the cache logic above them is shared.

pub(crate) mod memory;
#[cfg(feature = "redis")]
pub(crate) mod redis;

use std::time::Duration;

use crate::error::Error;
use crate::version::Token;

/// One backend name: `ns:<kind>:{<name>}`.
///
/// The braces are a Redis Cluster hash tag: the entry, the version and the
/// lock of one key hash to the same slot (the one of the key), and a tag's
/// version to the slot of the tag. A single Redis ignores them. Names with
/// an empty tag (`{}`) or one cut short by a `}` in the key still work: the
/// cluster backend groups every multi-name operation by slot, so sharing a
/// slot only saves sub-commands, it is never needed for correctness.
pub(crate) fn name(ns: &str, kind: Kind, key: &str) -> String {
    let mut out = String::with_capacity(ns.len() + key.len() + 5);
    push_name(&mut out, ns, kind, key);
    out
}

/// What a backend name holds.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    /// A cached entry.
    Entry,
    /// The version of a key.
    KeyVersion,
    /// The version of a tag.
    TagVersion,
    /// A stampede lock.
    Lock,
}

fn push_name(out: &mut String, ns: &str, kind: Kind, key: &str) {
    out.push_str(ns);
    out.push_str(match kind {
        Kind::Entry => ":e:{",
        Kind::KeyVersion => ":k:{",
        Kind::TagVersion => ":t:{",
        Kind::Lock => ":l:{",
    });
    out.push_str(key);
    out.push('}');
}

/// The backend names of one lookup: the entry, then the version keys it is
/// validated against (the key's own version first, then one per tag), kept
/// in one buffer so that a lookup allocates once for all of them.
#[derive(Debug)]
pub(crate) struct Names {
    buf: String,
    /// End of each name in `buf`: the entry's, then each version's.
    ends: Vec<usize>,
}

impl Names {
    /// The entry and key version of `key`, then each tag's version.
    pub(crate) fn new<S: AsRef<str>>(ns: &str, key: &str, tags: &[S]) -> Names {
        let len = 2 * (ns.len() + 5 + key.len())
            + tags
                .iter()
                .map(|t| ns.len() + 5 + t.as_ref().len())
                .sum::<usize>();
        let mut names = Names {
            buf: String::with_capacity(len),
            ends: Vec::with_capacity(2 + tags.len()),
        };
        names.push(ns, Kind::Entry, key);
        names.push(ns, Kind::KeyVersion, key);
        for tag in tags {
            names.push(ns, Kind::TagVersion, tag.as_ref());
        }
        names
    }

    fn push(&mut self, ns: &str, kind: Kind, name: &str) {
        push_name(&mut self.buf, ns, kind, name);
        self.ends.push(self.buf.len());
    }

    fn name(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.buf[start..self.ends[i]]
    }

    /// Bytes of all the names together.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn byte_len(&self) -> usize {
        self.buf.len()
    }

    /// The entry key.
    pub(crate) fn entry(&self) -> &str {
        self.name(0)
    }

    /// The version keys, in lookup order.
    pub(crate) fn versions(&self) -> impl ExactSizeIterator<Item = &str> {
        (1..self.ends.len()).map(|i| self.name(i))
    }
}

/// Stored entry bytes, shared with the embedded backend or owned from Redis.
#[derive(Debug)]
pub(crate) enum Blob {
    Shared(std::sync::Arc<[u8]>),
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Owned(Vec<u8>),
}

impl std::ops::Deref for Blob {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Blob::Shared(b) => b,
            Blob::Owned(b) => b,
        }
    }
}

/// What one lookup read: the stored entry, if any, and the current tokens.
#[derive(Debug)]
pub(crate) struct Lookup {
    pub entry: Option<Blob>,
    pub versions: Vec<Option<Token>>,
}

/// A bust: version keys to bump, entry keys to drop.
#[derive(Debug, Default)]
pub(crate) struct Bust {
    pub versions: Vec<String>,
    pub entries: Vec<String>,
}

pub(crate) enum Backend {
    Memory(memory::MemoryBackend),
    #[cfg(feature = "redis")]
    Redis(redis::RedisBackend),
}

impl Backend {
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Backend::Memory(_) => "memory",
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.label(),
        }
    }

    /// Reads the entry and its versions in one round trip.
    pub(crate) async fn lookup(&self, names: &Names) -> Result<Lookup, Error> {
        match self {
            Backend::Memory(m) => Ok(m.lookup(names)),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.lookup(names).await,
        }
    }

    /// Creates each missing version key with a fresh token, or reads the one
    /// a concurrent caller created first; returns the tokens in order.
    pub(crate) async fn ensure(&self, keys: &[&str], ttl: Duration) -> Result<Vec<Token>, Error> {
        match self {
            Backend::Memory(m) => Ok(m.ensure(keys, ttl)),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.ensure(keys, ttl).await,
        }
    }

    pub(crate) async fn store(
        &self,
        entry: &str,
        blob: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), Error> {
        match self {
            Backend::Memory(m) => {
                m.store(entry, blob, ttl);
                Ok(())
            }
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.store(entry, blob, ttl).await,
        }
    }

    /// Takes the lock `key` with `token` unless someone holds it.
    pub(crate) async fn try_lock(
        &self,
        key: &str,
        token: Token,
        ttl: Duration,
    ) -> Result<bool, Error> {
        match self {
            Backend::Memory(m) => Ok(m.try_lock(key, token, ttl)),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.try_lock(key, token, ttl).await,
        }
    }

    /// Releases the lock `key` if it is still held with `token`.
    pub(crate) async fn unlock(&self, key: &str, token: Token) -> Result<(), Error> {
        match self {
            Backend::Memory(m) => {
                m.unlock(key, token);
                Ok(())
            }
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.unlock(key, token).await,
        }
    }

    /// Bumps every version in `bust` and drops its entries, in one round trip.
    pub(crate) async fn bust(&self, bust: &Bust, ttl: Duration) -> Result<(), Error> {
        match self {
            Backend::Memory(m) => {
                m.bust(bust, ttl);
                Ok(())
            }
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.bust(bust, ttl).await,
        }
    }
}

#[cfg(feature = "redis")]
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
