use cachette::cached;

#[cached(key = "a:<id>", ttl = 0)]
async fn zero(id: u64) -> u64 {
    id
}

#[cached(key = "b:<id>", ttl = "5 minutes")]
async fn words(id: u64) -> u64 {
    id
}

#[cached(key = "c:<id>", ttl = 1.5)]
async fn float(id: u64) -> u64 {
    id
}

#[cached(key = "d:<id>")]
async fn missing(id: u64) -> u64 {
    id
}

fn main() {}
