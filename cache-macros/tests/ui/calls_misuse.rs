use cachette::{cached, invalidates, Cache};

#[cached(key = "user:<id>", ttl = 60, cache = cache)]
async fn get_user(cache: &Cache, id: u64) -> Result<String, String> {
    Ok(format!("user {id}"))
}

async fn not_cached(id: u64) -> u64 {
    id
}

// Wrong arguments: the signature changed, or the call is wrong.
#[invalidates(calls = [get_user(cache, "1")])]
async fn wrong_type(cache: &Cache, id: u64) {}

#[invalidates(calls = [get_user(id)])]
async fn missing_argument(cache: &Cache, id: u64) {}

// A call where a template is expected, and a template where a call is.
#[invalidates(keys = [get_user(cache, id)])]
async fn call_in_keys(cache: &Cache, id: u64) {}

#[invalidates(calls = ["user:<id>"])]
async fn template_in_calls(cache: &Cache, id: u64) {}

fn main() {}
