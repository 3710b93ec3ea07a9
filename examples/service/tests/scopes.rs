//! `Cache-Control` over real HTTP, through the axum example's
//! `cachette::tower::ScopeLayer`: only a request carrying the operators'
//! token may make its cached calls refresh (`no-cache`) or bypass the cache
//! (`no-store`); anyone else's is served from the cache as if it had not
//! asked. On the embedded backend and on a real Redis.

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
use serde_json::Value;

const TOKEN: &str = "operators-only";

async fn only_the_operators_can_refresh_or_bypass(cache: Cache) {
    let repo = Arc::new(service::Repo::open(cache.clone()).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/orgs/acme/projects/1",
        listener.local_addr().unwrap()
    );
    let app = service::app(repo.clone(), Some(TOKEN.into()));
    let server = tokio::spawn(axum::serve(listener, app).into_future());
    let http = reqwest::Client::new();
    // The name a GET answers, sent with the given headers.
    let name = |headers: &[(&'static str, &'static str)]| {
        let mut request = http.get(&url);
        for (header, value) in headers {
            request = request.header(*header, *value);
        }
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            let project = response.json::<Value>().await.unwrap();
            project["name"].as_str().unwrap().to_owned()
        }
    };
    let queries = || repo.queries.load(Ordering::SeqCst);
    // A write the cache is not told of, so that a value served from the
    // cache and a value just read from the database differ.
    let pool = repo.pool();
    let behind_the_cache = |name: &'static str| async move {
        sqlx::query("UPDATE projects SET name = ? WHERE org = 'acme' AND id = 1")
            .bind(name)
            .execute(pool)
            .await
            .unwrap();
    };
    let admin = (service::ADMIN_HEADER, TOKEN);

    assert_eq!(name(&[]).await, "Apollo");
    assert_eq!(name(&[]).await, "Apollo");
    assert_eq!(queries(), 1, "the second GET was served from the cache");

    behind_the_cache("Zeus").await;
    for refused in [
        &[("cache-control", "no-cache")][..],
        &[("cache-control", "no-store"), ("pragma", "no-cache")],
        &[
            ("cache-control", "no-cache"),
            (service::ADMIN_HEADER, "guess"),
        ],
        &[("cache-control", "no-cache"), (service::ADMIN_HEADER, "")],
    ] {
        assert_eq!(name(refused).await, "Apollo", "{refused:?} was obeyed");
    }
    assert_eq!(
        queries(),
        1,
        "a request without the token made the body run"
    );
    assert_eq!(
        name(&[admin]).await,
        "Apollo",
        "the token alone asks nothing"
    );
    assert_eq!(queries(), 1);

    assert_eq!(name(&[admin, ("cache-control", "no-cache")]).await, "Zeus");
    assert_eq!(queries(), 2, "an operator's no-cache ran the body");
    assert_eq!(
        name(&[]).await,
        "Zeus",
        "the refreshed value was not stored"
    );
    assert_eq!(queries(), 2, "the GET after the refresh missed");

    behind_the_cache("Hera").await;
    let both = [admin, ("cache-control", "No-Cache, NO-STORE")];
    assert_eq!(name(&[admin, ("cache-control", "no-store")]).await, "Hera");
    assert_eq!(name(&both).await, "Hera");
    assert_eq!(queries(), 4, "an operator's no-store ran the body");
    assert_eq!(
        name(&[]).await,
        "Zeus",
        "a no-store request stored its value"
    );
    assert_eq!(queries(), 4);

    let stats = cache.stats();
    assert_eq!((stats.scope_refreshes, stats.scope_bypasses), (1, 2));
    server.abort();
}

#[tokio::test]
async fn only_the_operators_can_refresh_or_bypass_on_the_embedded_backend() {
    only_the_operators_can_refresh_or_bypass(Cache::memory()).await;
}

#[tokio::test]
async fn only_the_operators_can_refresh_or_bypass_on_redis() {
    let server = server::RedisServer::start();
    only_the_operators_can_refresh_or_bypass(server.cache().await).await;
}
