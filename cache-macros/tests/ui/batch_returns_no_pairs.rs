use cachette::cached;

#[cached(batch = "id in ids", key = "user:<id>", ttl = 60)]
async fn names(ids: &[u64]) -> Vec<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

#[cached(batch = "id in ids", key = "user:<id>", ttl = 60)]
async fn count(ids: &[u64]) -> Result<usize, String> {
    Ok(ids.len())
}

fn main() {}
