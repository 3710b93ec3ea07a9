//! Miss, hit, an update that invalidates, the fresh value, and the stats.
//!
//! ```text
//! cargo run --example quickstart                                  # embedded backend
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example quickstart # Redis
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use cachette::{cached, invalidates, Cache};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

#[derive(Debug)]
struct DbError(String);

/// A stand-in for a database table, counting the queries it serves.
static USERS: Mutex<Option<HashMap<u64, User>>> = Mutex::new(None);
static QUERIES: AtomicU32 = AtomicU32::new(0);

#[cached(key = "user:<id>", ttl = 300, tags = ["org:<org>"])]
async fn get_user(id: u64, org: &str) -> Result<User, DbError> {
    QUERIES.fetch_add(1, Ordering::Relaxed);
    let users = USERS.lock().unwrap();
    let users = users.as_ref().expect("seeded in main");
    users
        .get(&id)
        .cloned()
        .ok_or_else(|| DbError(format!("no user {id} in {org}")))
}

#[invalidates(keys = ["user:<id>"], tags = ["org:<org>"])]
async fn rename_user(id: u64, org: &str, name: &str) -> Result<User, DbError> {
    let mut users = USERS.lock().unwrap();
    let user = users
        .as_mut()
        .and_then(|u| u.get_mut(&id))
        .ok_or_else(|| DbError(format!("no user {id} in {org}")))?;
    user.name = name.to_string();
    Ok(user.clone())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .init();
    *USERS.lock().unwrap() = Some(HashMap::from([(
        42,
        User {
            id: 42,
            name: "Ada".into(),
        },
    )]));

    let cache = match std::env::var("REDIS_URL") {
        Ok(url) => {
            println!("REDIS_URL is set: caching in Redis at {url}");
            Cache::builder()
                .namespace("quickstart")
                .connect(&url)
                .await?
        }
        Err(_) => {
            println!("REDIS_URL is not set: caching in the embedded backend");
            Cache::memory()
        }
    };
    cachette::init(cache.clone());
    // Start from a clean slate if an earlier run left an entry in Redis.
    cache.invalidate_keys(["user:42"]).await?;

    let queries = || QUERIES.load(Ordering::Relaxed);
    let user = get_user(42, "acme").await.map_err(|e| e.0)?;
    println!(
        "1. first read (miss):   {user:?}  queries so far: {}",
        queries()
    );
    let user = get_user(42, "acme").await.map_err(|e| e.0)?;
    println!(
        "2. second read (hit):   {user:?}  queries so far: {}",
        queries()
    );
    rename_user(42, "acme", "Ada Lovelace")
        .await
        .map_err(|e| e.0)?;
    println!("3. renamed; user:42 and org:acme invalidated");
    let user = get_user(42, "acme").await.map_err(|e| e.0)?;
    println!(
        "4. read after update:   {user:?}  queries so far: {}",
        queries()
    );
    let s = cache.stats();
    println!(
        "5. stats: hits={} misses={} invalidations={} errors={} decode_failures={}",
        s.hits, s.misses, s.invalidations, s.errors, s.decode_failures
    );
    Ok(())
}
