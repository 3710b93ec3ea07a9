//! The repository of this package, driven from the command line.
//!
//! ```text
//! cargo run -p cachette-examples --example repository                                  # embedded backend
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p cachette-examples --example repository # Redis
//! ```

use std::sync::atomic::Ordering;

use cachette_examples::{cache_from_env, DbError, Repo};

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
    println!("renamed project 1 in a transaction: project:acme:1 and projects:acme invalidated after the commit");
    println!(
        "{:?} (queries: {})",
        repo.project("acme", 1).await?,
        queries()
    );

    // Two writes in one transaction of our own: `rename_in` names the
    // entries it busts by calls of the cached reads
    // (`calls = [self.project(org, id), self.projects(org)]`), and
    // `deferred` holds those busts until the commit is done.
    cachette::deferred(async {
        let mut tx = repo.pool().begin().await?;
        repo.rename_in(&mut tx, "acme", 1, "Ares").await?;
        repo.rename_in(&mut tx, "acme", 2, "Orion").await?;
        tx.commit().await?;
        Ok::<_, DbError>(())
    })
    .await?;
    println!(
        "renamed projects 1 and 2 in one transaction; {} is busted after the commit",
        repo.project_key("acme", 1).key()
    );
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

    // Several projects by id: the body is given the ids that missed, in one
    // query (`WHERE id IN (?, ?, ?)`); each id has an entry of its own. 3 is
    // globex's: not in the result, and not stored.
    let found = repo.projects_by_ids("acme", &[1, 2, 3]).await?;
    println!(
        "{} of ids 1, 2, 3 in acme (queries: {})",
        found.len(),
        queries()
    );
    // The batch's single-key function is served from those entries.
    println!(
        "{:?} (queries: {}, from the batch's entry)",
        repo.project_by_id("acme", 2).await?,
        queries()
    );
    println!("stats: {:?}", repo.cache().stats());
    Ok(())
}
