//! I5: distinct arguments give distinct keys, and an argument can never
//! widen a tag bust.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use cachette::{cached, invalidates, Cache, KeyBuilder};

use crate::support::each_backend;

static PAIR_CALLS: AtomicU64 = AtomicU64::new(0);

#[cached(cache = cache, key = "pair:<a>:<b>", ttl = 60)]
async fn pair(cache: &Cache, a: &str, b: &str) -> String {
    PAIR_CALLS.fetch_add(1, SeqCst);
    format!("{a}|{b}")
}

#[tokio::test]
async fn arguments_that_join_alike_are_different_entries() {
    for (cache, _server) in each_backend().await {
        assert_eq!(pair(&cache, "1:x", "y").await, "1:x|y");
        assert_eq!(pair(&cache, "1", "x:y").await, "1|x:y");
        assert_eq!(pair(&cache, "1:x", "y").await, "1:x|y");
        assert_eq!(pair(&cache, "1", "x:y").await, "1|x:y");
        assert_eq!(cache.stats().hits, 2);
        assert_eq!(cache.stats().misses, 2);
    }
}

#[cached(cache = cache, key = "doc:<id>", ttl = 60, tags = ["org:<org>"])]
async fn doc(cache: &Cache, id: u32, org: &str) -> String {
    format!("{id}@{org}")
}

#[invalidates(cache = cache, tags = ["org:<org>"])]
async fn touch_org(cache: &Cache, org: &str) {}

#[invalidates(cache = cache, tags = ["<any>"])]
async fn touch_any(cache: &Cache, any: &str) {}

#[tokio::test]
async fn a_tag_argument_cannot_bust_another_tag() {
    for (cache, _server) in each_backend().await {
        doc(&cache, 1, "1").await;
        doc(&cache, 2, "acme").await;
        let hits = |c: &Cache| c.stats().hits;

        // A wildcard is just a string.
        touch_org(&cache, "*").await;
        doc(&cache, 1, "1").await;
        doc(&cache, 2, "acme").await;
        assert_eq!(hits(&cache), 2, "`*` busted other orgs");

        // A value that spells another tag's text is escaped, so it is not it.
        touch_any(&cache, "org:1").await;
        doc(&cache, 1, "1").await;
        assert_eq!(
            hits(&cache),
            3,
            "`org:1` through another template busted org:1"
        );

        // The real tag, named with the same template, busts it.
        touch_org(&cache, "1").await;
        doc(&cache, 1, "1").await;
        assert_eq!(hits(&cache), 3);
    }
}

#[tokio::test]
async fn programmatic_busts_name_what_templates_render() {
    for (cache, _server) in each_backend().await {
        pair(&cache, "a b", "c:d").await;
        doc(&cache, 5, "x/y").await;
        let key = KeyBuilder::new("pair:<a>:<b>")
            .arg("a", "a b")
            .arg("b", "c:d")
            .build()
            .unwrap();
        cache.invalidate_keys([key]).await.unwrap();
        let tag = KeyBuilder::new("org:<org>")
            .arg("org", "x/y")
            .build()
            .unwrap();
        cache.invalidate_tags([tag.as_str()]).await.unwrap();
        pair(&cache, "a b", "c:d").await;
        doc(&cache, 5, "x/y").await;
        assert_eq!(cache.stats().hits, 0);
        assert_eq!(cache.stats().invalidations, 2);

        // Plain strings name rendered keys as they are.
        doc(&cache, 6, "acme").await;
        cache.invalidate_tags(["org:acme"]).await.unwrap();
        doc(&cache, 6, "acme").await;
        assert_eq!(cache.stats().hits, 0);
    }
}

#[tokio::test]
async fn very_long_keys_are_hashed_and_still_distinct() {
    for (cache, _server) in each_backend().await {
        let a = "a".repeat(10_000);
        let b = format!("{}b", "a".repeat(9_999));
        assert_eq!(pair(&cache, &a, "1").await.len(), 10_002);
        assert!(pair(&cache, &b, "1").await.ends_with("b|1"));
        assert_eq!(cache.stats().misses, 2);
        pair(&cache, &a, "1").await;
        assert_eq!(cache.stats().hits, 1);
    }
}
