use cachette::{cached, invalidates, Cache};

#[cached(key = "user:<id>", ttl = 60, cache = cache)]
async fn get_user(cache: &Cache, id: u64) -> Result<String, String> {
    Ok(format!("user {id}"))
}

async fn not_cached(id: u64) -> u64 {
    id
}

// An unknown function.
#[invalidates(calls = [get_usr(cache, id)])]
async fn typo(cache: &Cache, id: u64) {}

// A function that is not #[cached].
#[invalidates(calls = [not_cached(id)])]
async fn plain(id: u64) {}

fn main() {}
