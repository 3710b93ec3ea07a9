//! Misconfigurations found at first use, which would otherwise serve wrong
//! or stale data quietly: each is warned about once per site, through
//! `tracing`, and also on stderr when no subscriber is installed (a service
//! without one would otherwise hear nothing).

use std::collections::HashSet;
use std::sync::Mutex;

/// Sites already warned about (bounded: a process with more distinct
/// sites than this has stopped listening anyway).
static WARNED: Mutex<Option<HashSet<(&'static str, &'static str)>>> = Mutex::new(None);
const MAX_SITES: usize = 10_000;

/// Whether `site` of the misconfiguration `what` is warned about for the
/// first time.
pub(crate) fn first(what: &'static str, site: &'static str) -> bool {
    let mut warned = crate::sync::lock(&WARNED);
    let warned = warned.get_or_insert_with(HashSet::new);
    warned.len() < MAX_SITES && warned.insert((what, site))
}

/// Warns `message` once for `site` of the misconfiguration `what`.
pub(crate) fn warn_once(what: &'static str, site: &'static str, message: impl FnOnce() -> String) {
    if first(what, site) {
        warn(&message());
    }
}

/// Warns `message` through `tracing`, and on stderr too when no
/// subscriber is installed (none for the process, none for this thread). A
/// stderr that cannot be written (a closed pipe) is ignored: the cache
/// never breaks the function (I6).
pub(crate) fn warn(message: &str) {
    tracing::warn!("{message}");
    let none = tracing::dispatcher::get_default(|d| d.is::<tracing::subscriber::NoSubscriber>());
    if none {
        use std::io::Write;
        let _ = writeln!(std::io::stderr().lock(), "warning: {message}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_site_is_warned_once() {
        assert!(super::first("test", "a"));
        assert!(!super::first("test", "a"));
        assert!(super::first("test", "b"));
        assert!(super::first("other", "a"));
    }
}
