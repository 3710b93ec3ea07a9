use cachette::{cached, invalidates};

#[cached(key = "user:<id>", ttl = 60)]
fn get_user(id: u64) -> u64 {
    id
}

#[invalidates(keys = ["user:<id>"])]
fn update_user(id: u64) {}

fn main() {}
