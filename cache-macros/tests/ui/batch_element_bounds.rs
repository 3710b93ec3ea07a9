use std::collections::HashMap;

use cachette::cached;

#[derive(Clone, PartialEq, Eq, Hash)]
struct Sku(String);

// Not `Display`: it cannot be rendered into the key.
#[cached(batch = "sku in skus", key = "price:<sku>", ttl = 60)]
async fn prices(skus: &[Sku]) -> Vec<(Sku, u32)> {
    skus.iter().map(|s| (s.clone(), 1)).collect()
}

#[derive(Clone, PartialEq)]
struct Point(u32);

impl std::fmt::Display for Point {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

// Not `Hash + Eq`: elements cannot be matched to what the body returns.
#[cached(batch = "p in points", key = "point:<p>", ttl = 60)]
async fn heights(points: &[Point]) -> Vec<(Point, u32)> {
    points.iter().map(|p| (p.clone(), p.0)).collect()
}

fn main() {
    let _ = HashMap::<u8, u8>::new();
}
