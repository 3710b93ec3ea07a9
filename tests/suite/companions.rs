//! The companions of a `#[cached]` function (`f_uncached`, `f_refresh`,
//! `f_key`), busts that name entries by calls (`calls = [...]`), the
//! impl-level cache (`#[cached_impl]`), and every kind of function the
//! attributes accept: trait impl methods, generic impls and functions,
//! `impl Trait` and `&mut` arguments, and swr on a cheap clone handle.

use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;

use cachette::{cached, cached_impl, invalidates, Cache};

use crate::support::each_backend;
use crate::support::source::Source;

#[cached(key = "value:<id>", ttl = 60, tags = ["group:<group>"], cache = cache, unkeyed = [source])]
async fn value(cache: &Cache, source: &Source, id: u64, group: &str) -> u64 {
    let _ = (id, group);
    source.read().await
}

#[invalidates(calls = [value(cache, source, id, group)])]
async fn write_value(cache: &Cache, source: &Source, id: u64, group: &str) {
    source.version.fetch_add(1, SeqCst);
}

/// `f_uncached` runs the body and touches nothing; `f_refresh` runs it
/// and stores; `f_key` names the entry without running anything.
#[tokio::test]
async fn companions_bypass_refresh_and_name_the_entry() {
    for (cache, _server) in each_backend().await {
        let backend = cache.backend_name();
        let source = Source::default();
        assert_eq!(value(&cache, &source, 1, "g").await, 0);
        assert_eq!(value(&cache, &source, 1, "g").await, 0, "{backend}: a hit");
        let stats = cache.stats();
        source.version.store(5, SeqCst);
        assert_eq!(value_uncached(&cache, &source, 1, "g").await, 5);
        let after = cache.stats();
        assert_eq!(
            (after.hits, after.misses),
            (stats.hits, stats.misses),
            "{backend}: uncached neither reads nor counts"
        );
        assert_eq!(
            value(&cache, &source, 1, "g").await,
            0,
            "{backend}: untouched"
        );

        assert_eq!(value_refresh(&cache, &source, 1, "g").await, 5);
        let runs = source.runs();
        assert_eq!(
            value(&cache, &source, 1, "g").await,
            5,
            "{backend}: refreshed"
        );
        assert_eq!(source.runs(), runs, "{backend}: served from the cache");

        let entry = value_key(&cache, &source, 1, "g");
        assert_eq!(entry.key(), "value:1");
        assert_eq!(source.runs(), runs, "{backend}: naming runs nothing");
        entry.invalidate().await.unwrap();
        source.version.store(6, SeqCst);
        assert_eq!(value(&cache, &source, 1, "g").await, 6, "{backend}: busted");
    }
}

/// `calls = [value(...)]` busts the key that call reads (and only the key:
/// another entry under the same tag stays).
#[tokio::test]
async fn a_call_in_a_bust_names_the_entry_that_call_reads() {
    for (cache, _server) in each_backend().await {
        let backend = cache.backend_name();
        let source = Source::default();
        value(&cache, &source, 1, "g").await;
        value(&cache, &source, 2, "g").await;
        write_value(&cache, &source, 1, "g").await;
        assert_eq!(value(&cache, &source, 1, "g").await, 1, "{backend}: busted");
        let runs = source.runs();
        assert_eq!(
            value(&cache, &source, 2, "g").await,
            0,
            "{backend}: not its tag"
        );
        assert_eq!(source.runs(), runs);
    }
}

/// A refresh whose body runs while the entry is busted stores nothing that
/// a read after the bust returns (I1): its versions were read before its
/// body.
#[tokio::test]
async fn a_refresh_that_races_a_bust_cannot_overwrite_it() {
    for (cache, _server) in each_backend().await {
        let backend = cache.backend_name();
        let source = Source::default();
        value(&cache, &source, 1, "g").await;
        let (reached, release) = source.hold_next(false);
        let refresh = {
            let (cache, source) = (cache.clone(), source.clone());
            tokio::spawn(async move { value_refresh(&cache, &source, 1, "g").await })
        };
        // The refresh read version 0 and waits.
        tokio::time::timeout(std::time::Duration::from_secs(10), reached.notified())
            .await
            .expect("the refresh runs its body");
        write_value(&cache, &source, 1, "g").await; // version 1, busted
        release.notify_one();
        assert_eq!(
            refresh.await.unwrap(),
            0,
            "{backend}: it returns what it read"
        );
        assert_eq!(
            value(&cache, &source, 1, "g").await,
            1,
            "{backend}: the refresh's older value is not served after the bust"
        );
    }
}

/// A repository: one cache for the whole impl, and a trait implemented
/// with cached methods, swr on a cheap clone handle among them.
#[derive(Clone)]
struct Books {
    cache: Cache,
    source: Source,
    lists: Arc<AtomicU64>,
}

trait Library {
    async fn book(&self, id: u64) -> Result<u64, String>;
    async fn shelf(&self, shelf: &str) -> Vec<u64>;
    async fn edit(&self, id: u64) -> Result<(), String>;
}

#[cached_impl(cache = self.cache)]
impl Library for Books {
    #[cached(key = "book:<id>", ttl = 60)]
    async fn book(&self, id: u64) -> Result<u64, String> {
        let _ = id;
        Ok(self.source.read().await)
    }

    #[cached(key = "shelf:<shelf>", ttl = 60, strategy = "swr")]
    async fn shelf(&self, shelf: &str) -> Vec<u64> {
        let _ = shelf;
        self.lists.fetch_add(1, SeqCst);
        vec![self.source.version.load(SeqCst)]
    }

    #[invalidates(calls = [self.book(id)])]
    async fn edit(&self, id: u64) -> Result<(), String> {
        self.source.version.fetch_add(1, SeqCst);
        Ok(())
    }
}

#[cached_impl(cache = self.cache)]
impl Books {
    #[cached(key = "count:<shelf>", ttl = 60)]
    async fn count(&self, shelf: &str) -> usize {
        self.shelf(shelf).await.len()
    }

    #[invalidates(calls = [self.count(shelf), self.shelf(shelf)])]
    async fn reshelve(&self, shelf: &str) {}
}

#[tokio::test]
async fn methods_of_trait_impls_share_the_impl_cache_and_have_companions() {
    for (cache, _server) in each_backend().await {
        let backend = cache.backend_name();
        let books = Books {
            cache: cache.clone(),
            source: Source::default(),
            lists: Arc::default(),
        };
        assert_eq!(books.book(1).await, Ok(0));
        assert_eq!(books.book(1).await, Ok(0));
        assert_eq!(
            books.source.runs(),
            1,
            "{backend}: the trait method is cached"
        );
        assert_eq!(books.book_key(1).key(), "book:1");
        books.edit(1).await.unwrap();
        assert_eq!(books.book(1).await, Ok(1), "{backend}: busted by its call");
        assert_eq!(books.book_uncached(1).await, Ok(1));
        assert_eq!(books.book_refresh(1).await, Ok(1));

        assert_eq!(books.shelf("a").await, vec![1]);
        assert_eq!(books.count("a").await, 1);
        assert_eq!(books.lists.load(SeqCst), 1, "{backend}: shelf cached");
        books.reshelve("a").await;
        assert_eq!(books.count("a").await, 1);
        assert_eq!(books.lists.load(SeqCst), 2, "{backend}: both calls busted");
    }
}

trait Kind {
    const NAME: &'static str;
}

struct Apples;

impl Kind for Apples {
    const NAME: &'static str = "apples";
}

struct Store<K> {
    cache: Cache,
    kind: std::marker::PhantomData<K>,
}

#[cached_impl(cache = self.cache)]
impl<K: Kind> Store<K> {
    #[cached(key = "store:<id>", ttl = 60)]
    async fn name(&self, id: u64) -> String {
        format!("{} {id}", K::NAME)
    }

    #[cached(key = "label:<id>", ttl = 60)]
    async fn label(&self, id: u64) -> String {
        format!("label {id}")
    }
}

#[cached(key = "parsed:<text>", ttl = 60, cache = cache)]
async fn parsed<T: std::str::FromStr + serde::Serialize + serde::de::DeserializeOwned>(
    cache: &Cache,
    text: &str,
) -> Option<T> {
    text.parse().ok()
}

#[cached(key = "shown:<name>", ttl = 60, cache = cache)]
async fn shown(cache: &Cache, name: impl Display + Send) -> String {
    format!("<{name}>")
}

struct Connection {
    queries: u64,
}

#[cached(key = "rows:<id>", ttl = 60, cache = cache, not_a_transaction = [conn])]
async fn rows(cache: &Cache, conn: &mut Connection, id: u64) -> u64 {
    conn.queries += 1;
    id * 10
}

#[cached(key = "locked:<id>", ttl = 60, cache = cache, strategy = "lock", not_a_transaction = [conn])]
async fn locked_rows(cache: &Cache, conn: &mut Connection, id: u64) -> u64 {
    conn.queries += 1;
    id * 100
}

/// Generic impls and functions (an entry per instantiation), `impl Trait`
/// arguments and `&mut` arguments, with their companions.
#[tokio::test]
async fn every_kind_of_function_is_cached_with_its_companions() {
    for (cache, _server) in each_backend().await {
        let backend = cache.backend_name();
        let store = Store::<Apples> {
            cache: cache.clone(),
            kind: std::marker::PhantomData,
        };
        assert_eq!(store.name(1).await, "apples 1");
        assert_eq!(store.name_uncached(1).await, "apples 1");
        assert_eq!(store.label_key(2).key(), "label:2");

        assert_eq!(parsed::<u32>(&cache, "7").await, Some(7));
        assert_eq!(parsed::<f64>(&cache, "7").await, Some(7.0));
        assert_eq!(parsed_key::<u32>(&cache, "7").key(), "parsed:7");

        assert_eq!(shown(&cache, 5).await, "<5>");
        assert_eq!(shown(&cache, "x").await, "<x>");
        assert_eq!(shown_key(&cache, 5).key(), "shown:5");

        let mut conn = Connection { queries: 0 };
        assert_eq!(rows(&cache, &mut conn, 1).await, 10);
        assert_eq!(rows(&cache, &mut conn, 1).await, 10);
        assert_eq!(locked_rows(&cache, &mut conn, 1).await, 100);
        assert_eq!(locked_rows(&cache, &mut conn, 1).await, 100);
        assert_eq!(conn.queries, 2, "{backend}: &mut arguments cached");
        rows_uncached(&cache, &mut conn, 1).await;
        assert_eq!(conn.queries, 3);
    }
}

/// An swr method of a trait impl refreshes in the background, through the
/// trait (its refresh lives in an inherent impl).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_swr_method_of_a_trait_impl_refreshes_in_the_background() {
    let clock = crate::support::ManualClock::default();
    let server = crate::support::RedisServer::start();
    let builder = Cache::builder()
        .clock(clock.clone())
        .command_timeout(std::time::Duration::from_secs(5));
    let caches = [
        builder.clone().memory(),
        builder.connect(&server.url()).await.unwrap(),
    ];
    for cache in caches {
        let backend = cache.backend_name();
        let books = Books {
            cache: cache.clone(),
            source: Source::default(),
            lists: Arc::default(),
        };
        assert_eq!(books.shelf("a").await, vec![0]);
        books.source.version.store(1, SeqCst);
        clock.advance(std::time::Duration::from_secs(61)); // past the TTL
        assert_eq!(books.shelf("a").await, vec![0], "{backend}: stale, at once");
        cache.refreshes_settled().await;
        assert_eq!(cache.stats().refreshes, 1, "{backend}: one refresh");
        assert_eq!(books.shelf("a").await, vec![1], "{backend}: refreshed");
        assert_eq!(books.lists.load(SeqCst), 2, "{backend}");
    }
}
