//! The one error type of the crate.

use std::fmt;

/// What went wrong, in broad strokes. New kinds may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The URL or another setting is malformed or names something this build
    /// does not support (for example `rediss://` without the `tls` feature).
    Config,
    /// The backend could not be reached, or the connection broke.
    Connection,
    /// The server refused the credentials.
    Auth,
    /// The TLS handshake failed, for example on an untrusted certificate.
    Tls,
    /// The backend did not answer in time.
    Timeout,
    /// The backend answered with an error.
    Backend,
    /// A key or tag template is malformed, or a value for it is missing.
    Template,
}

/// An error from cachette.
///
/// Annotated functions never return it: the cache fails open and the body's
/// own result is returned. It surfaces from [`Cache::connect`](crate::Cache::connect)
/// and from the programmatic invalidation calls.
///
/// ```
/// let err = cachette::KeyBuilder::new("user:<id>").build().unwrap_err();
/// assert!(err.is_template());
/// assert_eq!(err.kind(), cachette::ErrorKind::Template);
/// ```
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn with_source(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        self.source = Some(std::sync::Arc::new(source));
        self
    }

    /// The broad category of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether the backend could not be reached or the connection broke.
    pub fn is_connection(&self) -> bool {
        self.kind == ErrorKind::Connection
    }

    /// Whether the backend did not answer in time.
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    /// Whether the server refused the credentials.
    pub fn is_auth(&self) -> bool {
        self.kind == ErrorKind::Auth
    }

    /// Whether the TLS handshake failed (an untrusted certificate, say).
    pub fn is_tls(&self) -> bool {
        self.kind == ErrorKind::Tls
    }

    /// Whether a setting or URL is malformed or unsupported by this build.
    pub fn is_config(&self) -> bool {
        self.kind == ErrorKind::Config
    }

    /// Whether a key or tag template is malformed or misses a value.
    pub fn is_template(&self) -> bool {
        self.kind == ErrorKind::Template
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        // A Redis error's words are in the message already, redacted (see
        // `said_by_redis`); any other cause follows it.
        #[cfg(feature = "redis")]
        let said = self.redis().is_some();
        #[cfg(not(feature = "redis"))]
        let said = false;
        match &self.source {
            Some(source) if !said => write!(f, ": {source}"),
            _ => Ok(()),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(feature = "redis")]
impl Error {
    /// The Redis error this wraps, if any.
    pub(crate) fn redis(&self) -> Option<&redis::RedisError> {
        let source: &(dyn std::error::Error + 'static) = self.source.as_deref()?;
        source.downcast_ref()
    }

    /// Redis does not know the script (it restarted, or `SCRIPT FLUSH`).
    pub(crate) fn is_no_script(&self) -> bool {
        self.redis()
            .is_some_and(|e| e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
    }
}

/// What went wrong in a TLS handshake, from the causes of an error.
#[cfg(feature = "redis")]
#[cfg_attr(not(any(feature = "tls", feature = "upstash")), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TlsTrouble {
    /// The server's certificate was not trusted (or not presented).
    Certificate,
    /// What came back was not TLS: the port does not speak it.
    NotTls,
    /// The server closed the connection during the handshake.
    Closed,
    /// Anything else the TLS library refused.
    Other,
}

/// The causes of `e`, looking through the `Arc` the `redis` crate keeps
/// them in and into I/O errors.
#[cfg(feature = "redis")]
fn causes(e: &redis::RedisError) -> Vec<&(dyn std::error::Error + 'static)> {
    causes_from(std::error::Error::source(e))
}

/// `first` and its causes, looking through shared errors and into I/O
/// errors.
#[cfg(feature = "redis")]
fn causes_from<'a>(
    first: Option<&'a (dyn std::error::Error + 'static)>,
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    let mut out = Vec::new();
    let mut next = first;
    while let Some(error) = next {
        if let Some(shared) = error.downcast_ref::<Shared>() {
            next = Some(shared.as_ref());
            continue;
        }
        out.push(error);
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                next = Some(inner);
                continue;
            }
        }
        next = error.source();
    }
    out
}

/// What went wrong in a TLS handshake, if `e` says: a TLS library error
/// among its causes, or, on a connection that was to be TLS (`tls`), the
/// server closing or resetting it before the handshake ended.
#[cfg(feature = "redis")]
pub(crate) fn tls_trouble(e: &redis::RedisError, tls: bool) -> Option<TlsTrouble> {
    let causes = causes(e);
    #[cfg(feature = "tls")]
    if let Some(trouble) = rustls_trouble(&causes) {
        return Some(trouble);
    }
    let closed = causes.iter().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            )
        })
    });
    (tls && closed).then_some(TlsTrouble::Closed)
}

/// A failed TLS handshake with `target`, saying why as far as known.
#[cfg(any(feature = "redis", feature = "upstash"))]
pub(crate) fn tls_failed(target: &dyn std::fmt::Display, trouble: TlsTrouble) -> Error {
    let why = match trouble {
        TlsTrouble::Certificate => "its certificate is not trusted",
        TlsTrouble::NotTls => "it did not answer in TLS: does that port speak TLS?",
        TlsTrouble::Closed => "it closed the connection during the handshake",
        TlsTrouble::Other => "see the cause",
    };
    Error::new(
        ErrorKind::Tls,
        format!("TLS handshake with {target} failed: {why}"),
    )
}

/// What rustls refused, if it is among `causes`.
#[cfg(any(feature = "tls", feature = "upstash"))]
fn rustls_trouble(causes: &[&(dyn std::error::Error + 'static)]) -> Option<TlsTrouble> {
    causes.iter().find_map(|cause| {
        Some(match cause.downcast_ref::<rustls::Error>()? {
            rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::UnsupportedNameType => TlsTrouble::Certificate,
            rustls::Error::InvalidMessage(_) => TlsTrouble::NotTls,
            _ => TlsTrouble::Other,
        })
    })
}

/// What went wrong in a TLS handshake that failed `e` (an HTTP client's
/// error), if one did.
#[cfg(feature = "upstash")]
pub(crate) fn tls_trouble_of(e: &(dyn std::error::Error + 'static)) -> Option<TlsTrouble> {
    rustls_trouble(&causes_from(Some(e)))
}

#[cfg(feature = "redis")]
impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        let kind = if tls_trouble(&e, false).is_some() {
            ErrorKind::Tls
        } else if e.is_timeout() {
            ErrorKind::Timeout
        } else if e.kind() == redis::ErrorKind::AuthenticationFailed
            || e.code() == Some("NOPERM")
            || e.code() == Some("WRONGPASS")
            || e.code() == Some("NOAUTH")
        {
            ErrorKind::Auth
        } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
            ErrorKind::Connection
        } else if e.kind() == redis::ErrorKind::InvalidClientConfig {
            ErrorKind::Config
        } else {
            ErrorKind::Backend
        };
        Error::new(kind, said_by_redis(&e)).with_source(e)
    }
}

/// What a Redis error says, for the message of the `Error` wrapping it:
/// the server's code and its own words, up to the first quote that opens
/// a quoted part (a key name, a user, a command's arguments: what the
/// server quotes comes from the caller), and at most 160 characters. An
/// apostrophe between two letters (`don't`) is a word's, not a quote.
/// Names stay out of messages (the source, kept whole, is for whoever
/// asks for it).
#[cfg(feature = "redis")]
fn said_by_redis(e: &redis::RedisError) -> String {
    const MOST: usize = 160;
    let said = e.to_string();
    let chars: Vec<char> = said.chars().collect();
    let mut out = String::from("Redis: ");
    for (i, &c) in chars.iter().enumerate() {
        let in_a_word = c == '\''
            && i > 0
            && chars[i - 1].is_ascii_alphabetic()
            && chars.get(i + 1).is_some_and(|n| n.is_ascii_alphabetic());
        if (c == '\'' || c == '"' || c == '`') && !in_a_word {
            out.push('…');
            return out;
        }
        if i >= MOST {
            out.push('…');
            return out;
        }
        out.push(c);
    }
    out
}

#[cfg(all(test, feature = "redis"))]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_redis_error_says_what_the_server_said_without_names() {
        let refused = redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError),
            "NOPERM",
            "User app has no permissions to access the 'shop:e:{user:42}' key".to_string(),
        ));
        let e = Error::from(refused);
        let said = e.to_string();
        assert!(said.contains("NOPERM"), "{said}");
        assert!(said.contains("no permissions"), "{said}");
        assert!(!said.contains("user:42"), "{said}");
        // A quote inside the key does not pair the quotes anew: nothing
        // from the first quoted part on is said.
        for key in ["pre' LEAKED-PART '-post", "x'y"] {
            let refused = redis::RedisError::from((
                redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError),
                "ERR",
                format!("unknown command '', with args beginning with: 'shop:k:{{{key}}}' '86400000' 'a7b6'"),
            ));
            let said = Error::from(refused).to_string();
            assert!(
                !said.contains("LEAKED") && !said.contains("y}") && !said.contains("8640"),
                "{said}"
            );
            assert!(said.contains("unknown command"), "{said}");
        }
        let own_words = redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::CrossSlot),
            "CROSSSLOT",
            "Keys in request don't hash to the same slot".to_string(),
        ));
        let said = Error::from(own_words).to_string();
        assert!(said.contains("don't hash to the same slot"), "{said}");
        let long = redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError),
            "ERR",
            "x".repeat(1000),
        ));
        assert!(Error::from(long).to_string().chars().count() < 400);
    }
}
