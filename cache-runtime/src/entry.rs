//! The stored form of an entry: a small header, the versions the fill saw
//! before it ran, and the encoded value.
//!
//! ```text
//! byte 0        0xCA        magic
//! byte 1        3           format
//! byte 2        n           number of versions (the key's, then each tag's)
//! bytes 3..11   u64 BE      end of the fresh window, ms since the epoch (0: none)
//! bytes 11..15  u32 BE      how long the body took, ms
//! bytes 15..23  u64 BE      when the entry expires, ms since the epoch
//! byte 23       flags       bit 0: the value is compressed
//! bytes 24..32  u64 BE      fingerprint: the value's Rust type, the function's
//!                           `version`, the codec (see `codec.rs`)
//! bytes 32..40  u64 BE      when the fill stored it, ms since the epoch
//! n x 16 bytes              version tokens (or, signed, keyed hashes of them), in lookup order
//! rest                      the value, in its codec (compressed if flagged)
//! ```
//! An entry is valid only if every stored token equals the token currently
//! stored under the same version key. Tokens are random, so a version key
//! that was bumped, evicted, expired or flushed never matches again. The
//! expiry is enforced for signed entries, where it is covered by the
//! signature: a signed entry kept past it (`PERSIST`) is not served.

use crate::version::{Token, TOKEN_LEN};

const MAGIC: u8 = 0xCA;
const FORMAT: u8 = 3;
const HEADER_LEN: usize = 40;

/// The most versions an entry records (their count is one byte).
pub(crate) const MAX_VERSIONS: usize = u8::MAX as usize;

/// The flag of a compressed value.
pub(crate) const COMPRESSED: u8 = 1;

/// Whether stored bytes start as an entry does (never base64 text).
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn looks_binary(stored: &[u8]) -> bool {
    stored.first() == Some(&MAGIC)
}

/// Metadata written in the header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    pub fresh_until_ms: u64,
    pub compute_ms: u32,
    pub expires_ms: u64,
    pub flags: u8,
    pub fingerprint: u64,
    pub filled_ms: u64,
}

/// Starts an entry: header and tokens; the caller appends the value.
pub(crate) fn begin(tokens: &[Token], meta: Meta, value_hint: usize) -> Option<Vec<u8>> {
    let n = u8::try_from(tokens.len()).ok()?;
    let mut out = Vec::with_capacity(HEADER_LEN + tokens.len() * TOKEN_LEN + value_hint);
    out.extend_from_slice(&[MAGIC, FORMAT, n]);
    out.extend_from_slice(&meta.fresh_until_ms.to_be_bytes());
    out.extend_from_slice(&meta.compute_ms.to_be_bytes());
    out.extend_from_slice(&meta.expires_ms.to_be_bytes());
    out.push(meta.flags);
    out.extend_from_slice(&meta.fingerprint.to_be_bytes());
    out.extend_from_slice(&meta.filled_ms.to_be_bytes());
    for t in tokens {
        out.extend_from_slice(t.as_bytes());
    }
    Some(out)
}

/// Sets `flag` in the header of an entry started by [`begin`].
#[cfg_attr(not(feature = "compression"), allow(dead_code))]
pub(crate) fn set_flag(blob: &mut [u8], flag: u8) {
    blob[23] |= flag;
}

/// Where the value starts in an entry with `versions` versions.
#[cfg_attr(not(feature = "compression"), allow(dead_code))]
pub(crate) const fn value_at(versions: usize) -> usize {
    HEADER_LEN + versions * TOKEN_LEN
}

/// The header of an entry of this format, whatever its versions.
pub(crate) fn peek(blob: &[u8]) -> Option<Meta> {
    if blob.len() < HEADER_LEN || blob[0] != MAGIC || blob[1] != FORMAT {
        return None;
    }
    if blob.len() < value_at(usize::from(blob[2])) {
        return None;
    }
    Some(Meta {
        fresh_until_ms: u64::from_be_bytes(blob[3..11].try_into().ok()?),
        compute_ms: u32::from_be_bytes(blob[11..15].try_into().ok()?),
        expires_ms: u64::from_be_bytes(blob[15..23].try_into().ok()?),
        flags: blob[23],
        fingerprint: u64::from_be_bytes(blob[24..32].try_into().ok()?),
        filled_ms: u64::from_be_bytes(blob[32..40].try_into().ok()?),
    })
}

/// What the decoded value of `blob` is counted at in a memory budget
/// where values are kept decoded beside their entries (see `keep.rs`, which
/// counts twice it and a slack): its encoded length once decompressed.
/// Bytes that are not an entry count nothing: they are
/// never decoded, so nothing is kept beside them.
pub(crate) fn decoded_len(blob: &[u8]) -> usize {
    let Some(meta) = peek(blob) else {
        return 0;
    };
    let value = &blob[value_at(usize::from(blob[2]))..];
    if meta.flags & COMPRESSED != 0 {
        crate::codec::compression::claimed_size(value).unwrap_or(0)
    } else {
        value.len()
    }
}

/// What a stored entry turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Check<'a> {
    /// Every version matches: the value bytes and the header.
    Valid(&'a [u8], Meta),
    /// Well-formed, but a version changed or disappeared since the fill.
    Invalidated,
    /// Not an entry this library wrote (or truncated).
    Corrupt,
}

/// Validates `blob` against the tokens read now, in the same order (`None`
/// for a version that is missing or proves nothing).
pub(crate) fn check<'a>(
    blob: &'a [u8],
    current: impl ExactSizeIterator<Item = Option<Token>>,
) -> Check<'a> {
    if blob.len() < HEADER_LEN || blob[0] != MAGIC || blob[1] != FORMAT {
        return Check::Corrupt;
    }
    let n = usize::from(blob[2]);
    let value_at = HEADER_LEN + n * TOKEN_LEN;
    if blob.len() < value_at {
        return Check::Corrupt;
    }
    let meta = Meta {
        fresh_until_ms: u64::from_be_bytes(blob[3..11].try_into().expect("8 bytes")),
        compute_ms: u32::from_be_bytes(blob[11..15].try_into().expect("4 bytes")),
        expires_ms: u64::from_be_bytes(blob[15..23].try_into().expect("8 bytes")),
        flags: blob[23],
        fingerprint: u64::from_be_bytes(blob[24..32].try_into().expect("8 bytes")),
        filled_ms: u64::from_be_bytes(blob[32..40].try_into().expect("8 bytes")),
    };
    if n != current.len() {
        return Check::Invalidated;
    }
    let stored = blob[HEADER_LEN..value_at].chunks_exact(TOKEN_LEN);
    for (stored, now) in stored.zip(current) {
        match now {
            Some(now) if now.as_bytes() == stored => {}
            _ => return Check::Invalidated,
        }
    }
    Check::Valid(&blob[value_at..], meta)
}

/// How long until the entry `blob` expires by its header, on this
/// machine's clock (zero when past); `None` if it is not an entry.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn remaining(blob: &[u8]) -> Option<std::time::Duration> {
    if blob.len() < HEADER_LEN || blob[0] != MAGIC || blob[1] != FORMAT {
        return None;
    }
    let expires_ms = u64::from_be_bytes(blob[15..23].try_into().ok()?);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis();
    let left = u128::from(expires_ms).saturating_sub(now_ms);
    Some(std::time::Duration::from_millis(
        u64::try_from(left).unwrap_or(u64::MAX),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tokens: &[Token], value: &[u8]) -> Vec<u8> {
        let mut e = begin(tokens, Meta::default(), value.len()).unwrap();
        e.extend_from_slice(value);
        e
    }

    #[test]
    fn valid_only_while_every_version_matches() {
        let (a, b) = (Token::random(), Token::random());
        let e = entry(&[a, b], b"42");
        let now = [Some(a), Some(b)];
        assert_eq!(
            check(&e, now.into_iter()),
            Check::Valid(b"42", Meta::default())
        );
        let bumped = [Some(a), Some(Token::random())];
        assert_eq!(check(&e, bumped.into_iter()), Check::Invalidated);
        let lost = [Some(a), None];
        assert_eq!(check(&e, lost.into_iter()), Check::Invalidated);
        assert_eq!(check(&e, now[..1].iter().copied()), Check::Invalidated);
    }

    #[test]
    fn foreign_or_truncated_bytes_are_corrupt() {
        let a = Token::random();
        let e = entry(&[a], b"1");
        let now = || [Some(a)].into_iter();
        assert_eq!(check(b"{\"json\":1}", now()), Check::Corrupt);
        assert_eq!(check(&e[..10], now()), Check::Corrupt);
        assert_eq!(check(&e[..HEADER_LEN + 3], now()), Check::Corrupt);
    }
}
