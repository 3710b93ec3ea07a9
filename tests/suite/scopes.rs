//! Request-wide scopes (`scope::bypass`, `scope::refresh`, `scope::off`)
//! and `CacheBuilder::disabled`, on every backend, for single-key and
//! batch functions.

use std::collections::HashMap;
use std::sync::atomic::Ordering::SeqCst;

use cachette::{cached, invalidates, scope, Cache};

use crate::support::source::Source;

#[cached(key = "sc:<id>", ttl = 60, cache = cache, unkeyed = [source])]
async fn sc_read(cache: &Cache, source: &Source, id: u64) -> u64 {
    let _ = id;
    source.read().await
}

#[cached(batch = "id in ids", key = "sc_many:<id>", ttl = 60, cache = cache, unkeyed = [source])]
async fn sc_many(cache: &Cache, source: &Source, ids: &[u64]) -> HashMap<u64, u64> {
    let version = source.read().await;
    ids.iter().map(|id| (*id, version)).collect()
}

#[invalidates(keys = ["sc:<id>"], cache = cache)]
async fn sc_write(cache: &Cache, id: u64) {}

/// Bypass: the body runs and nothing is stored; refresh: the body runs
/// and its value is stored; counted in stats.
#[tokio::test]
async fn bypass_reads_around_the_cache_and_refresh_stores_anew() {
    for (cache, _backing) in crate::support::each_backend().await {
        let what = cache.backend_name();
        let source = Source::default();
        source.version.store(1, SeqCst);
        assert_eq!(sc_read(&cache, &source, 1).await, 1);
        source.version.store(2, SeqCst);

        let before = cache.stats();
        assert_eq!(
            scope::bypass(sc_read(&cache, &source, 1)).await,
            2,
            "{what}"
        );
        assert_eq!(source.runs(), 2, "{what}: the body ran");
        assert_eq!(
            sc_read(&cache, &source, 1).await,
            1,
            "{what}: nothing stored"
        );
        let after = cache.stats();
        assert_eq!(after.scope_bypasses - before.scope_bypasses, 1, "{what}");
        assert_eq!(after.hits - before.hits, 1, "{what}: only the call outside");

        assert_eq!(
            scope::refresh(sc_read(&cache, &source, 1)).await,
            2,
            "{what}"
        );
        assert_eq!(source.runs(), 3, "{what}");
        let hits = cache.stats().hits;
        assert_eq!(sc_read(&cache, &source, 1).await, 2, "{what}: stored");
        assert_eq!(cache.stats().hits, hits + 1, "{what}");
        assert_eq!(cache.stats().scope_refreshes - before.scope_refreshes, 1);

        // Batches: every element around the cache, or refreshed.
        source.version.store(3, SeqCst);
        assert_eq!(sc_many(&cache, &source, &[1, 2]).await[&2], 3);
        source.version.store(4, SeqCst);
        let runs = source.runs();
        let got = scope::bypass(sc_many(&cache, &source, &[1, 2])).await;
        assert_eq!(
            (got[&1], got[&2], source.runs()),
            (4, 4, runs + 1),
            "{what}"
        );
        assert_eq!(sc_many(&cache, &source, &[1, 2]).await[&1], 3, "{what}");
        let got = scope::refresh(sc_many(&cache, &source, &[1, 2])).await;
        assert_eq!((got[&1], got[&2]), (4, 4), "{what}");
        let runs = source.runs();
        assert_eq!(sc_many(&cache, &source, &[1, 2]).await[&2], 4, "{what}");
        assert_eq!(source.runs(), runs, "{what}: the refresh stored both");
    }
}

/// Off: as if there were no cache (nothing read, stored or counted), but
/// an invalidation made inside still goes: the write changed data others
/// have cached.
#[tokio::test]
async fn off_caches_nothing_and_still_busts() {
    for (cache, _backing) in crate::support::each_backend().await {
        let what = cache.backend_name();
        let source = Source::default();
        source.version.store(1, SeqCst);
        assert_eq!(sc_read(&cache, &source, 7).await, 1);
        source.version.store(2, SeqCst);
        let before = cache.stats();
        let got = scope::off(async {
            let read = sc_read(&cache, &source, 7).await;
            sc_write(&cache, 7).await;
            read
        })
        .await;
        assert_eq!(got, 2, "{what}: the body ran");
        let after = cache.stats();
        assert_eq!(
            (after.hits, after.misses, after.scope_bypasses),
            (before.hits, before.misses, before.scope_bypasses),
            "{what}: nothing read or counted"
        );
        assert_eq!(after.invalidations - before.invalidations, 1, "{what}");
        assert_eq!(
            sc_read(&cache, &source, 7).await,
            2,
            "{what}: the bust went"
        );
    }
}

/// The innermost scope decides; a scope does not reach a spawned task.
#[tokio::test]
async fn the_innermost_scope_decides() {
    let cache = Cache::memory();
    let source = Source::default();
    source.version.store(1, SeqCst);
    sc_read(&cache, &source, 1).await;
    source.version.store(2, SeqCst);
    let got = scope::bypass(async {
        assert_eq!(scope::current(), Some(scope::Scope::Bypass));
        let inner = scope::refresh(sc_read(&cache, &source, 1)).await;
        let spawned = tokio::spawn({
            let (cache, source) = (cache.clone(), source.clone());
            async move { (scope::current(), sc_read(&cache, &source, 1).await) }
        })
        .await
        .unwrap();
        (inner, spawned)
    })
    .await;
    assert_eq!(
        got,
        (2, (None, 2)),
        "refreshed inside; the task read the refresh's value"
    );
    assert_eq!(scope::current(), None);
}

/// A disabled cache runs every body and stores nothing.
#[tokio::test]
async fn a_disabled_cache_runs_every_body() {
    let cache = Cache::builder().disabled().memory();
    let source = Source::default();
    for version in 1..=3 {
        source.version.store(version, SeqCst);
        assert_eq!(sc_read(&cache, &source, 1).await, version);
        assert_eq!(sc_many(&cache, &source, &[1]).await[&1], version);
    }
    assert_eq!((source.runs(), cache.stats().hits), (6, 0));
}

/// A batch call in a scope or on a disabled cache is reported as its
/// single-key calls would be: nothing in `off`, a bypass per element in
/// `bypass` and on a disabled cache, never a miss (found by the red team).
#[tokio::test]
async fn a_batch_in_a_scope_is_reported_as_the_scope_says() {
    use cachette::testing::Recorder;
    use cachette::EventKind;
    let recorder = Recorder::new();
    let cache = recorder.memory_cache();
    let source = Source::default();
    scope::off(sc_many(&cache, &source, &[1, 2])).await;
    assert_eq!(recorder.events(), [], "off");
    scope::bypass(sc_many(&cache, &source, &[1, 2])).await;
    let counts = |r: &Recorder| {
        (
            r.count(EventKind::Miss, "sc_many"),
            r.count(EventKind::Bypass, "sc_many"),
        )
    };
    assert_eq!(counts(&recorder), (0, 2), "bypass: (misses, bypasses)");
    let disabled = Recorder::new();
    let cache = Cache::builder()
        .on_event(disabled.listener())
        .disabled()
        .memory();
    sc_many(&cache, &source, &[1, 2]).await;
    assert_eq!(counts(&disabled), (0, 2), "disabled: (misses, bypasses)");
}

/// Rows a test deletes behind the cache's back (as an admin's tool, or a
/// write that forgot its bust, would).
#[derive(Default)]
struct Rows(std::sync::Mutex<HashMap<u64, String>>);

impl Rows {
    fn with(id: u64, row: &str) -> Rows {
        let rows = Rows::default();
        rows.0.lock().unwrap().insert(id, row.to_string());
        rows
    }

    fn get(&self, id: u64) -> Option<String> {
        self.0.lock().unwrap().get(&id).cloned()
    }

    fn set(&self, id: u64, row: &str) {
        self.0.lock().unwrap().insert(id, row.to_string());
    }

    fn delete(&self, id: u64) {
        self.0.lock().unwrap().remove(&id);
    }
}

#[cached(key = "sc_row:<id>", ttl = 60, cache = cache, unkeyed = [rows])]
async fn sc_row(cache: &Cache, rows: &Rows, id: u64) -> Option<String> {
    rows.get(id)
}

#[cached(batch = "id in ids", key = "sc_rows:<id>", ttl = 60, cache = cache, unkeyed = [rows])]
async fn sc_rows(cache: &Cache, rows: &Rows, ids: &[u64]) -> HashMap<u64, String> {
    ids.iter()
        .filter_map(|id| Some((*id, rows.get(*id)?)))
        .collect()
}

/// A refresh whose body finds the row gone (a `None` that is not cached)
/// replaces the entry with nothing: the calls after it do not see the
/// deleted row. Through `scope::refresh`, the `_refresh` companion, and
/// for a batch's elements; on every backend. (Before: the refresh
/// returned `None` and left the old entry, served to everyone after.)
#[tokio::test]
async fn a_refresh_that_finds_nothing_leaves_nothing_cached() {
    for (cache, _backing) in crate::support::each_backend().await {
        let what = cache.backend_name();
        let rows = Rows::with(1, "alpha");
        assert_eq!(sc_row(&cache, &rows, 1).await.as_deref(), Some("alpha"));
        rows.delete(1);
        assert_eq!(scope::refresh(sc_row(&cache, &rows, 1)).await, None);
        assert_eq!(
            sc_row(&cache, &rows, 1).await,
            None,
            "{what}: after a scope's refresh"
        );

        rows.set(1, "beta");
        assert_eq!(sc_row(&cache, &rows, 1).await.as_deref(), Some("beta"));
        rows.delete(1);
        assert_eq!(sc_row_refresh(&cache, &rows, 1).await, None);
        assert_eq!(
            sc_row(&cache, &rows, 1).await,
            None,
            "{what}: after `_refresh`"
        );

        let rows = Rows::with(2, "gamma");
        assert_eq!(sc_rows(&cache, &rows, &[2]).await.len(), 1);
        rows.delete(2);
        assert!(scope::refresh(sc_rows(&cache, &rows, &[2]))
            .await
            .is_empty());
        assert!(
            sc_rows(&cache, &rows, &[2]).await.is_empty(),
            "{what}: after a batch's refresh"
        );
    }
}

fn sc_author(value: &String) -> [String; 1] {
    [cachette::tag!("author:<a>", a = value)]
}

#[cached(key = "sc_book:<id>", ttl = 60, cache = cache, unkeyed = [rows], tags_from = sc_author)]
async fn sc_book(cache: &Cache, rows: &Rows, id: u64) -> Option<String> {
    rows.get(id)
}

/// A refresh in a process that has not learned a `tags_from` function's
/// tags for the key (just started) cannot store its value (it did not
/// read those tags' versions): it replaces the entry with nothing, and
/// the next call, in any process, reads the new row. (Before: the entry
/// written by the other process stayed, and both served the old row.)
#[tokio::test]
async fn a_refresh_that_cannot_store_its_value_leaves_nothing_cached() {
    let server = crate::support::RedisServer::start();
    let old = server.cache().await;
    let rows = Rows::with(1, "Le Guin");
    assert_eq!(sc_book(&old, &rows, 1).await.as_deref(), Some("Le Guin")); // learns
    assert_eq!(sc_book(&old, &rows, 1).await.as_deref(), Some("Le Guin")); // stores
    rows.set(1, "Butler");
    let new = server.cache().await;
    assert_eq!(
        scope::refresh(sc_book(&new, &rows, 1)).await.as_deref(),
        Some("Butler")
    );
    assert_eq!(
        sc_book(&old, &rows, 1).await.as_deref(),
        Some("Butler"),
        "the old process"
    );
    assert_eq!(
        sc_book(&new, &rows, 1).await.as_deref(),
        Some("Butler"),
        "the new process"
    );
}

/// A refresh sent around the cache by a deferred scope replaces nothing:
/// it invalidates its key (held until the scope ends), single-key as
/// batch. (The single-key one used to leave the deleted row cached.)
#[tokio::test]
async fn a_refresh_in_a_deferred_scope_leaves_nothing_cached() {
    for (cache, _backing) in crate::support::each_backend().await {
        let what = cache.backend_name();
        let rows = Rows::with(1, "alpha");
        assert_eq!(sc_row(&cache, &rows, 1).await.as_deref(), Some("alpha"));
        rows.delete(1);
        let got = cachette::deferred(scope::refresh(sc_row(&cache, &rows, 1))).await;
        assert_eq!(got, None);
        assert_eq!(sc_row(&cache, &rows, 1).await, None, "{what}: single-key");

        let rows = Rows::with(2, "beta");
        assert_eq!(sc_rows(&cache, &rows, &[2]).await.len(), 1);
        rows.delete(2);
        let got = cachette::deferred(scope::refresh(sc_rows(&cache, &rows, &[2]))).await;
        assert!(got.is_empty());
        assert!(
            sc_rows(&cache, &rows, &[2]).await.is_empty(),
            "{what}: batch"
        );
    }
}

/// A `_refresh` in `scope::off` or `scope::bypass` leaves the cache alone
/// and is reported as the scope says, single-key and batch alike: nothing
/// in `off`, a bypass in `bypass`, and no bust. (A batch's used to raise
/// `Bust` and `Refreshed` and bust the entry it did not replace.)
#[tokio::test]
async fn a_refresh_in_off_or_bypass_leaves_the_cache_alone() {
    use cachette::EventKind;
    let recorder = cachette::testing::Recorder::new();
    let builder = crate::support::builder().on_event(recorder.listener());
    for (cache, _backing) in crate::support::each_backend_from(builder).await {
        let what = cache.backend_name();
        let rows = Rows::with(1, "alpha");
        sc_row(&cache, &rows, 1).await;
        sc_rows(&cache, &rows, &[1]).await;
        let kinds = |recorder: &cachette::testing::Recorder| -> Vec<EventKind> {
            let kinds = recorder.events().iter().map(|e| e.kind).collect();
            recorder.clear();
            kinds
        };
        recorder.clear();
        scope::off(sc_row_refresh(&cache, &rows, 1)).await;
        scope::off(sc_rows_refresh(&cache, &rows, &[1])).await;
        assert_eq!(kinds(&recorder), [], "{what}: off");
        scope::bypass(sc_row_refresh(&cache, &rows, 1)).await;
        scope::bypass(sc_rows_refresh(&cache, &rows, &[1])).await;
        assert_eq!(kinds(&recorder), [EventKind::Bypass; 2], "{what}: bypass");
        sc_row(&cache, &rows, 1).await;
        sc_rows(&cache, &rows, &[1]).await;
        assert_eq!(
            kinds(&recorder),
            [EventKind::Hit; 2],
            "{what}: still cached"
        );
    }
}
