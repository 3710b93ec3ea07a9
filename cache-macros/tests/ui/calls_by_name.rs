use cachette::{cached, invalidates, Cache};

#[cached(key = "price:<tenant>:<sku>", ttl = 60, cache = cache)]
async fn price(cache: &Cache, tenant: &str, sku: &str) -> u64 {
    let _ = (tenant, sku);
    1
}

struct Row {
    tenant: String,
    sku: String,
}

// Two arguments that are not named: they could be swapped unseen.
#[invalidates(calls = [price(cache, &row.sku, &row.tenant)])]
async fn positional(cache: &Cache, row: &Row) {}

fn main() {}
