use cachette::cached;

#[cached(key = "user:<idd>", ttl = 60)]
async fn get_user(id: u64, org: &str) -> u64 {
    id
}

fn main() {}
