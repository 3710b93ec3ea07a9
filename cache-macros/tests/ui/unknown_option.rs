use cachette::{cached, invalidates};

#[cached(key = "a:<id>", ttl = 60, expire = 5)]
async fn get(id: u64) -> u64 {
    id
}

#[invalidates(key = "a:<id>")]
async fn update(id: u64) {}

fn main() {}
