//! Batch reads under races, cancellations, faults and hostile inputs: the
//! probes of a red-team review, each stating the promise it checks. Those
//! that found a break (a linked caller of an element given "not found", a
//! joiner stranded behind an unpolled gathering, a linked call in a scope
//! served its own busted entry, a gathered call reading through another
//! caller's connection, a follower waiting three times `lock_wait`, two
//! lock-strategy batches of two processes each holding locks the other
//! waited for) now hold.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use cachette::{cached, invalidates, Cache};
use serde::{Deserialize, Serialize};

use crate::support::source::Gate;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RUser {
    id: u64,
    name: String,
}

#[derive(Clone, Default)]
pub struct RDb {
    rows: Arc<Mutex<HashMap<u64, String>>>,
    asked: Arc<Mutex<Vec<Vec<u64>>>>,
    gate: Gate,
    calls: Arc<AtomicU64>,
}

impl RDb {
    fn with(ids: impl IntoIterator<Item = u64>) -> RDb {
        let db = RDb::default();
        for id in ids {
            db.set(id, &format!("user {id}"));
        }
        db
    }
    fn set(&self, id: u64, name: &str) {
        self.rows.lock().unwrap().insert(id, name.to_string());
    }
    fn select_now(&self, ids: &[u64]) -> HashMap<u64, RUser> {
        self.calls.fetch_add(1, SeqCst);
        self.asked.lock().unwrap().push(ids.to_vec());
        let rows = self.rows.lock().unwrap();
        ids.iter()
            .filter_map(|id| {
                rows.get(id).map(|name| {
                    (
                        *id,
                        RUser {
                            id: *id,
                            name: name.clone(),
                        },
                    )
                })
            })
            .collect()
    }
    async fn select(&self, ids: &[u64]) -> Result<HashMap<u64, RUser>, String> {
        let found = self.select_now(ids);
        self.gate.pass().await;
        Ok(found)
    }
    fn asked(&self) -> Vec<Vec<u64>> {
        self.asked.lock().unwrap().clone()
    }
}

#[cached(
    batch = "id in ids",
    key = "ruser:<id>",
    ttl = 300,
    tags = ["rorg:<org>"],
    cache = cache,
    unkeyed = [db],
    one = r_get_user
)]
pub async fn r_get_users(
    cache: &Cache,
    db: &RDb,
    org: &str,
    ids: &[u64],
) -> Result<HashMap<u64, RUser>, String> {
    db.select(ids).await
}

#[invalidates(keys = ["ruser:<id>"], cache = cache)]
async fn r_rename(cache: &Cache, db: &RDb, id: u64, name: &str) -> Result<(), String> {
    db.set(id, name);
    Ok(())
}

/// Polls `fut` exactly once (with the task's waker), leaving it pending.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> bool {
    std::future::poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut *fut).poll(cx).is_ready())).await
}

fn memory() -> Cache {
    crate::support::builder().memory()
}

// ---------------------------------------------------------------------------
// P1. load_one: two concurrent calls of the linked single-key function for
// the SAME element, gathered into one batch call: each must get the user
// (I6: the cache never breaks the function; the body found it).
#[tokio::test]
async fn p1_linked_function_same_element_twice_in_one_gathering() {
    let mut broken = Vec::new();
    for (cache, _b) in crate::support::each_backend().await {
        let db = RDb::with(1..=3);
        let (a, b) = tokio::join!(
            r_get_user(&cache, &db, "acme", 1),
            r_get_user(&cache, &db, "acme", 1)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        println!(
            "{}: a={a:?} b={b:?} asked={:?}",
            cache.backend_name(),
            db.asked()
        );
        assert_eq!(a.as_ref().map(|u| u.id), Some(1), "leader");
        if b.is_none() {
            broken.push(cache.backend_name());
        }
    }
    assert!(
        broken.is_empty(),
        "a joiner of the same element got `not found` for a user that exists on {broken:?}"
    );
}

/// P1b. Two joiners of the same element (leader another element).
#[tokio::test]
async fn p1b_two_joiners_same_element() {
    let cache = memory();
    let db = RDb::with(1..=3);
    let (a, b, c) = tokio::join!(
        r_get_user(&cache, &db, "acme", 2),
        r_get_user(&cache, &db, "acme", 1),
        r_get_user(&cache, &db, "acme", 1)
    );
    println!("a={a:?} b={b:?} c={c:?} asked={:?}", db.asked());
    // The second call of 1 makes a batch call of its own, which the
    // gathering's follows for 1: each element's body runs once.
    let mut runs: Vec<u64> = db.asked().into_iter().flatten().collect();
    runs.sort();
    assert_eq!(runs, [1, 2], "{:?}", db.asked());
    assert!(a.unwrap().is_some());
    assert!(b.unwrap().is_some(), "first joiner of 1");
    assert!(c.unwrap().is_some(), "second joiner of 1 got None");
}

// ---------------------------------------------------------------------------
// P2. load_one: a joiner waits for its gathering's leader without any
// deadline. A leader future polled once and then not polled (held in a
// select, an unpolled FuturesUnordered, a task on a runtime that went idle)
// strands every later call of the same group forever (I13/I8: every wait
// has a deadline; a follower waits at most lock_wait).
#[tokio::test]
async fn p2_joiner_of_an_unpolled_gathering_hangs() {
    let cache = memory();
    let db = RDb::with(1..=3);
    let mut leader = Box::pin(r_get_user(&cache, &db, "acme", 1));
    assert!(
        !poll_once(&mut leader).await,
        "the leader opens a gathering and yields"
    );
    let started = Instant::now();
    let joined =
        tokio::time::timeout(Duration::from_secs(8), r_get_user(&cache, &db, "acme", 2)).await;
    println!("joiner after {:?}: {joined:?}", started.elapsed());
    assert!(
        joined.is_ok(),
        "a call of the linked function for another element hung {:?} behind an unpolled gathering",
        started.elapsed()
    );
    drop(leader);
}

/// P2b (HELD: tokio runs the leader through its ticks before block_on
/// returns, so the window is not reachable this way). The same with a task
/// on a current-thread runtime that went idle
/// (not dropped): I13's "a runtime that may stop being driven".
#[test]
fn p2b_joiner_hangs_behind_an_idle_runtime() {
    let cache = memory();
    let db = RDb::with(1..=3);
    let idle = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    {
        let (cache, db) = (cache.clone(), db.clone());
        idle.block_on(async move {
            let (led, leading) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(async move {
                let mut call = Box::pin(r_get_user(&cache, &db, "acme", 1));
                // The task leads a gathering (first poll), then goes on.
                let _ = poll_once(&mut call).await;
                let _ = led.send(());
                let _ = call.await;
            });
            // Return as soon as the task has led: the runtime goes idle.
            let _ = leading.await;
        });
    }
    println!("after the idle runtime's block_on: asked={:?}", db.asked());
    // `idle` is alive but nobody drives it.
    let other = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let out = other.block_on(async {
        tokio::time::timeout(Duration::from_secs(8), r_get_user(&cache, &db, "acme", 2)).await
    });
    println!("after {:?}: {out:?}", started.elapsed());
    assert!(
        out.is_ok(),
        "hung behind a gathering led on an idle runtime"
    );
    drop(idle);
}

// ---------------------------------------------------------------------------
// P3. Deferred scope: "an entry that a held bust names is not served inside
// the scope either, so the scope reads its own writes". A linked call made
// inside the scope that joins a gathering led outside it is served the old
// entry.
#[tokio::test]
async fn p3_deferred_scope_joiner_reads_its_own_write() {
    let mut broken = Vec::new();
    for (cache, _b) in crate::support::each_backend().await {
        let db = RDb::with(1..=3);
        r_get_users(&cache, &db, "acme", &[1, 2]).await.unwrap();
        // A request outside any scope reads user 2 (it leads a gathering),
        // while this task's scope renames user 1 and reads it back.
        let outside = r_get_user(&cache, &db, "acme", 2);
        let in_scope = cachette::deferred(async {
            r_rename(&cache, &db, 1, "renamed in scope").await.unwrap();
            r_get_user(&cache, &db, "acme", 1).await.unwrap()
        });
        let (outside, inside) = tokio::join!(outside, in_scope);
        println!("outside the scope: {outside:?}");
        println!(
            "{}: inside the scope read {inside:?}; asked={:?}",
            cache.backend_name(),
            db.asked()
        );
        if inside.map(|u| u.name).as_deref() != Some("renamed in scope") {
            broken.push(cache.backend_name());
        }
    }
    assert!(
        broken.is_empty(),
        "the scope did not read its own write on {broken:?}"
    );
}

// ---------------------------------------------------------------------------
// P4. `&mut` argument (a connection, perhaps a transaction): results read
// through it are not stored "since a transaction that rolls back would leave
// a row that never committed". Gathered calls of the linked function with
// different connections all get the leader's connection's reads.
pub struct Conn {
    /// Rows this connection's open transaction wrote (not committed).
    overlay: HashMap<u64, String>,
}

#[cached(
    batch = "id in ids",
    key = "txuser:<id>",
    ttl = 300,
    cache = cache,
    unkeyed = [db],
    not_a_transaction = [conn],
    one = tx_get_user
)]
pub async fn tx_get_users(
    cache: &Cache,
    db: &RDb,
    conn: &mut Conn,
    ids: &[u64],
) -> Result<HashMap<u64, RUser>, String> {
    let mut found = db.select(ids).await?;
    for id in ids {
        if let Some(name) = conn.overlay.get(id) {
            found.insert(
                *id,
                RUser {
                    id: *id,
                    name: name.clone(),
                },
            );
        }
    }
    Ok(found)
}

#[tokio::test]
async fn p4_linked_calls_with_another_connection_get_its_uncommitted_rows() {
    let cache = memory();
    let db = RDb::with(1..=3);
    let (mine, theirs) = cachette::deferred(async {
        // Inside the scope, `conn` is an open transaction that wrote row 3.
        let mut in_tx = Conn {
            overlay: HashMap::from([(3, "uncommitted 3".to_string())]),
        };
        let a = tx_get_user(&cache, &db, &mut in_tx, 1);
        // Another request, outside any scope, with its own plain connection.
        let outside = {
            let (cache, db) = (cache.clone(), db.clone());
            tokio::spawn(async move {
                let mut plain = Conn {
                    overlay: HashMap::new(),
                };
                tx_get_user(&cache, &db, &mut plain, 3).await
            })
        };
        let (mine, theirs) = tokio::join!(a, outside);
        (mine, theirs.unwrap())
    })
    .await;
    println!(
        "in scope={mine:?} outside, plain connection={theirs:?} asked={:?}",
        db.asked()
    );
    assert_eq!(
        theirs.unwrap().map(|u| u.name).as_deref(),
        Some("user 3"),
        "a call outside any scope, on a plain connection, returned a row another task's open \
         transaction wrote (a dirty read)"
    );
}

// ---------------------------------------------------------------------------
// P5. A follower waits for a flight at most `lock_wait` (I7/I8). A batch
// follows a hung flight once per round (3 rounds), i.e. 3 x lock_wait.
#[cached(
    batch = "id in ids",
    key = "slow:<id>",
    ttl = 300,
    cache = cache,
    unkeyed = [db],
    strategy = "lock",
    lock_wait = "300ms"
)]
pub async fn slow_users(
    cache: &Cache,
    db: &RDb,
    ids: &[u64],
) -> Result<HashMap<u64, RUser>, String> {
    db.select(ids).await
}

#[tokio::test]
async fn p5_batch_follower_waits_once_lock_wait() {
    let cache = memory();
    let db = RDb::with(1..=3);
    let (reached, release) = db.gate.hold_next(false);
    let hung = {
        let (cache, db) = (cache.clone(), db.clone());
        tokio::spawn(async move { slow_users(&cache, &db, &[1]).await })
    };
    reached.notified().await;
    let started = Instant::now();
    let got = slow_users(&cache, &db, &[1, 2]).await.unwrap();
    let waited = started.elapsed();
    println!(
        "waited {waited:?} for a hung flight (lock_wait 300ms); got {}",
        got.len()
    );
    release.notify_one();
    let _ = hung.await;
    assert!(
        waited < Duration::from_millis(600),
        "a batch waited {waited:?} for a flight, lock_wait is 300ms"
    );
}

// ---------------------------------------------------------------------------
// P6. A leader cancelled mid-body: followers (a batch and linked calls)
// neither hang nor get stale data.
#[tokio::test]
async fn p6_cancelled_leader_mid_body() {
    for (cache, _b) in crate::support::each_backend().await {
        let db = RDb::with(1..=5);
        let (reached, _release) = db.gate.hold_next(false);
        let leader = {
            let (cache, db) = (cache.clone(), db.clone());
            tokio::spawn(async move { r_get_users(&cache, &db, "acme", &[1, 2, 3]).await })
        };
        reached.notified().await;
        // The leader's body read the old row; the rename returns first.
        r_rename(&cache, &db, 3, "renamed").await.unwrap();
        let follower = {
            let (cache, db) = (cache.clone(), db.clone());
            tokio::spawn(async move { r_get_users(&cache, &db, "acme", &[2, 3, 4]).await })
        };
        let linked = {
            let (cache, db) = (cache.clone(), db.clone());
            tokio::spawn(async move { r_get_user(&cache, &db, "acme", 3).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        leader.abort();
        let f = tokio::time::timeout(Duration::from_secs(10), follower)
            .await
            .expect("follower hung");
        let l = tokio::time::timeout(Duration::from_secs(10), linked)
            .await
            .expect("linked hung");
        let f = f.unwrap().unwrap();
        let l = l.unwrap().unwrap();
        println!("{}: follower={f:?} linked={l:?}", cache.backend_name());
        assert_eq!(f[&3].name, "renamed");
        assert_eq!(l.unwrap().name, "renamed");
    }
}

// ---------------------------------------------------------------------------
// P6b. The gathering's leader is cancelled mid-body, or panics: its joiners
// neither hang nor return stale data.
#[tokio::test]
async fn p6b_gathering_leader_cancelled_or_panicking() {
    for panic in [false, true] {
        for (cache, _b) in crate::support::each_backend().await {
            let db = RDb::with(1..=5);
            r_get_users(&cache, &db, "acme", &[1, 2, 3]).await.unwrap();
            r_rename(&cache, &db, 2, "stale soon").await.unwrap();
            let (reached, release) = db.gate.hold_next(panic);
            let leader = {
                let (cache, db) = (cache.clone(), db.clone());
                tokio::spawn(async move { r_get_user(&cache, &db, "acme", 4).await })
            };
            let joiner = {
                let (cache, db) = (cache.clone(), db.clone());
                tokio::spawn(async move { r_get_user(&cache, &db, "acme", 2).await })
            };
            reached.notified().await;
            // The body read row 2 as "stale soon"; it is renamed again.
            r_rename(&cache, &db, 2, "fresh").await.unwrap();
            if panic {
                release.notify_one();
            } else {
                leader.abort();
            }
            let _ = leader.await;
            let got = tokio::time::timeout(Duration::from_secs(10), joiner)
                .await
                .expect("the joiner hung")
                .unwrap()
                .unwrap();
            println!(
                "{} panic={panic}: joiner got {got:?}; asked={:?}",
                cache.backend_name(),
                db.asked()
            );
            // The joiner began before the second rename: either name is
            // allowed for it; a read that begins now must see "fresh".
            let now = r_get_user(&cache, &db, "acme", 2).await.unwrap().unwrap();
            assert_eq!(now.name, "fresh", "{} panic={panic}", cache.backend_name());
        }
    }
}

// ---------------------------------------------------------------------------
// P7. Lock strategy, two processes, overlapping batches taken in opposite
// orders: each holds some locks while waiting for the other's (hold and
// wait). Expected as with single-key calls: holders compute at once, the
// others wait only for them; each element's body runs once (I8).
#[cached(
    batch = "id in ids",
    key = "lk:<id>",
    ttl = 300,
    cache = cache,
    unkeyed = [db],
    strategy = "lock",
    lock_wait = "2s"
)]
pub async fn locked_users(
    cache: &Cache,
    db: &RDb,
    ids: &[u64],
) -> Result<HashMap<u64, RUser>, String> {
    db.select(ids).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p7_lock_strategy_two_processes_opposite_orders() {
    let server = crate::support::RedisServer::start();
    let c1 = crate::support::builder()
        .connect(&server.url())
        .await
        .unwrap();
    let c2 = crate::support::builder()
        .connect(&server.url())
        .await
        .unwrap();
    let mut worst = Duration::ZERO;
    let mut doubled = 0;
    for round in 0..2u64 {
        let db = RDb::with(0..10_000);
        let base = round * 1000;
        let up: Vec<u64> = (base..base + 200).collect();
        let down: Vec<u64> = up.iter().rev().copied().collect();
        let started = Instant::now();
        let (a, b) = tokio::join!(
            {
                let (c, db, up) = (c1.clone(), db.clone(), up.clone());
                tokio::spawn(async move { locked_users(&c, &db, &up).await })
            },
            {
                let (c, db, down) = (c2.clone(), db.clone(), down.clone());
                tokio::spawn(async move { locked_users(&c, &db, &down).await })
            }
        );
        let took = started.elapsed();
        assert_eq!(a.unwrap().unwrap().len(), 200);
        assert_eq!(b.unwrap().unwrap().len(), 200);
        let mut runs = std::collections::BTreeMap::<u64, usize>::new();
        for ids in db.asked() {
            for id in ids {
                *runs.entry(id).or_default() += 1;
            }
        }
        let twice = runs.values().filter(|n| **n > 1).count();
        println!(
            "round {round}: {took:?}, {twice} elements computed twice, bodies {:?}",
            db.asked().iter().map(|v| v.len()).collect::<Vec<_>>()
        );
        worst = worst.max(took);
        doubled += twice;
    }
    println!("stats c1 {:?}", c1.stats());
    assert!(
        worst < Duration::from_millis(1500),
        "two overlapping lock-strategy batches waited {worst:?} (lock_wait 2s): a hold-and-wait cycle; {doubled} elements computed twice"
    );
}

// ---------------------------------------------------------------------------
// P8. Redis freezes mid-batch (after the lookup, during the body), or before
// it: the call returns the body's values within a bounded time, and nothing
// stale is served afterwards (I6, I1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p8_redis_paused_mid_batch() {
    let server = crate::support::RedisServer::start();
    let cache = crate::support::impatient(Duration::from_millis(300))
        .connect(&server.url())
        .await
        .unwrap();
    let db = RDb::with(1..=300);
    let ids: Vec<u64> = (1..=300).collect();
    r_get_users(&cache, &db, "acme", &ids[..100]).await.unwrap();
    // Paused while the body runs: captures done, the fills fail.
    let (reached, release) = db.gate.hold_next(false);
    let call = {
        let (cache, db, ids) = (cache.clone(), db.clone(), ids.clone());
        tokio::spawn(async move {
            let t = Instant::now();
            let got = r_get_users(&cache, &db, "acme", &ids).await;
            (t.elapsed(), got)
        })
    };
    reached.notified().await;
    server.pause();
    db.set(150, "changed while paused");
    release.notify_one();
    let (took, got) = tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .expect("hung")
        .unwrap();
    let got = got.unwrap();
    println!(
        "paused mid-body: {took:?}, {} returned; stats {:?}",
        got.len(),
        cache.stats()
    );
    assert_eq!(got.len(), 300);
    // Paused before the call: fails open.
    let t = Instant::now();
    let got = tokio::time::timeout(
        Duration::from_secs(20),
        r_get_users(&cache, &db, "acme", &ids),
    )
    .await
    .expect("hung")
    .unwrap();
    println!("paused before: {:?}, {} returned", t.elapsed(), got.len());
    assert_eq!(got[&150].name, "changed while paused");
    server.resume();
    // A bust that returns after the resume, then a read.
    r_rename(&cache, &db, 7, "seven").await.unwrap();
    crate::support::delivered(&cache).await;
    tokio::time::sleep(Duration::from_millis(600)).await; // the breaker's cool-down
    let got = r_get_users(&cache, &db, "acme", &ids).await.unwrap();
    assert_eq!(got[&7].name, "seven");
    assert_eq!(got[&150].name, "changed while paused");
    assert!(
        took < Duration::from_secs(5),
        "the paused call took {took:?}"
    );
}

// ---------------------------------------------------------------------------
// P9. A bust that could not be delivered (Redis frozen) stays pending: until
// it is, the batch does not serve the entries it names (I9).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p9_pending_bust_blocks_its_elements() {
    let server = crate::support::RedisServer::start();
    let cache = crate::support::impatient(Duration::from_millis(200))
        .connect(&server.url())
        .await
        .unwrap();
    let db = RDb::with(1..=5);
    r_get_users(&cache, &db, "acme", &[1, 2, 3, 4, 5])
        .await
        .unwrap();
    server.pause();
    let _ = r_rename(&cache, &db, 3, "renamed").await;
    let pending = cache.stats().pending_invalidations;
    server.resume();
    println!("pending after the failed bust: {pending}");
    // At once (the retry may or may not have run).
    let got = r_get_users(&cache, &db, "acme", &[1, 2, 3, 4, 5])
        .await
        .unwrap();
    assert_eq!(got[&3].name, "renamed");
    let got = r_get_user(&cache, &db, "acme", 3).await.unwrap().unwrap();
    assert_eq!(got.name, "renamed");
}

// ---------------------------------------------------------------------------
// P10. Hostile inputs: 5,000 concurrent linked calls (more than one
// gathering), 20,000 elements, elements whose text holds separators, long
// elements.
#[cached(batch = "s in ss", key = "str:<s>", ttl = 300, cache = cache, tags = ["grp:<g>"])]
pub async fn strings(
    cache: &Cache,
    g: &str,
    ss: Vec<String>,
) -> Result<Vec<(String, String)>, String> {
    Ok(ss
        .into_iter()
        .map(|s| (s.clone(), format!("v[{s}]")))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p10_hostile_inputs() {
    for (cache, _b) in crate::support::each_backend().await {
        let name = cache.backend_name();
        let db = RDb::with(1..=1000);
        let calls: Vec<_> = (1..=1000u64)
            .map(|id| {
                let (cache, db) = (cache.clone(), db.clone());
                tokio::spawn(async move { (id, r_get_user(&cache, &db, "acme", id).await) })
            })
            .collect();
        let t = Instant::now();
        for call in calls {
            let (id, got) = call.await.unwrap();
            assert_eq!(got.unwrap().map(|u| u.id), Some(id), "{name}");
        }
        println!(
            "{name}: 1000 linked calls in {:?}, {} body calls",
            t.elapsed(),
            db.asked().len()
        );
        let tricky: Vec<String> = vec![
            "a:b".into(),
            "a%3Ab".into(),
            "a".into(),
            "*".into(),
            "".into(),
            "\u{1f}".into(),
            "}{".into(),
            "x".repeat(5000),
            "x".repeat(5001),
            "é".into(),
        ];
        let got = strings(&cache, "g:1", tricky.clone()).await.unwrap();
        let again = strings(&cache, "g:1", tricky.clone()).await.unwrap();
        assert_eq!(got.len(), tricky.len(), "{name}");
        for (s, v) in again.iter() {
            assert_eq!(v, &format!("v[{s}]"), "{name}");
        }
        // And under a group that renders like another with separators.
        let other = strings(&cache, "g", vec!["1:a:b".into()]).await.unwrap();
        assert_eq!(other[0].1, "v[1:a:b]");
        let many: Vec<u64> = (1..=5_000).collect();
        let db = RDb::with(1..=5_000);
        let t = Instant::now();
        let got = r_get_users(&cache, &db, "big", &many).await.unwrap();
        let got2 = r_get_users(&cache, &db, "big", &many).await.unwrap();
        println!("{name}: 5000 elements twice in {:?}", t.elapsed());
        assert_eq!((got.len(), got2.len()), (5_000, 5_000));
        assert_eq!(db.asked().len(), 1);
    }
}

// ---------------------------------------------------------------------------
// P11. tags_from, per element: a bust of a derived tag during the body and
// after it reaches each element that derived it (I1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Book {
    id: u64,
    author: String,
}

#[derive(Clone, Default)]
pub struct Shelf {
    rows: Arc<Mutex<HashMap<u64, String>>>,
    gate: Gate,
    asked: Arc<Mutex<Vec<Vec<u64>>>>,
}

fn author_tags(b: &Book) -> [String; 1] {
    [cachette::tag!("rauthor:<a>", a = b.author)]
}

#[cached(batch = "id in ids", key = "rbook:<id>", ttl = 300, cache = cache, unkeyed = [shelf], tags_from = author_tags)]
pub async fn books(
    cache: &Cache,
    shelf: &Shelf,
    ids: &[u64],
) -> Result<HashMap<u64, Book>, String> {
    shelf.asked.lock().unwrap().push(ids.to_vec());
    let found: HashMap<u64, Book> = {
        let rows = shelf.rows.lock().unwrap();
        ids.iter()
            .filter_map(|id| {
                rows.get(id).map(|a| {
                    (
                        *id,
                        Book {
                            id: *id,
                            author: a.clone(),
                        },
                    )
                })
            })
            .collect()
    };
    shelf.gate.pass().await;
    Ok(found)
}

#[tokio::test]
async fn p11_tags_from_per_element() {
    for (cache, _b) in crate::support::each_backend().await {
        let name = cache.backend_name();
        let shelf = Shelf::default();
        for id in 1..=6 {
            shelf.rows.lock().unwrap().insert(
                id,
                if id % 2 == 0 {
                    "even".into()
                } else {
                    "odd".into()
                },
            );
        }
        let ids: Vec<u64> = (1..=6).collect();
        // Learn the hints, then store under them.
        books(&cache, &shelf, &ids).await.unwrap();
        books(&cache, &shelf, &ids).await.unwrap();
        let n = shelf.asked.lock().unwrap().len();
        books(&cache, &shelf, &ids).await.unwrap();
        assert_eq!(
            shelf.asked.lock().unwrap().len(),
            n,
            "{name}: cached under the hints"
        );
        // A bust of a derived tag after the fill.
        for v in shelf.rows.lock().unwrap().values_mut() {
            if v == "even" {
                *v = "EVEN".into();
            }
        }
        cache.invalidate_tags(["rauthor:even"]).await.unwrap();
        let got = books(&cache, &shelf, &ids).await.unwrap();
        assert_eq!(got[&2].author, "EVEN", "{name}");
        assert_eq!(got[&1].author, "odd", "{name}");
        // A bust of a derived tag while the body runs.
        let (reached, release) = shelf.gate.hold_next(false);
        cache
            .invalidate_keys(["rbook:1", "rbook:3", "rbook:4"])
            .await
            .unwrap();
        let call = {
            let (cache, shelf, ids) = (cache.clone(), shelf.clone(), ids.clone());
            tokio::spawn(async move { books(&cache, &shelf, &ids).await })
        };
        reached.notified().await;
        for v in shelf.rows.lock().unwrap().values_mut() {
            *v = v.to_lowercase() + "!";
        }
        cache
            .invalidate_tags(["rauthor:odd", "rauthor:EVEN"])
            .await
            .unwrap();
        release.notify_one();
        call.await.unwrap().unwrap();
        let got = books(&cache, &shelf, &ids).await.unwrap();
        println!("{name}: {got:?}");
        for id in 1..=6 {
            assert!(
                got[&id].author.ends_with('!'),
                "{name}: element {id} stale: {:?}",
                got[&id]
            );
        }
    }
}

// ---------------------------------------------------------------------------
// P12. Cluster: versions on several masters (three tags), tag and key busts,
// and a read while a slot migrates (ASK), a bust during it, then after it
// (MOVED): no stale element.
#[cached(
    batch = "id in ids",
    key = "cl:<id>",
    ttl = 300,
    tags = ["at:<org>", "ct:<org>", "dt:<org>"],
    cache = cache,
    unkeyed = [db]
)]
pub async fn cl_users(
    cache: &Cache,
    db: &RDb,
    org: &str,
    ids: &[u64],
) -> Result<HashMap<u64, RUser>, String> {
    db.select(ids).await
}

#[cfg(feature = "cluster")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p12_cluster_tags_on_other_masters_and_a_migrating_slot() {
    let cluster = crate::support::RedisCluster::start();
    let cache = cluster.cache().await;
    let db = RDb::with(1..=100);
    let ids: Vec<u64> = (1..=100).collect();
    let tag_masters: Vec<u16> = ["at:acme", "ct:acme", "dt:acme"]
        .iter()
        .map(|t| cluster.master_of(t))
        .collect();
    println!("tag masters {tag_masters:?}");
    cl_users(&cache, &db, "acme", &ids).await.unwrap();
    for (i, tag) in ["at:acme", "ct:acme", "dt:acme"].iter().enumerate() {
        let name = format!("gen {i}");
        for id in 1..=100 {
            db.set(id, &name);
        }
        cache.invalidate_tags([*tag]).await.unwrap();
        let got = cl_users(&cache, &db, "acme", &ids).await.unwrap();
        assert!(
            got.values().all(|u| u.name == name),
            "after busting {tag}: {got:?}"
        );
    }
    // A slot moves under element 42's entry.
    let key = "cl:42";
    let pattern = crate::support::name_pattern('e', key);
    let (from, entry) = cluster
        .masters()
        .into_iter()
        .find_map(|(port, _)| {
            let found: Vec<String> = redis::cmd("KEYS")
                .arg(&pattern)
                .query(&mut cluster.node_at(port).raw())
                .unwrap();
            found.into_iter().next().map(|n| (port, n))
        })
        .expect("the entry of cl:42");
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(&entry)
        .query(&mut cluster.node_at(from).raw())
        .unwrap();
    println!("entry {entry} in slot {slot} on {from}");
    let to = cluster
        .masters()
        .into_iter()
        .map(|m| m.0)
        .find(|p| *p != from)
        .unwrap();
    let handle = tokio::runtime::Handle::current();
    let mut step = 0;
    let mut seen = Vec::new();
    tokio::task::block_in_place(|| {
        cluster.migrate_slot(slot, from, to, || {
            step += 1;
            let name = format!("step {step}");
            handle.block_on(async {
                db.set(42, &name);
                if let Err(e) = cache.invalidate_keys([key]).await {
                    println!(
                        "bust at {name}: {e}; pending {}",
                        cache.stats().pending_invalidations
                    );
                }
                let got = cl_users(&cache, &db, "acme", &ids).await.unwrap();
                seen.push((name.clone(), got[&42].name.clone()));
                let again = cl_users(&cache, &db, "acme", &ids).await.unwrap();
                seen.push((name, again[&42].name.clone()));
            });
        })
    });
    println!("migration reads: {seen:?}; stats {:?}", cache.stats());
    for (want, got) in &seen {
        assert_eq!(want, got, "stale element 42 during the migration");
    }
}

/// P5b. The same with the defaults (aside, lock_wait 5 s), through the
/// linked function too: a single-key `#[cached]` follower waits 5 s.
#[tokio::test]
async fn p5b_defaults_batch_and_linked_follower_wait() {
    let cache = memory();
    let db = RDb::with(1..=3);
    let (reached, release) = db.gate.hold_next(false);
    let hung = {
        let (cache, db) = (cache.clone(), db.clone());
        tokio::spawn(async move { r_get_users(&cache, &db, "acme", &[1]).await })
    };
    reached.notified().await;
    let started = Instant::now();
    let (batch, one) = tokio::join!(
        r_get_users(&cache, &db, "acme", &[1, 2]),
        r_get_user(&cache, &db, "org2", 1)
    );
    let waited = started.elapsed();
    println!(
        "waited {waited:?} (lock_wait 5s): batch {} elements, linked {:?}",
        batch.unwrap().len(),
        one.unwrap().map(|u| u.id)
    );
    release.notify_one();
    let _ = hung.await;
    assert!(
        waited < Duration::from_secs(8),
        "waited {waited:?} for a hung flight; lock_wait is 5s"
    );
}

/// P13. "Not found" handed between flights: a follower that joined after the
/// leader's body read "not found", and after the row was created (a create
/// that busts nothing), must not be handed it.
#[tokio::test]
async fn p13_absent_not_handed_to_late_followers() {
    for (cache, _b) in crate::support::each_backend().await {
        let db = RDb::with(1..=3);
        let (reached, release) = db.gate.hold_next(false);
        let leader = {
            let (cache, db) = (cache.clone(), db.clone());
            tokio::spawn(async move { r_get_users(&cache, &db, "acme", &[5]).await })
        };
        reached.notified().await;
        db.set(5, "created");
        let late = {
            let (cache, db) = (cache.clone(), db.clone());
            tokio::spawn(async move { r_get_users(&cache, &db, "acme", &[5, 1]).await })
        };
        let late_one = {
            let (cache, db) = (cache.clone(), db.clone());
            tokio::spawn(async move { r_get_user(&cache, &db, "acme", 5).await })
        };
        crate::support::eventually("the late calls follow", || cache.stats().coalesced >= 2).await;
        release.notify_one();
        let l = leader.await.unwrap().unwrap();
        let a = late.await.unwrap().unwrap();
        let b = late_one.await.unwrap().unwrap();
        println!(
            "{}: leader {l:?} late {a:?} late one {b:?}",
            cache.backend_name()
        );
        assert!(l.is_empty());
        assert_eq!(a.get(&5).map(|u| u.name.as_str()), Some("created"));
        assert_eq!(b.map(|u| u.name), Some("created".into()));
    }
}

/// P14. A checker: writers bump rows and bust (key or tag); readers (batch
/// calls of random overlapping sets, and linked calls) record what the
/// busts that returned before they began promised. No read may return an
/// older version (I1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p14_checker_batches_linked_calls_and_busts() {
    for (cache, _b) in crate::support::each_backend().await {
        checker(cache).await;
    }
}

/// P14b. The same on Redis with the near-cache (I12 per element).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p14b_checker_near_cache() {
    let server = crate::support::RedisServer::start();
    let cache = crate::support::builder()
        .near_cache(true)
        .connect(&server.url())
        .await
        .unwrap();
    checker(cache.clone()).await;
    println!("near stats {:?}", cache.stats());
}

async fn checker(cache: Cache) {
    const IDS: u64 = 12;
    {
        let name = cache.backend_name();
        let db = RDb::with(0..IDS);
        for id in 0..IDS {
            db.set(id, "0");
        }
        let committed: Arc<Vec<AtomicU64>> =
            Arc::new((0..IDS).map(|_| AtomicU64::new(0)).collect());
        let write = Arc::new(tokio::sync::Mutex::new(()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stale = Arc::new(Mutex::new(Vec::<String>::new()));
        let reads = Arc::new(AtomicU64::new(0));
        let nones = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for w in 0..2u64 {
            let (cache, db, committed, write, stop) = (
                cache.clone(),
                db.clone(),
                committed.clone(),
                write.clone(),
                stop.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(SeqCst) {
                    n += 1;
                    let _g = write.lock().await;
                    if (n + w).is_multiple_of(5) {
                        // Every row, then the org's tag.
                        let mut next = Vec::new();
                        for id in 0..IDS {
                            let v: u64 = db.rows.lock().unwrap()[&id].parse().unwrap();
                            db.set(id, &(v + 1).to_string());
                            next.push(v + 1);
                        }
                        cache.invalidate_tags(["rorg:acme"]).await.unwrap();
                        for (id, v) in next.into_iter().enumerate() {
                            committed[id].fetch_max(v, SeqCst);
                        }
                    } else {
                        let id = fastrand::u64(0..IDS);
                        let v: u64 = db.rows.lock().unwrap()[&id].parse().unwrap();
                        r_rename(&cache, &db, id, &(v + 1).to_string())
                            .await
                            .unwrap();
                        committed[id as usize].fetch_max(v + 1, SeqCst);
                    }
                    drop(_g);
                    tokio::task::yield_now().await;
                }
            }));
        }
        for r in 0..6u64 {
            let (cache, db, committed, stop, stale, reads, nones) = (
                cache.clone(),
                db.clone(),
                committed.clone(),
                stop.clone(),
                stale.clone(),
                reads.clone(),
                nones.clone(),
            );
            tasks.push(tokio::spawn(async move {
                while !stop.load(SeqCst) {
                    let floor: Vec<u64> = committed.iter().map(|c| c.load(SeqCst)).collect();
                    if r % 3 == 0 {
                        let id = fastrand::u64(0..IDS);
                        let Some(got) = r_get_user(&cache, &db, "acme", id).await.unwrap() else {
                            nones.fetch_add(1, SeqCst);
                            continue;
                        };
                        let v: u64 = got.name.parse().unwrap();
                        if v < floor[id as usize] {
                            stale
                                .lock()
                                .unwrap()
                                .push(format!("linked {id}: v{v} < v{}", floor[id as usize]));
                        }
                    } else {
                        let mut ids: Vec<u64> = (0..IDS).filter(|_| fastrand::bool()).collect();
                        ids.push(fastrand::u64(0..IDS));
                        let got = r_get_users(&cache, &db, "acme", &ids).await.unwrap();
                        for (id, u) in got {
                            let v: u64 = u.name.parse().unwrap();
                            if v < floor[id as usize] {
                                stale
                                    .lock()
                                    .unwrap()
                                    .push(format!("batch {id}: v{v} < v{}", floor[id as usize]));
                            }
                        }
                    }
                    reads.fetch_add(1, SeqCst);
                    tokio::task::yield_now().await;
                }
            }));
        }
        // Short: the suite runs other timing-sensitive tests beside it.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop.store(true, SeqCst);
        for t in tasks {
            t.await.unwrap();
        }
        let stale = stale.lock().unwrap().clone();
        println!(
            "{name}: {} reads, {} wrong `None`s, {} body calls, {} stale: {:?}",
            reads.load(SeqCst),
            nones.load(SeqCst),
            db.asked().len(),
            stale.len(),
            &stale[..stale.len().min(5)]
        );
        assert!(stale.is_empty(), "{name}: {} stale reads", stale.len());
    }
}
