//! The mistakes a new user makes that used to read stale data silently,
//! each now impossible by design (the compile errors are in
//! `cache-macros/tests/ui`; the loud warnings in `tests/loud.rs`): swapped
//! arguments in `calls`, tags spelled two ways, and "not found" cached for
//! the full TTL by a `Result<Option<T>>` read.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use cachette::{cached, cached_impl, invalidates, names, Cache};

struct Catalog {
    cache: Cache,
    reads: AtomicU64,
    /// The "database": the price of (tenant, sku), and rows by id.
    prices: std::sync::Mutex<Vec<(String, String, u64)>>,
    rows: std::sync::Mutex<Vec<(u64, String)>>,
}

names! {
    /// Every product of one category, of one tenant.
    pub tag CategoryTag = "category:<tenant>:<category>";
    /// One row, by id: carried by its reads that keep "not found", so that
    /// a create can bust them once the id is known.
    pub tag RowTag = "row:<id>";
    /// The by-id read's key.
    pub key RowKey = "row:<id>";
}

#[cached_impl(cache = self.cache)]
impl Catalog {
    #[cached(key = "price:<tenant>:<sku>", ttl = 600)]
    async fn price(&self, tenant: &str, sku: &str) -> u64 {
        self.reads.fetch_add(1, SeqCst);
        let prices = self.prices.lock().unwrap();
        prices
            .iter()
            .find(|(t, s, _)| t == tenant && s == sku)
            .map_or(0, |p| p.2)
    }

    /// The parameters in the other order than `price`'s, and the call
    /// written in that order too: named arguments go by name, so the bust
    /// still reaches `price(tenant, sku)` (written `self.price(sku, tenant)`,
    /// plain variables in the wrong order, it is a compile error).
    #[invalidates(calls = [self.price(sku = sku, tenant = tenant)])]
    async fn set_price(&self, sku: &str, tenant: &str, price: u64) {
        let mut prices = self.prices.lock().unwrap();
        prices.retain(|(t, s, _)| !(t == tenant && s == sku));
        prices.push((tenant.to_string(), sku.to_string(), price));
    }

    /// The same, named explicitly from other variables.
    #[invalidates(calls = [self.price(sku = &row.1, tenant = &row.0)])]
    async fn set_row_price(&self, row: (String, String), price: u64) {
        let mut prices = self.prices.lock().unwrap();
        prices.retain(|(t, s, _)| !(*t == row.0 && *s == row.1));
        prices.push((row.0.clone(), row.1.clone(), price));
    }

    #[cached(key = "listing:<tenant>:<category>", ttl = 600, tags = [CategoryTag { tenant, category }])]
    async fn listing(&self, tenant: &str, category: &str) -> Vec<u64> {
        self.reads.fetch_add(1, SeqCst);
        let _ = (tenant, category);
        vec![1, 2]
    }

    #[invalidates(tags = [CategoryTag { tenant, category }])]
    async fn recategorize(&self, tenant: &str, category: &str) {}

    /// By id: "not found" is not kept by default.
    #[cached(key = "row:<id>", ttl = 600)]
    async fn row(&self, id: u64) -> Result<Option<String>, String> {
        self.reads.fetch_add(1, SeqCst);
        let rows = self.rows.lock().unwrap();
        Ok(rows.iter().find(|r| r.0 == id).map(|r| r.1.clone()))
    }

    /// The same read with "not found" kept, for `none_ttl`.
    #[cached(key = "row_nt:<id>", ttl = 600, none_ttl = "10m", tags = [RowTag { id }])]
    async fn row_none_ttl(&self, id: u64) -> Result<Option<String>, String> {
        self.reads.fetch_add(1, SeqCst);
        let rows = self.rows.lock().unwrap();
        Ok(rows.iter().find(|r| r.0 == id).map(|r| r.1.clone()))
    }

    /// And with `cache_none`.
    #[cached(key = "row_cn:<id>", ttl = 600, cache_none = true, tags = [RowTag { id }])]
    async fn row_cache_none(&self, id: u64) -> Result<Option<String>, String> {
        self.reads.fetch_add(1, SeqCst);
        let rows = self.rows.lock().unwrap();
        Ok(rows.iter().find(|r| r.0 == id).map(|r| r.1.clone()))
    }

    /// A create: the id is known only once inserted. The reads that keep
    /// "not found" are busted through the tag derived from the result.
    #[invalidates(tags_from = |id: &u64| [RowTag { id }.to_string()])]
    async fn create(&self, name: &str) -> Result<u64, String> {
        let mut rows = self.rows.lock().unwrap();
        let id = rows.len() as u64 + 1;
        rows.push((id, name.to_string()));
        Ok(id)
    }
}

#[cached_impl(cache = self.cache)]
impl Catalog {
    /// A delete by name: only the result knows the id, whose by-id entry
    /// it busts through `keys_from` (a declared key, so that a key cannot
    /// be given where a tag is meant).
    #[invalidates(keys_from = |id: &u64| [RowKey { id: *id }])]
    async fn delete_named(&self, name: &str) -> Result<u64, String> {
        let mut rows = self.rows.lock().unwrap();
        let at = rows.iter().position(|r| r.1 == name).ok_or("no such row")?;
        Ok(rows.remove(at).0)
    }
}

fn catalog() -> Catalog {
    Catalog {
        cache: Cache::memory(),
        reads: AtomicU64::new(0),
        prices: Default::default(),
        rows: Default::default(),
    }
}

/// `calls = [self.price(sku = sku, tenant = tenant)]` against
/// `price(&self, tenant, sku)`: taken positionally, two `&str` arguments in
/// the other order would have busted `price:x:acme`, leaving `price:acme:x`
/// stale.
#[tokio::test]
async fn calls_take_arguments_by_name_so_a_swapped_order_busts_the_right_entry() {
    let c = catalog();
    c.set_price("x", "acme", 10).await;
    assert_eq!(c.price("acme", "x").await, 10);
    c.set_price("x", "acme", 20).await;
    assert_eq!(
        c.price("acme", "x").await,
        20,
        "the swapped call busted another entry"
    );
    c.set_row_price(("acme".into(), "x".into()), 30).await;
    assert_eq!(c.price("acme", "x").await, 30);
    assert_eq!(c.reads.load(SeqCst), 3);
}

/// One declared tag on both sides: they cannot be spelled two ways.
#[tokio::test]
async fn a_declared_tag_is_the_same_for_the_reader_and_the_writer() {
    let c = catalog();
    c.listing("acme", "tools").await;
    c.listing("acme", "tools").await;
    assert_eq!(c.reads.load(SeqCst), 1);
    c.recategorize("acme", "tools").await;
    c.listing("acme", "tools").await;
    assert_eq!(
        c.reads.load(SeqCst),
        2,
        "the writer's tag reached the reader's entry"
    );
    assert_eq!(
        CategoryTag {
            tenant: "acme",
            category: "a:b"
        }
        .to_string(),
        cachette::tag!("category:<t>:<c>", t = "acme", c = "a:b")
    );
}

/// `Result<Option<T>, E>` keeps only `Ok(Some(_))`, like `Option<T>`: a
/// create that does not bust the by-id key leaves nothing stale.
#[tokio::test]
async fn not_found_is_not_cached_by_default_for_result_of_option() {
    let c = catalog();
    assert_eq!(c.row(1).await, Ok(None));
    c.rows.lock().unwrap().push((1, "first".into())); // an INSERT that busts nothing
    assert_eq!(
        c.row(1).await,
        Ok(Some("first".into())),
        "Ok(None) was served from the cache"
    );
    assert_eq!(c.row(1).await, Ok(Some("first".into())));
    assert_eq!(c.reads.load(SeqCst), 2, "Ok(Some) is cached");
}

/// `none_ttl` and `cache_none` keep "not found" on `Result<Option<T>>`, and
/// a create busts the new row's key through the tag derived from its id.
#[tokio::test]
async fn none_ttl_and_cache_none_keep_not_found_and_a_create_busts_it() {
    let c = catalog();
    assert_eq!(c.row_none_ttl(1).await, Ok(None));
    assert_eq!(c.row_none_ttl(1).await, Ok(None));
    assert_eq!(c.row_cache_none(1).await, Ok(None));
    assert_eq!(c.row_cache_none(1).await, Ok(None));
    assert_eq!(c.reads.load(SeqCst), 2, "None kept by both");
    assert_eq!(c.create("first").await, Ok(1));
    assert_eq!(
        c.row_none_ttl(1).await,
        Ok(Some("first".into())),
        "the create busted it"
    );
    assert_eq!(c.row_cache_none(1).await, Ok(Some("first".into())));
    assert_eq!(c.reads.load(SeqCst), 4);
}

/// A connection, or a transaction: what a generic executor is given.
struct Conn {
    reads: u64,
}

/// Stands for `impl sqlx::Executor`: a pool by value, or `&mut *tx`.
trait Executor {
    fn read(self, id: u64) -> u64;
}

impl Executor for &mut Conn {
    fn read(self, id: u64) -> u64 {
        self.reads += 1;
        id
    }
}

impl Executor for &Catalog {
    fn read(self, id: u64) -> u64 {
        self.reads.fetch_add(1, SeqCst);
        id
    }
}

#[cached(key = "exec:<id>", ttl = 600, cache = cache, unkeyed = [exec])]
async fn through(cache: &Cache, exec: impl Executor, id: u64) -> u64 {
    exec.read(id)
}

#[cached(key = "exec_conn:<id>", ttl = 600, cache = cache, not_a_transaction = [exec])]
async fn through_conn<E: Executor>(cache: &Cache, exec: E, id: u64) -> u64 {
    exec.read(id)
}

/// A generic executor given a `&mut` (perhaps `&mut *tx`, in a
/// transaction that will roll back) stores nothing, and says so once; one
/// declared `not_a_transaction` stores, and a shared one always did (each
/// instantiation of a generic function has entries of its own).
#[tokio::test]
async fn a_generic_argument_given_a_mut_stores_nothing() {
    let c = catalog();
    let mut conn = Conn { reads: 0 };
    through(&c.cache, &mut conn, 1).await;
    through(&c.cache, &mut conn, 1).await;
    assert_eq!(conn.reads, 2, "read through a `&mut`: not stored");
    through(&c.cache, &c, 2).await;
    through(&c.cache, &c, 2).await;
    assert_eq!(
        c.reads.load(SeqCst),
        1,
        "through a shared reference: stored"
    );
    // The warning it gives once is checked in `tests/loud.rs`.
    through_conn(&c.cache, &mut conn, 3).await;
    through_conn(&c.cache, &mut conn, 3).await;
    assert_eq!(conn.reads, 3, "declared not a transaction: stored");
}

#[cached(key = "follows:<a>:<b>", ttl = 600, cache = cache)]
async fn follows(cache: &Cache, a: u64, b: u64) -> u64 {
    let _ = (a, b);
    FOLLOW_READS.fetch_add(1, SeqCst)
}

static FOLLOW_READS: AtomicU64 = AtomicU64::new(0);

/// Both directions, named: `follows(cache, b, a)` written with plain
/// variables would have meant `(a, b)` by name and `(b, a)` by position, so
/// it does not compile; named, it busts `(b, a)`.
#[invalidates(calls = [follows(cache, a, b), follows(cache = cache, a = b, b = a)])]
async fn unfollow(cache: &Cache, a: u64, b: u64) {}

#[tokio::test]
async fn a_symmetric_bust_names_its_arguments_and_reaches_both_entries() {
    let cache = Cache::memory();
    let (ab, ba) = (follows(&cache, 1, 2).await, follows(&cache, 2, 1).await);
    unfollow(&cache, 1, 2).await;
    assert_ne!(follows(&cache, 1, 2).await, ab);
    assert_ne!(
        follows(&cache, 2, 1).await,
        ba,
        "the (b, a) entry was busted"
    );
}

/// An alias of a `&mut`, and a type parameter of the impl: neither is
/// spelled `&mut`, both are checked when called.
type ConnRef<'a> = &'a mut Conn;

#[cached(key = "alias:<id>", ttl = 600, cache = cache, unkeyed = [conn])]
async fn through_alias(cache: &Cache, conn: ConnRef<'_>, id: u64) -> u64 {
    conn.reads += 1;
    id
}

struct Reader<E> {
    cache: Cache,
    _e: std::marker::PhantomData<E>,
}

#[cached_impl(cache = self.cache)]
impl<E: Executor + Send> Reader<E> {
    #[cached(key = "impl_e:<id>", ttl = 600, unkeyed = [exec])]
    async fn read(&self, exec: E, id: u64) -> u64 {
        exec.read(id)
    }
}

#[tokio::test]
async fn a_mut_behind_an_alias_or_an_impl_type_parameter_stores_nothing() {
    let cache = Cache::memory();
    let mut conn = Conn { reads: 0 };
    through_alias(&cache, &mut conn, 1).await;
    through_alias(&cache, &mut conn, 1).await;
    assert_eq!(conn.reads, 2, "read through an alias of `&mut`: not stored");
    let reader = Reader::<&mut Conn> {
        cache: cache.clone(),
        _e: std::marker::PhantomData,
    };
    reader.read(&mut conn, 2).await;
    reader.read(&mut conn, 2).await;
    assert_eq!(
        conn.reads, 4,
        "read through an impl's type parameter given `&mut`: not stored"
    );
}

type Maybe<T> = Option<T>;

/// A raw identifier as a name, and an alias of `Option` inside `Result`
/// with `cache_none`: both compile and cache.
#[cached(key = "raw:<id>", ttl = 600, cache = cache, cache_none = true)]
async fn r#match(cache: &Cache, id: u64) -> Result<Maybe<u64>, String> {
    FOLLOW_READS.fetch_add(1, SeqCst);
    Ok((id > 1).then_some(id))
}

#[invalidates(calls = [r#match(cache, id)])]
async fn rematch(cache: &Cache, id: u64) {}

#[tokio::test]
async fn raw_names_and_aliases_of_option_are_accepted() {
    let cache = Cache::memory();
    assert_eq!(r#match(&cache, 1).await, Ok(None));
    assert_eq!(r#match(&cache, 1).await, Ok(None));
    assert_eq!(cache.stats().hits, 1, "`Ok(None)` kept with `cache_none`");
    rematch(&cache, 1).await;
    r#match(&cache, 1).await.unwrap();
    assert_eq!(cache.stats().misses, 2);
}

/// The "database" of the stampede test: how many lookups ran, and a gate
/// the first one waits at until every other caller has joined its flight.
struct Lookups {
    runs: AtomicU64,
    gate: tokio::sync::Semaphore,
}

#[cached(key = "missing:<id>", ttl = 600, cache = cache, unkeyed = [db])]
async fn missing(cache: &Cache, db: &Lookups, id: u64) -> Result<Option<u64>, String> {
    db.runs.fetch_add(1, SeqCst);
    let _permit = db.gate.acquire().await.unwrap();
    let _ = id;
    Ok(None)
}

#[cached(key = "missing_opt:<id>", ttl = 600, cache = cache, unkeyed = [db])]
async fn missing_opt(cache: &Cache, db: &Lookups, id: u64) -> Option<u64> {
    db.runs.fetch_add(1, SeqCst);
    let _permit = db.gate.acquire().await.unwrap();
    let _ = id;
    None
}

/// I8 for "not found": it is not stored, yet concurrent callers of one key
/// do not each run the body. The callers that join a flight after its body
/// started (all seven here: the first caller is inside its body when they
/// come) may have begun after a create, so they take nothing from it, and
/// follow one more flight together, joined before its body: they take its
/// `None`, having read the versions it read (no bust in between). Twice at
/// most, then, for any number of callers.
#[tokio::test]
async fn concurrent_misses_of_a_missing_row_run_the_body_at_most_twice() {
    for (cache, _server) in crate::support::each_backend().await {
        for option in [false, true] {
            let db = std::sync::Arc::new(Lookups {
                runs: AtomicU64::new(0),
                gate: tokio::sync::Semaphore::new(0),
            });
            let before = cache.stats().coalesced;
            let callers: Vec<_> = (0..8)
                .map(|_| {
                    let (cache, db) = (cache.clone(), db.clone());
                    tokio::spawn(async move {
                        if option {
                            missing_opt(&cache, &db, 1).await.is_none()
                        } else {
                            missing(&cache, &db, 1).await == Ok(None)
                        }
                    })
                })
                .collect();
            // Released once the seven others follow the first one's flight.
            while cache.stats().coalesced - before < 7 {
                tokio::task::yield_now().await;
            }
            db.gate.add_permits(100);
            for c in callers {
                assert!(c.await.unwrap());
            }
            let runs = db.runs.load(SeqCst);
            assert!(
                runs <= 2,
                "{} (option: {option}): the body ran {runs} times for 8 callers",
                cache.backend_name()
            );
            // Not stored: the next call runs it again.
            if option {
                missing_opt(&cache, &db, 1).await;
            } else {
                missing(&cache, &db, 1).await.unwrap();
            }
            assert_eq!(db.runs.load(SeqCst), runs + 1);
        }
    }
}

struct Rows {
    row: std::sync::Mutex<Option<u64>>,
    gate: tokio::sync::Semaphore,
    runs: AtomicU64,
}

/// Reads the row, then waits at the gate (the first caller only: later
/// ones find it open).
#[cached(key = "created:<id>", ttl = 600, cache = cache, unkeyed = [db])]
async fn created(cache: &Cache, db: &Rows, id: u64) -> Result<Option<u64>, String> {
    let _ = id;
    let row = *db.row.lock().unwrap();
    db.runs.fetch_add(1, SeqCst);
    let _permit = db.gate.acquire().await.unwrap();
    Ok(row)
}

#[invalidates(calls = [created(cache, db, id)])]
async fn create_row(cache: &Cache, db: &Rows, id: u64) {
    *db.row.lock().unwrap() = Some(id);
}

/// I1 with the hand-off: the leader read "not found", then a create
/// committed and busted while it ran; the followers, whose reads of the
/// versions see the bust, do not take its `None`: each reads the new row.
#[tokio::test]
async fn a_bust_during_the_flight_is_not_handed_a_stale_not_found() {
    for (cache, _server) in crate::support::each_backend().await {
        let db = std::sync::Arc::new(Rows {
            row: std::sync::Mutex::new(None),
            gate: tokio::sync::Semaphore::new(0),
            runs: AtomicU64::new(0),
        });
        let before = cache.stats().coalesced;
        let leader = {
            let (cache, db) = (cache.clone(), db.clone());
            tokio::spawn(async move { created(&cache, &db, 7).await })
        };
        while db.runs.load(SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let followers: Vec<_> = (0..4)
            .map(|_| {
                let (cache, db) = (cache.clone(), db.clone());
                tokio::spawn(async move { created(&cache, &db, 7).await })
            })
            .collect();
        while cache.stats().coalesced - before < 4 {
            tokio::task::yield_now().await;
        }
        create_row(&cache, &db, 7).await; // returned: every read from now on sees the row
        db.gate.add_permits(100);
        assert_eq!(
            leader.await.unwrap(),
            Ok(None),
            "the leader read before the create"
        );
        for f in followers {
            assert_eq!(
                f.await.unwrap(),
                Ok(Some(7)),
                "{}: a follower was handed the leader's stale None",
                cache.backend_name()
            );
        }
    }
}

#[invalidates(tags = ["rows"], cache = cache)]
async fn insert_row(cache: &Cache, db: &Rows, id: u64) {
    *db.row.lock().unwrap() = Some(id);
}

/// I1 with the hand-off, and a create that busts none of the by-id read's
/// names (its id is the INSERT's): a caller that begins after the create
/// returned joins a flight that read "not found" before it, and must not
/// take that answer. It reads the new row.
#[tokio::test]
async fn a_caller_after_a_create_is_not_handed_an_older_not_found() {
    for (cache, _server) in crate::support::each_backend().await {
        let db = std::sync::Arc::new(Rows {
            row: std::sync::Mutex::new(None),
            gate: tokio::sync::Semaphore::new(0),
            runs: AtomicU64::new(0),
        });
        let before = cache.stats().coalesced;
        let leader = {
            let (cache, db) = (cache.clone(), db.clone());
            tokio::spawn(async move { created(&cache, &db, 8).await })
        };
        while db.runs.load(SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        insert_row(&cache, &db, 8).await; // returned: the row exists
        let after = {
            let (cache, db) = (cache.clone(), db.clone());
            tokio::spawn(async move { created(&cache, &db, 8).await })
        };
        while cache.stats().coalesced - before < 1 {
            tokio::task::yield_now().await;
        }
        db.gate.add_permits(100);
        assert_eq!(
            leader.await.unwrap(),
            Ok(None),
            "the leader read before the create"
        );
        assert_eq!(
            after.await.unwrap(),
            Ok(Some(8)),
            "{}: a caller that began after the create was handed the older not-found",
            cache.backend_name()
        );
    }
}

/// A write whose result alone knows the id busts the by-id key through
/// `keys_from`.
#[tokio::test]
async fn keys_from_busts_the_key_the_result_names() {
    let c = catalog();
    c.rows.lock().unwrap().push((1, "first".into()));
    assert_eq!(c.row(1).await, Ok(Some("first".into())));
    assert_eq!(c.row(1).await, Ok(Some("first".into())));
    assert_eq!(c.reads.load(SeqCst), 1);
    assert_eq!(c.delete_named("first").await, Ok(1));
    assert_eq!(c.row(1).await, Ok(None), "the deleted row was served");
}
