//! `soft_timeout` and `hard_timeout`: a slow body with a valid kept entry
//! returns the entry and stores its own value in the background; a kept
//! entry a bust reached is never returned; a call past its hard timeout
//! returns the timeout error. Bodies are held by gates, never by sleeps:
//! the only timers are the timeouts under test.

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use cachette::{cached, Cache, Elapsed};

use crate::support::source::Source;
use crate::support::{each_backend_from, ManualClock};

#[derive(Debug, PartialEq)]
enum Slow {
    Timeout(Duration),
}

impl From<Elapsed> for Slow {
    fn from(e: Elapsed) -> Self {
        Slow::Timeout(e.timeout())
    }
}

#[cached(key = "soft:<id>", ttl = 60, stale_if_error = "10m", soft_timeout = "50ms", cache = cache, unkeyed = [source])]
async fn soft(cache: &Cache, source: &Source, id: u64) -> Result<u64, Slow> {
    let _ = id;
    Ok(source.read().await)
}

#[cached(key = "soft_lock:<id>", ttl = 60, strategy = "lock", stale_if_error = "10m", soft_timeout = "50ms", cache = cache, unkeyed = [source])]
async fn soft_locked(cache: &Cache, source: &Source, id: u64) -> Result<u64, Slow> {
    let _ = id;
    Ok(source.read().await)
}

/// Long enough that a bust sent while the call waits returns before it
/// ends, on a loaded machine.
#[cached(key = "soft_long:<id>", ttl = 60, stale_if_error = "10m", soft_timeout = "1s", cache = cache, unkeyed = [source])]
async fn soft_long(cache: &Cache, source: &Source, id: u64) -> Result<u64, Slow> {
    let _ = id;
    Ok(source.read().await)
}

#[cached(key = "hard:<id>", ttl = 60, hard_timeout = "100ms", cache = cache, unkeyed = [source])]
async fn hard(cache: &Cache, source: &Source, id: u64) -> Result<u64, Slow> {
    let _ = id;
    Ok(source.read().await)
}

#[cached(key = "both:<id>", ttl = 60, stale_if_error = "10m", soft_timeout = "50ms", hard_timeout = "150ms", cache = cache, unkeyed = [source])]
async fn both(cache: &Cache, source: &Source, id: u64) -> Result<u64, Slow> {
    let _ = id;
    Ok(source.read().await)
}

fn clocked() -> (ManualClock, cachette::CacheBuilder) {
    let clock = ManualClock::default();
    let builder = crate::support::builder().clock(clock.clone());
    (clock, builder)
}

/// Past the soft timeout, a slow body's call returns the value kept past
/// its TTL; the body goes on in the background, once however many callers
/// wait, and stores its value as a normal fill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_with_a_kept_entry_returns_it_and_fills_in_the_background() {
    let (clock, builder) = clocked();
    for (cache, _backing) in each_backend_from(builder).await {
        for locked in [false, true] {
            let what = format!("{} lock={locked}", cache.backend_name());
            let source = Source::default();
            let read = || {
                let (cache, source) = (cache.clone(), source.clone());
                async move {
                    if locked {
                        soft_locked(&cache, &source, 1).await
                    } else {
                        soft(&cache, &source, 1).await
                    }
                }
            };
            source.version.store(1, SeqCst);
            assert_eq!(read().await, Ok(1), "{what}");
            clock.advance(Duration::from_secs(70)); // past the TTL, within the window
            source.version.store(2, SeqCst);
            let (reached, release) = source.hold_next(false);
            let before = cache.stats();
            let (first, second) = tokio::join!(read(), read());
            assert_eq!((first, second), (Ok(1), Ok(1)), "{what}: the kept value");
            reached.notified().await;
            let after = cache.stats();
            assert_eq!(after.soft_timeouts - before.soft_timeouts, 2, "{what}");
            assert_eq!(source.runs(), 2, "{what}: one body in the background");
            // Again while it runs: the kept value, no second body.
            assert_eq!(read().await, Ok(1), "{what}");
            assert_eq!(source.runs(), 2, "{what}");
            release.notify_one();
            cache.refreshes_settled().await;
            let hits = cache.stats().hits;
            assert_eq!(read().await, Ok(2), "{what}: the background fill");
            assert_eq!(
                cache.stats().hits,
                hits + 1,
                "{what}: stored, served as a hit"
            );
            assert_eq!(source.runs(), 2, "{what}");
            cache
                .invalidate_keys(["soft:1", "soft_lock:1"])
                .await
                .unwrap();
        }
    }
}

/// A body faster than the soft timeout: its value, not the kept one.
#[tokio::test]
async fn a_body_within_the_soft_timeout_returns_its_own_value() {
    let (clock, builder) = clocked();
    for (cache, _backing) in each_backend_from(builder).await {
        let source = Source::default();
        source.version.store(1, SeqCst);
        assert_eq!(soft(&cache, &source, 2).await, Ok(1));
        clock.advance(Duration::from_secs(70));
        source.version.store(2, SeqCst);
        assert_eq!(
            soft(&cache, &source, 2).await,
            Ok(2),
            "{}",
            cache.backend_name()
        );
        assert_eq!(cache.stats().soft_timeouts, 0);
    }
}

/// A kept entry that a bust reached is never returned: the call waits for
/// the body, whether the bust came before the call or while it waited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_whose_entry_was_busted_is_waited_for() {
    let (clock, builder) = clocked();
    for (cache, _backing) in each_backend_from(builder).await {
        let what = cache.backend_name();
        // Busted before the call.
        let source = Source::default();
        source.version.store(1, SeqCst);
        assert_eq!(soft(&cache, &source, 3).await, Ok(1));
        clock.advance(Duration::from_secs(70));
        source.version.store(2, SeqCst);
        cache.invalidate_keys(["soft:3"]).await.unwrap();
        let (reached, release) = source.hold_next(false);
        let call = tokio::spawn({
            let (cache, source) = (cache.clone(), source.clone());
            async move { soft(&cache, &source, 3).await }
        });
        reached.notified().await;
        // Many soft timeouts later, still waiting for its body (held).
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!call.is_finished(), "{what}: returned before its body");
        release.notify_one();
        assert_eq!(call.await.unwrap(), Ok(2), "{what}: the body's value");
        assert_eq!(cache.stats().soft_timeouts, 0, "{what}");

        // Busted while the call waits for the background body: the call
        // runs the body itself rather than return what the bust reached.
        let source = Source::default();
        source.version.store(1, SeqCst);
        assert_eq!(soft_long(&cache, &source, 4).await, Ok(1));
        clock.advance(Duration::from_secs(70));
        let (reached, release) = source.hold_next(false);
        let call = tokio::spawn({
            let (cache, source) = (cache.clone(), source.clone());
            async move { soft_long(&cache, &source, 4).await }
        });
        reached.notified().await; // the background body has read version 1
        source.version.store(2, SeqCst);
        cache.invalidate_keys(["soft_long:4"]).await.unwrap();
        assert_eq!(call.await.unwrap(), Ok(2), "{what}: never the busted value");
        release.notify_one();
        cache.refreshes_settled().await;
        // The background body read before the bust: its fill cannot
        // validate, and the next read has the value after it.
        assert_eq!(soft_long(&cache, &source, 4).await, Ok(2), "{what}");
    }
}

/// Past the hard timeout, the call returns the timeout error, made from
/// `Elapsed`; with nothing kept, a soft timeout waits until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_its_hard_timeout_returns_the_timeout_error() {
    let (_clock, builder) = clocked();
    for (cache, _backing) in each_backend_from(builder).await {
        let what = cache.backend_name();
        let source = Source::default();
        let (_reached, release) = source.hold_next(false);
        assert_eq!(
            hard(&cache, &source, 1).await,
            Err(Slow::Timeout(Duration::from_millis(100))),
            "{what}"
        );
        assert_eq!(cache.stats().hard_timeouts, 1, "{what}");
        release.notify_one();
        // The body was dropped: nothing was stored, the next call runs it.
        source.version.store(5, SeqCst);
        assert_eq!(hard(&cache, &source, 1).await, Ok(5), "{what}");
        assert_eq!(hard(&cache, &source, 1).await, Ok(5), "{what}");
        assert_eq!(source.runs(), 2, "{what}: the second call was a hit");

        // Nothing kept: the soft timeout has nothing to return.
        let source = Source::default();
        let (_reached, release) = source.hold_next(false);
        assert_eq!(
            both(&cache, &source, 1).await,
            Err(Slow::Timeout(Duration::from_millis(150))),
            "{what}"
        );
        assert_eq!(cache.stats().soft_timeouts, 0, "{what}");
        release.notify_one();
    }
}
