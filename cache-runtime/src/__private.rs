//! What the macros' generated code calls. Not a public API: names and
//! signatures change without notice.

use std::borrow::Cow;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use crate::batch::{load_one, BatchCollection, BatchElement, BatchReturn};
pub use crate::cache::Cache;
pub use crate::codec::Codec;
pub use crate::companion::{companion, key_of, keys_of, Companion, EntryKey, EntryKeys};
pub use crate::keep::{keep_probe, KeepClone, KeepDecoding, KeepProbe, Keeper};
pub use crate::key::{
    render, ADeclaredNameIsNotAPlaceholderValue, Hole, HoleKey, HoleTag, HoleValue,
};
pub use crate::mode::Stores;
pub use crate::mode::{
    cache_none_applies, derived_keys, derived_tags, serves_stale_applies, stale_if_error_applies,
    BustAlways, BustIfOk, BustWhen, IsOption, IsResult, Mode, Nullable, OptionMode, PlainMode,
    ResultMode, ResultNoneMode, ResultOptionMode, Select, SelectOption, SelectPlain, SelectResult,
    SelectResultOption, ServesStale, ValueMode,
};
pub use crate::names::name_pattern;
pub use crate::names::Function;
pub use crate::policy::{Policy, Strategy};
pub use crate::read::BatchItem;
pub use crate::timeout::{hard_timeout, TimesOut};

use crate::deferred::{send_each, PerCache};
pub use crate::hooks::Hooks;
use crate::invalidate::Armed;
use crate::names::Bust;
pub use crate::read::NoRefresh;
use crate::read::{Call, Fetched};

/// The function in which the closure `f` is declared, whose code hashes
/// to `code`: its label and the id of its entries (distinct per
/// instantiation of a generic function, and per body).
pub fn function<F>(_f: &F, code: &str) -> Function {
    Function::of::<F>(code)
}

/// A function known by `label` whose entries are told apart by
/// `identity`: for tests that stand for two builds of one function.
pub fn function_named(label: &'static str, identity: &str) -> Function {
    Function::named(label, identity)
}

/// A declared tag's value, rendered (`tags = [OrgTag { org }]`).
pub fn tag_name<T: crate::key::TagName>(tag: &T) -> String {
    tag.to_string()
}

/// A declared key's value, rendered (`key = UserKey { id }`).
pub fn key_name<T: crate::key::KeyName>(key: &T) -> String {
    key.to_string()
}

/// `self`, cloned for the background refresh of `swr` and `early`.
pub fn refresh_clone<T: RefreshClone>(this: &T) -> T {
    this.clone()
}

/// What `swr` and `early` clone: `self`, for a refresh in the background.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not `Clone`, and `swr`, `early` and `soft_timeout` clone `self` to run the body in the background",
    label = "cloned for the background refresh",
    note = "add `#[derive(Clone)]` to `{Self}` (its pool and cache are cheap handles to clone), \
            keep what is costly to copy behind an `Arc`, or take `self: Arc<Self>`"
)]
pub trait RefreshClone: Clone {}

impl<T: Clone> RefreshClone for T {}

/// The default cache (see `cachette::init`), for `function`, which names
/// none.
///
/// # Panics
/// After `cachette::forbid_default_cache`.
pub fn default_cache(function: &Function) -> Cache {
    crate::global::default_cache_for(function.label)
}

/// A duration as written in the attribute, in milliseconds.
pub const fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// The path of the annotated function, from the type name of a marker
/// function declared inside it (`crate::module::Type::method`).
pub fn fn_path<F>(_marker: F) -> &'static str {
    // An async fn's marker is declared in its body, a closure: the path
    // ends in `::{{closure}}`. Kept as it is: the text of every default key
    // of a build is the text the builds before it busted (a rolling deploy
    // must not split one key in two).
    let name = std::any::type_name::<F>();
    name.strip_suffix("::__cachette_marker").unwrap_or(name)
}

/// One argument of a default key. The name is what the compiler shows
/// when an argument does not implement `Display`.
pub fn an_omitted_key_displays_every_argument<T: Display>(arg: &T) -> &dyn Display {
    arg
}

/// The key used when `key` is omitted: the function's path, then each
/// argument, escaped, after a `:`.
pub fn default_key(path: &str, values: &[&dyn Display]) -> String {
    let mut pieces = vec![""; values.len() + 1];
    let mut first = String::with_capacity(path.len() + 1);
    first.push_str(path);
    if !values.is_empty() {
        first.push(':');
        for p in &mut pieces[1..values.len()] {
            *p = ":";
        }
    }
    pieces[0] = &first;
    render(&pieces, values)
}

/// Where a `#[cached]` call runs: its cache, its policy and its function.
pub struct Site<'a> {
    /// The cache.
    pub cache: &'a Cache,
    /// The policy.
    pub policy: &'a Policy,
    /// The annotated function.
    pub function: Function,
    /// The generic parameter that was given a `&mut` (a connection, perhaps
    /// a transaction), if any: the call then stores nothing.
    pub through_mut: Option<&'static str>,
}

/// Whether an argument of a generic type turned out to be a `&mut`.
pub fn is_mut_ref<T: ?Sized>(_arg: &T) -> bool {
    std::any::type_name::<T>().starts_with("&mut ")
}

/// The first of the named generic arguments that is a `&mut`.
pub fn mut_argument(args: &[(&'static str, bool)]) -> Option<&'static str> {
    args.iter().find(|(_, is)| *is).map(|(name, _)| *name)
}

/// No background refresh: the `refresh` of the aside and lock strategies.
pub const fn no_refresh() -> Option<NoRefresh> {
    None
}

/// How many times a call reads again under derived tags learned while it
/// waited for another caller's fill (`tags_from`).
const REHINTS: u32 = 2;

/// `#[cached]`, as its companion (if any) asks. `refresh`, for swr and
/// early, makes an owned future that calls the function again, for
/// background refreshes ([`no_refresh`] for the other strategies).
#[allow(clippy::too_many_arguments)]
pub async fn cached<M, R, Fut, Mk, RF>(
    site: Site<'_>,
    _mode: M,
    keep: Keeper<M::Value>,
    key: &str,
    tags: &[String],
    hooks: Hooks<'_, M::Value>,
    body: Fut,
    refresh: Option<Mk>,
) -> R
where
    M: Mode<R>,
    Fut: Future<Output = R>,
    Mk: FnOnce() -> RF,
    RF: Future<Output = ()> + Send + 'static,
{
    let companion = crate::companion::take();
    match companion {
        Some(Companion::Uncached) => return body.await,
        Some(Companion::Key) => {
            // Named; the probe drops this call before the body.
            crate::companion::probed(site.cache, key);
            return std::future::pending().await;
        }
        Some(Companion::Refresh) | None => {}
    }
    if let Some(arg) = site.through_mut {
        through_mut(site.function.label, arg);
    }
    // The span wraps each fetch, not this loop: a wrapper around the loop
    // would hold a second copy of `body` and `refresh` (`spans.rs`).
    let span = crate::spans::get(site.cache, site.policy, site.function.label, key);
    let total = crate::spans::total(&span);
    let (mut body, mut refresh) = (body, refresh);
    let mut rehints = 0;
    loop {
        let hinted = hooks.tags_from.map(|_| hinted(&site, key));
        let tags = with_hinted(tags, hinted.as_deref());
        let mut call = Call::new(site.cache, site.policy, site.function, key, &tags);
        call.forced = companion == Some(Companion::Refresh);
        call.derived = hinted;
        call.rehint = rehints < REHINTS;
        call.stores_nothing = site.through_mut.is_some();
        call.span = span.clone();
        let fetched = site
            .cache
            .fetch::<M, R, Fut, Mk, RF>(call, keep, body, refresh, &hooks);
        match crate::spans::call(&span, &total, fetched).await {
            Fetched::Done(out) => {
                if M::failed(&out) {
                    crate::spans::failed(&span);
                }
                return out;
            }
            Fetched::Rehint(unpolled, unused) => {
                (body, refresh) = (unpolled, unused);
                rehints += 1;
            }
        }
    }
}

/// The entries named by `#[invalidates(calls = [...])]`, each call's
/// (one, or one per element of a batch call), in order.
pub fn entry_keys(to: &mut Vec<EntryKey>, keys: impl EntryKeys) {
    keys.add_to(to);
}

/// A batch function's element, checked to be one (a compile error names
/// what it lacks).
pub fn batch_element<K: BatchElement>(element: K) -> K {
    element
}

/// `#[cached(batch = "id in ids")]`: every element's entry read at once,
/// the body run once for the elements that missed (in the caller's order,
/// each once), each element it returned stored under its own key and
/// versions. An empty `items` returns an empty collection: nothing is
/// read, and the body does not run.
#[allow(clippy::too_many_arguments)]
pub async fn cached_batch<M, R, B, Fut>(
    site: Site<'_>,
    _mode: M,
    keep: Keeper<M::Value>,
    items: Vec<BatchItem<R::Key>>,
    hooks: Hooks<'_, M::Value>,
    body: B,
) -> R
where
    R: BatchReturn,
    R::Key: BatchElement,
    M: Mode<Option<R::Value>>,
    B: FnOnce(Vec<R::Key>) -> Fut,
    Fut: Future<Output = R>,
{
    let companion = crate::companion::take();
    // Each element once, in the caller's order.
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    let items: Vec<BatchItem<R::Key>> = items
        .into_iter()
        .filter(|item| seen.insert(item.element.clone()))
        .collect();
    // Two elements that differ but render one key would share an entry,
    // and be served each other's value: a key that leaves out what tells
    // them apart (`<r.id>` of an element whose tenant differs).
    let mut keys = std::collections::HashSet::with_capacity(items.len());
    if let Some(item) = items.iter().find(|item| !keys.insert(item.key.as_str())) {
        shared_key(site.function.label, &item.key);
    }
    match companion {
        // As a cached call: an empty input does not run the body.
        Some(Companion::Uncached) if items.is_empty() => return R::from_result(Ok(Vec::new())),
        Some(Companion::Uncached) => {
            return body(items.into_iter().map(|i| i.element).collect()).await;
        }
        Some(Companion::Key) => {
            crate::companion::probed_many(site.cache, items.iter().map(|i| i.key.as_str()));
            return std::future::pending().await;
        }
        Some(Companion::Refresh) | None => {}
    }
    if items.is_empty() {
        return R::from_result(Ok(Vec::new()));
    }
    if let Some(arg) = site.through_mut {
        through_mut(site.function.label, arg);
    }
    let span = crate::spans::get_many(site.cache, site.policy, site.function.label, items.len());
    let misses = std::sync::atomic::AtomicUsize::new(0);
    let run = |missing: Vec<R::Key>| {
        misses.store(missing.len(), std::sync::atomic::Ordering::Relaxed);
        let n = missing.len();
        let fut = body(missing);
        async move { crate::spans::batch_body(n, fut).await.into_result() }
    };
    let fetched = site
        .cache
        .fetch_batch::<M, R::Key, R::Value, R::Error, _, _>(
            site.policy,
            site.function,
            &items,
            keep,
            &hooks,
            companion == Some(Companion::Refresh),
            site.through_mut.is_some(),
            run,
        );
    let (out, _requests) = crate::spans::call(&span, &crate::spans::total(&span), fetched).await;
    crate::spans::ended_many(&span, misses.into_inner());
    if out.is_err() {
        crate::spans::failed(&span);
    }
    R::from_result(out)
}

/// The derived tags remembered for the key (`tags_from`).
fn hinted(site: &Site<'_>, key: &str) -> Arc<[String]> {
    site.cache
        .inner
        .derived
        .hinted(&site.function, key)
        .unwrap_or_else(|| Arc::from(Vec::new()))
}

/// The call's tags, then the derived ones it reads.
fn with_hinted<'t>(tags: &'t [String], hinted: Option<&[String]>) -> Cow<'t, [String]> {
    match hinted {
        Some(hinted) if !hinted.is_empty() => Cow::Owned([tags, hinted].concat()),
        _ => Cow::Borrowed(tags),
    }
}

/// `ttl_fn = of` of a `#[cached]` function: the TTL of a value it stores.
pub fn ttl_fn<M, R>(
    _mode: &M,
    of: impl Fn(&M::Value) -> Duration + Sync,
) -> impl Fn(&M::Value) -> Option<Duration> + Sync
where
    M: Mode<R>,
{
    move |value| Some(of(value))
}

/// `none_ttl` of an `Option` function: `None` is kept for `none`, a value
/// for the function's `ttl`.
pub fn none_ttl<M, R>(_mode: &M, none: Duration) -> impl Fn(&M::Value) -> Option<Duration> + Sync
where
    M: Mode<R>,
    M::Value: Nullable,
{
    move |value| value.inner().is_none().then_some(none)
}

/// `none_ttl` with `ttl_fn = of`: `None` is kept for `none`, a value for
/// what `of` says.
pub fn none_ttl_or<M, R>(
    _mode: &M,
    none: Duration,
    of: impl Fn(&<M::Value as Nullable>::Inner) -> Duration + Sync,
) -> impl Fn(&M::Value) -> Option<Duration> + Sync
where
    M: Mode<R>,
    M::Value: Nullable,
{
    move |value| Some(value.inner().map_or(none, &of))
}

/// `unless = reject` of a `#[cached]` function: values it does not store.
pub fn unless<M, R>(
    _mode: &M,
    reject: impl Fn(&M::Value) -> bool + Sync,
) -> impl Fn(&M::Value) -> bool + Sync
where
    M: Mode<R>,
{
    reject
}

/// `tags_from = derive` of a `#[cached]` function: the tags of a value
/// the function stores (`mode` names its type).
pub fn tags_from<M, R, I, S>(
    _mode: &M,
    derive: impl Fn(&M::Value) -> I + Sync,
) -> impl Fn(&M::Value) -> Vec<String> + Sync
where
    M: Mode<R>,
    I: IntoIterator<Item = S>,
    S: crate::key::IntoTag,
{
    move |value| derived_tags(value, &derive)
}

/// `#[invalidates]`: armed before the body runs, finished after it.
///
/// If the function's future is dropped before it finishes (a timeout
/// around the call, a `select!`, a panicking body), the write may have
/// committed; the bust is kept as undelivered and retried (I9), which at
/// worst costs the named entries a miss.
///
/// `cache` is `None` when the function names no keys or tags (only
/// `calls`), which then need no cache of their own. Each call's key is
/// busted in the cache that call reads.
pub fn invalidation<'a>(
    cache: Option<&'a Cache>,
    function: &Function,
    keys: &[String],
    tags: &[String],
    calls: &'a [EntryKey],
    transaction: Option<&'static str>,
) -> Invalidation<'a> {
    let own = cache.is_some();
    let mut armed: PerCache<Armed<'a>> = PerCache::default();
    let mut add = |cache: &'a Cache, bust: Bust| {
        armed.add(cache, bust, |bust| Armed::new(cache, function.label, bust))
    };
    if let Some(cache) = cache {
        add(cache, Bust::of(keys, tags));
    }
    for call in calls {
        add(
            call.cache(),
            Bust::of([call.key()], std::iter::empty::<&str>()),
        );
    }
    Invalidation {
        armed,
        own,
        transaction: transaction.map(|t| (function.label, t)),
    }
}

/// See [`invalidation`].
pub struct Invalidation<'a> {
    armed: PerCache<Armed<'a>>,
    /// The first is the function's own cache's.
    own: bool,
    /// The function, and its `&mut` parameter that may be a transaction.
    transaction: Option<(&'static str, &'static str)>,
}

impl Invalidation<'_> {
    /// Adds tags derived from the result (`tags_from`) to the bust of the
    /// function's own cache.
    pub fn add_tags(&mut self, tags: &[String]) {
        if let (true, Some(own)) = (self.own, self.armed.first_mut()) {
            own.merge(&Bust::of(std::iter::empty::<&str>(), tags));
        }
    }

    /// Adds keys derived from the result (`keys_from`) to the bust of the
    /// function's own cache.
    pub fn add_keys(&mut self, keys: &[String]) {
        if let (true, Some(own)) = (self.own, self.armed.first_mut()) {
            own.merge(&Bust::of(keys, std::iter::empty::<&str>()));
        }
    }

    /// Busts when the body succeeded. A failed bust is logged, counted and
    /// kept for retry inside; the function's result stands.
    pub async fn finish(mut self, succeeded: bool) {
        // Decided before the busts, warned after them: the bust comes first.
        let warn = match self.transaction {
            Some((function, tx))
                if succeeded && !self.armed.is_empty() && !crate::deferred::in_scope() =>
            {
                Some((function, tx))
            }
            _ => None,
        };
        if succeeded {
            // One at a time, so that a drop midway keeps the unsent ones armed.
            send_each(|| {
                let armed = self.armed.take_first()?;
                let (cache, function) = (armed.cache(), armed.function());
                Some((cache, function, armed.disarm()))
            })
            .await;
        } else {
            for armed in self.armed.take_all() {
                armed.disarm();
            }
        }
        if let Some((function, tx)) = warn {
            outside_scope(function, tx);
        }
    }
}

/// Two elements of one batch call rendered one key.
#[cold]
fn shared_key(function: &'static str, key: &str) {
    let key = key.to_string();
    crate::loud::warn_once("batch elements share a key", function, || {
        format!(
            "cachette: two different elements of one call of the batch function `{function}` \
             rendered the same key ({key:?}): they share one entry, and one is served the \
             other's value. Name in the key everything that tells elements apart (every field \
             that changes the value, or the whole element) (warned once per function)"
        )
    });
}

/// A `#[cached]` function was given a `&mut` through a generic parameter:
/// it may be a transaction that rolls back, so nothing is stored.
#[cold]
fn through_mut(function: &'static str, arg: &'static str) {
    crate::loud::warn_once("read through &mut", function, || {
        format!(
            "cachette: `{function}` was given `{arg}` as a `&mut` (a connection, perhaps a \
             transaction): its results are not stored, since a transaction that rolls back would \
             leave a row that never committed. If `{arg}` is never a transaction when \
             `{function}` is called outside `cachette::deferred`, add \
             `not_a_transaction = [{arg}]` to its #[cached]"
        )
    });
}

/// An `#[invalidates]` function with a `&mut` argument busted outside
/// `deferred`: if the argument is a transaction, the bust came before the
/// commit, and a read in between stores the old row until its TTL.
#[cold]
fn outside_scope(function: &'static str, tx: &'static str) {
    crate::loud::warn_once("bust outside deferred", function, || {
        format!(
            "cachette: `{function}` takes `&mut {tx}` and busted outside `cachette::deferred`: if \
             `{tx}` is a transaction, the bust came before the commit, and a read in between \
             stores the old row until its TTL. Run the transaction inside \
             `cachette::deferred(async {{ ... }})`, which sends the bust once it is over; if \
             `{tx}` is never a transaction, add `not_a_transaction = [{tx}]` to the attribute"
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn default_keys_separate_every_argument() {
        assert_eq!(default_key("m::f", &[]), "m::f");
        assert_eq!(default_key("m::f", &[&1, &"a:b"]), "m::f:1:a%3Ab");
        fn __cachette_marker() {}
        assert!(fn_path(__cachette_marker).ends_with("tests::default_keys_separate_every_argument"));
        let marker = async {
            fn __cachette_marker() {}
            fn_path(__cachette_marker)
        };
        let path = block_on(marker);
        assert!(
            path.ends_with("default_keys_separate_every_argument::{{closure}}"),
            "{path}"
        );
    }
}
