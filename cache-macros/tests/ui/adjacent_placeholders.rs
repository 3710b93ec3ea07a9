use cachette::cached;

#[cached(key = "pair:<a><b>", ttl = 60)]
async fn glued(a: u64, b: u64) -> u64 {
    a + b
}

#[cached(key = "pair:<a>-<b>", ttl = 60)]
async fn dashed(a: u64, b: u64) -> u64 {
    a + b
}

fn main() {}
