use cachette::cached;

#[cached(key = "a:<id>", ttl = 60, ttl = 30)]
async fn get(id: u64) -> u64 {
    id
}

fn main() {}
