//! Spans, as OpenTelemetry exports them (tracing-opentelemetry into the
//! SDK's in-memory exporter): one `cache.get` per call with its outcome,
//! children for the body, the backend round trips and busts, and never a
//! rendered key or a value in any attribute.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::OnceLock;

use cachette::{cached, invalidates, Cache};
use opentelemetry::trace::{Status, TracerProvider as _};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt;

/// An argument of the key, and a marker in the value: neither may appear
/// in a span.
const EMAIL: &str = "ada.lovelace@example.com";
const MARKER: &str = "VALUE-MARKER-7f3a";

/// The exporter of the child process that runs the tests below
/// (`spans_in_one_child_process`): every span the process makes, through
/// its global subscriber.
fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<(InMemorySpanExporter, SdkTracerProvider)> = OnceLock::new();
    let (exporter, _) = EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("suite"));
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .expect("the child process sets the only global subscriber");
        (exporter, provider)
    });
    exporter
}

/// The spans a test made, from its start.
struct Exported {
    exporter: &'static InMemorySpanExporter,
}

impl Exported {
    fn capture() -> Exported {
        let exporter = exporter();
        exporter.reset();
        Exported { exporter }
    }

    /// The spans that ended since the last call, checked to carry no
    /// rendered key and no value.
    fn take(&self) -> Vec<SpanData> {
        let spans = self.exporter.get_finished_spans().unwrap();
        self.exporter.reset();
        for span in &spans {
            let texts = span.attributes.iter().map(|kv| (&kv.key, &kv.value)).chain(
                span.events
                    .iter()
                    .flat_map(|e| e.attributes.iter().map(|kv| (&kv.key, &kv.value))),
            );
            for (key, value) in texts {
                let text = value.as_str();
                assert!(
                    !text.contains(EMAIL) && !text.contains(MARKER),
                    "{} carries {key} = {text}",
                    span.name
                );
            }
            if let Status::Error { description } = &span.status {
                assert!(!description.contains(EMAIL) && !description.contains(MARKER));
            }
        }
        spans
    }
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .rev()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn text(span: &SpanData, key: &str) -> String {
    attr(span, key)
        .unwrap_or_else(|| panic!("{} has no {key}: {:?}", span.name, span.attributes))
        .as_str()
        .into_owned()
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

/// The one span called `name`.
fn one<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    let found = named(spans, name);
    assert_eq!(found.len(), 1, "{name} in {:?}", names(spans));
    found[0]
}

fn names(spans: &[SpanData]) -> Vec<&str> {
    spans.iter().map(|s| &*s.name).collect()
}

/// The backend operations under `parent`, in the order they ended.
fn operations(spans: &[SpanData], parent: &SpanData) -> Vec<String> {
    children(spans, parent, "cache.backend")
        .into_iter()
        .map(|s| text(s, "db.operation.name"))
        .collect()
}

fn children<'a>(spans: &'a [SpanData], parent: &SpanData, name: &str) -> Vec<&'a SpanData> {
    spans
        .iter()
        .filter(|s| s.name == name && s.parent_span_id == parent.span_context.span_id())
        .collect()
}

/// The tests of this file that export spans, run in a child process of
/// their own, one at a time, under a global subscriber. Not beside other
/// tests, each under its own thread's subscriber (`set_default`): while
/// one test's subscriber is the only one alive, `tracing` caches a
/// callsite's interest from whichever thread registers it first, so a
/// callsite first reached on a thread without one (another test's, or a
/// runtime's) stays disabled for every thread, and a test's span went
/// missing in about a third of runs.
#[test]
fn spans_in_one_child_process() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["spans::", "--ignored", "--test-threads=1"])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.contains("test result: ok. 8 passed"),
        "expected 8 span tests to pass: {printed}"
    );
}

#[cached(cache = cache, key = "profile:<email>", ttl = 600, tags = ["who:<email>"], unkeyed = [runs])]
async fn profile(cache: &Cache, runs: &AtomicU64, email: &str) -> Result<String, String> {
    runs.fetch_add(1, SeqCst);
    Ok(format!("{MARKER} for {email}"))
}

#[cached(cache = cache, key = "failing:<email>", ttl = 600, unkeyed = [runs])]
async fn failing(cache: &Cache, runs: &AtomicU64, email: &str) -> Result<String, String> {
    runs.fetch_add(1, SeqCst);
    Err(format!("{MARKER}: no row for {email}"))
}

#[invalidates(keys = ["profile:<email>"], tags = ["who:<email>"], cache = cache)]
async fn forget(cache: &Cache, email: &str) -> Result<(), String> {
    let _ = email;
    Ok(())
}

#[cached(batch = "email in emails", key = "profile:<email>", ttl = 600, cache = cache)]
async fn profiles(
    cache: &Cache,
    emails: &[String],
) -> Result<std::collections::HashMap<String, String>, String> {
    Ok(emails
        .iter()
        .map(|e| (e.clone(), format!("{MARKER} for {e}")))
        .collect())
}

#[tokio::test]
#[ignore = "run by spans_in_one_child_process"]
async fn a_miss_is_one_call_span_with_its_lookup_body_and_fill() {
    let cache = Cache::memory();
    let runs = AtomicU64::new(0);
    let exported = Exported::capture();
    profile(&cache, &runs, EMAIL).await.unwrap();
    let spans = exported.take();
    let call = one(&spans, "cache.get");
    assert_eq!(call.parent_span_id, opentelemetry::trace::SpanId::INVALID);
    assert_eq!(text(call, "cache.outcome"), "miss");
    assert_eq!(attr(call, "cache.hit"), Some(&Value::Bool(false)));
    assert_eq!(text(call, "cache.strategy"), "aside");
    assert_eq!(text(call, "cache.key.template"), "profile:<email>");
    assert!(text(call, "code.function").ends_with("profile"), "{call:?}");
    assert_eq!(text(call, "db.system"), "memory");
    assert!(attr(call, "cache.backend_us").is_some());
    // Without `log_full_names`, no key at all.
    assert!(attr(call, "cache.key").is_none());
    assert_eq!(call.status, Status::Unset);
    let body = children(&spans, call, "cache.body");
    assert_eq!(body.len(), 1, "{:?}", names(&spans));
    let ops = operations(&spans, call);
    assert_eq!(ops.first().map(String::as_str), Some("lookup"), "{ops:?}");
    assert_eq!(ops.last().map(String::as_str), Some("store"), "{ops:?}");
    // The body's span ends before the fill starts.
    let store = children(&spans, call, "cache.backend")
        .into_iter()
        .find(|s| text(s, "db.operation.name") == "store")
        .unwrap();
    assert!(body[0].end_time <= store.start_time);
}

#[tokio::test]
#[ignore = "run by spans_in_one_child_process"]
async fn a_hit_is_one_call_span_with_its_lookup_and_no_body() {
    let cache = Cache::memory();
    let runs = AtomicU64::new(0);
    profile(&cache, &runs, EMAIL).await.unwrap();
    let exported = Exported::capture();
    profile(&cache, &runs, EMAIL).await.unwrap();
    assert_eq!(runs.load(SeqCst), 1);
    let spans = exported.take();
    let call = one(&spans, "cache.get");
    assert_eq!(text(call, "cache.outcome"), "hit");
    assert_eq!(attr(call, "cache.hit"), Some(&Value::Bool(true)));
    assert!(named(&spans, "cache.body").is_empty());
    assert_eq!(operations(&spans, call), ["lookup"]);
    assert_eq!(spans.len(), 2, "{:?}", names(&spans));
}

#[tokio::test]
#[ignore = "run by spans_in_one_child_process"]
async fn a_failed_body_marks_its_call_span_as_an_error() {
    let cache = Cache::memory();
    let runs = AtomicU64::new(0);
    let exported = Exported::capture();
    failing(&cache, &runs, EMAIL).await.unwrap_err();
    let spans = exported.take();
    let call = one(&spans, "cache.get");
    assert_eq!(text(call, "cache.outcome"), "miss");
    assert_eq!(text(call, "error.type"), "body");
    assert!(
        matches!(call.status, Status::Error { .. }),
        "{:?}",
        call.status
    );
    assert_eq!(children(&spans, call, "cache.body").len(), 1);
    // Nothing stored.
    assert!(!operations(&spans, call).contains(&"store".to_string()));
}

#[tokio::test]
#[ignore = "run by spans_in_one_child_process"]
async fn a_bust_is_an_invalidate_span_around_its_round_trip() {
    let cache = Cache::memory();
    let exported = Exported::capture();
    forget(&cache, EMAIL).await.unwrap();
    let spans = exported.take();
    let bust = one(&spans, "cache.invalidate");
    assert_eq!(text(bust, "cache.outcome"), "invalidated");
    assert_eq!(attr(bust, "cache.names"), Some(&Value::I64(2)));
    assert!(text(bust, "code.function").ends_with("forget"));
    assert_eq!(operations(&spans, bust), ["bust"]);
}

#[tokio::test]
#[ignore = "run by spans_in_one_child_process"]
async fn a_batch_is_one_get_many_span_with_one_body() {
    let cache = Cache::memory();
    let emails = vec![EMAIL.to_string(), format!("x{EMAIL}")];
    profiles(&cache, &emails[..1]).await.unwrap();
    let exported = Exported::capture();
    profiles(&cache, &emails).await.unwrap();
    let spans = exported.take();
    let call = one(&spans, "cache.get_many");
    assert_eq!(attr(call, "cache.items"), Some(&Value::I64(2)));
    assert_eq!(attr(call, "cache.misses"), Some(&Value::I64(1)));
    assert_eq!(text(call, "cache.outcome"), "miss");
    let body = children(&spans, call, "cache.body");
    assert_eq!(body.len(), 1, "{:?}", names(&spans));
    assert_eq!(attr(body[0], "cache.items"), Some(&Value::I64(1)));
    profiles(&cache, &emails).await.unwrap();
    let spans = exported.take();
    let call = one(&spans, "cache.get_many");
    assert_eq!(text(call, "cache.outcome"), "hit");
    assert_eq!(attr(call, "cache.hit"), Some(&Value::Bool(true)));
}

#[tokio::test]
#[ignore = "run by spans_in_one_child_process"]
async fn log_full_names_puts_the_key_on_the_call_span() {
    let cache = Cache::builder().log_full_names(true).memory();
    let runs = AtomicU64::new(0);
    let exported = Exported::capture();
    profile(&cache, &runs, "bob").await.unwrap();
    let spans = exported.take();
    assert_eq!(text(one(&spans, "cache.get"), "cache.key"), "profile:bob");
}

#[tokio::test]
#[ignore = "run by spans_in_one_child_process"]
async fn a_near_cache_hit_says_near_hit_and_names_the_server() {
    let server = crate::support::RedisServer::start();
    let cache = crate::support::builder()
        .near_cache(true)
        .connect(&server.url())
        .await
        .unwrap();
    let runs = AtomicU64::new(0);
    let exported = Exported::capture();
    // Read until a read is served from memory (the fill's own
    // invalidation messages may keep the first lookups from being kept).
    let mut near = None;
    for _ in 0..20 {
        let before = cache.stats().near_hits;
        profile(&cache, &runs, EMAIL).await.unwrap();
        let spans = exported.take();
        if cache.stats().near_hits > before {
            near = Some(spans);
            break;
        }
        let call = one(&spans, "cache.get");
        assert_ne!(text(call, "cache.outcome"), "near_hit");
    }
    let spans = near.expect("never served from memory");
    let call = one(&spans, "cache.get");
    assert_eq!(text(call, "cache.outcome"), "near_hit");
    assert_eq!(attr(call, "cache.hit"), Some(&Value::Bool(true)));
    assert_eq!(text(call, "db.system"), "redis");
    assert_eq!(text(call, "server.address"), "127.0.0.1");
    assert_eq!(
        attr(call, "server.port"),
        Some(&Value::I64(server.port.into()))
    );
    assert_eq!(operations(&spans, call), ["lookup"]);
    assert_eq!(runs.load(SeqCst), 1);
}

#[cached(cache = cache, key = "sp-user:<id>", ttl = 600)]
async fn sp_user(cache: &Cache, id: u64) -> u64 {
    id
}

/// `server.address` names the server alone, however the user is spelled:
/// it was cut out of the backend's identity (`host:port/db/user`) at its
/// last two slashes, and a user name with slashes left part of itself in.
#[tokio::test]
#[ignore = "run by spans_in_one_child_process"]
async fn server_address_never_carries_the_user() {
    let server = crate::support::RedisServer::start();
    redis::cmd("ACL")
        .arg(&["SETUSER", "ops/team-secret/svc", "on", ">pw", "~*", "+@all"])
        .exec(&mut server.raw())
        .unwrap();
    let url = format!(
        "redis://ops%2Fteam-secret%2Fsvc:pw@127.0.0.1:{}",
        server.port
    );
    let cache = crate::support::builder().connect(&url).await.unwrap();
    let exported = Exported::capture();
    assert_eq!(sp_user(&cache, 3).await, 3);
    let spans = exported.take();
    let call = one(&spans, "cache.get");
    assert_eq!(text(call, "server.address"), "127.0.0.1");
    for span in &spans {
        for kv in &span.attributes {
            let value = kv.value.as_str();
            assert!(
                !value.contains("team-secret") && !value.contains("ops"),
                "{} carries {} = {value}",
                span.name,
                kv.key
            );
        }
    }
}

#[cached(key = "sz-large:<id>", ttl = 60, cache = cache)]
async fn large_body(cache: &Cache, id: u64) -> u64 {
    let held = [id as u8; LARGE];
    tokio::task::yield_now().await;
    u64::from(held[(id as usize) % LARGE])
}

#[cached(key = "sz-small:<id>", ttl = 60, cache = cache)]
async fn small_body(cache: &Cache, id: u64) -> u64 {
    let held = [id as u8; 1];
    tokio::task::yield_now().await;
    u64::from(held[0])
}

/// The bytes a body holds across an await in `large_body`.
const LARGE: usize = 16 << 10;

/// A span wraps the future it runs in place: it adds a constant to a
/// cached call's future, not a copy of the body's. An `async fn` wrapper
/// around the call, the body or each round trip (how the spans first
/// landed) keeps its argument and the awaited future both, and tripled a
/// call's future (24 KB for an 8 KB call; cached calls nested in scoped
/// bodies overflowed a test thread's stack in debug builds).
///
/// The bound is what a call held before spans, measured in this build
/// (debug): the generated call and the runtime's layers under it keep the
/// body's future up to 7 times; see BENCHMARKS.md, "Future sizes".
#[test]
fn a_cached_call_future_is_not_copied_by_its_spans() {
    let cache = Cache::memory();
    let large = std::mem::size_of_val(&large_body(&cache, 1));
    let small = std::mem::size_of_val(&small_body(&cache, 1));
    let copies = (large - small) as f64 / LARGE as f64;
    assert!(
        copies < 7.5,
        "a call holds its body's future {copies:.1} times ({large} against {small} bytes)"
    );
    assert!(
        small < 9 << 10,
        "a call with a small body takes {small} bytes"
    );
}
