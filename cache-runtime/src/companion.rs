//! What the companions of a `#[cached]` function `f` run on: `f_uncached`
//! and `f_refresh` call `f` in a scope that tells its wrapper what to do,
//! and `f_key` names the entry a call of `f` reads, as an [`EntryKey`].

use std::cell::Cell;
use std::future::Future;

use crate::cache::Cache;
use crate::error::Error;
use crate::names::Bust;

/// What a companion asks of the cached call it wraps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Companion {
    /// Run the body; neither read nor write the cache.
    Uncached,
    /// Run the body and store its result, as a fill does.
    Refresh,
    /// Name the entry and stop: the body never runs.
    Key,
}

std::thread_local! {
    /// What the call probed by [`key_of`] or [`keys_of`] named.
    static PROBED: std::cell::RefCell<Option<Vec<EntryKey>>> = const { std::cell::RefCell::new(None) };
}

/// The entry a call of a cached function reads: the call is polled once,
/// on this thread, and its wrapper names its cache and key (rendered by
/// the very code that renders them for a read) and stops before the body.
pub fn key_of<F: Future>(call: F) -> EntryKey {
    keys_of(call)
        .pop()
        .expect("a #[cached] wrapper names its entry on its first poll")
}

/// The entries a call of a cached batch function reads, one per element,
/// probed as [`key_of`] probes one.
pub fn keys_of<F: Future>(call: F) -> Vec<EntryKey> {
    let mut call = std::pin::pin!(call);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    PROBED.with(|p| p.borrow_mut().take());
    let _ = NEXT.sync_scope(Cell::new(Some(Companion::Key)), || {
        call.as_mut().poll(&mut cx)
    });
    PROBED
        .with(|p| p.borrow_mut().take())
        .expect("a #[cached] wrapper names its entry on its first poll")
}

/// Called by the wrapper asked for its key: records it; the wrapper then
/// never completes, and the probe drops it.
pub(crate) fn probed(cache: &Cache, key: &str) {
    probed_many(cache, [key]);
}

/// Called by a batch wrapper asked for its keys, one per element.
pub(crate) fn probed_many<'k>(cache: &Cache, keys: impl IntoIterator<Item = &'k str>) {
    let keys = keys
        .into_iter()
        .map(|key| EntryKey::new(cache.clone(), key.to_string()))
        .collect();
    PROBED.with(|p| *p.borrow_mut() = Some(keys));
}

/// What an entry of `#[invalidates(calls = [...])]` names: the entry of a
/// single-key call, or one per element of a batch call.
pub trait EntryKeys {
    /// Adds the entries to `to`.
    fn add_to(self, to: &mut Vec<EntryKey>);
}

impl EntryKeys for EntryKey {
    fn add_to(self, to: &mut Vec<EntryKey>) {
        to.push(self);
    }
}

impl EntryKeys for Vec<EntryKey> {
    fn add_to(self, to: &mut Vec<EntryKey>) {
        to.extend(self);
    }
}

tokio::task_local! {
    /// Set by a companion for the one cached call it wraps, which takes it
    /// before anything else runs.
    static NEXT: Cell<Option<Companion>>;
}

/// Runs `call` (a call of the cached function itself) as `which` asks.
pub async fn companion<F: Future>(which: Companion, call: F) -> F::Output {
    NEXT.scope(Cell::new(Some(which)), call).await
}

/// Whether a companion asks something of the next cached call (left for
/// it to take).
pub(crate) fn pending() -> bool {
    NEXT.try_with(|c| c.get().is_some()).unwrap_or(false)
}

/// What the running companion asked of this call, taken: calls nested in
/// its body are ordinary calls.
pub(crate) fn take() -> Option<Companion> {
    NEXT.try_with(Cell::take).ok().flatten()
}

/// The entry a call of a `#[cached]` function reads: its cache and its key,
/// from the function's `f_key` companion, which takes the same arguments as
/// `f` and renders the key exactly as `f` does.
///
/// ```
/// use cachette::{cached, Cache};
///
/// #[cached(key = "user:<id>", ttl = 300, cache = cache)]
/// async fn get_user(cache: &Cache, id: u64) -> Result<String, String> {
///     Ok(format!("user {id}"))
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache = Cache::memory();
/// get_user(&cache, 1).await.unwrap();
/// let entry = get_user_key(&cache, 1);
/// assert_eq!(entry.key(), "user:1");
/// entry.invalidate().await.unwrap(); // as `cache.invalidate_keys(["user:1"])`
/// get_user(&cache, 1).await.unwrap();
/// assert_eq!(cache.stats().misses, 2);
/// # }
/// ```
///
/// A key bust reaches every function that reads the same key; the call's
/// tags are not busted.
#[derive(Clone)]
pub struct EntryKey {
    cache: Cache,
    key: String,
}

impl EntryKey {
    #[doc(hidden)]
    pub fn new(cache: Cache, key: String) -> EntryKey {
        EntryKey { cache, key }
    }

    /// The rendered key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The cache the call reads.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Invalidates the key in its cache, as
    /// [`Cache::invalidate_keys`] does.
    ///
    /// # Errors
    /// As [`Cache::invalidate_keys`].
    pub async fn invalidate(&self) -> Result<(), Error> {
        let bust = Bust::of([&self.key], std::iter::empty::<&str>());
        self.cache.send("EntryKey::invalidate", bust).await
    }
}

impl std::fmt::Debug for EntryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryKey")
            .field("key", &self.cache.shown(&self.key, ""))
            .finish_non_exhaustive()
    }
}
