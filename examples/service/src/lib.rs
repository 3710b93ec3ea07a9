//! cachette in a service: a repository over SQLite (sqlx, a file in WAL
//! mode) whose reads are `#[cached]` and whose writes run in transactions,
//! bust through `#[invalidates]` and are sent once the transaction has
//! committed (`cachette::deferred`). Several projects are read by id in one
//! query (`projects_by_ids`, a batch read). Its examples run it from the
//! command line (`repository`) and behind an HTTP API (`axum_service`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use cachette::{cached, cached_impl, invalidates, Cache};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow,
};
use sqlx::{QueryBuilder, Row, Sqlite};

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

/// A repository over a SQLite file in WAL mode, with a pool of several
/// connections: a transaction's writes are seen by the other connections
/// only once it has committed, as with any database server.
pub struct Repo {
    pool: SqlitePool,
    cache: Cache,
    /// Queries that reached the database, to show what the cache saves.
    pub queries: AtomicU64,
    _file: TempFile,
}

fn project(row: SqliteRow) -> Project {
    Project {
        id: row.get("id"),
        org: row.get("org"),
        name: row.get("name"),
    }
}

cachette::names! {
    /// Every entry of one organisation: its projects and its listing.
    pub tag OrgTag = "org:<org>";
}

/// Projects of `org` by id, in one query for the ids that missed. Each id
/// has an entry of its own, under the key `Repo::project` reads
/// (`project:<org>:<id>`), which `Repo::rename_in` busts, and tagged with
/// `OrgTag`'s template (written out: a batch function takes templates
/// only), which `Repo::delete_in` busts. An id with no row in `org` is
/// left out of the result, and not stored.
///
/// `project_by_id` is its single-key function: it reads the same entries,
/// and the calls made together (with the same `org`) are one call of this
/// function, one query.
#[cached(
    batch = "id in ids",
    key = "project:<org>:<id>",
    ttl = "5m",
    tags = ["org:<org>"],
    cache = cache,
    unkeyed = [pool, queries],
    one = project_by_id
)]
pub async fn projects_by_ids(
    cache: &Cache,
    pool: &SqlitePool,
    queries: &AtomicU64,
    org: &str,
    ids: &[i64],
) -> Result<HashMap<i64, Project>, DbError> {
    // Never empty on a cached call; `projects_by_ids_uncached(.., &[])`
    // runs the body as it is.
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    queries.fetch_add(1, Ordering::Relaxed);
    // `... AND id IN (?, ?, ?)`: one placeholder per id, each bound. The
    // body is given every id that missed, however many: SQLite takes up to
    // 32,766 parameters a query.
    let mut sql = QueryBuilder::<Sqlite>::new("SELECT id, org, name FROM projects WHERE org = ");
    sql.push_bind(org).push(" AND id IN (");
    let mut list = sql.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    sql.push(")");
    let rows = sql.build().fetch_all(pool).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let project = project(row);
            (project.id, project)
        })
        .collect())
}

/// The reads are cached and the writes bust, all in `self.cache`. Writes
/// take the transaction they run in; the public `rename` and `delete` open
/// it, and commit it inside `cachette::deferred`, so that their busts are
/// sent once the commit is done.
#[cached_impl(cache = self.cache)]
impl Repo {
    /// Opens a new database in a temporary file (removed when the
    /// repository is dropped), creates the schema and a few rows.
    pub async fn open(cache: Cache) -> Result<Repo, DbError> {
        let file = TempFile::new();
        let options = SqliteConnectOptions::new()
            .filename(&file.0)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
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
            _file: file,
        })
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The connection pool, to run transactions of your own.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    #[cached(key = "project:<org>:<id>", ttl = "5m", tags = [OrgTag { org }])]
    pub async fn project(&self, org: &str, id: i64) -> Result<Option<Project>, DbError> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let row = sqlx::query("SELECT id, org, name FROM projects WHERE org = ? AND id = ?")
            .bind(org)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(project))
    }

    /// Several projects of `org` by id: the cached ones from the cache, the
    /// others in one query (see [`projects_by_ids`]).
    pub async fn projects_by_ids(
        &self,
        org: &str,
        ids: &[i64],
    ) -> Result<HashMap<i64, Project>, DbError> {
        projects_by_ids(&self.cache, &self.pool, &self.queries, org, ids).await
    }

    /// One project, read from the entries of `projects_by_ids`: the calls
    /// made together are gathered into one query. `project` reads the same
    /// row with a query of its own, into entries of its own under the same
    /// key.
    pub async fn project_by_id(&self, org: &str, id: i64) -> Result<Option<Project>, DbError> {
        project_by_id(&self.cache, &self.pool, &self.queries, org, id).await
    }

    #[cached(key = "projects:<org>", ttl = "1m", tags = [OrgTag { org }])]
    pub async fn projects(&self, org: &str) -> Result<Vec<Project>, DbError> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let rows = sqlx::query("SELECT id, org, name FROM projects WHERE org = ? ORDER BY id")
            .bind(org)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(project).collect())
    }

    /// Renames a project inside `tx`. The entries that name it are the
    /// ones the reads above would read, their arguments given by name: a
    /// renamed parameter, two swapped arguments or a changed key template
    /// is a compile error here, or follows, never a silent miss. The call
    /// of `project_by_id` names the entry of `id` that `projects_by_ids`
    /// reads: the same key as `project`'s today, and still the right one
    /// if either template changes.
    #[invalidates(calls = [
        self.project(org = org, id = id),
        self.projects(org),
        project_by_id(cache = &self.cache, pool = &self.pool, queries = &self.queries, org = org, id = id),
    ])]
    pub async fn rename_in(
        &self,
        tx: &mut SqliteConnection,
        org: &str,
        id: i64,
        name: &str,
    ) -> Result<bool, DbError> {
        let done = sqlx::query("UPDATE projects SET name = ? WHERE org = ? AND id = ?")
            .bind(name)
            .bind(org)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes a project inside `tx`, and busts every entry of its
    /// organisation.
    #[invalidates(tags = [OrgTag { org }])]
    pub async fn delete_in(
        &self,
        tx: &mut SqliteConnection,
        org: &str,
        id: i64,
    ) -> Result<bool, DbError> {
        let done = sqlx::query("DELETE FROM projects WHERE org = ? AND id = ?")
            .bind(org)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Renames a project in a transaction of its own; the entries are
    /// busted once it has committed.
    pub async fn rename(&self, org: &str, id: i64, name: &str) -> Result<bool, DbError> {
        cachette::deferred(async {
            let mut tx = self.pool.begin().await?;
            let renamed = self.rename_in(&mut tx, org, id, name).await?;
            tx.commit().await?;
            Ok(renamed)
        })
        .await
    }

    /// Deletes a project in a transaction of its own; the entries are
    /// busted once it has committed.
    pub async fn delete(&self, org: &str, id: i64) -> Result<bool, DbError> {
        cachette::deferred(async {
            let mut tx = self.pool.begin().await?;
            let deleted = self.delete_in(&mut tx, org, id).await?;
            tx.commit().await?;
            Ok(deleted)
        })
        .await
    }
}

/// A database file in the temporary directory, removed (with its WAL
/// files) when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new() -> TempFile {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("cachette-example-{}-{n}.db", std::process::id());
        let path = std::env::temp_dir().join(name);
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
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
