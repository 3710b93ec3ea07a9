//! Helpers for testing code that uses cachette: a [`Recorder`] of what
//! each function's calls did, for assertions; caching off for a whole
//! test with [`CacheBuilder::disabled`](crate::CacheBuilder::disabled), or
//! for one future with [`scope::off`](crate::scope::off).
//!
//! ```
//! use cachette::testing::Recorder;
//! use cachette::{cached, invalidates, Cache};
//!
//! #[cached(key = "user:<id>", ttl = 60, cache = cache)]
//! async fn get_user(cache: &Cache, id: u64) -> Result<String, String> {
//!     Ok(format!("user {id}"))
//! }
//!
//! #[invalidates(keys = ["user:<id>"], cache = cache)]
//! async fn rename_user(cache: &Cache, id: u64) -> Result<(), String> {
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let recorder = Recorder::new();
//! let cache = recorder.memory_cache();
//! get_user(&cache, 1).await.unwrap();
//! get_user(&cache, 1).await.unwrap();
//! rename_user(&cache, 1).await.unwrap();
//! get_user(&cache, 1).await.unwrap();
//! assert_eq!((recorder.hits("get_user"), recorder.misses("get_user")), (1, 2));
//! assert_eq!(recorder.busts("rename_user"), 1);
//! # }
//! ```

use std::sync::{Arc, Mutex};

use crate::cache::Cache;
use crate::events::{Event, EventKind};

/// One event as a [`Recorder`] keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recorded {
    /// What happened.
    pub kind: EventKind,
    /// The function, as [`Event::function`] names it.
    pub function: String,
    /// How many keys and tags a bust named.
    pub names: usize,
}

/// Records the events of the caches it listens to, in order, for
/// assertions: hits, misses and busts per function. Clones share one
/// record.
///
/// A function is named as written (`"get_user"`) or by any tail of its
/// path (`"repo::get_user"`, `"UserRepo::get_user"`). A linked function
/// (`one = get_user` on a batch function `get_users`) has no events of
/// its own: each of its calls is an element of a batch call, counted
/// under the batch function (`"get_users"`).
#[derive(Clone, Default, Debug)]
pub struct Recorder {
    events: Arc<Mutex<Vec<Recorded>>>,
}

impl Recorder {
    /// An empty record.
    pub fn new() -> Recorder {
        Recorder::default()
    }

    /// A listener for [`CacheBuilder::on_event`](crate::CacheBuilder::on_event)
    /// that records into this recorder.
    pub fn listener(&self) -> impl Fn(&Event<'_>) + Send + Sync + 'static {
        let events = self.events.clone();
        move |event| {
            let recorded = Recorded {
                kind: event.kind,
                function: event.function.to_string(),
                names: event.names,
            };
            crate::sync::lock(&events).push(recorded);
        }
    }

    /// An embedded cache that records into this recorder.
    pub fn memory_cache(&self) -> Cache {
        Cache::builder().on_event(self.listener()).memory()
    }

    /// Every event recorded, in order.
    pub fn events(&self) -> Vec<Recorded> {
        crate::sync::lock(&self.events).clone()
    }

    /// The functions recorded, each once, in the order first seen. A
    /// count asked of a name that matches none of them is 0: this says
    /// which names there are (a linked `one = ...` function, for one, has
    /// none of its own: its calls are counted under its batch function).
    pub fn functions(&self) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        for event in crate::sync::lock(&self.events).iter() {
            if !event.function.is_empty() && !seen.contains(&event.function) {
                seen.push(event.function.clone());
            }
        }
        seen
    }

    /// Forgets what was recorded.
    pub fn clear(&self) {
        crate::sync::lock(&self.events).clear();
    }

    /// How many events of `kind` were recorded for `function`.
    pub fn count(&self, kind: EventKind, function: &str) -> u64 {
        crate::sync::lock(&self.events)
            .iter()
            .filter(|e| e.kind == kind && names(&e.function, function))
            .count() as u64
    }

    /// Calls of `function` served from the cache.
    pub fn hits(&self, function: &str) -> u64 {
        self.count(EventKind::Hit, function)
    }

    /// Calls of `function` that ran its body: misses, and the calls that
    /// ran it around the cache ([`bypasses`](Self::bypasses)) or to
    /// replace what it held ([`refreshes`](Self::refreshes)). A call that
    /// waited for another's body is neither a hit nor a miss
    /// ([`EventKind::Coalesced`]).
    pub fn misses(&self, function: &str) -> u64 {
        self.count(EventKind::Miss, function) + self.bypasses(function) + self.refreshes(function)
    }

    /// Calls of `function` that ran its body around the cache (a
    /// [`scope::bypass`](crate::scope::bypass), a disabled cache, the
    /// backend failing).
    pub fn bypasses(&self, function: &str) -> u64 {
        self.count(EventKind::Bypass, function)
    }

    /// Calls of `function` that ran its body to replace what the cache
    /// held (a [`scope::refresh`](crate::scope::refresh), a `_refresh`
    /// companion).
    pub fn refreshes(&self, function: &str) -> u64 {
        self.count(EventKind::Refreshed, function)
    }

    /// Calls of `function` served a value past its TTL.
    pub fn stale(&self, function: &str) -> u64 {
        self.count(EventKind::StaleServed, function)
    }

    /// Values of `function` stored.
    pub fn fills(&self, function: &str) -> u64 {
        self.count(EventKind::Fill, function)
    }

    /// Invalidations sent by `function` (each counts once, whatever the
    /// number of keys and tags it named).
    pub fn busts(&self, function: &str) -> u64 {
        self.count(EventKind::Bust, function)
    }
}

/// Whether the path `label` is `function`, or ends with it after `::`.
fn names(label: &str, function: &str) -> bool {
    !function.is_empty()
        && label
            .strip_suffix(function)
            .is_some_and(|head| head.is_empty() || head.ends_with("::"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_function_is_named_by_a_tail_of_its_path() {
        assert!(super::names("app::repo::get_user", "get_user"));
        assert!(super::names("app::repo::get_user", "repo::get_user"));
        assert!(super::names("get_user", "get_user"));
        assert!(!super::names("app::repo::try_get_user", "get_user"));
        assert!(!super::names("app::repo::get_user", ""));
    }
}
