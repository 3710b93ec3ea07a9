use cachette::{cached, invalidates};

#[cached(key = "a:<id>", ttl = 60, tags = "org:<id>")]
async fn get(id: u64) -> u64 {
    id
}

#[invalidates(keys = "a:<id>")]
async fn update(id: u64) {}

fn main() {}
