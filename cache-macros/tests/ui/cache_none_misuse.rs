use cachette::cached;

#[cached(key = "a:<id>", ttl = 60, cache_none = true)]
async fn not_an_option(id: u64) -> Result<u64, String> {
    Ok(id)
}

#[cached(key = "b:<id>", ttl = 60)]
async fn nothing_to_cache(id: u64) {}

fn main() {}
