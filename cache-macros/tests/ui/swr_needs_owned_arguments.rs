use cachette::cached;

struct Repo;

impl Repo {
    #[cached(key = "a:<id>", ttl = 60, strategy = "swr")]
    async fn exclusive(&mut self, id: u64) -> u64 {
        id
    }
}

#[cached(key = "b:<id>", ttl = 60, strategy = "early")]
async fn mutable(id: u64, out: &mut Vec<u64>) -> u64 {
    out.push(id);
    id
}

fn main() {}
