//! What a batch function returns, and the loader that gathers the misses
//! of its linked single-key function into calls of its body.
//!
//! A batch function (`#[cached(batch = "id in ids", ...)]`) returns a
//! collection of `(element, value)` pairs, or a `Result` of one: see
//! [`BatchReturn`]. Its linked single-key function (`one = get_user`)
//! shares its entries; on a miss, its body is a call of [`load_one`],
//! which gathers the elements of the calls that miss within one
//! scheduling tick of each other and runs the batch body once for them.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// A collection of `(element, value)` pairs that a batch function returns.
#[diagnostic::on_unimplemented(
    message = "a batch function returns `(element, value)` pairs: `HashMap<K, V>`, `BTreeMap<K, V>` or `Vec<(K, V)>`, or a `Result` of one, not `{Self}`",
    label = "not a collection of pairs",
    note = "each element the body returns is stored under its own key; the others are left out (or stored as absent with `none_ttl`)"
)]
pub trait BatchCollection: Sized {
    /// The element (`K`).
    type Key;
    /// Its value (`V`).
    type Value;
    /// The pairs, in the collection's order.
    fn into_pairs(self) -> Vec<(Self::Key, Self::Value)>;
    /// The collection, from pairs of distinct elements.
    fn from_pairs(pairs: Vec<(Self::Key, Self::Value)>) -> Self;
}

impl<K: Hash + Eq, V, S: BuildHasher + Default> BatchCollection for HashMap<K, V, S> {
    type Key = K;
    type Value = V;
    fn into_pairs(self) -> Vec<(K, V)> {
        self.into_iter().collect()
    }
    fn from_pairs(pairs: Vec<(K, V)>) -> Self {
        pairs.into_iter().collect()
    }
}

impl<K: Ord, V> BatchCollection for BTreeMap<K, V> {
    type Key = K;
    type Value = V;
    fn into_pairs(self) -> Vec<(K, V)> {
        self.into_iter().collect()
    }
    fn from_pairs(pairs: Vec<(K, V)>) -> Self {
        pairs.into_iter().collect()
    }
}

/// In the caller's order, each element once.
impl<K, V> BatchCollection for Vec<(K, V)> {
    type Key = K;
    type Value = V;
    fn into_pairs(self) -> Vec<(K, V)> {
        self
    }
    fn from_pairs(pairs: Vec<(K, V)>) -> Self {
        pairs
    }
}

/// A batch body's pairs, or its error.
pub type Pairs<R> =
    Result<Vec<(<R as BatchReturn>::Key, <R as BatchReturn>::Value)>, <R as BatchReturn>::Error>;

/// What a batch function returns: a [`BatchCollection`], or a `Result` of
/// one (only `Ok` pairs are stored).
#[diagnostic::on_unimplemented(
    message = "a batch function returns `(element, value)` pairs: `HashMap<K, V>`, `BTreeMap<K, V>` or `Vec<(K, V)>`, or a `Result` of one, not `{Self}`",
    label = "not a collection of pairs"
)]
pub trait BatchReturn: Sized {
    /// The element.
    type Key;
    /// Its value.
    type Value;
    /// The body's error (`Infallible` for a plain collection).
    type Error;
    /// What the linked single-key function returns: `Option<V>`, or
    /// `Result<Option<V>, E>`.
    type One;
    /// The pairs, or the error.
    fn into_result(self) -> Pairs<Self>;
    /// Back from pairs, or an error.
    fn from_result(result: Pairs<Self>) -> Self;
    /// One element's answer, as the linked single-key function returns it.
    fn one(result: Result<Option<Self::Value>, Self::Error>) -> Self::One;
}

impl<C: BatchCollection, E> BatchReturn for Result<C, E> {
    type Key = C::Key;
    type Value = C::Value;
    type Error = E;
    type One = Result<Option<C::Value>, E>;
    fn into_result(self) -> Result<Vec<(C::Key, C::Value)>, E> {
        self.map(C::into_pairs)
    }
    fn from_result(result: Result<Vec<(C::Key, C::Value)>, E>) -> Self {
        result.map(C::from_pairs)
    }
    fn one(result: Result<Option<C::Value>, E>) -> Self::One {
        result
    }
}

macro_rules! plain_collection {
    ($($ty:ty => [$($gen:tt)*] where [$($bound:tt)*]),* $(,)?) => {$(
        impl<$($gen)*> BatchReturn for $ty where $($bound)* {
            type Key = <$ty as BatchCollection>::Key;
            type Value = <$ty as BatchCollection>::Value;
            type Error = std::convert::Infallible;
            type One = Option<Self::Value>;
            fn into_result(self) -> Pairs<Self> {
                Ok(self.into_pairs())
            }
            fn from_result(result: Pairs<Self>) -> Self {
                match result {
                    Ok(pairs) => <$ty as BatchCollection>::from_pairs(pairs),
                    Err(never) => match never {},
                }
            }
            fn one(result: Result<Option<Self::Value>, Self::Error>) -> Self::One {
                match result {
                    Ok(one) => one,
                    Err(never) => match never {},
                }
            }
        }
    )*};
}

plain_collection! {
    HashMap<K, V, S> => [K, V, S] where [K: Hash + Eq, S: BuildHasher + Default],
    BTreeMap<K, V> => [K, V] where [K: Ord],
    Vec<(K, V)> => [K, V] where [],
}

/// What a batch function's elements must be: told apart (`Hash + Eq`),
/// to match what the body returns with what it was given, and copied
/// (`Clone`), to give the body the elements that missed.
#[diagnostic::on_unimplemented(
    message = "a batch function's element type `{Self}` must be `Hash + Eq + Clone`",
    label = "elements are matched by `Hash + Eq` to the pairs the body returns, and cloned to give the body the ones that missed",
    note = "its key template renders it too, so it must be `Display` (or a declared key type)"
)]
pub trait BatchElement: Hash + Eq + Clone {}

impl<T: Hash + Eq + Clone> BatchElement for T {}

/// How long a gathering stays open: scheduling ticks (yields) after the
/// last element joined, and in all.
const QUIET_TICKS: usize = 2;
const MAX_TICKS: usize = 16;

/// The most elements one gathered call of a batch body is given.
pub const MAX_GATHERED: usize = 1024;

/// The elements of single-key misses gathered for one call of a batch
/// body, and what it returned for them.
struct Gathering<K, V> {
    state: Mutex<Gathered<K, V>>,
    /// Told once the body returned (`true`: its values are in `state`) or
    /// failed (`false`); closed untold if its leader was dropped (the
    /// leader alone holds the sender).
    done: watch::Receiver<Option<bool>>,
}

struct Gathered<K, V> {
    elements: Vec<K>,
    /// Closed to new elements: the body has been called.
    closed: bool,
    /// What the body returned, taken by each waiting caller.
    values: HashMap<K, V>,
}

/// The gatherings open now, by batch function and the arguments that are
/// not the element.
#[derive(Default)]
pub(crate) struct Loaders {
    open: Mutex<HashMap<(String, String), Arc<dyn Any + Send + Sync>>>,
}

/// A linked single-key function: gathers `element` with the elements of
/// the other calls of the same batch function and arguments (`group`)
/// made within one scheduling tick of each other, and runs `run` (the
/// cached batch call) once for all of them; each call takes its element's
/// value. A call whose gathering failed or was dropped (the `Err` is its
/// leader's) runs `run` for its own element alone.
///
/// Every call joins before the batch call reads anything, so each read
/// begins after its caller's call did (I1).
pub async fn load_one<R, K, F, Fut>(
    cache: &crate::cache::Cache,
    function: &crate::names::Function,
    group: String,
    element: K,
    policy: &crate::policy::Policy,
    gather: bool,
    run: F,
) -> R::One
where
    R: BatchReturn<Key = K>,
    K: BatchElement + Send + Sync + 'static,
    R::Value: Send + Sync + 'static,
    F: FnOnce(Vec<K>) -> Fut,
    Fut: Future<Output = R>,
{
    // Made at once, in this task, for this one element: what a companion
    // (`_key`, `_uncached`, `_refresh`) asks of the batch call; a call in a
    // deferred scope or a request-wide one (`scope`), which must read as
    // its scope says (a gathering's batch call reads in its leader's
    // task); a call inside a cached body,
    // whose flight the gathering's batch call could wait for.
    // And a call given a `&mut` (a connection, perhaps a transaction: the
    // gathered call would read through its leader's), `gather` false.
    if !gather
        || crate::companion::pending()
        || crate::deferred::in_scope()
        || crate::scope::current().is_some()
        || crate::read::in_a_body()
    {
        let out = Box::pin(run(vec![element.clone()])).await.into_result();
        return R::one(out.map(|pairs| pick(pairs, &element)));
    }
    let loaders = &cache.inner.loaders;
    let slot = (function.id().to_string(), group);
    // Join an open gathering of the same function and arguments.
    let joined = {
        let open = crate::sync::lock(&loaders.open);
        open.get(&slot)
            .and_then(|g| g.clone().downcast::<Gathering<K, R::Value>>().ok())
            .and_then(|g| {
                let mut state = crate::sync::lock(&g.state);
                // Each element's value goes to one caller: a call of an
                // element already gathered makes a batch call of its own,
                // which follows that element's flight, then reads it.
                if state.closed
                    || state.elements.len() >= MAX_GATHERED
                    || state.elements.contains(&element)
                {
                    return None;
                }
                state.elements.push(element.clone());
                drop(state);
                Some(g)
            })
    };
    if let Some(gathering) = joined {
        let mut done = gathering.done.clone();
        let told = async {
            loop {
                if let Some(outcome) = *done.borrow_and_update() {
                    break Some(outcome);
                }
                if done.changed().await.is_err() {
                    break *done.borrow();
                }
            }
        };
        // Bounded, on cachette's timer: a leader that is not polled (held
        // in a `select!`, or a set of futures not driven) cannot hold its
        // joiners. Past `lock_wait`, the gathering is closed to new calls,
        // and this one goes alone.
        let outcome = match crate::background::timeout(policy.lock_wait, told).await {
            Some(outcome) => outcome,
            None => {
                let mut state = crate::sync::lock(&gathering.state);
                state.closed = true;
                drop(state);
                let mut open = crate::sync::lock(&loaders.open);
                let ours = open
                    .get(&slot)
                    .is_some_and(|g| std::ptr::addr_eq(Arc::as_ptr(g), Arc::as_ptr(&gathering)));
                if ours {
                    open.remove(&slot);
                }
                None
            }
        };
        if outcome == Some(true) {
            let value = crate::sync::lock(&gathering.state).values.remove(&element);
            return R::one(Ok(value));
        }
        // Failed, or its leader was dropped: alone.
        let alone = Box::pin(run(vec![element.clone()])).await.into_result();
        return R::one(alone.map(|pairs| pick(pairs, &element)));
    }
    // Lead a gathering: open it, let the calls woken with this one join,
    // then close it and run the body once.
    let (tell, done) = watch::channel(None);
    let gathering = Arc::new(Gathering {
        state: Mutex::new(Gathered {
            elements: vec![element.clone()],
            closed: false,
            values: HashMap::new(),
        }),
        done,
    });
    let erased: Arc<dyn Any + Send + Sync> = gathering.clone();
    crate::sync::lock(&loaders.open).insert(slot.clone(), erased);
    let mut close = Close {
        loaders,
        slot: &slot,
        gathering: &gathering,
        closed: false,
    };
    let mut seen = 1;
    let mut quiet = 0;
    for _ in 0..MAX_TICKS {
        crate::flight::YieldOnce::new().await;
        let now = crate::sync::lock(&gathering.state).elements.len();
        if now >= MAX_GATHERED {
            break;
        }
        if now == seen {
            quiet += 1;
            if quiet >= QUIET_TICKS {
                break;
            }
        } else {
            (seen, quiet) = (now, 0);
        }
    }
    let elements = close.close();
    // On the heap: the batch body's future is large, and this one is
    // the body of another cached call.
    let out = Box::pin(run(elements)).await.into_result();
    match out {
        Ok(pairs) => {
            let mut values: HashMap<K, R::Value> = HashMap::with_capacity(pairs.len());
            for (k, v) in pairs {
                values.entry(k).or_insert(v);
            }
            let mine = values.remove(&element);
            crate::sync::lock(&gathering.state).values = values;
            tell.send_replace(Some(true));
            R::one(Ok(mine))
        }
        Err(e) => {
            tell.send_replace(Some(false));
            R::one(Err(e))
        }
    }
}

/// Closes a gathering once (on its leader's drop too, so that no call
/// joins a gathering whose body will never run).
struct Close<'a, K, V> {
    loaders: &'a Loaders,
    slot: &'a (String, String),
    gathering: &'a Arc<Gathering<K, V>>,
    closed: bool,
}

impl<K, V> Close<'_, K, V> {
    /// Closes the gathering: its elements.
    fn close(&mut self) -> Vec<K> {
        let elements = {
            let mut state = crate::sync::lock(&self.gathering.state);
            state.closed = true;
            std::mem::take(&mut state.elements)
        };
        self.unregister();
        self.closed = true;
        elements
    }

    fn unregister(&self) {
        let mut open = crate::sync::lock(&self.loaders.open);
        let ours = open.get(self.slot).is_some_and(|g| {
            let g: &dyn Any = &**g;
            std::ptr::addr_eq(g as *const dyn Any, Arc::as_ptr(self.gathering))
        });
        if ours {
            open.remove(self.slot);
        }
    }
}

impl<K, V> Drop for Close<'_, K, V> {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        crate::sync::lock(&self.gathering.state).closed = true;
        self.unregister();
    }
}

/// The value of `element` among `pairs`.
fn pick<K: Eq, V>(pairs: Vec<(K, V)>, element: &K) -> Option<V> {
    pairs
        .into_iter()
        .find(|(k, _)| k == element)
        .map(|(_, v)| v)
}
