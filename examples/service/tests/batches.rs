//! The repository's batch read, `projects_by_ids`, against SQLite, on the
//! embedded backend and on Redis: one query for every id that missed, each
//! id an entry of its own that a bust of its key reaches, and the
//! single-key function `project_by_id` served from those entries.

#[allow(dead_code)]
#[path = "../../../tests/suite/support/server.rs"]
mod server;

/// What the suite's `server.rs` builds its caches with.
fn builder() -> cachette::CacheBuilder {
    Cache::builder().command_timeout(std::time::Duration::from_secs(5))
}

use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

use cachette::Cache;
use cachette_examples::Repo;

async fn each_backend() -> Vec<(Cache, Option<server::RedisServer>)> {
    let server = server::RedisServer::start();
    let redis = server.cache().await;
    vec![(Cache::memory(), None), (redis, Some(server))]
}

/// A repository whose `acme` holds projects 1, 2 and 4 to 20 (3 is
/// `globex`'s).
async fn repo(cache: Cache) -> Repo {
    let repo = Repo::open(cache).await.unwrap();
    for id in 4..=20 {
        sqlx::query("INSERT INTO projects (id, org, name) VALUES (?, 'acme', ?)")
            .bind(id)
            .bind(format!("project {id}"))
            .execute(repo.pool())
            .await
            .unwrap();
    }
    repo
}

#[tokio::test]
async fn many_ids_cost_one_query_and_a_bust_of_one_reaches_its_entry() {
    for (cache, server) in each_backend().await {
        let backend = cache.backend_name();
        let repo = repo(cache).await;
        let queries = || repo.queries.load(SeqCst);
        let ids: Vec<i64> = (1..=20).collect();

        // Cold: one query for the twenty ids. 3 is another org's: left out.
        let got = repo.projects_by_ids("acme", &ids).await.unwrap();
        assert_eq!(got.len(), 19, "{backend}");
        assert_eq!(got[&2].name, "Gemini");
        assert!(!got.contains_key(&3));
        assert_eq!(queries(), 1, "{backend}: one query for twenty ids");

        // Warm: the nineteen are hits, read in one lookup request on
        // Redis. 3, not found, was not stored (no `none_ttl`, as for
        // `project`): the body is given it alone.
        let before = repo.cache().stats();
        let again = repo.projects_by_ids("acme", &ids).await.unwrap();
        let after = repo.cache().stats();
        assert_eq!(again, got);
        assert_eq!(
            (after.hits - before.hits, after.misses - before.misses),
            (19, 1)
        );
        assert_eq!(queries(), 2, "{backend}");
        let lookups = after.batch_lookups - before.batch_lookups;
        assert_eq!(lookups, u64::from(server.is_some()), "{backend}");

        // A rename busts `project:acme:2`: the next batch asks for it
        // again (with 3), and is served the others.
        assert!(repo.rename("acme", 2, "Gemini II").await.unwrap());
        let before = repo.cache().stats();
        let got = repo.projects_by_ids("acme", &ids).await.unwrap();
        let after = repo.cache().stats();
        assert_eq!(got[&2].name, "Gemini II", "{backend}");
        assert_eq!(
            (after.hits - before.hits, after.misses - before.misses),
            (18, 2)
        );
        assert_eq!(queries(), 3, "{backend}");

        // A delete busts the org's tag: every id of the org misses.
        assert!(repo.delete("acme", 20).await.unwrap());
        let got = repo.projects_by_ids("acme", &ids).await.unwrap();
        assert_eq!(got.len(), 18, "{backend}");
        assert_eq!(queries(), 4, "{backend}");
    }
}

#[tokio::test]
async fn the_single_key_function_shares_the_batchs_entries_and_gathers_calls() {
    for (cache, _server) in each_backend().await {
        let backend = cache.backend_name();
        let repo = Arc::new(repo(cache).await);
        let queries = || repo.queries.load(SeqCst);

        // Served from what the batch filled.
        repo.projects_by_ids("acme", &[1, 2, 4]).await.unwrap();
        let one = repo.project_by_id("acme", 4).await.unwrap().unwrap();
        assert_eq!(one.name, "project 4");
        assert_eq!(queries(), 1, "{backend}");

        // Ten calls made together (ten requests) are one query, which
        // fills each id.
        let mut calls = tokio::task::JoinSet::new();
        for id in 10..20 {
            let repo = repo.clone();
            calls.spawn(async move { repo.project_by_id("acme", id).await });
        }
        for got in calls.join_all().await {
            assert!(got.unwrap().is_some(), "{backend}");
        }
        assert_eq!(queries(), 2, "{backend}: one query for ten calls");
        let got = repo
            .projects_by_ids("acme", &(10..20).collect::<Vec<_>>())
            .await
            .unwrap();
        assert_eq!(got.len(), 10);
        assert_eq!(
            queries(),
            2,
            "{backend}: the batch is served what they filled"
        );

        // Not found: `None`, and asked again next time.
        assert_eq!(repo.project_by_id("acme", 3).await.unwrap(), None);
        assert_eq!(repo.project_by_id("acme", 3).await.unwrap(), None);
        assert_eq!(queries(), 4, "{backend}");

        // A rename reaches the entry the single-key function reads.
        assert!(repo.rename("acme", 4, "Apollo IV").await.unwrap());
        let one = repo.project_by_id("acme", 4).await.unwrap().unwrap();
        assert_eq!(one.name, "Apollo IV", "{backend}");
    }
}
