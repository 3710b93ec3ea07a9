//! cachette in a service: a repository over SQLite (sqlx, in-memory)
//! whose reads are `#[cached]` and whose writes are `#[invalidates]`, with
//! a tag per organisation. Its examples run it from the command line
//! (`repository`) and behind an HTTP API (`axum_service`).

use std::sync::atomic::{AtomicU64, Ordering};

use cachette::{cached, invalidates, Cache};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqlitePool, SqlitePoolOptions, SqliteRow};
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    pub id: i64,
    pub org: String,
    pub name: String,
}

/// A database failure. Not cached: only `Ok` results are.
#[derive(Debug)]
pub struct DbError(pub sqlx::Error);

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        DbError(e)
    }
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "database error: {}", self.0)
    }
}

impl std::error::Error for DbError {}

pub struct Repo {
    pool: SqlitePool,
    cache: Cache,
    /// Queries that reached the database, to show what the cache saves.
    pub queries: AtomicU64,
}

fn project(row: SqliteRow) -> Project {
    Project {
        id: row.get("id"),
        org: row.get("org"),
        name: row.get("name"),
    }
}

impl Repo {
    /// Opens an in-memory database, creates the schema and a few rows.
    pub async fn open(cache: Cache) -> Result<Repo, DbError> {
        // One connection: each connection to `:memory:` is its own database.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await?;
        sqlx::query(
            "CREATE TABLE projects (id INTEGER PRIMARY KEY, org TEXT NOT NULL, name TEXT NOT NULL)",
        )
        .execute(&pool)
        .await?;
        for (id, org, name) in [
            (1, "acme", "Apollo"),
            (2, "acme", "Gemini"),
            (3, "globex", "Mercury"),
        ] {
            sqlx::query("INSERT INTO projects (id, org, name) VALUES (?, ?, ?)")
                .bind(id)
                .bind(org)
                .bind(name)
                .execute(&pool)
                .await?;
        }
        Ok(Repo {
            pool,
            cache,
            queries: AtomicU64::new(0),
        })
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    #[cached(cache = self.cache, key = "project:<org>:<id>", ttl = "5m", tags = ["org:<org>"])]
    pub async fn project(&self, org: &str, id: i64) -> Result<Option<Project>, DbError> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let row = sqlx::query("SELECT id, org, name FROM projects WHERE org = ? AND id = ?")
            .bind(org)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(project))
    }

    #[cached(cache = self.cache, key = "projects:<org>", ttl = "1m", tags = ["org:<org>"])]
    pub async fn projects(&self, org: &str) -> Result<Vec<Project>, DbError> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let rows = sqlx::query("SELECT id, org, name FROM projects WHERE org = ? ORDER BY id")
            .bind(org)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(project).collect())
    }

    /// Renames a project; its entry and every list of its organisation are
    /// invalidated once the update has committed.
    #[invalidates(cache = self.cache, keys = ["project:<org>:<id>"], tags = ["org:<org>"])]
    pub async fn rename(&self, org: &str, id: i64, name: &str) -> Result<bool, DbError> {
        let done = sqlx::query("UPDATE projects SET name = ? WHERE org = ? AND id = ?")
            .bind(name)
            .bind(org)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    #[invalidates(cache = self.cache, keys = ["project:<org>:<id>"], tags = ["org:<org>"])]
    pub async fn delete(&self, org: &str, id: i64) -> Result<bool, DbError> {
        let done = sqlx::query("DELETE FROM projects WHERE org = ? AND id = ?")
            .bind(org)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// The cache the examples use: Redis at `REDIS_URL`, else the embedded one.
pub async fn cache_from_env() -> Result<Cache, cachette::Error> {
    match std::env::var("REDIS_URL") {
        Ok(url) => {
            println!("REDIS_URL is set: caching in Redis at {url}");
            Cache::builder()
                .namespace("repository-example")
                .connect(&url)
                .await
        }
        Err(_) => {
            println!("REDIS_URL is not set: caching in the embedded backend");
            Ok(Cache::memory())
        }
    }
}

/// Writes a cached lookup for the caller, as a crate of repository helpers
/// might: the attribute runs inside another crate's `macro_rules!`, and the
/// return type names this crate through `$crate` (checked by
/// `tests/macro_from_another_crate.rs`).
#[doc(hidden)]
#[macro_export]
macro_rules! cached_lookup {
    ($name:ident, $wrapper:ident) => {
        #[::cachette::cached(cache = cache, key = "lookup:<id>", ttl = 60)]
        async fn $name(cache: &::cachette::Cache, id: i64) -> $wrapper<$crate::Project> {
            (id == 1).then(|| $crate::Project {
                id,
                org: "acme".into(),
                name: "Apollo".into(),
            })
        }
    };
}
