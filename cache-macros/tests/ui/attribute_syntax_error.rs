use cachette::cached;

// A missing comma: only that is reported, not what follows from it.
#[cached(key = "pair:<a>" ttl = 60)]
async fn pair((a, b): (u8, u8)) -> u8 {
    a + b
}

fn main() {}
