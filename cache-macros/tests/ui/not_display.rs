use cachette::cached;

struct Filter {
    limit: u32,
}

#[cached(key = "list:<filter>", ttl = 60)]
async fn list(filter: &Filter) -> u32 {
    filter.limit
}

fn main() {}
