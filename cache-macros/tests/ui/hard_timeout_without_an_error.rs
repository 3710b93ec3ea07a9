use cachette::{cached, Cache};

#[derive(Debug)]
struct DbError;

// An `Option` has no way to say the call timed out.
#[cached(key = "a:<id>", ttl = 60, hard_timeout = "1s", cache = cache)]
async fn maybe(cache: &Cache, id: u64) -> Option<u64> {
    Some(id)
}

// An error that cannot be made from `Elapsed`.
#[cached(key = "b:<id>", ttl = 60, hard_timeout = "1s", cache = cache)]
async fn fallible(cache: &Cache, id: u64) -> Result<u64, DbError> {
    Ok(id)
}

fn main() {}
