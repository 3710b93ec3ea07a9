//! Starts the axum example on a loopback port and drives it over HTTP, on
//! the embedded backend and on a real Redis.

#[allow(dead_code)]
#[path = "../../../tests/suite/support/server.rs"]
mod server;
#[path = "../examples/axum_service.rs"]
mod service;

/// What the suite's `server.rs` builds its caches with.
fn builder() -> cachette::CacheBuilder {
    Cache::builder().command_timeout(std::time::Duration::from_secs(5))
}

use std::future::IntoFuture;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use cachette::Cache;
use serde_json::{json, Value};

async fn drive(cache: Cache) {
    let repo = Arc::new(service::Repo::open(cache.clone()).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server =
        tokio::spawn(axum::serve(listener, service::app(repo.clone(), None)).into_future());
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{base}{path}")).send();
    let get_json = |path: &str| {
        let response = get(path);
        async move { response.await.unwrap().json::<Value>().await.unwrap() }
    };
    let queries = || repo.queries.load(Ordering::SeqCst);

    let first = get_json("/orgs/acme/projects/1").await;
    assert_eq!(first["name"], "Apollo");
    assert_eq!(queries(), 1);
    let second = get_json("/orgs/acme/projects/1").await;
    assert_eq!(second, first);
    assert_eq!(queries(), 1, "the second GET was served from the cache");
    let list = get_json("/orgs/acme/projects").await;
    assert_eq!(list.as_array().unwrap().len(), 2);

    let put = http
        .put(format!("{base}/orgs/acme/projects/1"))
        .json(&json!({ "name": "Artemis" }))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    let after = get_json("/orgs/acme/projects/1").await;
    assert_eq!(
        after["name"], "Artemis",
        "the GET after the PUT returned old data"
    );
    let list = get_json("/orgs/acme/projects").await;
    assert_eq!(
        list[0]["name"], "Artemis",
        "the org's list was invalidated by its tag"
    );

    let deleted = http
        .delete(format!("{base}/orgs/acme/projects/2"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(get("/orgs/acme/projects/2").await.unwrap().status(), 404);
    assert_eq!(get("/orgs/globex/projects/9").await.unwrap().status(), 404);
    assert!(cache.stats().hits >= 1);
    server.abort();
}

#[tokio::test]
async fn gets_are_cached_and_writes_invalidate_on_the_embedded_backend() {
    drive(Cache::memory()).await;
}

#[tokio::test]
async fn gets_are_cached_and_writes_invalidate_on_redis() {
    let server = server::RedisServer::start();
    drive(server.cache().await).await;
}
