use cachette::cached;

pub struct Filter {
    pub limit: u32,
}

#[cached(ttl = 60)]
async fn list(filter: &Filter) -> u32 {
    filter.limit
}

fn main() {}
