use cachette::{cached, Cache};

#[derive(Debug)]
struct DbError;

impl From<cachette::Elapsed> for DbError {
    fn from(_: cachette::Elapsed) -> Self {
        DbError
    }
}

// Nothing kept past the TTL: nothing for the soft timeout to return.
#[cached(key = "a:<id>", ttl = 60, soft_timeout = "100ms", cache = cache)]
async fn no_window(cache: &Cache, id: u64) -> Result<u64, DbError> {
    Ok(id)
}

// The soft timeout would never be reached.
#[cached(key = "b:<id>", ttl = 60, stale_if_error = "1m", soft_timeout = "2s", hard_timeout = "1s", cache = cache)]
async fn soft_after_hard(cache: &Cache, id: u64) -> Result<u64, DbError> {
    Ok(id)
}

#[cached(key = "c:<id>", ttl = 60, hard_timeout = "0ms", cache = cache)]
async fn zero(cache: &Cache, id: u64) -> Result<u64, DbError> {
    Ok(id)
}

// The background run cannot carry a `&mut`.
#[cached(key = "d:<id>", ttl = 60, stale_if_error = "1m", soft_timeout = "1s", cache = cache)]
async fn borrowed_mut(cache: &Cache, id: &mut u64) -> Result<u64, DbError> {
    Ok(*id)
}

fn main() {}
