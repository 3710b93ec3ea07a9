//! Two semver-incompatible versions of one crate in one build (I11): the
//! same paths, the same function, the same type name (`type_name` says no
//! version), different data. They never share an entry: each is served
//! what its own body computed.

use cachette::Cache;

#[tokio::test]
async fn two_versions_of_one_crate_never_share_entries() {
    let cache = Cache::memory();
    assert_eq!(twin1::item(&cache, 7).await.n, 1);
    assert_eq!(twin1::item(&cache, 7).await.n, 1, "a hit");
    assert_eq!(
        twin2::item(&cache, 7).await.n,
        2,
        "version 2 was served version 1's entry"
    );
    assert_eq!(twin1::item(&cache, 7).await.n, 1);
    assert_eq!(cache.stats().misses, 2, "{:?}", cache.stats());
}
