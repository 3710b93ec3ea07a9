//! Optional signed values. With a signing key set:
//! - every stored entry ends with an HMAC-SHA256 over its backend name and
//!   its bytes, header included (which holds an absolute expiry), so a
//!   value that was tampered with, written by something else, copied under
//!   another name, or kept past its expiry (`PERSIST`) is rejected (a miss,
//!   counted in `Stats::signature_failures`);
//! - entries record keyed hashes of the version tokens they were filled
//!   under, not the tokens: reading an entry does not tell which token
//!   would make it valid again, so an invalidated entry cannot be revived
//!   by writing a token taken from it back into a version.
//!
//! The algorithm comes from the configuration only; nothing in a stored
//! value can turn verification off. The key is at least 32 bytes, split
//! into one sub-key per use, and wiped from memory when dropped.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Error, ErrorKind};
use crate::version::{Token, TOKEN_LEN};

type HmacSha256 = Hmac<Sha256>;

/// Length of the tag appended to every signed entry.
pub(crate) const TAG_LEN: usize = 32;

/// Shortest signing key accepted, in bytes.
pub const MIN_SIGNING_KEY_LEN: usize = 32;

#[derive(Clone)]
pub(crate) struct Signer {
    /// Signs entries.
    entries: Zeroizing<[u8; 32]>,
    /// Hashes version tokens.
    tokens: Zeroizing<[u8; 32]>,
    /// Hashes names for logs.
    logs: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)") // never the keys
    }
}

/// One sub-key of `key` per use, so that no output of one use is an
/// output of another.
fn derive(key: &[u8], label: &str) -> Zeroizing<[u8; 32]> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"cachette/v1/");
    mac.update(label.as_bytes());
    Zeroizing::new(mac.finalize().into_bytes().into())
}

impl Signer {
    pub(crate) fn new(key: &[u8]) -> Result<Self, Error> {
        if key.len() < MIN_SIGNING_KEY_LEN {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "a signing key needs at least {MIN_SIGNING_KEY_LEN} bytes (this one has {}): \
                     use random bytes, such as 32 from a secrets manager",
                    key.len()
                ),
            ));
        }
        Ok(Signer {
            entries: derive(key, "entries"),
            tokens: derive(key, "tokens"),
            logs: derive(key, "logs"),
        })
    }

    fn mac(&self, name: &str, entry: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&*self.entries).expect("32-byte key");
        mac.update(&(name.len() as u64).to_be_bytes());
        mac.update(name.as_bytes());
        mac.update(entry);
        mac
    }

    /// Appends the tag of `entry` stored under `name`.
    pub(crate) fn sign(&self, name: &str, entry: &mut Vec<u8>) {
        let tag = self.mac(name, entry).finalize().into_bytes();
        entry.extend_from_slice(&tag);
    }

    /// The entry without its tag if the tag is right for `name`.
    pub(crate) fn verify<'a>(&self, name: &str, signed: &'a [u8]) -> Option<&'a [u8]> {
        let split = signed.len().checked_sub(TAG_LEN)?;
        let (entry, tag) = signed.split_at(split);
        self.mac(name, entry).verify_slice(tag).ok()?;
        Some(entry)
    }

    /// What an entry records for `token`: a keyed hash of it, the same
    /// length as a token.
    pub(crate) fn hash_token(&self, token: &Token) -> Token {
        let mut mac = HmacSha256::new_from_slice(&*self.tokens).expect("32-byte key");
        mac.update(token.as_bytes());
        let digest = mac.finalize().into_bytes();
        Token::from_bytes(&digest[..TOKEN_LEN]).expect("TOKEN_LEN bytes")
    }

    /// A keyed hash of `text` for logs: the same in every process sharing
    /// the key, and not reversible by guessing without it.
    pub(crate) fn hash_for_logs(&self, text: &str) -> [u8; 4] {
        let mut mac = HmacSha256::new_from_slice(&*self.logs).expect("32-byte key");
        mac.update(text.as_bytes());
        let digest = mac.finalize().into_bytes();
        [digest[0], digest[1], digest[2], digest[3]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn tampered_moved_and_unsigned_entries_are_rejected() {
        let s = Signer::new(KEY).unwrap();
        let mut e = b"entry bytes".to_vec();
        s.sign("ns:e:a", &mut e);
        assert_eq!(s.verify("ns:e:a", &e), Some(&b"entry bytes"[..]));
        assert_eq!(s.verify("ns:e:b", &e), None, "copied under another key");
        let mut t = e.clone();
        t[0] ^= 1;
        assert_eq!(s.verify("ns:e:a", &t), None, "tampered");
        assert_eq!(s.verify("ns:e:a", b"entry bytes"), None, "unsigned");
        let other = Signer::new(b"another key of thirty-two bytes!").unwrap();
        assert_eq!(other.verify("ns:e:a", &e), None, "another key");
    }

    #[test]
    fn short_keys_are_refused_and_uses_are_separated() {
        assert!(Signer::new(b"").unwrap_err().is_config());
        assert!(Signer::new(&KEY[..31]).unwrap_err().is_config());
        let s = Signer::new(KEY).unwrap();
        assert_ne!(*s.entries, *s.tokens);
        assert_ne!(*s.tokens, *s.logs);
        let t = Token::random();
        assert_ne!(s.hash_token(&t), t);
        assert_eq!(s.hash_token(&t), s.hash_token(&t));
    }
}
