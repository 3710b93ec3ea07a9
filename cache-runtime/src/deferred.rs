//! Busts held until a transaction is over: [`deferred`].
//!
//! A bust sent while the database transaction that made the write is still
//! open comes too early: a reader that misses between the bust and the
//! commit reads the last committed row through another connection and
//! stores it under the new versions, and that old row is then served until
//! its TTL. Inside `deferred`, busts are held and sent once the scope's
//! future is over, and cached calls store nothing (they may be reading
//! rows the transaction has not committed).

use std::borrow::Borrow;
use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

use crate::cache::Cache;
use crate::names::{Bust, Name, Subject};

tokio::task_local! {
    /// The outermost deferring scope of the running task.
    static SCOPE: Arc<Held>;
}

/// Busts grouped by the cache they go to, one share per cache in the order
/// first raised, taken out one cache at a time: what a scope holds, and
/// what an `#[invalidates]` call arms (`__private::invalidation`). Sent with
/// [`send_each`].
pub(crate) struct PerCache<S>(Vec<S>);

/// One cache's share of a [`PerCache`].
pub(crate) trait Share {
    /// The cache the share's busts go to.
    fn cache(&self) -> &Cache;
    /// Adds the names of `bust` to the share.
    fn merge(&mut self, bust: &Bust);
}

impl<S> Default for PerCache<S> {
    fn default() -> Self {
        PerCache(Vec::new())
    }
}

impl<S: Share> PerCache<S> {
    /// Adds `bust` to the share of `cache`, or starts that share with
    /// `start` if it has none yet.
    pub(crate) fn add<B: Borrow<Bust>>(
        &mut self,
        cache: &Cache,
        bust: B,
        start: impl FnOnce(B) -> S,
    ) {
        match self.0.iter_mut().find(|s| s.cache().same_as(cache)) {
            Some(share) => share.merge(bust.borrow()),
            None => self.0.push(start(bust)),
        }
    }

    /// The share raised first.
    pub(crate) fn first_mut(&mut self) -> Option<&mut S> {
        self.0.first_mut()
    }

    /// The share raised first, taken out.
    pub(crate) fn take_first(&mut self) -> Option<S> {
        (!self.0.is_empty()).then(|| self.0.remove(0))
    }

    /// Every share, taken out.
    pub(crate) fn take_all(&mut self) -> Vec<S> {
        std::mem::take(&mut self.0)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &S> {
        self.0.iter()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Sends the busts `next` takes out, one cache at a time, so that a drop
/// midway keeps only the unsent ones (by whatever keeps them where they
/// were taken from; the one being sent is kept by `Cache::send` itself).
///
/// # Cancel safety
/// Nothing is taken out but the bust being sent, and `Cache::send` keeps
/// that one as undelivered if dropped.
pub(crate) async fn send_each<C: Borrow<Cache>>(
    mut next: impl FnMut() -> Option<(C, &'static str, Bust)>,
) {
    while let Some((cache, function, bust)) = next() {
        // Failures are logged, counted and kept for retry inside.
        let _ = cache.borrow().send(function, bust).await;
    }
}

/// The busts a scope holds, per cache, in the order first raised.
#[derive(Default)]
struct Held(Mutex<PerCache<Scoped>>);

/// One cache's busts in a scope, with their names in sets: merging a bust
/// and asking whether a read is covered cost the same with 40,000 names
/// held as with one (a bulk endpoint inside one scope).
struct Scoped {
    cache: Cache,
    function: &'static str,
    bust: Bust,
    keys: HashSet<Name<'static>>,
    tags: HashSet<Name<'static>>,
}

impl Share for Scoped {
    fn cache(&self) -> &Cache {
        &self.cache
    }

    fn merge(&mut self, other: &Bust) {
        for k in &other.keys {
            if self.keys.insert(k.clone()) {
                self.bust.keys.push(k.clone());
            }
        }
        for t in &other.tags {
            if self.tags.insert(t.clone()) {
                self.bust.tags.push(t.clone());
            }
        }
    }
}

impl Scoped {
    fn covers(&self, subject: &Subject<'_>) -> bool {
        fn has<'a>(set: &HashSet<Name<'a>>, name: &Name<'a>) -> bool {
            set.contains(name)
        }
        has(&self.keys, subject.key()) || subject.tags().iter().any(|t| has(&self.tags, t))
    }

    fn into_parts(self) -> (Cache, &'static str, Bust) {
        (self.cache, self.function, self.bust)
    }
}

impl Held {
    fn push(&self, cache: &Cache, function: &'static str, bust: &Bust) {
        crate::sync::lock(&self.0).add(cache, bust, |bust| {
            let mut scoped = Scoped {
                cache: cache.clone(),
                function,
                bust: Bust::of(std::iter::empty::<&str>(), std::iter::empty::<&str>()),
                keys: HashSet::new(),
                tags: HashSet::new(),
            };
            scoped.merge(bust);
            scoped
        });
    }

    fn take(&self) -> Vec<(Cache, &'static str, Bust)> {
        crate::sync::lock(&self.0)
            .take_all()
            .into_iter()
            .map(Scoped::into_parts)
            .collect()
    }

    /// The first cache's busts, taken out.
    fn take_first(&self) -> Option<(Cache, &'static str, Bust)> {
        crate::sync::lock(&self.0)
            .take_first()
            .map(Scoped::into_parts)
    }

    fn covers(&self, cache: &Cache, subject: &Subject<'_>) -> bool {
        crate::sync::lock(&self.0)
            .iter()
            .any(|s| s.cache.shares_names_with(cache) && s.covers(subject))
    }
}

/// Runs `future` with every bust it raises held, then sends them, and
/// returns its output.
///
/// Wrap the code that opens, writes and commits a database transaction:
///
/// ```
/// # use cachette::{cached, invalidates, Cache};
/// # #[cached(key = "user:<id>", ttl = 300, cache = cache)]
/// # async fn get_user(cache: &Cache, id: u64) -> Result<String, String> { Ok(format!("user {id}")) }
/// # #[invalidates(keys = ["user:<id>"], cache = cache)]
/// # async fn update_user(cache: &Cache, id: u64) -> Result<(), String> { Ok(()) }
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), String> {
/// # let cache = Cache::memory();
/// cachette::deferred(async {
///     // let mut tx = pool.begin().await?;
///     update_user(&cache, 1).await?; // the bust is held here...
///     // tx.commit().await?;
///     Ok::<_, String>(())
/// })
/// .await?; // ...and sent here, after the commit
/// # Ok(()) }
/// ```
///
/// - Every bust raised while `future` runs, by `#[invalidates]`, by the
///   `invalidate_*` methods of any [`Cache`] or by an entry's `invalidate`,
///   is held, and reported as delivered to the code that raised it. When
///   `future` completes, the held busts are sent, one round trip per cache,
///   and then `deferred` returns: once it has, no read that starts
///   afterwards returns a value computed before the busts.
/// - They are sent whatever the outcome (`Ok`, `Err`, a panic, or the
///   scope being dropped before it finished): the commit may have happened,
///   and a bust is always safe. If the scope is dropped or panics, the busts
///   are kept as undelivered and delivered by a background task, and what
///   they name is not served by this process until they are; a bust that
///   fails to send is kept the same way.
/// - Inside the scope, a `#[cached]` call (or `get_or_fetch`) may be served
///   a valid entry, but stores nothing: its body may read uncommitted rows
///   through the transaction. An entry that a held bust names is not served
///   inside the scope either, so the scope reads its own writes.
/// - A `deferred` inside another joins the outermost one: its busts are
///   sent when the outermost scope is over.
/// - The scope belongs to the task that awaits it: work spawned with
///   `tokio::spawn` inside it is not deferred.
pub async fn deferred<F: Future>(future: F) -> F::Output {
    if SCOPE.try_with(|_| ()).is_ok() {
        return future.await;
    }
    let held = Arc::new(Held::default());
    let mut flush = Flush(held.clone());
    let out = SCOPE.scope(held, future).await;
    flush.send().await;
    out
}

/// Whether the running task is inside a deferring scope.
pub(crate) fn in_scope() -> bool {
    SCOPE.try_with(|_| ()).is_ok()
}

/// Sends a scope's busts; dropped before they are all sent (the scope
/// panicked or was dropped), keeps the rest as undelivered (I9).
struct Flush(Arc<Held>);

impl Flush {
    async fn send(&mut self) {
        // One at a time: a drop midway keeps only the unsent ones.
        send_each(|| self.0.take_first()).await;
    }
}

impl Drop for Flush {
    fn drop(&mut self) {
        for (cache, function, bust) in self.0.take() {
            tracing::warn!(
                function,
                names = ?cache.names_for_logs(&bust),
                "cachette: a deferred scope ended without finishing; its invalidations are kept and delivered in the background, and what they name is not served until they are"
            );
            cache.keep_undelivered(&bust);
        }
    }
}

/// Holds `bust` in the running scope, if there is one; `false` outside
/// any scope.
pub(crate) fn hold(cache: &Cache, function: &'static str, bust: &Bust) -> bool {
    SCOPE
        .try_with(|held| held.push(cache, function, bust))
        .is_ok()
}

/// How a read of `subject` from `cache` stands with the running scope.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Reading {
    /// No scope: read and fill as usual.
    Outside,
    /// In a scope: serve a valid entry, but store nothing.
    Inside,
    /// A held bust names it: run the body, without the cache.
    Busted,
}

pub(crate) fn reading(cache: &Cache, subject: &Subject<'_>) -> Reading {
    SCOPE
        .try_with(|held| {
            if held.covers(cache, subject) {
                Reading::Busted
            } else {
                Reading::Inside
            }
        })
        .unwrap_or(Reading::Outside)
}
