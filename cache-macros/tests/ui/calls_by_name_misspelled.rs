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

// A misspelled parameter name.
#[invalidates(calls = [price(cache = cache, tenat = &row.tenant, sku = &row.sku)])]
async fn misspelled(cache: &Cache, row: &Row) {}

// A missing one.
#[invalidates(calls = [price(cache = cache, sku = &row.sku)])]
async fn missing(cache: &Cache, row: &Row) {}

// Accepted, in any order: by name, and by variables of the parameters' names.
#[invalidates(calls = [price(sku = &row.sku, cache = cache, tenant = &row.tenant)])]
async fn named(cache: &Cache, row: &Row) {}

#[invalidates(calls = [price(sku, cache, tenant)])]
async fn shorthand(cache: &Cache, tenant: &str, sku: &str) {}

fn main() {}
