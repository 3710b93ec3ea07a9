//! A value's own TTL and its versions: a bust racing a fill whose value
//! chose a longer TTL than its function's is never undone (the offsets
//! between the two threads are swept, a bounded number of times); and a
//! postcard map, which re-encodes in another order, is still stored.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Barrier;
use std::time::Duration;

use cachette::{cached, Cache};

static SRC: AtomicU64 = AtomicU64::new(0);

#[cached(key = "race16:<id>", ttl = "200ms", ttl_fn = |_: &u64| Duration::from_secs(3600), cache = cache, unkeyed = [gate])]
async fn raced(cache: &Cache, gate: &Barrier, id: u64) -> u64 {
    let _ = id;
    let v = SRC.load(SeqCst);
    gate.wait();
    v
}

/// I1 on the embedded backend: a version rewritten to lengthen it for a
/// value's longer TTL (as a compare-and-put did) could undo a bust that
/// landed in between, and the fill's pre-bust value was then served after
/// the bust returned (seen within 450 offsets). Versions made for fills
/// now outlive any entry and are never rewritten.
#[test]
fn a_bust_racing_a_fill_with_a_longer_ttl_is_never_undone() {
    let cache = Cache::memory();
    let rt_a = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rt_b = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let one = Barrier::new(1);
    let mut stale = Vec::new();
    for i in 0..4_000u64 {
        let gate = Barrier::new(2);
        let old = i * 2;
        SRC.store(old, SeqCst);
        std::thread::scope(|s| {
            s.spawn(|| rt_a.block_on(raced(&cache, &gate, i)));
            s.spawn(|| {
                gate.wait(); // the body has read `old`
                for _ in 0..(i % 400) {
                    std::hint::spin_loop();
                }
                SRC.store(old + 1, SeqCst); // the write...
                rt_b.block_on(cache.invalidate_keys([format!("race16:{i}")]))
                    .unwrap(); // ...and its bust, returned
            });
        });
        // A read that starts after the bust returned.
        let got = rt_a.block_on(raced(&cache, &one, i));
        if got == old {
            stale.push(i);
            if stale.len() >= 3 {
                break;
            }
        }
    }
    assert!(
        stale.is_empty(),
        "read after the bust returned the value computed before it, iterations {stale:?}"
    );
}

#[cached(key = "map16:<id>", ttl = 600, codec = "postcard", cache = cache, unkeyed = [runs])]
async fn scores(cache: &Cache, runs: &AtomicU64, id: u64) -> HashMap<u64, u64> {
    runs.fetch_add(1, SeqCst);
    (0..32).map(|k| (k, k * id)).collect()
}

/// A `HashMap` decodes with another hasher seed and re-encodes in another
/// order: the round-trip check compares lengths, so it is stored.
#[tokio::test]
async fn a_postcard_map_is_stored() {
    for (cache, _server) in crate::support::each_backend().await {
        let backend = cache.backend_name();
        let runs = AtomicU64::new(0);
        let a = scores(&cache, &runs, 3).await;
        let b = scores(&cache, &runs, 3).await;
        assert_eq!(a, b);
        assert_eq!(
            runs.load(SeqCst),
            1,
            "{backend}: the second call ran the body again ({:?})",
            cache.stats()
        );
    }
}
