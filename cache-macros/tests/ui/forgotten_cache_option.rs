// A `Cache` parameter left out of `cache = ...`: the function would use the
// process's default cache, not the one passed in.
use cachette::{cached, Cache};

#[cached(key = "user:<id>", ttl = 60)]
async fn get_user(cache: &Cache, id: u64) -> u64 {
    let _ = cache;
    id
}

#[cached(key = "item:<id>", ttl = 60)]
async fn get_item(shared: std::sync::Arc<Cache>, id: u64) -> u64 {
    let _ = shared;
    id
}

// Listing it as unkeyed does not make it the cache either.
#[cached(key = "order:<id>", ttl = 60, unkeyed = [cache])]
async fn get_order(cache: &Cache, id: u64) -> u64 {
    let _ = cache;
    id
}

// Without a key (the default key leaves out nothing but unkeyed ones).
#[cached(ttl = 60)]
async fn get_rate(cache: &Cache, id: u64) -> u64 {
    let _ = cache;
    id
}

fn main() {}
