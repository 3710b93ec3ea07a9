use cachette::{cached, invalidates};

const KEY: &str = "a:<id>";

#[cached(key = KEY, ttl = 60)]
async fn get(id: u64) -> u64 {
    id
}

#[invalidates(tags = ["org", org_tag()])]
async fn update(id: u64) {}

fn main() {}
