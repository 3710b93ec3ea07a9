use cachette::{cached, Cache};

struct Repo {
    cache: Cache,
}

trait Users {
    async fn name(&self, id: u64) -> String;
}

// The companions (`name_uncached`, ...) cannot be items of the trait's impl:
// `#[cached_impl]` on the impl puts them in an inherent impl.
impl Users for Repo {
    #[cached(key = "user:<id>", ttl = 60, cache = self.cache)]
    async fn name(&self, id: u64) -> String {
        format!("user {id}")
    }
}

fn main() {}
