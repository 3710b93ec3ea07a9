//! An HTTP service over the repository example: cached GET endpoints and
//! invalidating PUT and DELETE endpoints. Operators holding the token in
//! `CACHE_ADMIN_TOKEN` may send `Cache-Control: no-cache` (recompute and
//! store) or `no-store` (read around the cache) with `x-cache-admin:
//! <token>`; everyone else's `Cache-Control` is ignored
//! (`cachette::tower::ScopeLayer`).
//!
//! ```text
//! CACHE_ADMIN_TOKEN=s3cret cargo run -p cachette-examples --example axum_service   # listens on 127.0.0.1:3000 (PORT to change)
//! curl 127.0.0.1:3000/orgs/acme/projects/1
//! curl -X PUT -H 'content-type: application/json' -d '{"name":"Artemis"}' 127.0.0.1:3000/orgs/acme/projects/1
//! curl -H 'x-cache-admin: s3cret' -H 'cache-control: no-cache' 127.0.0.1:3000/orgs/acme/projects/1
//! ```
#![allow(dead_code)] // also compiled as a module of its integration test

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use cachette::tower::ScopeLayer;
use serde::Deserialize;

pub use cachette_examples::{cache_from_env, DbError, Project, Repo};

#[derive(Deserialize)]
pub struct Rename {
    pub name: String,
}

fn internal(e: DbError) -> (StatusCode, String) {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

async fn list(
    State(repo): State<Arc<Repo>>,
    Path(org): Path<String>,
) -> Result<Json<Vec<Project>>, (StatusCode, String)> {
    repo.projects(&org).await.map(Json).map_err(internal)
}

async fn show(
    State(repo): State<Arc<Repo>>,
    Path((org, id)): Path<(String, i64)>,
) -> Result<Json<Project>, (StatusCode, String)> {
    match repo.project(&org, id).await.map_err(internal)? {
        Some(project) => Ok(Json(project)),
        None => Err((StatusCode::NOT_FOUND, format!("no project {id} in {org}"))),
    }
}

async fn rename(
    State(repo): State<Arc<Repo>>,
    Path((org, id)): Path<(String, i64)>,
    Json(body): Json<Rename>,
) -> Result<StatusCode, (StatusCode, String)> {
    match repo.rename(&org, id, &body.name).await.map_err(internal)? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err((StatusCode::NOT_FOUND, format!("no project {id} in {org}"))),
    }
}

async fn delete(
    State(repo): State<Arc<Repo>>,
    Path((org, id)): Path<(String, i64)>,
) -> Result<StatusCode, (StatusCode, String)> {
    match repo.delete(&org, id).await.map_err(internal)? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err((StatusCode::NOT_FOUND, format!("no project {id} in {org}"))),
    }
}

/// The header that carries the operators' token.
pub const ADMIN_HEADER: &str = "x-cache-admin";

/// The service's routes. A request carrying `admin_token` in
/// [`ADMIN_HEADER`] may ask with `Cache-Control` for its cached calls to be
/// refreshed (`no-cache`) or to bypass the cache (`no-store`); without a
/// token nobody may.
pub fn app(repo: Arc<Repo>, admin_token: Option<String>) -> Router {
    let scopes = ScopeLayer::new(move |req: &Request| {
        match (&admin_token, req.headers().get(ADMIN_HEADER)) {
            (Some(token), Some(sent)) => same_secret(token.as_bytes(), sent.as_bytes()),
            _ => false,
        }
    });
    Router::new()
        .route("/orgs/{org}/projects", get(list))
        .route(
            "/orgs/{org}/projects/{id}",
            get(show).put(rename).delete(delete),
        )
        .with_state(repo)
        .layer(scopes)
}

/// Compares a secret in a time that depends on its length only, so that
/// the time of a refusal does not tell how much of a guess was right.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let repo = Arc::new(Repo::open(cache_from_env().await?).await?);
    let admin_token = std::env::var("CACHE_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app(repo, admin_token)).await?;
    Ok(())
}
