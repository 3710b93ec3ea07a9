use cachette::{cached, Cache};

struct Pool;

// `tenant` is in neither the key nor the tags: tenant A's row would be
// served to tenant B.
#[cached(key = "product:<id>", ttl = 60, cache = cache)]
async fn product(cache: &Cache, tenant: &str, id: i64) -> Option<String> {
    Some(format!("{tenant}:{id}"))
}

// `unkeyed` lists parameters that do not shape the result, and only those.
#[cached(key = "p:<id>", ttl = 60, cache = cache, unkeyed = [pool, id, nope])]
async fn listed(cache: &Cache, pool: &Pool, id: i64) -> i64 {
    let _ = pool;
    id
}

// Accepted: the pool is declared, `_` cannot shape anything, and the
// default key leaves out what `unkeyed` lists.
#[cached(key = "q:<id>", ttl = 60, cache = cache, unkeyed = [pool])]
async fn accepted(cache: &Cache, pool: &Pool, id: i64, _: u8) -> i64 {
    let _ = pool;
    id
}

#[cached(ttl = 60, cache = cache, unkeyed = [pool])]
async fn default_key(cache: &Cache, pool: &Pool, id: i64) -> i64 {
    let _ = pool;
    id
}

cachette::names! {
    pub key PostsKey = "posts:<author>:<page>";
}

struct Filter {
    author: u32,
    page: u32,
}

// `page` appears in the declared key only as a field of `filter`: the
// parameter itself is not keyed.
#[cached(key = PostsKey { author: filter.author, page: filter.page }, ttl = 60, cache = cache)]
async fn posts(cache: &Cache, filter: &Filter, page: u32) -> u32 {
    page
}

struct Caches;

impl Caches {
    fn for_tenant(&self, _tenant: &str) -> &Cache {
        unimplemented!()
    }
}

// The tenant picks a cache, but two tenants may share one: it must be keyed.
#[cached(key = "settings", ttl = 60, cache = caches.for_tenant(tenant))]
async fn settings(caches: &Caches, tenant: &str) -> String {
    tenant.to_string()
}

fn main() {}
