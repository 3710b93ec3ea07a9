//! Where entries and versions live. Both backends store the same bytes and
//! follow the same rules; the cache logic above them is shared.

pub(crate) mod memory;
#[cfg(feature = "redis")]
pub(crate) mod redis;

use std::time::Duration;

use crate::error::Error;
use crate::names::{Bust, EpochOf, Namespace, Subject};
use crate::version::{Seen, Token};

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

/// A version a fill needs a token for: its name, what the lookup saw of
/// it (`None`: missing; else the head of the foreign value, see
/// `version::Head`), and the TTL to give it.
pub(crate) type Wanted<'a> = (&'a str, Option<&'a [u8]>, Duration);

/// How long a namespace's epoch lives: every entry records it, so its
/// expiry costs every entry a miss at once.
pub(crate) const EPOCH_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// What one lookup read: the stored entry, if any, and each version as
/// seen, in the order of the subject's `names().versions()`.
#[derive(Debug)]
pub(crate) struct Lookup {
    pub entry: Option<Blob>,
    /// The entry stored was larger than any cachette writes (planted), and
    /// was not read whole.
    pub oversized: bool,
    pub versions: Vec<Seen>,
    /// Where the entry's decoded value is kept, when the entry is kept in
    /// memory (see `keep.rs`).
    pub decoded: Option<std::sync::Arc<crate::keep::Decoded>>,
}

/// A reply with another number of values than the names it answers.
#[cfg(feature = "redis")]
fn misshapen(what: &str, asked: usize, got: usize) -> Error {
    Error::new(
        crate::error::ErrorKind::Backend,
        format!("the {what} reply has {got} values for {asked} names; refused"),
    )
}

/// The Redis variant's operations are polled inside cachette's runtime
/// context (`crate::background::entered`): their deadlines are on its
/// timer, whatever runtime, or nested executor, awaits them.
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

    /// Where the namespace's epoch lives for a key, if the backend keeps
    /// one (Redis, where a restart or an overflow of pending busts may
    /// need the whole namespace invalidated).
    pub(crate) fn epoch_of(&self) -> Option<EpochOf> {
        match self {
            Backend::Memory(_) => None,
            #[cfg(feature = "redis")]
            Backend::Redis(r) => Some(r.epoch_of()),
        }
    }

    /// The near-cache's counters (see `RedisBackend::near_counters`).
    pub(crate) fn near_counters(&self) -> [u64; 5] {
        match self {
            Backend::Memory(_) => [0; 5],
            #[cfg(feature = "redis")]
            Backend::Redis(r) => r.near_counters(),
        }
    }

    /// Reads the entry and its versions in one round trip.
    pub(crate) async fn lookup(&self, subject: &Subject<'_>) -> Result<Lookup, Error> {
        match self {
            Backend::Memory(m) => Ok(m.lookup(subject)),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => {
                let lookup = crate::background::entered(r.lookup(subject)).await?;
                // A reply is the server's to shape: one that does not read
                // one version per name asked is refused here, once for
                // every server kind (a backend error, which fails open).
                let asked = subject.names().versions().count();
                if lookup.versions.len() != asked {
                    return Err(misshapen("lookup", asked, lookup.versions.len()));
                }
                Ok(lookup)
            }
        }
    }

    /// Gives each version that a lookup saw missing (`None`) or foreign
    /// (the bytes seen) a fresh token, unless a concurrent caller did
    /// first, in which case its token is used; returns the tokens in
    /// order, each with whether this call wrote it.
    pub(crate) async fn ensure(
        &self,
        versions: &[Wanted<'_>],
    ) -> Result<Vec<(Token, bool)>, Error> {
        match self {
            Backend::Memory(m) => Ok(m.ensure(versions)),
            #[cfg(feature = "redis")]
            Backend::Redis(r) => {
                let tokens = crate::background::entered(r.ensure(versions)).await?;
                if tokens.len() != versions.len() {
                    return Err(misshapen("version write", versions.len(), tokens.len()));
                }
                Ok(tokens)
            }
        }
    }

    /// Drops versions this process created for a fill that did not happen
    /// (the result was not cacheable): a miss on an id that does not exist
    /// leaves nothing behind. Losing a version only causes misses (I2).
    pub(crate) async fn forget(&self, keys: &[&str]) -> Result<(), Error> {
        match self {
            Backend::Memory(m) => {
                m.forget(keys);
                Ok(())
            }
            #[cfg(feature = "redis")]
            Backend::Redis(r) => crate::background::entered(r.forget(keys)).await,
        }
    }

    /// Makes these versions, if they still hold these tokens (in memory; in
    /// Redis whatever they hold), live at least `ttl`: an entry whose value
    /// chose a longer TTL than its function's (`ttl_fn`, `none_ttl`) must
    /// not lose its versions first. Only ever lengthens.
    pub(crate) async fn extend(
        &self,
        versions: &[(&str, Token)],
        ttl: Duration,
    ) -> Result<(), Error> {
        match self {
            Backend::Memory(m) => {
                m.extend(versions, ttl);
                Ok(())
            }
            #[cfg(feature = "redis")]
            Backend::Redis(r) => crate::background::entered(r.extend(versions, ttl)).await,
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
            Backend::Redis(r) => crate::background::entered(r.store(entry, blob, ttl)).await,
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
            Backend::Redis(r) => crate::background::entered(r.try_lock(key, token, ttl)).await,
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
            Backend::Redis(r) => crate::background::entered(r.unlock(key, token)).await,
        }
    }

    /// Replaces the namespace's epoch (every one, on a cluster): every
    /// entry of the namespace stops validating, in one step whatever their
    /// number.
    #[cfg_attr(not(feature = "redis"), allow(unused_variables))]
    pub(crate) async fn bust_everything(&self, ns: &Namespace) -> Result<(), Error> {
        match self {
            Backend::Memory(m) => {
                m.bust_everything();
                Ok(())
            }
            #[cfg(feature = "redis")]
            Backend::Redis(r) => crate::background::entered(r.bust_everything(ns)).await,
        }
    }

    /// Replaces the version of every key and tag in `bust`, in one round
    /// trip.
    pub(crate) async fn bust(
        &self,
        ns: &Namespace,
        bust: &Bust,
        ttl: Duration,
    ) -> Result<(), Error> {
        match self {
            Backend::Memory(m) => {
                m.bust(ns, bust, ttl);
                Ok(())
            }
            #[cfg(feature = "redis")]
            Backend::Redis(r) => crate::background::entered(r.bust(ns, bust, ttl)).await,
        }
    }
}
