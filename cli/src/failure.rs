//! Why a command could not do its job: what it was doing, and the cause
//! (kept as an error, not flattened into text), printed as `doing: cause`.

use std::error::Error;
use std::fmt;

type Cause = Box<dyn Error + Send + Sync + 'static>;

#[derive(Debug)]
pub struct Failure {
    doing: Option<String>,
    cause: Option<Cause>,
}

impl Failure {
    /// A failure of what was being done, with `cause`.
    pub fn during<E>(doing: impl Into<String>) -> impl FnOnce(E) -> Failure
    where
        E: Error + Send + Sync + 'static,
    {
        let doing = doing.into();
        move |cause| Failure {
            doing: Some(doing),
            cause: Some(Box::new(cause)),
        }
    }

    /// A failure that is its cause.
    pub fn of<E: Error + Send + Sync + 'static>(cause: E) -> Failure {
        Failure {
            doing: None,
            cause: Some(Box::new(cause)),
        }
    }
}

impl From<String> for Failure {
    fn from(what: String) -> Failure {
        Failure {
            doing: Some(what),
            cause: None,
        }
    }
}

impl From<&str> for Failure {
    fn from(what: &str) -> Failure {
        Failure::from(what.to_string())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.doing, &self.cause) {
            (Some(doing), Some(cause)) => write!(f, "{doing}: {cause}"),
            (Some(doing), None) => f.write_str(doing),
            (None, Some(cause)) => write!(f, "{cause}"),
            (None, None) => f.write_str("failed"),
        }
    }
}

impl Error for Failure {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.cause.as_deref().map(|c| c as &(dyn Error + 'static))
    }
}
