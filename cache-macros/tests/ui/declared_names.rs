use cachette::{cached, invalidates, names, Cache};

names! {
    pub tag CategoryTag = "category:<tenant>:<category>";
    pub key ProductKey = "product:<tenant>:<id>";
}

// A misspelled field.
#[cached(key = ProductKey { tenant, id }, ttl = 60, tags = [CategoryTag { tenant, categroy: category }], cache = cache)]
async fn product(cache: &Cache, tenant: &str, id: u64, category: &str) -> u64 {
    id
}

// A key where a tag belongs.
#[invalidates(tags = [ProductKey { tenant, id }], cache = cache)]
async fn wrong_kind(cache: &Cache, tenant: &str, id: u64) {}

// A misspelled name.
#[invalidates(tags = [CategoryTg { tenant, category }], cache = cache)]
async fn unknown(cache: &Cache, tenant: &str, category: &str) {}

// A declared tag passed as a value into a template would be escaped into
// another tag than the one its name busts.
#[cached(key = "members:<id>", ttl = 60, tags = ["<scope>"], cache = cache)]
async fn members(cache: &Cache, id: u64, scope: CategoryTag<&str, &str>) -> u64 {
    id
}

// `tags_from` gives tags: a declared key there would bust nothing.
#[invalidates(tags_from = |id: &u64| [ProductKey { tenant: "acme", id: *id }], cache = cache)]
async fn delete(cache: &Cache) -> Result<u64, String> {
    Ok(1)
}

names! {
    // Fields are plain names.
    pub tag Bad = "bad:<row.id>";
}

fn main() {}
