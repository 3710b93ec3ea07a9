//! What a backend stores and answers, shared by every variant: the bytes
//! of an entry, what a lookup read, the versions a fill asks for, and the
//! near-cache's counters.

use std::time::Duration;

use crate::version::Seen;

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
#[derive(Debug, Default)]
pub(crate) struct Lookup {
    pub entry: Option<Blob>,
    /// The entry stored was larger than any cachette writes (planted), and
    /// was not read whole.
    pub oversized: bool,
    pub versions: Vec<Seen>,
    /// Where the entry's decoded value is kept, when the entry is kept in
    /// memory (see `keep.rs`).
    pub decoded: Option<std::sync::Arc<crate::keep::Decoded>>,
    /// Served by the near-cache (under a lease, or after an ordering round
    /// trip), not read from Redis: for spans (`near_hit`).
    pub near: bool,
}

/// The near-cache's counters, for `Cache::stats`: zero where there is no
/// near-cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct NearStats {
    /// Lookups served from memory.
    pub hits: u64,
    /// Ordering round trips sent (each serves every hit that waited for it).
    pub orderings: u64,
    /// Names invalidated by messages from Redis.
    pub invalidations: u64,
    /// Times the near-cache was emptied.
    pub flushes: u64,
    /// Hits served under a lease (no round trip).
    pub lease_hits: u64,
    /// Refresh round trips started by lease hits.
    pub refreshes: u64,
    /// Lookups held now.
    pub entries: u64,
}
