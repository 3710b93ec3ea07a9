use cachette::cached;

#[cached(key = "a:<id>", ttl = 60, strategy = "write-behind")]
async fn unknown(id: u64) -> u64 {
    id
}

#[cached(key = "b:<id>", ttl = 60, strategy = "swr")]
async fn not_yet(id: u64) -> u64 {
    id
}

fn main() {}
