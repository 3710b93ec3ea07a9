use cachette::{cached, cached_impl, Cache};

struct Repo {
    cache: Cache,
}

#[cached_impl(cache = self.cache)]
impl Repo {
    #[cached(key = "report:<id>", ttl = 60, strategy = "swr")]
    async fn report(&self, id: u64) -> u64 {
        id
    }
}

fn main() {}
