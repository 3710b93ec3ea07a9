use std::collections::HashMap;

use cachette::cached;

#[cached(batch = "id in ids", key = "user:<id>", ttl = 60, strategy = "swr")]
async fn users(ids: &[u64]) -> HashMap<u64, String> {
    ids.iter().map(|id| (*id, id.to_string())).collect()
}

#[cached(batch = "id in ids", key = "user:<id>", ttl = 60, stale_if_error = 60)]
async fn people(ids: &[u64]) -> Result<HashMap<u64, String>, String> {
    Ok(ids.iter().map(|id| (*id, id.to_string())).collect())
}

// `one` needs `batch`.
#[cached(key = "user:<id>", ttl = 60, one = get_user)]
async fn user(id: u64) -> String {
    id.to_string()
}

// A batch function is a free, non-generic function.
#[cached(batch = "id in ids", key = "user:<id>", ttl = 60)]
async fn generic<T: Default>(ids: &[u64]) -> HashMap<u64, String> {
    let _ = T::default();
    ids.iter().map(|id| (*id, id.to_string())).collect()
}

// No timeouts on a batch function.
#[cached(batch = "id in ids", key = "user:<id>", ttl = 60, soft_timeout = "1s", hard_timeout = "2s")]
async fn timed(ids: &[u64]) -> HashMap<u64, String> {
    ids.iter().map(|id| (*id, id.to_string())).collect()
}

fn main() {}
