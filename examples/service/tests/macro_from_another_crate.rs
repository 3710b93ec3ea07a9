//! `#[cached]` written by a `macro_rules!` of another crate, whose return
//! type mixes the caller's tokens and `$crate`: the attribute keeps every
//! token where it resolves.

use cachette::Cache;

cachette_examples::cached_lookup!(lookup, Option);

#[tokio::test]
async fn an_attribute_from_another_crates_macro_resolves_its_paths() {
    let cache = Cache::memory();
    assert_eq!(lookup(&cache, 1).await.unwrap().name, "Apollo");
    assert_eq!(lookup(&cache, 1).await.unwrap().name, "Apollo");
    assert!(lookup(&cache, 2).await.is_none());
    assert_eq!(cache.stats().hits, 1);
}
