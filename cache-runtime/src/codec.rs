//! How values are turned into bytes.

use serde::{de::DeserializeOwned, Serialize};

/// The serde format values are stored in.
///
/// Changing the codec of a namespace that already holds entries is safe: an
/// entry written with another codec fails to decode, counts as a decode
/// failure, and is refetched and overwritten.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Codec {
    /// JSON through `serde_json` (the default): readable with `redis-cli`.
    #[default]
    Json,
}

impl Codec {
    pub(crate) fn encode_into<T: Serialize + ?Sized>(
        self,
        out: &mut Vec<u8>,
        value: &T,
    ) -> Result<(), String> {
        match self {
            Codec::Json => serde_json::to_writer(out, value).map_err(|e| e.to_string()),
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
        }
    }
}
