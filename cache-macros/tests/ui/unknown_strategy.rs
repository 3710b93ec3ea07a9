use cachette::cached;

#[cached(key = "a:<id>", ttl = 60, strategy = "write-behind")]
async fn unknown(id: u64) -> u64 {
    id
}

fn main() {}
