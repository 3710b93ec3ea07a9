//! Version tokens, and what a version holds in Redis.
//!
//! A token is random, so a lost version can never match again (I2). In
//! Redis a version holds `<run><token>`: the origin of the server that wrote
//! it (16 hex digits naming its run id and replication id, see
//! `backend/redis/link/mod.rs`), then the token. A version read on a server in
//! another origin is *foreign*: it came back with a restart from an older
//! snapshot or a resync, or travelled with replication or a slot migration
//! from a server where busts could not see it, so it proves nothing and
//! counts as missing (I10). Busts write the one name a version
//! has, so whatever travels afterwards carries the bust with it.

/// Length of a token as stored: 16 lowercase hex digits.
pub(crate) const TOKEN_LEN: usize = 16;

/// Length of a server's origin in a stored version.
pub(crate) const RUN_LEN: usize = 16;

/// A random 64-bit version, kept as the hex text stored in the backend.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Token([u8; TOKEN_LEN]);

impl Token {
    pub(crate) fn random() -> Self {
        // Zero is skipped so an all-zero buffer never passes for a token.
        let n = fastrand::u64(1..);
        let mut out = [0u8; TOKEN_LEN];
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, b) in out.iter_mut().enumerate() {
            *b = HEX[((n >> (60 - 4 * i)) & 15) as usize];
        }
        Token(out)
    }

    /// A token from its bytes; anything of another length is `None`.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Token)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; TOKEN_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::str::from_utf8(&self.0).unwrap_or("?"))
    }
}

/// How much of a version a lookup reads: one byte more than any version
/// cachette writes, so a longer value (planted, or not cachette's) shows
/// as one without being read whole.
pub(crate) const VERSION_READ: usize = RUN_LEN + TOKEN_LEN + 1;

/// What a version holds in Redis when `run` writes `token`.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn stored(run: &str, token: &Token) -> Vec<u8> {
    let mut out = Vec::with_capacity(RUN_LEN + TOKEN_LEN);
    out.extend_from_slice(run.as_bytes());
    out.extend_from_slice(token.as_bytes());
    out
}

/// What a lookup saw of one version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Written by the server that answered: its token.
    Current(Token),
    /// Not there (never written, expired, evicted, flushed).
    Missing,
    /// Written by another server process, or not by cachette: it proves
    /// nothing. Replacing it needs what was seen of it.
    Foreign(Head),
}

/// The first [`VERSION_READ`] bytes of a version: all of any version
/// cachette writes, and enough of a longer value to tell that it is still
/// in place (every version cachette writes is shorter). Fixed in size,
/// whatever was planted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    bytes: [u8; VERSION_READ],
    len: u8,
}

impl Head {
    /// The head of `raw`: its first [`VERSION_READ`] bytes.
    pub(crate) fn of(raw: &[u8]) -> Head {
        let len = raw.len().min(VERSION_READ);
        let mut bytes = [0; VERSION_READ];
        bytes[..len].copy_from_slice(&raw[..len]);
        Head {
            bytes,
            len: len as u8,
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Head({} bytes)", self.len)
    }
}

impl Seen {
    /// Reads a stored version, or as much of it as [`VERSION_READ`], on a
    /// server whose origin is `run`.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn read(raw: Option<&[u8]>, run: &str) -> Seen {
        let Some(raw) = raw else {
            return Seen::Missing;
        };
        if raw.len() == RUN_LEN + TOKEN_LEN && raw.starts_with(run.as_bytes()) {
            if let Some(token) = Token::from_bytes(&raw[RUN_LEN..]) {
                return Seen::Current(token);
            }
        }
        Seen::Foreign(Head::of(raw))
    }

    /// The token an entry may be validated against.
    pub(crate) fn token(&self) -> Option<Token> {
        match self {
            Seen::Current(token) => Some(*token),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_of_another_run_proves_nothing() {
        let t = Token::random();
        let here = "0123456789abcdef";
        let there = "fedcba9876543210";
        assert_eq!(Seen::read(Some(&stored(here, &t)), here), Seen::Current(t));
        assert!(matches!(
            Seen::read(Some(&stored(there, &t)), here),
            Seen::Foreign(_)
        ));
        assert!(matches!(
            Seen::read(Some(t.as_bytes()), here),
            Seen::Foreign(_)
        ));
        assert_eq!(Seen::read(None, here), Seen::Missing);
        assert_eq!(Seen::read(Some(&stored(there, &t)), here).token(), None);
    }

    #[test]
    fn a_foreign_version_is_kept_as_a_fixed_size_head() {
        let long = vec![b'x'; 1 << 20];
        let Seen::Foreign(head) = Seen::read(Some(&long), "0123456789abcdef") else {
            panic!("not foreign");
        };
        assert_eq!(head.as_bytes(), &long[..VERSION_READ]);
        assert_eq!(Head::of(b"ab").as_bytes(), b"ab");
    }
}
