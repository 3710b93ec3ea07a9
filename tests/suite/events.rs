//! `CacheBuilder::on_event` and `testing::Recorder`: each kind of event,
//! raised where it happens, and a listener that panics does not break the
//! call.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use cachette::testing::Recorder;
use cachette::{cached, invalidates, Cache, Elapsed, EventKind};

use crate::support::source::Source;
use crate::support::{eventually, impatient, ManualClock, RedisServer};

#[cached(key = "ev:<id>", ttl = 60, cache = cache, unkeyed = [source])]
async fn ev_read(cache: &Cache, source: &Source, id: u64) -> u64 {
    let _ = id;
    source.read().await
}

#[cached(key = "ev_swr:<id>", ttl = 60, strategy = "swr", stale_ttl = "1m", cache = cache, unkeyed = [source])]
async fn ev_swr(cache: &Cache, source: &Source, id: u64) -> u64 {
    let _ = id;
    source.read().await
}

#[invalidates(keys = ["ev:<id>"], cache = cache)]
async fn ev_write(cache: &Cache, id: u64) {}

#[derive(Debug, PartialEq)]
struct Timeout;

impl From<Elapsed> for Timeout {
    fn from(_: Elapsed) -> Self {
        Timeout
    }
}

#[cached(key = "ev_hard:<id>", ttl = 60, hard_timeout = "50ms", cache = cache, unkeyed = [source])]
async fn ev_hard(cache: &Cache, source: &Source, id: u64) -> Result<u64, Timeout> {
    let _ = id;
    Ok(source.read().await)
}

fn kinds(recorder: &Recorder) -> Vec<EventKind> {
    recorder.events().iter().map(|e| e.kind).collect()
}

/// The events of calls and busts made by functions: the caches of one
/// test share a recorder, and a near-cache may report a flush whenever
/// its connection is made again.
fn of_functions(recorder: &Recorder) -> Vec<EventKind> {
    let events = recorder.events();
    events
        .iter()
        .filter(|e| !e.function.is_empty())
        .map(|e| e.kind)
        .collect()
}

/// Hits, misses, fills, stale values served, bypasses, busts and
/// timeouts, each reported with its function, on every backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_and_busts_raise_their_events() {
    let clock = ManualClock::default();
    let recorder = Recorder::new();
    let builder = crate::support::builder()
        .clock(clock.clone())
        .on_event(recorder.listener());
    for (cache, _backing) in crate::support::each_backend_from(builder).await {
        let what = cache.backend_name();
        recorder.clear();
        let source = Source::default();
        ev_read(&cache, &source, 1).await;
        ev_read(&cache, &source, 1).await;
        // A call's own event is raised as it ends: after its fill.
        assert_eq!(
            of_functions(&recorder),
            [EventKind::Fill, EventKind::Miss, EventKind::Hit],
            "{what}"
        );
        let first = &recorder
            .events()
            .into_iter()
            .find(|e| e.kind == EventKind::Miss)
            .unwrap();
        assert!(first.function.ends_with("events::ev_read"), "{first:?}");
        assert_eq!(
            (recorder.hits("ev_read"), recorder.misses("ev_read")),
            (1, 1)
        );

        recorder.clear();
        ev_write(&cache, 1).await;
        let events: Vec<_> = recorder
            .events()
            .into_iter()
            .filter(|e| !e.function.is_empty())
            .collect();
        assert_eq!(events.len(), 1, "{what}: {events:?}");
        assert_eq!((events[0].kind, events[0].names), (EventKind::Bust, 1));
        assert_eq!(recorder.busts("ev_write"), 1, "{what}");

        recorder.clear();
        cachette::scope::bypass(ev_read(&cache, &source, 1)).await;
        assert_eq!(of_functions(&recorder), [EventKind::Bypass], "{what}");

        recorder.clear();
        ev_swr(&cache, &source, 2).await;
        clock.advance(Duration::from_secs(90)); // in the stale window
        ev_swr(&cache, &source, 2).await;
        cache.refreshes_settled().await;
        assert_eq!(recorder.stale("ev_swr"), 1, "{what}");
        assert_eq!(
            recorder.fills("ev_swr"),
            2,
            "{what}: the fill and the refresh's"
        );

        recorder.clear();
        let (_reached, release) = source.hold_next(false);
        assert_eq!(ev_hard(&cache, &source, 3).await, Err(Timeout));
        release.notify_one();
        assert_eq!(of_functions(&recorder), [EventKind::TimedOut], "{what}");

        // Off: as if there were no cache, nothing is reported.
        recorder.clear();
        cachette::scope::off(ev_read(&cache, &source, 1)).await;
        assert_eq!(of_functions(&recorder), [], "{what}");
    }
}

/// A failed bust is reported failed and kept, and delivered later; the
/// breaker's opening and closing; the near-cache emptied by a flush.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_deliveries_the_breaker_and_the_near_cache_raise_their_events() {
    // Busts run a script: without EVALSHA they fail and are kept.
    let server = RedisServer::start();
    server.add_documented_acl_user(&["-evalsha"]);
    let port = server.url().rsplit(':').next().unwrap().to_string();
    let recorder = Recorder::new();
    let cache = crate::support::builder()
        .on_event(recorder.listener())
        .connect(&format!("redis://app:s3cret@127.0.0.1:{port}"))
        .await
        .unwrap();
    assert!(cache.invalidate_keys(["ev:1"]).await.is_err());
    let kinds_now = kinds(&recorder);
    assert!(
        kinds_now.starts_with(&[EventKind::BustFailed, EventKind::BustKept]),
        "{kinds_now:?}"
    );
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg("app")
        .arg("+evalsha")
        .exec(&mut server.raw())
        .unwrap();
    crate::support::delivered(&cache).await;
    eventually("the delivery to be reported", || {
        kinds(&recorder).contains(&EventKind::BustDelivered)
    })
    .await;
    let delivered = recorder
        .events()
        .into_iter()
        .find(|e| e.kind == EventKind::BustDelivered)
        .unwrap();
    assert_eq!(delivered.names, 1);

    // The breaker.
    let mut server = RedisServer::start();
    let recorder = Recorder::new();
    let cache = impatient(Duration::from_millis(200))
        .circuit_breaker(2, Duration::from_millis(100))
        .on_event(recorder.listener())
        .connect(&server.url())
        .await
        .unwrap();
    let source = Source::default();
    ev_read(&cache, &source, 1).await;
    server.kill();
    ev_read(&cache, &source, 1).await;
    ev_read(&cache, &source, 1).await;
    assert!(kinds(&recorder).contains(&EventKind::BreakerOpened));
    server.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !kinds(&recorder).contains(&EventKind::BreakerClosed) {
        assert!(
            std::time::Instant::now() < deadline,
            "the breaker never closed"
        );
        ev_read(&cache, &source, 1).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The near-cache, emptied by a flush on the server.
    let server = RedisServer::start();
    let recorder = Recorder::new();
    let cache = crate::support::builder()
        .on_event(recorder.listener())
        .connect(&server.url())
        .await
        .unwrap();
    ev_read(&cache, &source, 1).await;
    ev_read(&cache, &source, 1).await;
    redis::cmd("FLUSHALL").exec(&mut server.raw()).unwrap();
    eventually("the near-cache flush to be reported", || {
        kinds(&recorder).contains(&EventKind::NearFlushed)
    })
    .await;
}

/// A listener that panics at every event: every call still returns its
/// value, caches and busts as it would without the listener.
#[tokio::test]
async fn a_panicking_listener_does_not_break_the_call() {
    let heard = Arc::new(AtomicU64::new(0));
    let counted = heard.clone();
    let cache = Cache::builder()
        .on_event(move |_| {
            counted.fetch_add(1, SeqCst);
            panic!("a listener with a bug");
        })
        .memory();
    let source = Source::default();
    source.version.store(4, SeqCst);
    assert_eq!(ev_read(&cache, &source, 9).await, 4);
    assert_eq!(ev_read(&cache, &source, 9).await, 4);
    assert_eq!(source.runs(), 1, "cached despite the panics");
    source.version.store(5, SeqCst);
    ev_write(&cache, 9).await;
    assert_eq!(
        ev_read(&cache, &source, 9).await,
        5,
        "busted despite the panics"
    );
    assert!(heard.load(SeqCst) >= 5, "the listener was called");
    assert_eq!(cache.stats().hits, 1);
}

/// Every listener added with `on_event` is told, in order (a second one
/// used to replace the first: alerts went dead when a test's recorder
/// was added).
#[tokio::test]
async fn every_listener_is_told() {
    let fills = Arc::new(AtomicU64::new(0));
    let counted = fills.clone();
    let recorder = Recorder::new();
    let cache = Cache::builder()
        .on_event(move |event| {
            if event.kind == EventKind::Fill {
                counted.fetch_add(1, SeqCst);
            }
        })
        .on_event(recorder.listener())
        .memory();
    ev_read(&cache, &Source::default(), 1).await;
    assert_eq!((fills.load(SeqCst), recorder.fills("ev_read")), (1, 1));
}

#[cached(key = "ev_row:<id>", ttl = 60, cache = cache, unkeyed = [source])]
async fn ev_row(cache: &Cache, source: &Source, id: u64) -> Option<u64> {
    let _ = id;
    Some(source.read().await)
}

/// `Recorder::misses` counts every call that ran its body: a refresh (a
/// scope's or a companion's, raised as `Refreshed`) and a bypass (a
/// scope's, a disabled cache's) as well as a miss. (Before, it counted
/// only `Miss`: 0 for calls whose bodies ran.)
#[tokio::test]
async fn every_call_that_ran_its_body_is_a_miss_of_the_recorder() {
    let recorder = Recorder::new();
    let cache = recorder.memory_cache();
    let source = Source::default();
    ev_row(&cache, &source, 1).await;
    cachette::scope::refresh(ev_row(&cache, &source, 1)).await;
    ev_row_refresh(&cache, &source, 1).await;
    cachette::scope::bypass(ev_row(&cache, &source, 1)).await;
    ev_row(&cache, &source, 1).await;
    assert_eq!(source.runs(), 4);
    assert_eq!(
        (
            recorder.misses("ev_row"),
            recorder.refreshes("ev_row"),
            recorder.bypasses("ev_row"),
            recorder.hits("ev_row"),
        ),
        (4, 2, 1, 1)
    );

    let recorder = Recorder::new();
    let disabled = Cache::builder()
        .disabled()
        .on_event(recorder.listener())
        .memory();
    for _ in 0..3 {
        ev_row(&disabled, &source, 1).await;
    }
    assert_eq!(recorder.misses("ev_row"), 3, "a disabled cache");
    assert_eq!(recorder.functions().len(), 1);
    assert!(recorder.functions()[0].ends_with("events::ev_row"));
}

#[cached(key = "ev_blocking:<id>", ttl = 60, hard_timeout = "20ms", cache = cache)]
async fn ev_blocking(cache: &Cache, id: u64) -> Result<u64, Timeout> {
    std::thread::sleep(Duration::from_millis(60));
    Ok(id)
}

/// A body that blocks its thread past the hard timeout cannot be
/// interrupted: it is warned about, naming the function (it used to be
/// silent, returning `Ok` late on one backend and the error on another).
#[tokio::test]
async fn a_body_blocking_past_its_hard_timeout_is_warned_about() {
    let logs = crate::support::logs::Logs::capture();
    let cache = Cache::memory();
    let _ = ev_blocking(&cache, 1).await;
    let text = logs.text();
    assert!(
        text.contains("ev_blocking") && text.contains("without yielding"),
        "{text}"
    );
}

/// A panicking listener is warned about on stderr when no subscriber
/// listens, as the other first-use warnings are (it was only sent through
/// `tracing`: a service without a subscriber heard nothing). Run in a
/// child process: stderr is the process's.
#[test]
fn a_panicking_listener_is_heard_without_a_subscriber() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "events::panicking_listener_child",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("on_event listener panicked"), "{stderr}");
}

#[tokio::test]
#[ignore = "run by a_panicking_listener_is_heard_without_a_subscriber in a child process"]
async fn panicking_listener_child() {
    std::panic::set_hook(Box::new(|_| {}));
    let cache = Cache::builder()
        .on_event(|_| panic!("a listener with a bug"))
        .memory();
    ev_read(&cache, &Source::default(), 1).await;
}
