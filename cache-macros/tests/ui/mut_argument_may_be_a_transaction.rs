use cachette::{cached, Cache};

struct Connection;

// A `&mut` argument may be a transaction that rolls back: refused unless
// declared not to be one.
#[cached(key = "row:<id>", ttl = 60, cache = cache)]
async fn row(cache: &Cache, conn: &mut Connection, id: i64) -> i64 {
    let _ = conn;
    id
}

// `not_a_transaction` lists `&mut` parameters only.
#[cached(key = "other:<id>", ttl = 60, cache = cache, not_a_transaction = [id])]
async fn other(cache: &Cache, id: i64) -> i64 {
    id
}

// Accepted: declared, and left out of the key.
#[cached(key = "ok:<id>", ttl = 60, cache = cache, not_a_transaction = [conn])]
async fn accepted(cache: &Cache, conn: &mut Connection, id: i64) -> i64 {
    let _ = conn;
    id
}

fn main() {}
