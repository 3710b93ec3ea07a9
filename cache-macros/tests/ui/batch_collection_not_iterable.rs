use std::collections::HashMap;

use cachette::cached;

// One id is not a collection.
#[cached(batch = "id in ids", key = "user:<id>", ttl = 60)]
async fn users(ids: u64) -> HashMap<u64, String> {
    HashMap::from([(ids, ids.to_string())])
}

// `ids` is not a parameter.
#[cached(batch = "id in ids", key = "user:<id>", ttl = 60)]
async fn people(list: &[u64]) -> HashMap<u64, String> {
    list.iter().map(|id| (*id, id.to_string())).collect()
}

// Not "element in collection".
#[cached(batch = "ids", key = "user:<id>", ttl = 60)]
async fn names(ids: &[u64]) -> HashMap<u64, String> {
    ids.iter().map(|id| (*id, id.to_string())).collect()
}

fn main() {}
