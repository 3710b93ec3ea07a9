//! Busts and database transactions, against a real SQLite file in WAL mode
//! with a pool of several connections (so that another connection sees
//! only what has committed), on the embedded backend and on Redis.
//!
//! The race: a write busts as it returns, inside its transaction; before
//! the commit, another request misses, reads the last committed row
//! through another connection, and stores it under the new versions; the
//! commit follows, and the old row is served until its TTL.
//! `cachette::deferred` holds the bust until the commit is done.

#[allow(dead_code)]
#[path = "../../../tests/suite/support/server.rs"]
mod server;

/// What the suite's `server.rs` builds its caches with.
fn builder() -> cachette::CacheBuilder {
    Cache::builder().command_timeout(std::time::Duration::from_secs(5))
}

use std::sync::Arc;

use cachette::Cache;
use cachette_examples::Repo;

async fn each_backend() -> Vec<(Cache, Option<server::RedisServer>)> {
    let server = server::RedisServer::start();
    let redis = server.cache().await;
    vec![(Cache::memory(), None), (redis, Some(server))]
}

/// Another request, on another task and another connection.
async fn another_request(repo: &Arc<Repo>) -> String {
    let repo = repo.clone();
    tokio::spawn(async move { repo.project("acme", 1).await.unwrap().unwrap().name })
        .await
        .unwrap()
}

/// Without `deferred`, the interleaving leaves the old row in the cache
/// after the commit: the reason the scope exists.
#[tokio::test]
async fn a_bust_inside_a_transaction_is_too_early() {
    for (cache, _server) in each_backend().await {
        let backend = cache.backend_name();
        let repo = Arc::new(Repo::open(cache).await.unwrap());
        let mut tx = repo.pool().begin().await.unwrap();
        repo.rename_in(&mut tx, "acme", 1, "Artemis").await.unwrap(); // busts now
        assert_eq!(another_request(&repo).await, "Apollo", "not committed yet");
        tx.commit().await.unwrap();
        assert_eq!(
            another_request(&repo).await,
            "Apollo",
            "{backend}: the old row, stored between the bust and the commit, is served"
        );
    }
}

/// With `deferred`, the same interleaving: the bust is sent after the
/// commit, and the first read after `deferred` returned is fresh.
#[tokio::test]
async fn deferred_busts_after_the_commit() {
    for (cache, _server) in each_backend().await {
        let backend = cache.backend_name();
        let repo = Arc::new(Repo::open(cache).await.unwrap());
        cachette::deferred(async {
            let mut tx = repo.pool().begin().await.unwrap();
            repo.rename_in(&mut tx, "acme", 1, "Artemis").await.unwrap(); // held
            assert_eq!(another_request(&repo).await, "Apollo", "not committed yet");
            tx.commit().await.unwrap();
        })
        .await;
        assert_eq!(
            another_request(&repo).await,
            "Artemis",
            "{backend}: the read after the commit is fresh"
        );
        // The repository's own `rename` does the same.
        assert!(repo.rename("acme", 1, "Athena").await.unwrap());
        assert_eq!(another_request(&repo).await, "Athena", "{backend}");
        assert_eq!(repo.projects("acme").await.unwrap()[0].name, "Athena");
    }
}

/// A transaction rolled back after its write still busts (the bust is
/// safe, a miss), and the rolled-back name is never served.
#[tokio::test]
async fn a_rolled_back_transaction_still_busts() {
    for (cache, _server) in each_backend().await {
        let backend = cache.backend_name();
        let repo = Arc::new(Repo::open(cache).await.unwrap());
        assert_eq!(another_request(&repo).await, "Apollo");
        let out: Result<(), &str> = cachette::deferred(async {
            let mut tx = repo.pool().begin().await.unwrap();
            repo.rename_in(&mut tx, "acme", 1, "Artemis").await.unwrap();
            // Inside the scope, the write's own entries are read from the
            // database (through the pool: the committed row).
            assert_eq!(
                repo.project("acme", 1).await.unwrap().unwrap().name,
                "Apollo"
            );
            tx.rollback().await.unwrap();
            Err("rolled back")
        })
        .await;
        assert!(out.is_err());
        let queries = repo.queries.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(another_request(&repo).await, "Apollo", "{backend}");
        assert_eq!(
            repo.queries.load(std::sync::atomic::Ordering::SeqCst),
            queries + 1,
            "{backend}: busted, read again"
        );
    }
}
