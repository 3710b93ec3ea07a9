//! Optional signed values: with a signing key set, every stored entry ends
//! with an HMAC-SHA256 over the backend key and the entry, so a value that
//! was tampered with, written by something else, or copied under another
//! key is rejected (a miss, counted in `Stats::signature_failures`). The
//! algorithm comes from the configuration only; nothing in a stored value
//! can turn verification off.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Length of the tag appended to every signed entry.
pub(crate) const TAG_LEN: usize = 32;

#[derive(Clone)]
pub(crate) struct Signer {
    key: Vec<u8>,
}

impl Signer {
    pub(crate) fn new(key: &[u8]) -> Self {
        Signer { key: key.to_vec() }
    }

    fn mac(&self, name: &str, entry: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tampered_moved_and_unsigned_entries_are_rejected() {
        let s = Signer::new(b"secret");
        let mut e = b"entry bytes".to_vec();
        s.sign("ns:e:a", &mut e);
        assert_eq!(s.verify("ns:e:a", &e), Some(&b"entry bytes"[..]));
        assert_eq!(s.verify("ns:e:b", &e), None, "copied under another key");
        let mut t = e.clone();
        t[0] ^= 1;
        assert_eq!(s.verify("ns:e:a", &t), None, "tampered");
        assert_eq!(s.verify("ns:e:a", b"entry bytes"), None, "unsigned");
        assert_eq!(
            Signer::new(b"other").verify("ns:e:a", &e),
            None,
            "another key"
        );
    }
}
