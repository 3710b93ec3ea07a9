//! The repository of this package, driven from the command line.
//!
//! ```text
//! cargo run -p cachette-examples --example repository                                  # embedded backend
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p cachette-examples --example repository # Redis
//! ```

use std::sync::atomic::Ordering;

use cachette_examples::{cache_from_env, Repo};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let repo = Repo::open(cache_from_env().await?).await?;
    // Start clean if an earlier run left entries in Redis.
    repo.cache().invalidate_tags(["org:acme"]).await?;
    let queries = || repo.queries.load(Ordering::Relaxed);

    println!(
        "{:?} (queries: {})",
        repo.project("acme", 1).await?,
        queries()
    );
    println!(
        "{:?} (queries: {}, from cache)",
        repo.project("acme", 1).await?,
        queries()
    );
    println!(
        "{} projects in acme (queries: {})",
        repo.projects("acme").await?.len(),
        queries()
    );
    repo.rename("acme", 1, "Artemis").await?;
    println!("renamed project 1: project:acme:1 and org:acme invalidated");
    println!(
        "{:?} (queries: {})",
        repo.project("acme", 1).await?,
        queries()
    );
    println!(
        "{:?} (queries: {})",
        repo.projects("acme").await?,
        queries()
    );
    println!("stats: {:?}", repo.cache().stats());
    Ok(())
}
