//! cachette's spans exported through OpenTelemetry's SDK to stdout: a
//! miss, a hit and a bust on the embedded backend.
//!
//! ```sh
//! cargo run -p cachette-suite --example spans
//! ```

use std::time::Duration;

use cachette::{cached, invalidates, Cache};
use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::layer::SubscriberExt;

#[cached(cache = cache, key = "user:<id>", ttl = "5m", tags = ["org:<org>"])]
async fn user(cache: &Cache, org: &str, id: u64) -> Result<String, String> {
    tokio::time::sleep(Duration::from_millis(5)).await; // the database
    Ok(format!("user {id} of {org}"))
}

#[invalidates(tags = ["org:<org>"], cache = cache)]
async fn rename_org(cache: &Cache, org: &str) -> Result<(), String> {
    let _ = org;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(opentelemetry_stdout::SpanExporter::default())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("my-service")));
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let cache = Cache::memory();
    user(&cache, "acme", 1).await.unwrap(); // cache.get: miss, with cache.body
    user(&cache, "acme", 1).await.unwrap(); // cache.get: hit
    rename_org(&cache, "acme").await.unwrap(); // cache.invalidate
    provider.shutdown().unwrap();
}
