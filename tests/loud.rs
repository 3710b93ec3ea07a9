//! Misconfigurations that serve stale data quietly are loud at first use,
//! even in a service that installed no `tracing` subscriber: the warning
//! then goes to stderr, once per function. Each case runs in a child
//! process (this test binary, asked for one `child_` test), whose stderr
//! is read; run alone, a `child_` test does nothing.

use std::process::Command;

use cachette::{cached, invalidates, Cache};

/// The stderr of `case`, run in a child process without a subscriber.
fn stderr_of(case: &str) -> String {
    let out = Command::new(std::env::current_exe().expect("the test binary"))
        .args([case, "--exact", "--nocapture", "--test-threads=1"])
        .env("CACHETTE_LOUD_CHILD", case)
        .output()
        .expect("the child runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "the child failed: {stderr}");
    stderr
}

fn is_child(case: &str) -> bool {
    std::env::var("CACHETTE_LOUD_CHILD").as_deref() == Ok(case)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

struct Tx;

#[cached(key = "user:<id>", ttl = 60, cache = cache)]
async fn user(cache: &Cache, id: u64) -> u64 {
    id
}

/// Busts through a transaction: outside `deferred`, before the commit.
#[invalidates(calls = [user(cache, id)], cache = cache)]
async fn update_user(cache: &Cache, tx: &mut Tx, id: u64) {
    let _ = tx;
}

/// The same, inside `deferred`: silent.
#[invalidates(calls = [user(cache, id)], cache = cache)]
async fn update_user_deferred(cache: &Cache, tx: &mut Tx, id: u64) {
    let _ = tx;
}

/// Declared not to be a transaction: silent.
#[invalidates(calls = [user(cache, id)], cache = cache, not_a_transaction = [conn])]
async fn update_user_conn(cache: &Cache, conn: &mut Tx, id: u64) {
    let _ = conn;
}

/// A generic executor, given `&mut tx`.
#[invalidates(calls = [user(cache, id)], cache = cache)]
async fn update_user_generic<E>(cache: &Cache, exec: E, id: u64) {
    let _ = exec;
}

#[test]
fn a_bust_through_a_mut_argument_outside_deferred_is_loud_once() {
    let err = stderr_of("child_bust_outside_deferred");
    let warned = |f: &str| {
        err.lines()
            .filter(|l| l.contains(&format!("{f}` takes `&mut")))
            .count()
    };
    assert_eq!(warned("update_user"), 1, "once, naming the function: {err}");
    assert!(
        err.contains("cachette::deferred"),
        "it names the fix: {err}"
    );
    assert!(err.contains("not_a_transaction = [tx]"), "{err}");
    assert_eq!(warned("update_user_deferred"), 0, "{err}");
    assert_eq!(warned("update_user_conn"), 0, "{err}");
    let generic = err
        .lines()
        .filter(|l| l.contains("update_user_generic<") && l.contains("takes `&mut exec`"))
        .count();
    assert_eq!(generic, 1, "a generic given `&mut`, once: {err}");
}

#[test]
fn child_bust_outside_deferred() {
    if !is_child("child_bust_outside_deferred") {
        return;
    }
    block_on(async {
        let cache = Cache::memory();
        let mut tx = Tx;
        update_user(&cache, &mut tx, 1).await;
        update_user(&cache, &mut tx, 2).await;
        cachette::deferred(async {
            update_user_deferred(&cache, &mut tx, 1).await;
        })
        .await;
        update_user_conn(&cache, &mut tx, 1).await;
        update_user_generic(&cache, &cache, 1).await; // shared: silent
        update_user_generic(&cache, &mut tx, 1).await;
    });
}

/// A stderr that cannot be written (a closed pipe) does not break the
/// function: the warning is dropped, the bust and the result stand.
#[test]
fn a_closed_stderr_does_not_break_the_function() {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "child_closed_stderr",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CACHETTE_LOUD_CHILD", "child_closed_stderr")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the child runs");
    // Closed before the child writes to it: it waits for a line first.
    drop(child.stderr.take());
    writeln!(child.stdin.take().unwrap(), "go").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the child failed: {stdout}");
    assert!(stdout.contains("busted and returned"), "{stdout}");
}

#[test]
fn child_closed_stderr() {
    if !is_child("child_closed_stderr") {
        return;
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    block_on(async {
        let cache = Cache::memory();
        let mut tx = Tx;
        user(&cache, 1).await;
        update_user(&cache, &mut tx, 1).await; // warns, to a closed stderr
        user(&cache, 1).await;
        assert_eq!(cache.stats().misses, 2, "the bust was sent");
        println!("busted and returned");
    });
}

/// A read through a generic executor, given a `&mut`.
#[cached(key = "through:<id>", ttl = 60, cache = cache, unkeyed = [exec])]
async fn through<E: Send>(cache: &Cache, exec: E, id: u64) -> u64 {
    let _ = exec;
    id
}

#[test]
fn a_generic_read_given_a_mut_is_loud_once() {
    let err = stderr_of("child_generic_read");
    let warned = err
        .lines()
        .filter(|l| l.contains("was given `exec` as a `&mut`"))
        .count();
    assert_eq!(warned, 1, "{err}");
    assert!(err.contains("not_a_transaction = [exec]"), "{err}");
}

#[test]
fn child_generic_read() {
    if !is_child("child_generic_read") {
        return;
    }
    block_on(async {
        let cache = Cache::memory();
        let mut tx = Tx;
        through(&cache, &mut tx, 1).await;
        through(&cache, &mut tx, 1).await;
        through(&cache, 7u8, 1).await; // not a `&mut`: silent
    });
}

// Forgot `cache = ...` in a process that built a cache of its own.
#[cached(key = "email:<id>", ttl = 60)]
async fn email(id: u64) -> String {
    format!("{id}@example.com")
}

#[test]
fn a_forgotten_cache_is_loud_without_a_subscriber() {
    let err = stderr_of("child_forgotten_cache");
    assert_eq!(
        err.lines()
            .filter(|l| l.contains("loud::email` has no `cache = ...`"))
            .count(),
        1,
        "{err}"
    );
}

#[test]
fn child_forgotten_cache() {
    if !is_child("child_forgotten_cache") {
        return;
    }
    block_on(async {
        let cache = Cache::memory();
        user(&cache, 1).await;
        email(1).await;
        email(2).await;
    });
}

/// A generic return type, instantiated with a `Result`: never cached.
#[cached(key = "generic:<id>", ttl = 60, cache = cache, unkeyed = [value])]
async fn generic<T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static>(
    cache: &Cache,
    id: u64,
    value: fn(u64) -> T,
) -> T {
    value(id)
}

#[test]
fn a_generic_result_that_is_never_cached_is_loud_without_a_subscriber() {
    let err = stderr_of("child_generic_result");
    assert_eq!(
        err.lines()
            .filter(|l| l.contains("is not cached, since its errors"))
            .count(),
        1,
        "{err}"
    );
}

#[test]
fn child_generic_result() {
    if !is_child("child_generic_result") {
        return;
    }
    block_on(async {
        let cache = Cache::memory();
        let ok = |id: u64| -> Result<u64, String> { Ok(id) };
        generic(&cache, 1, ok).await.unwrap();
        generic(&cache, 1, ok).await.unwrap();
    });
}
