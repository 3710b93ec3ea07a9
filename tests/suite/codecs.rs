//! Codecs and compression: every entry records a fingerprint of its value's
//! type, its function's `version` and its codec, so a value written by
//! another build is a miss, never a wrong value; large values are
//! compressed, and a compressed value cannot inflate a reader's memory.
#![cfg(all(feature = "postcard", feature = "compression"))]

use std::time::Duration;

use cachette::__private as p;
use cachette::__private::SelectPlain as _;
use cachette::{cached, Cache, Codec};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::support::{each_backend, entry_name, RedisServer};

/// One build's row.
mod v1 {
    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    pub struct Row {
        pub a: u8,
        pub b: u8,
    }
}

/// The next build's row: the same fields, in another order.
mod v2 {
    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    pub struct Row {
        pub b: u8,
        pub a: u8,
    }
}

/// A call of the function `row` as some build compiled it: its value type
/// `T`, `codec` and `version`. Every build has the same function identity,
/// as a redeploy of unchanged code does.
async fn row_as<T>(cache: &Cache, codec: Codec, version: u32, value: T) -> T
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    let policy = p::Policy::new(p::Strategy::Aside, Duration::from_secs(60))
        .codec(codec)
        .version(version);
    let site = p::Site {
        cache,
        policy: &policy,
        function: p::function_named("codecs::row", "row"),
        through_mut: None,
    };
    // A generic `T`: the plain mode, as the attribute would select.
    let mode = p::Select::<T>::new().__cachette_mode();
    p::cached(
        site,
        mode,
        p::Keeper::none(),
        "row:1",
        &[],
        p::Hooks::none(),
        async move { value },
        p::no_refresh(),
    )
    .await
}

/// A struct whose fields changed order between the writer and the reader
/// is read as a miss, under a compact codec that would decode it wrongly;
/// so is a value of another `version` or codec.
#[tokio::test]
async fn an_entry_written_by_another_build_is_a_miss() {
    for (cache, _server) in each_backend().await {
        let backend = cache.backend_name();
        let old = v1::Row { a: 1, b: 2 };
        let new = v2::Row { b: 2, a: 1 };
        assert_eq!(row_as(&cache, Codec::Postcard, 1, old.clone()).await, old);
        let misses = cache.stats().misses;
        assert_eq!(
            row_as(&cache, Codec::Postcard, 1, new.clone()).await,
            new,
            "{backend}: postcard would read b = 1, a = 2"
        );
        assert_eq!(cache.stats().misses, misses + 1, "{backend}: a miss");
        assert_eq!(row_as(&cache, Codec::Postcard, 1, new.clone()).await, new);
        assert_eq!(
            cache.stats().hits,
            1,
            "{backend}: the new build's entry is a hit"
        );

        // The same type, another version: a miss.
        let other = v2::Row { b: 9, a: 9 };
        assert_eq!(
            row_as(&cache, Codec::Postcard, 2, other.clone()).await,
            other,
            "{backend}"
        );
        // The same type and version, another codec: a miss.
        let json = v2::Row { b: 7, a: 7 };
        assert_eq!(
            row_as(&cache, Codec::Json, 2, json.clone()).await,
            json,
            "{backend}"
        );
        assert_eq!(cache.stats().misses, misses + 3, "{backend}");
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Page {
    id: u64,
    body: String,
}

#[cached(key = "page:<id>", ttl = 60, codec = "postcard", version = 3, cache = cache)]
async fn page(cache: &Cache, id: u64) -> Page {
    Page {
        id,
        body: "lorem ipsum ".repeat(2000), // 24 KB
    }
}

/// A postcard value, compressed, round trips on both backends; in Redis
/// it takes a fraction of its size.
#[tokio::test]
async fn compressed_values_round_trip() {
    let server = RedisServer::start();
    let caches = [
        Cache::builder().compress_above(1024).memory(),
        crate::support::builder()
            .compress_above(1024)
            .connect(&server.url())
            .await
            .unwrap(),
    ];
    for cache in caches {
        let backend = cache.backend_name();
        let first = page(&cache, 1).await;
        assert_eq!(page(&cache, 1).await, first, "{backend}");
        assert_eq!(cache.stats().hits, 1, "{backend}: read back");
        assert_eq!(cache.stats().decode_failures, 0, "{backend}");
    }
    let mut redis = server.raw();
    let stored: usize = redis::cmd("STRLEN")
        .arg(entry_name(&server, "page:1"))
        .query(&mut redis)
        .unwrap();
    assert!(stored < 2000, "24 KB stored in {stored} bytes");
}

/// An entry whose compressed value decompresses to more than
/// `max_value_bytes` (planted in Redis: 5 MiB of text in 20 KiB) is a
/// miss, refused by the size it claims before anything is allocated.
#[tokio::test]
async fn a_decompression_bomb_is_refused() {
    let server = RedisServer::start();
    let cache = crate::support::builder()
        .compress_above(1024)
        .max_value_bytes(1 << 20)
        .connect(&server.url())
        .await
        .unwrap();
    page(&cache, 2).await;
    let name = entry_name(&server, "page:2");
    let mut redis = server.raw();
    let blob: Vec<u8> = redis::cmd("GET").arg(&name).query(&mut redis).unwrap();
    // The value starts after the header (40 bytes) and the versions.
    let value_at = 40 + usize::from(blob[2]) * 16;
    let bomb = Page {
        id: 2,
        body: "x".repeat(5 << 20),
    };
    let packed = lz4_flex::block::compress_prepend_size(&postcard::to_stdvec(&bomb).unwrap());
    assert!(packed.len() < 64 << 10);
    let planted = [&blob[..value_at], &packed[..]].concat();
    let _: () = redis::cmd("SET")
        .arg(&name)
        .arg(planted)
        .arg("KEEPTTL")
        .query(&mut redis)
        .unwrap();
    let failures = cache.stats().decode_failures;
    let read = page(&cache, 2).await;
    assert_eq!(
        read.body.len(),
        24_000,
        "the body ran: the planted value was refused"
    );
    assert_eq!(
        cache.stats().decode_failures,
        failures + 1,
        "refused, as a miss"
    );
    assert_eq!(cache.stats().hits, 0);
}

#[cached(key = "big:<id>", ttl = 600, cache = cache)]
async fn big(cache: &Cache, id: u64) -> String {
    format!("{id}").repeat(100_000)
}

/// The size bound is on the value as a reader decodes it: a value over
/// `max_value_bytes` that would compress under it is not stored (and
/// counted as too large), rather than stored and refused on every read.
#[tokio::test]
async fn the_size_bound_is_on_the_value_before_compression() {
    let server = RedisServer::start();
    let caches = [
        Cache::builder()
            .compress_above(1024)
            .max_value_bytes(64 * 1024)
            .memory(),
        crate::support::builder()
            .compress_above(1024)
            .max_value_bytes(64 * 1024)
            .connect(&server.url())
            .await
            .unwrap(),
    ];
    for cache in caches {
        let backend = cache.backend_name();
        big(&cache, 7).await;
        big(&cache, 7).await;
        let stats = cache.stats();
        assert_eq!(stats.too_large, 2, "{backend}: {stats:?}");
        assert_eq!(stats.decode_failures, 0, "{backend}: {stats:?}");
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Profile {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    nick: Option<u8>,
    age: u8,
    scores: Vec<u8>,
}

#[cached(key = "profile:<id>", ttl = 600, codec = "postcard", cache = cache)]
async fn profile(cache: &Cache, id: u64) -> Profile {
    let _ = id;
    Profile {
        nick: None,
        age: 0,
        scores: vec![3, 4, 4, 4],
    }
}

/// A value that postcard would read back as another value (a field
/// skipped when serializing) is not stored, with a warning: a hit never
/// returns anything but what the body returned.
#[tokio::test]
async fn a_value_that_does_not_read_back_is_not_stored() {
    for (cache, _server) in each_backend().await {
        let backend = cache.backend_name();
        let computed = profile(&cache, 1).await;
        assert_eq!(profile(&cache, 1).await, computed, "{backend}");
        assert_eq!(cache.stats().hits, 0, "{backend}: not stored");
    }
}

#[cached(cache = cache, key = "big:<id>", ttl = 60)]
async fn big_page(cache: &Cache, id: u64) -> String {
    // About 900 KB that compress to a few KB.
    format!("{id}:{}", "x".repeat(900_000))
}

/// Reads every page twice, and returns the hits of the second pass.
async fn second_pass_hits(cache: &Cache, pages: u64, hits: impl Fn(&Cache) -> u64) -> u64 {
    for id in 0..pages {
        assert_eq!(
            big_page(cache, id).await.len(),
            900_000 + id.to_string().len() + 1
        );
    }
    let before = hits(cache);
    for id in 0..pages {
        big_page(cache, id).await;
    }
    hits(cache) - before
}

/// A memory budget counts the decoded value kept beside an entry's
/// compressed bytes: 100 pages of 900 KB, compressed to a few KB each,
/// cannot all stay in 4 MiB. They did when only the stored bytes were
/// counted (100 of 100 hits), which let a budget of 4 MiB hold 90 MiB.
#[tokio::test]
async fn memory_budgets_count_decoded_values() {
    let budget = 4 << 20;
    // What the budget can hold of decoded pages, with room for the
    // cache's own lag in evicting.
    let most = 3 * (budget / 900_000);
    let embedded = Cache::builder()
        .max_memory_bytes(budget)
        .compress_above(1024)
        .memory();
    let hits = second_pass_hits(&embedded, 100, |c| c.stats().hits).await;
    assert!(hits <= most, "the embedded backend kept {hits} pages");

    let server = RedisServer::start();
    let near = crate::support::builder()
        .near_cache_bytes(budget)
        .compress_above(1024)
        .connect(&server.url())
        .await
        .unwrap();
    let hits = second_pass_hits(&near, 100, |c| c.stats().near_hits).await;
    assert!(hits <= most, "the near-cache kept {hits} pages");
}
