//! The strategies: in-process coalescing, the fleet-wide lock, stale-while-
//! revalidate and early refresh, on both backends.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;

use cachette::{cached, Cache};

#[derive(Clone)]
struct Svc {
    cache: Cache,
    calls: Arc<AtomicU64>,
}

impl Svc {
    #[cached(cache = self.cache, key = "s:<id>", ttl = 60, strategy = "swr", stale_ttl = "10m")]
    async fn swr(&self, id: u64, name: &str) -> Result<String, String> {
        self.calls.fetch_add(1, SeqCst);
        Ok(format!("{id}{name}"))
    }
}

#[cached(cache = cache, key = "f:<id>", ttl = 60, strategy = "early")]
async fn early_free(cache: &Cache, id: u64, name: &str) -> String {
    format!("{id}{name}")
}

#[tokio::test]
async fn compiles() {
    let s = Svc {
        cache: Cache::memory(),
        calls: Arc::new(AtomicU64::new(0)),
    };
    assert_eq!(s.swr(1, "a").await.unwrap(), "1a");
    assert_eq!(early_free(&s.cache, 1, "a").await, "1a");
}
