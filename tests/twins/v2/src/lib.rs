//! Version 2 of a crate that caches a function; version 1 has the same
//! paths and the same function, whose source answers otherwise.

use cachette::{cached, Cache};

#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Item {
    pub n: u64,
}

/// What this version's source holds.
pub fn load(_id: u64) -> Item {
    Item { n: 2 }
}

#[cached(cache = cache, key = "item:<id>", ttl = 600)]
pub async fn item(cache: &Cache, id: u64) -> Item {
    load(id)
}
