//! Two `#[tokio::test]`s sharing the default cache (each test has a
//! runtime of its own, dropped when it ends): the second reads a key the
//! first kept in memory, after the first's runtime is gone (I13). In a
//! process of its own, since the default cache is process-wide.

use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use cachette::cached;

#[path = "suite/support/server.rs"]
#[allow(dead_code)]
mod server;

/// What `server.rs` builds its caches from.
#[allow(dead_code)]
fn builder() -> cachette::CacheBuilder {
    cachette::Cache::builder()
}

/// The server both tests use, and the default cache's URL pointed at it
/// before either test's first cached call.
fn server() -> &'static server::RedisServer {
    static SERVER: OnceLock<server::RedisServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let server = server::RedisServer::start();
        // Set once, before any cached call reads them.
        std::env::set_var("CACHETTE_REDIS_URL", server.url());
        std::env::set_var("CACHETTE_NAMESPACE", "runtimes");
        server
    })
}

/// Set when the first test's runtime has been dropped.
static FIRST_DONE: (Mutex<bool>, Condvar) = (Mutex::new(false), Condvar::new());

/// Lives in a task of the first test's runtime: dropped with it.
struct Gone;

impl Drop for Gone {
    fn drop(&mut self) {
        *FIRST_DONE.0.lock().unwrap() = true;
        FIRST_DONE.1.notify_all();
    }
}

/// How often the body ran.
static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[cached(key = "answer:<id>", ttl = 600)]
async fn answer(id: u64) -> u64 {
    RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    id * 2
}

fn runs() -> u64 {
    RUNS.load(std::sync::atomic::Ordering::SeqCst)
}

#[tokio::test]
async fn a_first_test_keeps_a_key_in_memory() {
    server();
    // Enough reads for the near-cache to keep the key.
    for _ in 0..8 {
        assert_eq!(answer(21).await, 42);
    }
    assert_eq!(runs(), 1, "served from the cache");
    // Made before the task, so that it is dropped with it even unpolled.
    let gone = Gone;
    tokio::spawn(async move {
        let _gone = gone;
        std::future::pending::<()>().await;
    });
}

#[tokio::test]
async fn b_second_test_reads_it_after_the_first_runtime_is_gone() {
    server();
    {
        let (done, changed) = &FIRST_DONE;
        let (done, timed_out) = changed
            .wait_timeout_while(done.lock().unwrap(), Duration::from_secs(60), |d| !*d)
            .unwrap();
        assert!(
            !timed_out.timed_out() && *done,
            "the first test never ended"
        );
    }
    // On a thread of its own, bounded: the hang this checks never yields,
    // so no tokio timer could end it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let got: Vec<u64> = rt.block_on(async {
            let mut got = Vec::new();
            for _ in 0..3 {
                got.push(answer(21).await);
            }
            got
        });
        let _ = tx.send(got);
    });
    let got = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a read of a kept key after the first test's runtime was dropped hung");
    assert_eq!(got, vec![42; 3]);
    assert_eq!(runs(), 1, "served from the cache");
}
