//! A cold key hit by many callers at once: how many times does the body run?
//!
//! ```text
//! cargo run --example stampede                                  # in-process coalescing
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example stampede # plus the fleet-wide lock
//! ```
//! With Redis, four cache handles stand for four processes of a fleet: they
//! share Redis but not their in-process state.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cachette::{cached, Cache};

static RUNS: AtomicU32 = AtomicU32::new(0);

/// The expensive query, with no cache at all.
async fn report(day: u32) -> String {
    RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    format!("report for day {day}")
}

#[cached(cache = cache, key = "report:aside:<day>", ttl = 60)]
async fn report_aside(cache: &Cache, day: u32) -> String {
    report(day).await
}

#[cached(cache = cache, key = "report:lock:<day>", ttl = 60, strategy = "lock")]
async fn report_locked(cache: &Cache, day: u32) -> String {
    report(day).await
}

/// Runs `callers` concurrent calls on each handle and returns the body runs.
async fn storm<F, Fut>(handles: &[Cache], callers: usize, call: F) -> u32
where
    F: Fn(Cache) -> Fut,
    Fut: std::future::Future<Output = String> + Send + 'static,
{
    RUNS.store(0, Ordering::SeqCst);
    let mut tasks = Vec::new();
    for cache in handles {
        for _ in 0..callers {
            tasks.push(tokio::spawn(call(cache.clone())));
        }
    }
    for task in tasks {
        task.await.expect("a caller failed");
    }
    RUNS.load(Ordering::SeqCst)
}

#[tokio::main]
async fn main() -> Result<(), cachette::Error> {
    let day = std::process::id(); // a key no earlier run has cached
    match std::env::var("REDIS_URL") {
        Err(_) => {
            println!("REDIS_URL is not set: one process, the embedded backend, 200 callers");
            let cache = [Cache::memory()];
            let runs = storm(&cache, 200, |_| report(day)).await;
            println!("  no cache:                      the body ran {runs} times");
            let runs = storm(&cache, 200, |c| async move { report_aside(&c, day).await }).await;
            println!("  #[cached] (coalesced):         the body ran {runs} time(s)");
        }
        Ok(url) => {
            println!(
                "REDIS_URL is set: 4 handles on {url} standing for 4 processes, 50 callers each"
            );
            let mut handles = Vec::new();
            for _ in 0..4 {
                handles.push(
                    Cache::builder()
                        .namespace("stampede-demo")
                        .connect(&url)
                        .await?,
                );
            }
            let runs = storm(&handles, 50, |_| report(day)).await;
            println!("  no cache:                      the body ran {runs} times");
            let runs = storm(&handles, 50, |c| async move { report_aside(&c, day).await }).await;
            println!(
                "  strategy = \"aside\":            the body ran {runs} time(s) (once per process)"
            );
            let runs = storm(
                &handles,
                50,
                |c| async move { report_locked(&c, day).await },
            )
            .await;
            println!(
                "  strategy = \"lock\":             the body ran {runs} time(s) across the fleet"
            );
        }
    }
    Ok(())
}
