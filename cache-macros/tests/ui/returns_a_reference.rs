use cachette::cached;

#[cached(key = "name:<id>", ttl = 60)]
async fn name(id: u64) -> Option<&'static str> {
    (id == 1).then_some("one")
}

fn main() {}
