use cachette::cached;

pub struct Report {
    pub total: u64,
}

#[cached(key = "report:<id>", ttl = 60)]
async fn report(id: u64) -> Report {
    Report { total: id }
}

fn main() {}
