//! With the `metrics` feature, calls are counted and timed per function and
//! outcome through the `metrics` facade.
#![cfg(feature = "metrics")]

use cachette::{cached, Cache};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

#[cached(cache = cache, key = "m:<id>", ttl = 60)]
async fn metered(cache: &Cache, id: u64) -> u64 {
    id
}

#[tokio::test]
async fn calls_are_counted_and_timed_by_function_and_outcome() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");

    let cache = Cache::memory();
    metered(&cache, 1).await;
    metered(&cache, 1).await;
    metered(&cache, 1).await;

    let function = concat!(module_path!(), "::metered");
    let mut calls = Vec::new();
    let mut timed = 0;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let labels: Vec<(String, String)> = key
            .key()
            .labels()
            .map(|l| (l.key().to_string(), l.value().to_string()))
            .collect();
        if !labels.contains(&("function".into(), function.into())) {
            continue;
        }
        let outcome = labels
            .iter()
            .find(|(k, _)| k == "outcome")
            .unwrap()
            .1
            .clone();
        match (key.key().name(), value) {
            ("cachette_calls_total", DebugValue::Counter(n)) => calls.push((outcome, n)),
            ("cachette_call_seconds", DebugValue::Histogram(samples)) => timed += samples.len(),
            _ => {}
        }
    }
    calls.sort();
    assert_eq!(calls, vec![("hit".to_string(), 2), ("miss".to_string(), 1)]);
    assert_eq!(timed, 3);
}
