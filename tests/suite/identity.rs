//! I5 and I11: every way of naming a key or tag names what the attributes
//! render, shortened names never meet unshortened ones, and every function
//! (every instantiation of a generic one) has entries of its own under a
//! shared key.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use cachette::{cached, escape, invalidates, Cache, KeyBuilder};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::support::each_backend;

static TAGGED_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(cache = cache, key = "k:<key>", ttl = 60, tags = ["org:<org>"])]
async fn tagged(cache: &Cache, key: &str, org: &str) -> String {
    TAGGED_RUNS.fetch_add(1, SeqCst);
    format!("{key}@{org}")
}

#[invalidates(cache = cache, keys = ["k:<key>"])]
async fn bust_key(cache: &Cache, key: &str) {}

#[invalidates(cache = cache, tags = ["org:<org>"])]
async fn bust_org(cache: &Cache, org: &str) {}

/// Text of about `len` bytes drawn from characters that escape in every
/// way: unreserved, reserved, `%`, `~`, braces, control, multibyte.
fn random_text(rng: &mut fastrand::Rng, len: std::ops::Range<usize>) -> String {
    let len = rng.usize(len);
    const ALPHABET: &[char] = &[
        'a', 'Z', '0', '_', '.', '-', ':', '%', '~', '{', '}', '<', '>', ' ', '*', '\0', '\n', 'é',
        '字', '😀',
    ];
    let mut out = String::new();
    while out.len() < len {
        out.push(ALPHABET[rng.usize(..ALPHABET.len())]);
    }
    out
}

/// Whether the next call of `tagged` runs its body.
async fn tagged_misses(cache: &Cache, key: &str, org: &str) -> bool {
    let before = TAGGED_RUNS.load(SeqCst);
    assert_eq!(tagged(cache, key, org).await, format!("{key}@{org}"));
    TAGGED_RUNS.load(SeqCst) > before
}

/// The documented programmatic forms (`KeyBuilder`, `format!` with
/// `escape`, `get_or_fetch`) and the attributes name the same key or tag
/// at every length, shortened or not: each busts what the other filled.
#[tokio::test]
async fn programmatic_names_and_rendered_names_bust_each_other_at_every_length() {
    for (cache, _server) in each_backend().await {
        let mut rng = fastrand::Rng::with_seed(0x11);
        for case in 0..120 {
            let key = random_text(&mut rng, 0..601);
            let org = random_text(&mut rng, 0..601);
            let what = format!("case {case} ({} and {} bytes)", key.len(), org.len());
            let _ = tagged_misses(&cache, &key, &org).await;
            assert!(!tagged_misses(&cache, &key, &org).await, "{what}: cached");

            // A tag written by hand with `escape`, as the guide shows.
            cache
                .invalidate_tags([format!("org:{}", escape(&org))])
                .await
                .unwrap();
            assert!(
                tagged_misses(&cache, &key, &org).await,
                "{what}: escape tag"
            );

            // A key rendered with `KeyBuilder`.
            let built = KeyBuilder::new("k:<key>").arg("key", &key).build().unwrap();
            cache.invalidate_keys([built]).await.unwrap();
            assert!(
                tagged_misses(&cache, &key, &org).await,
                "{what}: KeyBuilder"
            );

            // A fill through `get_or_fetch` with a formatted key and tag is
            // busted by the attributes, whose templates render the same.
            let formatted = format!("k:{}", escape(&key));
            let tag = format!("org:{}", escape(&org));
            let ttl = Duration::from_secs(60);
            let runs = AtomicU64::new(0);
            let fetch = || async {
                runs.fetch_add(1, SeqCst);
                Ok::<_, String>(7u32)
            };
            for bust in 0..3 {
                cache
                    .get_or_fetch(&formatted, &[tag.as_str()], ttl, fetch())
                    .await
                    .unwrap();
                cache
                    .get_or_fetch(&formatted, &[tag.as_str()], ttl, fetch())
                    .await
                    .unwrap();
                let before = runs.load(SeqCst);
                match bust {
                    0 => bust_key(&cache, &key).await,
                    1 => bust_org(&cache, &org).await,
                    _ => cache.invalidate_keys([formatted.as_str()]).await.unwrap(),
                }
                cache
                    .get_or_fetch(&formatted, &[tag.as_str()], ttl, fetch())
                    .await
                    .unwrap();
                assert_eq!(
                    runs.load(SeqCst),
                    before + 1,
                    "{what}: get_or_fetch not busted by form {bust}"
                );
            }
        }
    }
}

static RANGE_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(cache = cache, key = "range:<from>~<to>", ttl = 60)]
async fn range(cache: &Cache, from: &str, to: &str) -> String {
    RANGE_RUNS.fetch_add(1, SeqCst);
    format!("{from}..{to}")
}

/// SHA-256 in hex, as a shortened name once ended.
fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// No argument list renders what a long argument list is shortened to:
/// here `from` is the first bytes of a long rendering and `to` its digest,
/// which is what shortening by "prefix, `~`, digest" would produce.
#[tokio::test]
async fn a_shortened_name_is_never_an_unshortened_one() {
    for (cache, _server) in each_backend().await {
        let long_from = "f".repeat(300);
        let long_to = "t".repeat(300);
        let rendered = format!("range:{long_from}~{long_to}");
        let forged_to = sha256_hex(&rendered);
        let forged_from = &rendered["range:".len()..64];
        let mut rng = fastrand::Rng::with_seed(0x12);
        let mut cases = vec![(forged_from.to_string(), forged_to.clone())];
        // And digests of other long renderings, with prefixes cut anywhere.
        for _ in 0..20 {
            let a = random_text(&mut rng, 150..400);
            let b = random_text(&mut rng, 150..400);
            let full = format!("range:{}~{}", escape(&a), escape(&b));
            range(&cache, &a, &b).await;
            let cut = rng.usize(0..64.min(full.len()));
            let mut cut = cut;
            while !full.is_char_boundary(cut) {
                cut -= 1;
            }
            cases.push((full[..cut].to_string(), sha256_hex(&full)));
        }
        assert_eq!(
            range(&cache, &long_from, &long_to).await,
            format!("{long_from}..{long_to}")
        );
        for (from, to) in cases {
            let before = RANGE_RUNS.load(SeqCst);
            assert_eq!(
                range(&cache, &from, &to).await,
                format!("{from}..{to}"),
                "another argument list's entry was served"
            );
            assert_eq!(RANGE_RUNS.load(SeqCst), before + 1);
        }
    }
}

trait Named: Serialize + DeserializeOwned + Send {
    fn named(id: u64) -> Self;
}

/// Two types with the same JSON shape.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Invoice {
    name: String,
}

impl Named for User {
    fn named(id: u64) -> Self {
        User {
            name: format!("user {id}"),
        }
    }
}

impl Named for Invoice {
    fn named(id: u64) -> Self {
        Invoice {
            name: format!("invoice {id}"),
        }
    }
}

#[cached(cache = cache, ttl = 60)]
async fn load<T: Named>(cache: &Cache, id: u64) -> T {
    T::named(id)
}

#[cached(cache = cache, key = "thing:<id>", ttl = 60)]
async fn thing_name(cache: &Cache, id: u64) -> String {
    format!("name of {id}")
}

#[cached(cache = cache, key = "thing:<id>", ttl = 60)]
async fn thing_label(cache: &Cache, id: u64) -> String {
    format!("label of {id}")
}

#[invalidates(cache = cache, keys = ["thing:<id>"])]
async fn rename_thing(cache: &Cache, id: u64) {}

/// Instantiations of one generic function, and two functions with one key
/// template, never read each other's entries; a key bust still reaches
/// every function under the key.
#[tokio::test]
async fn functions_and_instantiations_have_entries_of_their_own() {
    for (cache, _server) in each_backend().await {
        let backend = cache.backend_name();
        assert_eq!(load::<User>(&cache, 7).await, User::named(7));
        assert_eq!(
            load::<Invoice>(&cache, 7).await,
            Invoice::named(7),
            "{backend}: load::<Invoice> read load::<User>'s entry"
        );
        assert_eq!(load::<User>(&cache, 7).await, User::named(7));
        assert_eq!(load::<Invoice>(&cache, 7).await, Invoice::named(7));

        assert_eq!(thing_name(&cache, 1).await, "name of 1");
        assert_eq!(
            thing_label(&cache, 1).await,
            "label of 1",
            "{backend}: thing_label read thing_name's entry"
        );
        let hits = cache.stats().hits;
        thing_name(&cache, 1).await;
        thing_label(&cache, 1).await;
        assert_eq!(cache.stats().hits, hits + 2, "{backend}: both cached");
        rename_thing(&cache, 1).await;
        let misses = cache.stats().misses;
        thing_name(&cache, 1).await;
        thing_label(&cache, 1).await;
        assert_eq!(
            cache.stats().misses,
            misses + 2,
            "{backend}: the key bust reaches both functions"
        );
    }
}

trait Kind {
    const NAME: &'static str;
}

struct Apples;
struct Pears;

impl Kind for Apples {
    const NAME: &'static str = "apples";
}

impl Kind for Pears {
    const NAME: &'static str = "pears";
}

struct Store<K> {
    cache: Cache,
    kind: std::marker::PhantomData<K>,
}

impl<K: Kind> Store<K> {
    #[cached(cache = self.cache, ttl = 60)]
    async fn count(&self, id: u64) -> String {
        format!("{} {id}", K::NAME)
    }
}

struct Shelf {
    cache: Cache,
}

struct Crate {
    cache: Cache,
}

impl Shelf {
    #[cached(cache = self.cache, ttl = 60)]
    async fn get(&self, id: u64) -> String {
        format!("shelf {id}")
    }
}

impl Crate {
    #[cached(cache = self.cache, ttl = 60)]
    async fn get(&self, id: u64) -> String {
        format!("crate {id}")
    }
}

/// Methods of two impl blocks, and of two instantiations of a generic
/// impl, with default keys, have entries of their own.
#[tokio::test]
async fn methods_of_different_types_have_entries_of_their_own() {
    for (cache, _server) in each_backend().await {
        let apples = Store::<Apples> {
            cache: cache.clone(),
            kind: std::marker::PhantomData,
        };
        let pears = Store::<Pears> {
            cache: cache.clone(),
            kind: std::marker::PhantomData,
        };
        assert_eq!(apples.count(3).await, "apples 3");
        assert_eq!(
            pears.count(3).await,
            "pears 3",
            "Store<Pears> read Store<Apples>'s entry"
        );
        let shelf = Shelf {
            cache: cache.clone(),
        };
        let krate = Crate {
            cache: cache.clone(),
        };
        assert_eq!(shelf.get(1).await, "shelf 1");
        assert_eq!(krate.get(1).await, "crate 1");
        assert_eq!(shelf.get(1).await, "shelf 1");
        assert_eq!(krate.get(1).await, "crate 1");
    }
}

#[cached(cache = cache, key = "nest:<id>", ttl = 60)]
async fn outer(cache: &Cache, id: u64) -> u64 {
    inner(cache, id).await + 1
}

#[cached(cache = cache, key = "nest:<id>", ttl = 60)]
async fn inner(cache: &Cache, id: u64) -> u64 {
    id
}

#[cached(cache = cache, key = "depth:<id>", ttl = 60, unkeyed = [depth])]
async fn recursive(cache: &Cache, id: u64, depth: u32) -> u64 {
    if depth == 0 {
        return id;
    }
    Box::pin(recursive(cache, id, depth - 1)).await + 1
}

#[cached(cache = cache, key = "locked_depth:<id>", ttl = 60, strategy = "lock", lock_wait = "30s", unkeyed = [depth])]
async fn recursive_locked(cache: &Cache, id: u64, depth: u32) -> u64 {
    if depth == 0 {
        return id;
    }
    Box::pin(recursive_locked(cache, id, depth - 1)).await + 1
}

/// I8 without deadlock: a cached call never waits on a flight that it
/// leads itself, whether through another function rendering the same key
/// or through the same function recursing on its own key, nor on its own
/// stampede lock.
#[tokio::test]
async fn a_call_never_waits_on_its_own_flight() {
    for (cache, _server) in each_backend().await {
        let limit = Duration::from_secs(10);
        let nested = tokio::time::timeout(limit, outer(&cache, 4)).await;
        assert_eq!(nested.expect("nested calls deadlocked"), 5);
        let recursed = tokio::time::timeout(limit, recursive(&cache, 4, 3)).await;
        assert_eq!(recursed.expect("a recursive call deadlocked"), 7);
        let locked = tokio::time::timeout(limit, recursive_locked(&cache, 4, 3)).await;
        assert_eq!(locked.expect("a recursive call waited for its own lock"), 7);
    }
}

mod scoped {
    use cachette::{cached, Cache};

    /// Two functions in sibling blocks of one function: same path, same
    /// name and key template, different meaning.
    pub async fn price_then_stock(cache: &Cache) -> (u64, u64) {
        let price = {
            #[cached(cache = cache, key = "sku:<id>", ttl = 60)]
            async fn load(cache: &Cache, id: u64) -> u64 {
                let _ = id;
                1999 // price in cents
            }
            load(cache, 7).await
        };
        let stock = {
            #[cached(cache = cache, key = "sku:<id>", ttl = 60)]
            async fn load(cache: &Cache, id: u64) -> u64 {
                let _ = id;
                3 // units in stock
            }
            load(cache, 7).await
        };
        (price, stock)
    }
}

/// I11 for functions that share a path (sibling blocks, or one macro
/// expanded twice): the hash of their code tells them apart.
#[tokio::test]
async fn functions_of_one_path_in_sibling_blocks_have_entries_of_their_own() {
    for (cache, _server) in each_backend().await {
        assert_eq!(scoped::price_then_stock(&cache).await, (1999, 3));
        assert_eq!(scoped::price_then_stock(&cache).await, (1999, 3));
    }
}

type Spawnable =
    fn(Cache, u64, u32) -> std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send>>;

/// How `spawns_itself` calls itself from a spawned task (through a pointer,
/// so that its future's type does not contain itself).
static AGAIN: std::sync::OnceLock<Spawnable> = std::sync::OnceLock::new();

#[cached(cache = cache, key = "spawned:<id>", ttl = 60, lock_wait = "300ms", strategy = "lock", unkeyed = [depth])]
async fn spawns_itself(cache: &Cache, id: u64, depth: u32) -> u64 {
    if depth == 0 {
        return id;
    }
    // The body awaits a task that calls this function again for the same
    // entry: that call cannot join the flight of the task it waits for.
    let again = AGAIN.get().expect("set by the test");
    tokio::spawn(again(cache.clone(), id, depth - 1))
        .await
        .unwrap()
        + 1
}

/// A follower waits for a flight at most `lock_wait`: a leader whose body
/// awaits a spawned task calling the same function cannot hold it (and
/// itself) forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_waits_for_a_flight_at_most_lock_wait() {
    AGAIN.get_or_init(|| {
        |cache, id, depth| Box::pin(async move { spawns_itself(&cache, id, depth).await })
    });
    for (cache, _server) in each_backend().await {
        let limit = Duration::from_secs(10);
        let done = tokio::time::timeout(limit, spawns_itself(&cache, 5, 1)).await;
        assert_eq!(
            done.expect("a spawned call waited on its parent's flight"),
            6
        );
    }
}
