use cachette::cached;

#[cached(key = "a:<id>", ttl = 60, none_ttl = "30s")]
async fn never_none(id: u64) -> Result<u64, String> {
    Ok(id)
}

#[cached(key = "b:<id>", ttl = 60, cache_none = true)]
async fn plain(id: u64) -> u64 {
    id
}

#[cached(key = "c:<id>", ttl = 60, stale_if_error = "1m")]
async fn never_fails(id: u64) -> Option<u64> {
    Some(id)
}

// `swr` and `stale_if_error` need "not found" stored on the Option shapes.
#[cached(key = "f:<id>", ttl = 60, strategy = "swr")]
async fn swr_option(id: u64) -> Option<u64> {
    Some(id)
}

#[cached(key = "g:<id>", ttl = 60, stale_if_error = "1m")]
async fn stale_result_option(id: u64) -> Result<Option<u64>, String> {
    Ok(Some(id))
}

// Contradictory.
#[cached(key = "e:<id>", ttl = 60, none_ttl = "30s", cache_none = false)]
async fn contradiction(id: u64) -> Option<u64> {
    Some(id)
}

// Accepted: `Result<Option<T>, E>` caches `None` for `none_ttl`.
#[cached(key = "d:<id>", ttl = 60, none_ttl = "30s", stale_if_error = "1m", strategy = "swr")]
async fn found(id: u64) -> Result<Option<u64>, String> {
    Ok(Some(id))
}

fn main() {}
