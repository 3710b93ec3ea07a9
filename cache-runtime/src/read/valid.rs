//! Validation: whether a lookup's entry may be served. Its recorded
//! versions must all be current (I1, I2), its signature and signed expiry
//! hold, and its bytes decode as this function's type (I6, I11); anything
//! else is a miss. Also the one entry served after the body failed
//! (`stale_if_error`), which must be valid all the same.

use super::Call;
use crate::backend::Lookup;
use crate::cache::Cache;
use crate::entry::{self, Check, Meta};
use crate::keep::Keeper;
use crate::mode::Mode;
use crate::policy::Strategy;
use crate::stats::Counters;
use crate::telemetry::Outcome;
use crate::version::{Seen, Token};

impl Cache {
    /// The value of `lookup`'s entry if it is valid by versions (and its
    /// signature), whatever its freshness, with its header.
    pub(super) fn valid_value<M, R>(
        &self,
        call: &Call<'_>,
        keep: Keeper<M::Value>,
        lookup: &Lookup,
    ) -> Option<(M::Value, Meta)>
    where
        M: Mode<R>,
    {
        let inner = &*self.inner;
        let key = call.key;
        if lookup.oversized {
            Counters::bump(&inner.counters.too_large);
            return None;
        }
        let blob = lookup.entry.as_ref()?;
        let blob = match &inner.signer {
            None => &blob[..],
            Some(signer) => match signer.verify(call.subject.entry(), blob) {
                Some(entry) => entry,
                None => {
                    Counters::bump(&inner.counters.signature_failures);
                    tracing::warn!(
                        key = %key,
                        "cachette: stored value failed its signature check; refetching"
                    );
                    return None;
                }
            },
        };
        let tokens = lookup.versions.iter().map(Seen::token);
        let checked = match &inner.signer {
            None => entry::check(blob, tokens),
            // Signed entries record keyed hashes of their tokens.
            Some(signer) => entry::check(blob, tokens.map(|t| t.map(|t| signer.hash_token(&t)))),
        };
        let (bytes, meta) = match checked {
            Check::Valid(bytes, meta) => (bytes, meta),
            Check::Invalidated => return None,
            Check::Corrupt => {
                self.decode_failure(key, &"not an entry of this format");
                return None;
            }
        };
        if inner.signer.is_some() && inner.clock.now_millis() >= meta.expires_ms {
            // Kept past its signed expiry (`PERSIST`, or a replayed copy).
            Counters::bump(&inner.counters.signature_failures);
            return None;
        }
        // A value kept decoded beside these very bytes: it passed the checks
        // below when it was decoded, for this very type.
        if let Some(value) = lookup.decoded.as_deref().and_then(|slot| keep.take(slot)) {
            return Some((value, meta));
        }
        let codec = call.policy.codec.unwrap_or(inner.codec);
        if meta.fingerprint != codec.fingerprint::<M::Value>(call.policy.version) {
            self.decode_failure(key, &"written for another type, version or codec");
            return None;
        }
        let decompressed;
        let bytes = if meta.flags & entry::COMPRESSED != 0 {
            match crate::codec::compression::decompress(bytes, inner.max_value_bytes) {
                Ok(plain) => {
                    decompressed = plain;
                    &decompressed[..]
                }
                Err(e) => {
                    self.decode_failure(key, &e);
                    return None;
                }
            }
        } else {
            bytes
        };
        // Decoded now, and kept for a type that can be.
        let value = match codec.decode::<M::Value>(bytes) {
            Ok(value) => value,
            Err(e) => {
                self.decode_failure(key, &e);
                return None;
            }
        };
        if let Some(slot) = lookup.decoded.as_deref() {
            keep.store(slot, &value, bytes.len());
        }
        Some((value, meta))
    }

    /// With `stale_if_error`, after the body failed: the entry as it is
    /// now, if it is still valid by versions (an invalidated entry is never
    /// returned) and within its window past the TTL.
    pub(super) async fn stale_on_error<M, R>(
        &self,
        call: &Call<'_>,
        keep: Keeper<M::Value>,
    ) -> Option<R>
    where
        M: Mode<R>,
    {
        let inner = &*self.inner;
        let value = self.kept_now::<M, R>(call, keep).await?;
        Counters::bump(&inner.counters.stale_on_error);
        // At most one line per period: a failing database fails every call.
        if let Some(held) = inner.warned_stale_on_error.now() {
            tracing::warn!(
                function = call.label(),
                key = %call.key,
                more_since_last = held,
                "cachette: the body failed; returned the value kept past its TTL (stale_if_error; counted in stats().stale_on_error, logged at most every 10 s)"
            );
        }
        self.ended(call, Outcome::StaleOnError);
        Some(M::from_cached(value))
    }

    /// The entry as it is now, read again, if it is still valid by
    /// versions and kept within its window past the TTL: what
    /// `stale_if_error` and `soft_timeout` may return. Read again, never
    /// taken from an earlier read: a bust since then must be seen.
    pub(super) async fn kept_now<M, R>(
        &self,
        call: &Call<'_>,
        keep: Keeper<M::Value>,
    ) -> Option<M::Value>
    where
        M: Mode<R>,
    {
        let inner = &*self.inner;
        // A bust this process could not deliver names it: not served (I9).
        if inner.pending.blocks(&call.subject) {
            return None;
        }
        let lookup = inner.backend.lookup(&call.subject).await.ok()?;
        if inner.pending.blocks(&call.subject) {
            return None;
        }
        self.kept_in::<M, R>(call, keep, &lookup)
    }

    /// The value of `lookup`'s entry if it is valid by versions, past its
    /// TTL, and within the window it is kept for past it.
    pub(super) fn kept_in<M, R>(
        &self,
        call: &Call<'_>,
        keep: Keeper<M::Value>,
        lookup: &Lookup,
    ) -> Option<M::Value>
    where
        M: Mode<R>,
    {
        let (value, meta) = self.valid_value::<M, R>(call, keep, lookup)?;
        let until = meta.fresh_until_ms;
        if until == 0 {
            return None; // filled without a window
        }
        let policy = call.policy;
        let mut window = policy.stale_if_error;
        if policy.strategy == Strategy::Swr {
            window = window.saturating_add(policy.stale_ttl);
        }
        let end = until.saturating_add(crate::policy::millis(window));
        if self.inner.clock.now_millis() >= end {
            return None;
        }
        Some(value)
    }
}

/// Whether `seen` are exactly the versions `tokens`, each current.
pub(super) fn same_versions(seen: &[Seen], tokens: &[Token]) -> bool {
    seen.len() == tokens.len()
        && seen
            .iter()
            .zip(tokens)
            .all(|(s, t)| matches!(s, Seen::Current(c) if c == t))
}
