//! Spans, as OpenTelemetry exports them (tracing-opentelemetry into the
//! SDK's in-memory exporter): one `cache.get` per call with its outcome,
//! children for the body, the backend round trips and busts, and never a
//! rendered key or a value in any attribute.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use cachette::{cached, invalidates, Cache};
use opentelemetry::trace::{Status, TracerProvider as _};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt;

/// An argument of the key, and a marker in the value: neither may appear
/// in a span.
const EMAIL: &str = "ada.lovelace@example.com";
const MARKER: &str = "VALUE-MARKER-7f3a";

/// Exports every span made on this thread (the test's runtime runs on it)
/// while alive.
struct Exported {
    exporter: InMemorySpanExporter,
    _provider: SdkTracerProvider,
    _guard: tracing::subscriber::DefaultGuard,
}

impl Exported {
    fn capture() -> Exported {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("suite"));
        let subscriber = tracing_subscriber::registry().with(layer);
        Exported {
            exporter,
            _provider: provider,
            _guard: tracing::subscriber::set_default(subscriber),
        }
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
async fn log_full_names_puts_the_key_on_the_call_span() {
    let cache = Cache::builder().log_full_names(true).memory();
    let runs = AtomicU64::new(0);
    let exported = Exported::capture();
    profile(&cache, &runs, "bob").await.unwrap();
    let spans = exported.take();
    assert_eq!(text(one(&spans, "cache.get"), "cache.key"), "profile:bob");
}

#[tokio::test]
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
