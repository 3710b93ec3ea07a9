//! How values are turned into bytes: the codec, the fingerprint every
//! entry carries, and compression.

use serde::{de::DeserializeOwned, Serialize};

/// The serde format values are stored in.
///
/// Every entry records a fingerprint of its value's Rust type
/// (`std::any::type_name`), of the function's `version` and of the codec:
/// an entry written under another type, version or codec is a miss, never
/// a value decoded wrongly. That matters for formats that do not describe
/// themselves (postcard), which can decode a changed struct into garbage
/// without an error. Changing the codec of a namespace that already holds
/// entries is therefore safe: the old entries are misses, refetched and
/// overwritten.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Codec {
    /// JSON through `serde_json` (the default): readable with `redis-cli`.
    #[default]
    Json,
    /// postcard (feature `postcard`): a compact binary format, not
    /// self-describing; faster to decode and smaller than JSON.
    #[cfg(feature = "postcard")]
    Postcard,
}

impl Codec {
    /// A byte that tells the codecs apart in fingerprints.
    const fn id(self) -> u8 {
        match self {
            Codec::Json => 1,
            #[cfg(feature = "postcard")]
            Codec::Postcard => 2,
        }
    }

    pub(crate) fn encode_into<T: Serialize + ?Sized>(
        self,
        out: &mut Vec<u8>,
        value: &T,
    ) -> Result<(), String> {
        match self {
            Codec::Json => serde_json::to_writer(out, value).map_err(|e| e.to_string()),
            #[cfg(feature = "postcard")]
            Codec::Postcard => {
                let written = postcard::to_extend(value, std::mem::take(out));
                *out = written.map_err(|e| e.to_string())?;
                Ok(())
            }
        }
    }

    /// Decodes a stored value. The error says what kind of failure it was
    /// and where, never what the value held (it goes to logs).
    pub(crate) fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, String> {
        match self {
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| {
                format!(
                    "JSON {:?} error at line {} column {}",
                    e.classify(),
                    e.line(),
                    e.column()
                )
            }),
            #[cfg(feature = "postcard")]
            Codec::Postcard => match postcard::take_from_bytes(bytes) {
                Ok((value, [])) => Ok(value),
                Ok((_, rest)) => Err(format!("postcard: {} bytes left over", rest.len())),
                Err(e) => Err(format!("postcard: {e}")),
            },
        }
    }

    /// Whether `bytes`, written from a `T`, read back as a value that
    /// writes as many bytes. Formats that do not describe themselves
    /// (postcard) can read a value written with serde attributes such as
    /// `skip_serializing_if` as another value without an error, whose
    /// fields then shift; such a value is not stored. The length, not the
    /// bytes, is compared: a map decoded with another hasher writes its
    /// entries in another order. A best effort, not a proof. JSON
    /// describes itself: always true.
    #[cfg_attr(not(feature = "postcard"), allow(clippy::extra_unused_type_parameters))]
    pub(crate) fn round_trips<T: Serialize + DeserializeOwned>(self, bytes: &[u8]) -> bool {
        let _ = bytes;
        match self {
            Codec::Json => true,
            #[cfg(feature = "postcard")]
            Codec::Postcard => {
                let Ok(back) = self.decode::<T>(bytes) else {
                    return false;
                };
                let mut again = Vec::with_capacity(bytes.len());
                self.encode_into(&mut again, &back).is_ok() && again.len() == bytes.len()
            }
        }
    }

    /// What an entry of a `T` stored with this codec for a function of
    /// `version` records, and must record to be read.
    pub(crate) fn fingerprint<T: ?Sized>(self, version: u32) -> u64 {
        let name = std::any::type_name::<T>();
        crate::names::stable_hash(name.as_bytes())
            ^ u64::from(version).rotate_left(17)
            ^ u64::from(self.id()).rotate_left(53)
    }
}

/// Compression of large values (feature `compression`, LZ4).
pub(crate) mod compression {
    /// The compressed form of `value`: its size, then LZ4 blocks.
    #[cfg(feature = "compression")]
    pub(crate) fn compress(value: &[u8]) -> Vec<u8> {
        lz4_flex::block::compress_prepend_size(value)
    }

    /// The value, if its claimed size is at most `limit` (a hostile entry
    /// cannot make the reader allocate more) and it decompresses to
    /// exactly that size.
    #[cfg(feature = "compression")]
    pub(crate) fn decompress(stored: &[u8], limit: usize) -> Result<Vec<u8>, String> {
        let (size, blocks) = lz4_flex::block::uncompressed_size(stored)
            .map_err(|e| format!("compressed value: {e}"))?;
        if size > limit {
            return Err(format!(
                "compressed value claims {size} bytes, over the limit of {limit}"
            ));
        }
        let mut out = vec![0; size];
        match lz4_flex::block::decompress_into(blocks, &mut out) {
            Ok(n) if n == size => Ok(out),
            Ok(n) => Err(format!("compressed value: {n} bytes, {size} claimed")),
            Err(e) => Err(format!("compressed value: {e}")),
        }
    }

    /// The size `stored` decompresses to, by its own claim: exact for any
    /// value that decompresses at all (see [`decompress`]).
    #[cfg(feature = "compression")]
    pub(crate) fn claimed_size(stored: &[u8]) -> Option<usize> {
        lz4_flex::block::uncompressed_size(stored)
            .ok()
            .map(|(size, _)| size)
    }

    /// Without the feature, nothing decompresses.
    #[cfg(not(feature = "compression"))]
    pub(crate) fn claimed_size(_stored: &[u8]) -> Option<usize> {
        None
    }

    /// Without the feature, a compressed entry cannot be read: a miss.
    #[cfg(not(feature = "compression"))]
    pub(crate) fn decompress(_stored: &[u8], _limit: usize) -> Result<Vec<u8>, String> {
        Err("a compressed value, and the `compression` feature is off".into())
    }
}

#[cfg(all(test, feature = "compression"))]
mod tests {
    use super::compression::{compress, decompress};

    #[test]
    fn compression_round_trips_and_refuses_bombs() {
        let value = b"abc".repeat(10_000);
        let packed = compress(&value);
        assert!(packed.len() < value.len() / 10);
        assert_eq!(decompress(&packed, 1 << 20).unwrap(), value);
        // A value claiming more than the limit is refused before any
        // allocation of that size.
        let err = decompress(&packed, 1000).unwrap_err();
        assert!(err.contains("over the limit"), "{err}");
        // A claimed size of 4 GiB over a few bytes.
        let bomb = [0xff, 0xff, 0xff, 0xff, 0x00];
        assert!(decompress(&bomb, 64 << 20).is_err());
        // Claims more than it holds.
        let mut short = packed.clone();
        short[0] = short[0].wrapping_add(1);
        assert!(decompress(&short, 1 << 20).is_err());
    }
}
