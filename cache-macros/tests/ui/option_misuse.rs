use std::time::Duration;

use cachette::cached;

fn seconds(value: &u64) -> u64 {
    *value
}

// `ttl_fn` takes the stored value and returns a `Duration`.
#[cached(key = "a:<id>", ttl = 60, ttl_fn = seconds)]
async fn wrong_ttl_fn(id: u64) -> u64 {
    id
}

// `none_ttl` is for functions returning an `Option`.
#[cached(key = "b:<id>", ttl = 60, none_ttl = "30s")]
async fn not_an_option(id: u64) -> u64 {
    id
}

// A TTL expression is a `Duration`.
#[cached(key = "c:<id>", ttl = 60u32 + 1)]
async fn not_a_duration(id: u64) -> u64 {
    id
}

// `unless` says whether not to store the value.
#[cached(key = "d:<id>", ttl = 60, unless = |v: &u64| Some(*v))]
async fn unless_not_a_bool(id: u64) -> u64 {
    id
}

// `stale_if_error` returns the last good value when the body fails: it
// needs a `Result`.
#[cached(key = "e:<id>", ttl = 60, stale_if_error = "10m")]
async fn not_a_result(id: u64) -> Option<u64> {
    Some(id)
}

// The codecs are "json" and "postcard"; a version is a whole number.
#[cached(key = "f:<id>", ttl = 60, codec = "bincode", version = "2")]
async fn unknown_codec(id: u64) -> u64 {
    id
}

fn main() {
    let _ = Duration::ZERO;
}
