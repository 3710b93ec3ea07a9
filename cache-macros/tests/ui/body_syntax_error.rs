use cachette::cached;

#[cached(key = "n:<id>", ttl = 60)]
async fn number(id: u64) -> u64 {
    let doubled = id * ;
    doubled
}

fn main() {}
