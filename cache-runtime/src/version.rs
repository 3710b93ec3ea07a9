//! Version tokens: random, so that a lost version can never match again.

/// Length of a token as stored: 16 lowercase hex digits.
pub(crate) const TOKEN_LEN: usize = 16;

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

    /// A token read back from the backend; anything malformed is `None`
    /// and is treated like a missing version.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
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
