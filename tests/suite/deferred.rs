//! `cachette::deferred`: busts held until the scope's future is over (a
//! database transaction committed), then sent, whatever the outcome; reads
//! inside the scope store nothing. The interleaving against a real
//! database (SQLite in WAL mode, a pool of connections) is in
//! `examples/service/tests/transactions.rs`; these check the scope itself
//! on both backends.

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use cachette::{cached, deferred, invalidates, Cache};

use crate::support::source::Source;
use crate::support::{delivered, each_backend};

#[cached(key = "row:<id>", ttl = 60, tags = ["rows"], cache = cache, unkeyed = [source])]
async fn row(cache: &Cache, source: &Source, id: u64) -> u64 {
    let _ = id;
    source.read().await
}

#[invalidates(keys = ["row:<id>"], cache = cache)]
async fn write_row(cache: &Cache, source: &Source, id: u64) -> Result<(), String> {
    source.version.fetch_add(1, SeqCst);
    Ok(())
}

/// A write whose body goes on after the write (held by the source's gate).
#[invalidates(keys = ["row:<id>"], cache = cache)]
async fn write_slowly(cache: &Cache, source: &Source, id: u64) -> Result<(), String> {
    source.version.fetch_add(1, SeqCst);
    source.read().await;
    Ok(())
}

/// What another request, outside the scope, reads now.
async fn elsewhere(cache: &Cache, source: &Source, id: u64) -> u64 {
    let (cache, source) = (cache.clone(), source.clone());
    tokio::spawn(async move { row(&cache, &source, id).await })
        .await
        .unwrap()
}

/// Busts raised in the scope are sent when it is over, not before; the
/// scope reads its own writes, and its reads store nothing.
#[tokio::test]
async fn busts_wait_for_the_end_of_the_scope() {
    for (cache, _server) in each_backend().await {
        let backend = cache.backend_name();
        let source = Source::default();
        assert_eq!(row(&cache, &source, 1).await, 0);
        let out = deferred(async {
            write_row(&cache, &source, 1).await.unwrap();
            // Not committed yet: others still read the entry.
            assert_eq!(elsewhere(&cache, &source, 1).await, 0, "{backend}: held");
            // The scope itself does not see its own write's stale entry...
            assert_eq!(row(&cache, &source, 1).await, 1, "{backend}: own write");
            // ...and what it computed was not stored.
            assert_eq!(
                elsewhere(&cache, &source, 1).await,
                0,
                "{backend}: nothing stored"
            );
            // A miss inside the scope stores nothing either.
            assert_eq!(row(&cache, &source, 2).await, 1);
            7
        })
        .await;
        assert_eq!(out, 7, "the scope's output");
        assert_eq!(
            row(&cache, &source, 1).await,
            1,
            "{backend}: busted at the end"
        );
        let runs = source.runs();
        assert_eq!(row(&cache, &source, 2).await, 1);
        assert_eq!(
            source.runs(),
            runs + 1,
            "{backend}: the scope's miss was not stored"
        );
    }
}

/// An `Err` (a rolled-back or failed transaction) still sends the busts:
/// the commit may have happened.
#[tokio::test]
async fn busts_are_sent_whatever_the_outcome() {
    for (cache, _server) in each_backend().await {
        let backend = cache.backend_name();
        let source = Source::default();
        row(&cache, &source, 1).await;
        let out: Result<(), String> = deferred(async {
            write_row(&cache, &source, 1).await?;
            Err("commit failed".to_string())
        })
        .await;
        assert!(out.is_err());
        assert_eq!(
            row(&cache, &source, 1).await,
            1,
            "{backend}: busted after Err"
        );
    }
}

/// A scope that panics, or that is dropped before it finished (a timeout
/// around the transaction), keeps its busts as undelivered: they are
/// delivered in the background and what they name is not served until then.
#[tokio::test]
async fn a_panicking_or_dropped_scope_keeps_its_busts() {
    for (cache, _server) in each_backend().await {
        let backend = cache.backend_name();
        let source = Source::default();
        row(&cache, &source, 1).await;
        row(&cache, &source, 2).await;

        let panicked = {
            let (cache, source) = (cache.clone(), source.clone());
            tokio::spawn(async move {
                deferred(async {
                    write_row(&cache, &source, 1).await.unwrap();
                    panic!("the transaction's code panicked");
                })
                .await
            })
            .await
        };
        assert!(panicked.is_err());
        assert_eq!(
            row(&cache, &source, 1).await,
            1,
            "{backend}: not served after a panic"
        );

        let dropped = tokio::time::timeout(
            Duration::from_millis(50),
            deferred(async {
                write_row(&cache, &source, 2).await.unwrap();
                std::future::pending::<()>().await
            }),
        )
        .await;
        assert!(dropped.is_err());
        assert_eq!(
            row(&cache, &source, 2).await,
            2,
            "{backend}: not served after a drop"
        );
        delivered(&cache).await;
        // Delivered: the entries filled since are served again.
        let runs = source.runs();
        row(&cache, &source, 1).await;
        row(&cache, &source, 2).await;
        assert_eq!(
            source.runs(),
            runs + 2,
            "{backend}: refilled once delivered"
        );
        row(&cache, &source, 1).await;
        row(&cache, &source, 2).await;
        assert_eq!(source.runs(), runs + 2, "{backend}: then served");
    }
}

/// An `#[invalidates]` call dropped midway inside a scope is held by the
/// scope like the others, not delivered before the scope is over.
#[tokio::test]
async fn an_invalidation_dropped_inside_a_scope_waits_for_it() {
    for (cache, _server) in each_backend().await {
        let backend = cache.backend_name();
        let source = Source::default();
        row(&cache, &source, 1).await;
        deferred(async {
            let (reached, _release) = source.hold_next(false);
            let write = write_slowly(&cache, &source, 1);
            tokio::select! {
                _ = write => unreachable!("held until dropped"),
                _ = reached.notified() => {} // written, the body not over
            }
            assert_eq!(
                cache.stats().pending_invalidations,
                0,
                "{backend}: held by the scope"
            );
            assert_eq!(
                elsewhere(&cache, &source, 1).await,
                0,
                "{backend}: not yet sent"
            );
        })
        .await;
        assert_eq!(
            row(&cache, &source, 1).await,
            1,
            "{backend}: sent at the end"
        );
    }
}

/// A scope inside another joins it: nothing is sent before the outermost
/// one is over.
#[tokio::test]
async fn nested_scopes_join_the_outermost() {
    for (cache, _server) in each_backend().await {
        let backend = cache.backend_name();
        let source = Source::default();
        row(&cache, &source, 1).await;
        deferred(async {
            deferred(async { write_row(&cache, &source, 1).await.unwrap() }).await;
            assert_eq!(
                elsewhere(&cache, &source, 1).await,
                0,
                "{backend}: still held"
            );
        })
        .await;
        assert_eq!(
            row(&cache, &source, 1).await,
            1,
            "{backend}: sent by the outer"
        );
    }
}

/// Busts of two caches in one scope reach each cache, once, at the end;
/// `invalidate_*` calls are held like the attribute's.
#[tokio::test]
async fn busts_of_two_caches_are_held_and_each_sent_once() {
    for (one, _server) in each_backend().await {
        let backend = one.backend_name();
        let two = Cache::memory();
        let source = Source::default();
        row(&one, &source, 1).await;
        row(&two, &source, 1).await;
        let before = (one.stats().invalidations, two.stats().invalidations);
        deferred(async {
            write_row(&one, &source, 1).await.unwrap();
            write_row(&one, &source, 1).await.unwrap();
            two.invalidate_keys(["row:1"]).await.unwrap();
            two.invalidate_tags(["rows"]).await.unwrap();
            assert_eq!(elsewhere(&one, &source, 1).await, 0, "{backend}: held");
            assert_eq!(elsewhere(&two, &source, 1).await, 0, "held");
        })
        .await;
        assert_eq!(
            (one.stats().invalidations, two.stats().invalidations),
            (before.0 + 1, before.1 + 2),
            "{backend}: each name once, in one bust per cache"
        );
        assert_eq!(row(&one, &source, 1).await, 2, "{backend}: busted");
        assert_eq!(row(&two, &source, 1).await, 2, "busted");
    }
}

/// Two handles built apart on one server and namespace: a bust held for
/// one is not served, inside the scope, through the other.
#[tokio::test]
async fn a_held_bust_covers_every_handle_of_its_namespace() {
    let server = crate::support::RedisServer::start();
    let (one, two) = (server.cache().await, server.cache().await);
    let source = Source::default();
    row(&two, &source, 1).await;
    deferred(async {
        write_row(&one, &source, 1).await.unwrap();
        assert_eq!(
            row(&two, &source, 1).await,
            1,
            "the scope reads its own write"
        );
    })
    .await;
    assert_eq!(row(&two, &source, 1).await, 1);
}

/// The best of three runs of `n` writes and `n` reads inside one scope,
/// per write, in nanoseconds (the flush afterwards is not counted).
async fn per_write_in_a_scope(cache: &Cache, source: &Source, n: u64) -> u128 {
    let mut best = u128::MAX;
    for run in 0..3 {
        let base = (run + 1) * 1_000_000 + n;
        let took = deferred(async {
            let started = std::time::Instant::now();
            for id in base..base + n {
                write_row(cache, source, id).await.unwrap();
                row(cache, source, id).await;
            }
            started.elapsed()
        })
        .await;
        best = best.min(took.as_nanos() / u128::from(n));
    }
    best
}

/// A bulk endpoint inside one scope: what a write and a read cost does not
/// grow with the busts the scope holds (a bust was compared with every
/// name held, and so was every read: 40,000 writes took 2.5 s). A ratio
/// of two sizes in the same run, not a time: eight times the writes cost
/// about the same per write, where a cost that grows with the names held
/// makes it eight times as much.
#[tokio::test]
async fn a_scope_costs_the_same_per_bust_however_many_it_holds() {
    let cache = Cache::builder().memory();
    let source = Source::default();
    let small = per_write_in_a_scope(&cache, &source, 2_500).await;
    let large = per_write_in_a_scope(&cache, &source, 20_000).await;
    assert!(
        large < 3 * small.max(1),
        "{large} ns per write with 20,000 held, {small} ns with 2,500"
    );
}
