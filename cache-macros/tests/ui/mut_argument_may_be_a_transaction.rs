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

struct Repo {
    cache: Cache,
}

#[cachette::cached_impl(cache = self.cache)]
impl Repo {
    // A `&mut self` receiver may hold a transaction too.
    #[cached(key = "mine:<id>", ttl = 60)]
    async fn mine(&mut self, id: i64) -> i64 {
        id
    }
}

// Through `macro_rules!`, the type arrives in an invisible group.
macro_rules! reader {
    ($name:ident, $t:ty) => {
        #[cached(key = "m:<id>", ttl = 60, cache = cache)]
        async fn $name(cache: &Cache, conn: $t, id: i64) -> i64 {
            let _ = conn;
            id
        }
    };
}
reader!(through_macro, &mut Connection);

fn main() {}
