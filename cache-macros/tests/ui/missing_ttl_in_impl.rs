use cachette::{cached, cached_impl, Cache};

struct Repo {
    cache: Cache,
}

// Inside `#[cached_impl]`, the error names the method, not the impl.
#[cached_impl(cache = self.cache)]
impl Repo {
    #[cached(key = "a:<id>", ttl = 60)]
    async fn fine(&self, id: u64) -> u64 {
        id
    }

    #[cached(key = "b:<id>")]
    async fn forgot_its_ttl(&self, id: u64) -> u64 {
        id
    }
}

fn main() {}
