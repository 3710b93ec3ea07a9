//! What the attributes accept: return types, methods, parameters by value
//! and by reference, field paths, default keys, the default cache and the
//! `crate` override.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;

use cachette::{cached, invalidates, Cache};
use serde::{Deserialize, Serialize};

static RESULT_CALLS: AtomicU64 = AtomicU64::new(0);
static OPTION_CALLS: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

#[cached(cache = cache, key = "r:<id>", ttl = "5m", unkeyed = [fail])]
async fn result_fn(cache: &Cache, id: u64, fail: bool) -> Result<User, String> {
    RESULT_CALLS.fetch_add(1, SeqCst);
    if fail {
        return Err(format!("no user {id}"));
    }
    Ok(User {
        id,
        name: "Ada".into(),
    })
}

#[tokio::test]
async fn results_cache_only_ok() {
    let cache = Cache::memory();
    let start = RESULT_CALLS.load(SeqCst);
    assert!(result_fn(&cache, 1, true).await.is_err());
    assert!(result_fn(&cache, 1, true).await.is_err());
    assert_eq!(
        RESULT_CALLS.load(SeqCst) - start,
        2,
        "errors are not cached"
    );
    let ok = result_fn(&cache, 1, false).await.unwrap();
    assert_eq!(
        result_fn(&cache, 1, true).await.unwrap(),
        ok,
        "served from cache"
    );
    assert_eq!(RESULT_CALLS.load(SeqCst) - start, 3);
}

#[cached(cache = cache, key = "o:<id>", ttl = 60)]
async fn option_fn(cache: &Cache, id: u64) -> Option<u64> {
    OPTION_CALLS.fetch_add(1, SeqCst);
    (id > 0).then_some(id)
}

#[cached(cache = cache, key = "on:<id>", ttl = 60, cache_none = true)]
async fn option_none_fn(cache: &Cache, id: u64) -> Option<u64> {
    OPTION_CALLS.fetch_add(1, SeqCst);
    (id > 0).then_some(id)
}

#[tokio::test]
async fn options_cache_some_and_none_only_when_asked() {
    let cache = Cache::memory();
    let start = OPTION_CALLS.load(SeqCst);
    assert_eq!(option_fn(&cache, 0).await, None);
    assert_eq!(option_fn(&cache, 0).await, None);
    assert_eq!(OPTION_CALLS.load(SeqCst) - start, 2);
    assert_eq!(option_fn(&cache, 3).await, Some(3));
    assert_eq!(option_fn(&cache, 3).await, Some(3));
    assert_eq!(OPTION_CALLS.load(SeqCst) - start, 3);
    assert_eq!(option_none_fn(&cache, 0).await, None);
    assert_eq!(option_none_fn(&cache, 0).await, None);
    assert_eq!(
        OPTION_CALLS.load(SeqCst) - start,
        4,
        "None is cached with cache_none"
    );
}

#[cached(cache = cache, ttl = 60)]
async fn default_key_a(cache: &Cache, x: u32, s: &str) -> String {
    format!("a{x}{s}")
}

#[cached(cache = cache, ttl = 60)]
async fn default_key_b(cache: &Cache, x: u32, s: &str) -> String {
    format!("b{x}{s}")
}

#[tokio::test]
async fn default_keys_differ_by_function_and_argument() {
    let cache = Cache::memory();
    assert_eq!(default_key_a(&cache, 1, "z").await, "a1z");
    assert_eq!(default_key_b(&cache, 1, "z").await, "b1z");
    assert_eq!(default_key_a(&cache, 2, "z").await, "a2z");
    assert_eq!(default_key_a(&cache, 1, "z").await, "a1z");
    assert_eq!(cache.stats().hits, 1);
    assert_eq!(cache.stats().misses, 3);
}

/// A repository holding its own cache handle, with `&self` methods.
struct Repo {
    cache: Cache,
    tenant: String,
    loads: AtomicU64,
}

struct Filter {
    kind: &'static str,
    limit: u32,
}

impl Repo {
    #[cached(cache = self.cache, key = "item:<self.tenant>:<id>", ttl = 60, tags = ["tenant:<self.tenant>"])]
    pub async fn item(&self, id: u64) -> Result<String, std::io::Error> {
        self.loads.fetch_add(1, SeqCst);
        Ok(format!("{}/{id}", self.tenant))
    }

    #[cached(cache = self.cache, key = "list:<filter.kind>:<filter.limit>", ttl = 60, unkeyed = [untouched])]
    async fn list(&self, filter: &Filter, mut untouched: Vec<u8>) -> Vec<String> {
        untouched.push(1);
        self.loads.fetch_add(1, SeqCst);
        vec![filter.kind.to_string(); filter.limit as usize]
    }

    #[invalidates(cache = self.cache, tags = ["tenant:<self.tenant>"])]
    async fn reset(&self) -> Result<(), std::io::Error> {
        Ok(())
    }

    #[cached(cache = self.cache, key = "arc:<id>", ttl = 60)]
    async fn by_arc(self: Arc<Self>, id: u64) -> u64 {
        id * 2
    }
}

#[tokio::test]
async fn methods_field_paths_and_pass_through_arguments() {
    let repo = Repo {
        cache: Cache::memory(),
        tenant: "t1".into(),
        loads: AtomicU64::new(0),
    };
    assert_eq!(repo.item(4).await.unwrap(), "t1/4");
    assert_eq!(repo.item(4).await.unwrap(), "t1/4");
    let filter = Filter {
        kind: "k",
        limit: 2,
    };
    assert_eq!(repo.list(&filter, vec![]).await, vec!["k", "k"]);
    assert_eq!(repo.list(&filter, vec![9]).await, vec!["k", "k"]);
    assert_eq!(repo.loads.load(SeqCst), 2);
    repo.reset().await.unwrap();
    repo.item(4).await.unwrap();
    assert_eq!(repo.loads.load(SeqCst), 3);
    let repo = Arc::new(repo);
    assert_eq!(repo.clone().by_arc(4).await, 8);
    assert_eq!(repo.clone().by_arc(4).await, 8);
}

mod reexported {
    pub use cachette as renamed;
}

#[cached(crate = "crate::macros::reexported::renamed", cache = cache, key = "c:<x>", ttl = 1)]
async fn through_reexport(cache: &Cache, x: u8) -> u8 {
    x
}

#[tokio::test]
async fn the_crate_path_can_be_overridden() {
    let cache = Cache::memory();
    assert_eq!(through_reexport(&cache, 3).await, 3);
    assert_eq!(through_reexport(&cache, 3).await, 3);
    assert_eq!(cache.stats().hits, 1);
}

#[cached(key = "global:<x>", ttl = 60)]
async fn uses_default_cache(x: u32) -> u32 {
    x
}

#[invalidates(keys = ["global:<x>"])]
async fn busts_default_cache(x: u32) {}

#[tokio::test]
async fn annotated_functions_use_the_default_cache() {
    // Other tests never call `init`, and only this one uses the default.
    let cache = Cache::memory();
    cachette::init(cache.clone());
    uses_default_cache(1).await;
    uses_default_cache(1).await;
    busts_default_cache(1).await;
    uses_default_cache(1).await;
    assert_eq!(cache.stats().hits, 1);
    assert_eq!(cache.stats().misses, 2);
    assert_eq!(cache.stats().invalidations, 1);
}

mod aliases {
    //! The caching mode follows the return type, however it is spelled.

    use super::*;

    pub type ApiResult<T> = Result<T, String>;
    pub type Plain = Result<u64, String>;
    pub type Maybe<T> = Option<T>;

    pub static RUNS: AtomicU64 = AtomicU64::new(0);

    #[cached(cache = cache, key = "io:<id>", ttl = 60)]
    pub async fn io_result(cache: &Cache, id: u64) -> std::io::Result<u64> {
        RUNS.fetch_add(1, SeqCst);
        Err(std::io::Error::other(format!("no {id}")))
    }

    #[cached(cache = cache, key = "generic:<id>", ttl = 60)]
    pub async fn generic_alias(cache: &Cache, id: u64) -> ApiResult<u64> {
        RUNS.fetch_add(1, SeqCst);
        Err(format!("no {id}"))
    }

    #[cached(cache = cache, key = "plain:<id>", ttl = 60)]
    pub async fn plain_alias(cache: &Cache, id: u64) -> Plain {
        RUNS.fetch_add(1, SeqCst);
        Err(format!("no {id}"))
    }

    #[cached(cache = cache, key = "maybe:<id>", ttl = 60)]
    pub async fn option_alias(cache: &Cache, id: u64) -> Maybe<u64> {
        RUNS.fetch_add(1, SeqCst);
        (id == 0).then_some(id)
    }

    #[cached(cache = cache, key = "maybe_none:<id>", ttl = 60, cache_none = true)]
    pub async fn option_alias_none(cache: &Cache, id: u64) -> Maybe<u64> {
        RUNS.fetch_add(1, SeqCst);
        (id == 0).then_some(id)
    }

    #[invalidates(cache = cache, keys = ["generic:<id>"])]
    pub async fn failing_update(cache: &Cache, id: u64) -> ApiResult<()> {
        Err(format!("update of {id} failed"))
    }
}

/// Errors and `None` are not cached when `Result` or `Option` is spelled
/// through an alias: `io::Result`, a crate alias, a generic alias.
#[tokio::test]
async fn errors_are_not_cached_through_type_aliases() {
    use aliases::*;
    let cache = Cache::memory();
    let runs = |f: &dyn Fn()| {
        let before = RUNS.load(SeqCst);
        f();
        RUNS.load(SeqCst) - before
    };
    let _ = runs;
    let before = RUNS.load(SeqCst);
    for _ in 0..3 {
        assert!(io_result(&cache, 1).await.is_err());
        assert!(generic_alias(&cache, 1).await.is_err());
        assert!(plain_alias(&cache, 1).await.is_err());
        assert_eq!(option_alias(&cache, 1).await, None);
    }
    assert_eq!(
        RUNS.load(SeqCst) - before,
        12,
        "an Err or None was served from the cache"
    );
    let before = RUNS.load(SeqCst);
    assert_eq!(option_alias_none(&cache, 1).await, None);
    assert_eq!(option_alias_none(&cache, 1).await, None);
    assert_eq!(RUNS.load(SeqCst) - before, 1, "cache_none through an alias");

    // A failed update through an alias does not bust.
    generic_alias(&cache, 2).await.unwrap_err();
    let invalidations = cache.stats().invalidations;
    failing_update(&cache, 2).await.unwrap_err();
    assert_eq!(cache.stats().invalidations, invalidations, "busted on Err");
}

/// A value whose type mentions a reference it never stores.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(bound = "")]
struct Tagged<T: ?Sized> {
    n: u64,
    _kind: std::marker::PhantomData<T>,
}

#[cached(cache = cache, key = "borrowed-error:<id>", ttl = 60)]
async fn with_a_borrowed_error(cache: &Cache, id: u64) -> Result<String, &'static str> {
    if id == 0 {
        Err("zero")
    } else {
        Ok(id.to_string())
    }
}

#[cached(cache = cache, key = "tagged:<id>", ttl = 60)]
async fn tagged(cache: &Cache, id: u64) -> Tagged<&'static str> {
    Tagged {
        n: id,
        _kind: std::marker::PhantomData,
    }
}

/// Only a value that would be stored must be owned: an error type may
/// borrow (errors are not cached), and a type may name a reference it does
/// not hold.
#[tokio::test]
async fn return_types_that_borrow_outside_the_stored_value_compile() {
    let cache = Cache::memory();
    assert_eq!(with_a_borrowed_error(&cache, 0).await, Err("zero"));
    assert_eq!(with_a_borrowed_error(&cache, 7).await.unwrap(), "7");
    assert_eq!(tagged(&cache, 3).await.n, 3);
    assert_eq!(tagged(&cache, 3).await.n, 3);
    assert_eq!(cache.stats().hits, 1);
}
