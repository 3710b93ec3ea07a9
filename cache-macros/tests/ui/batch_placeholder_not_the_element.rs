use std::collections::HashMap;

use cachette::cached;

// The key names the collection, not one element.
#[cached(batch = "id in ids", key = "user:<ids>", ttl = 60)]
async fn users(ids: &[u64]) -> HashMap<u64, String> {
    ids.iter().map(|id| (*id, id.to_string())).collect()
}

// The key names another parameter, not the element: every element would
// share one entry.
#[cached(batch = "id in ids", key = "org:<org>", ttl = 60)]
async fn members(org: &str, ids: &[u64]) -> HashMap<u64, String> {
    ids.iter().map(|id| (*id, format!("{org}:{id}"))).collect()
}

// The element's name is not one the key uses.
#[cached(batch = "id in ids", key = "user:<user>", ttl = 60)]
async fn people(ids: &[u64]) -> HashMap<u64, String> {
    ids.iter().map(|id| (*id, id.to_string())).collect()
}

fn main() {}
