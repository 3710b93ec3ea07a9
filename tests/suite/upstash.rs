//! Upstash's REST API: a hit is one request, concurrent calls share
//! requests, the token and the sync token travel as the protocol says, a
//! server that does not report its run id is refused, entries are shared
//! with caches on TCP, and the stale-read checker passes under faults. The
//! core, strategies and stale-read scenarios also run over REST wherever
//! the suite runs `each_backend` (see `support/upstash.rs`).
//!
//! The official TypeScript SDK checks the protocol server itself
//! (`the_official_sdk_speaks_to_the_protocol_server`), and the README's
//! TypeScript snippet busts tags through it.

use std::time::{Duration, Instant};

use cachette::{cached, Cache, ErrorKind, ReplicaAcks};

use crate::scenarios::workload::{self, check, every_key_has_a_ttl};
use crate::support::source::Source;
use crate::support::{builder, upstash, RedisServer};

#[cached(cache = cache, key = "item:<id>", ttl = 60, tags = ["group:<group>"], unkeyed = [src])]
async fn item(cache: &Cache, src: &Source, id: u64, group: &str) -> u64 {
    let _ = group;
    src.read().await + id * 10
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_is_one_request_and_a_bust_one_more() {
    let backing = upstash::start();
    let rest = backing.rest();
    let cache = backing.upstash(builder()).await;
    let src = Source::default();
    assert_eq!(item(&cache, &src, 1, "g").await, 10);
    // The scripts are loaded by the first bust that needs them.
    cache.invalidate_tags(["group:other"]).await.unwrap();

    let (requests, commands) = (rest.requests(), rest.commands());
    assert_eq!(item(&cache, &src, 1, "g").await, 10);
    assert_eq!(rest.requests() - requests, 1, "a hit is one request");
    assert_eq!(
        rest.commands() - commands,
        5,
        "a GETRANGE of the entry and of each version, and the server's INFO"
    );
    assert_eq!(src.runs(), 1);

    let requests = rest.requests();
    src.version.store(1, std::sync::atomic::Ordering::SeqCst);
    cache.invalidate_tags(["group:g"]).await.unwrap();
    assert_eq!(rest.requests() - requests, 1, "a bust is one request");
    assert_eq!(item(&cache, &src, 1, "g").await, 11, "busted");
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.errors), (1, 0), "{stats:?}");
    assert_eq!(cache.backend_name(), "upstash");
}

/// A hundred calls made at once share requests. The server holds its
/// replies while the calls start: at most eight requests are out, one per
/// place, and everything else queues; once the server answers, what queued
/// goes in one more request. So at most nine requests for a hundred calls.
#[test]
fn concurrent_calls_share_requests() {
    let backing = upstash::start();
    let rest = backing.rest();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let cache = backing.upstash(builder()).await;
        let src = Source::default();
        for id in 0..100 {
            item(&cache, &src, id, "g").await;
        }
        let requests = rest.requests();
        rest.pause();
        let calls: Vec<_> = (0..100)
            .map(|id| {
                let (cache, src) = (cache.clone(), src.clone());
                tokio::spawn(async move { item(&cache, &src, id, "g").await })
            })
            .collect();
        // On this one thread, each call runs until it waits for its reply
        // (its commands queued) before this task runs again.
        tokio::task::yield_now().await;
        crate::support::eventually("a request held", || rest.requests() > requests).await;
        rest.resume();
        for (id, call) in calls.into_iter().enumerate() {
            assert_eq!(call.await.unwrap(), id as u64 * 10);
        }
        let sent = rest.requests() - requests;
        // At most 8 are out while the server holds them; calls that had
        // not queued by then (each yields on its way, see `background`)
        // join the next ones, a few more at most: never one per call.
        assert!(sent <= 16, "100 concurrent hits took {sent} requests");
        assert_eq!(src.runs(), 100, "every call after the first was a hit");
        assert_eq!(cache.stats().hits, 100);
    });
}

/// A runtime dropped while its calls wait on requests leaves nothing
/// behind: the next runtime's calls are sent, not queued forever behind
/// senders that no longer run.
#[test]
fn requests_dropped_with_their_runtime_strand_nothing() {
    let backing = upstash::start();
    let rest = backing.rest();
    let first = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (cache, src) = first.block_on(async {
        let cache = backing.upstash(builder()).await;
        (cache, Source::default())
    });
    rest.pause();
    let requests = rest.requests();
    first.block_on(async {
        for id in 0..32 {
            let (cache, src) = (cache.clone(), src.clone());
            tokio::spawn(async move { item(&cache, &src, id, "g").await });
        }
        crate::support::eventually("requests held by the server", || {
            rest.requests() - requests >= 1
        })
        .await;
    });
    drop(first);
    rest.resume();
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    second.block_on(async {
        let errors = cache.stats().errors;
        for id in 100..110 {
            assert_eq!(item(&cache, &src, id, "g").await, id * 10);
        }
        assert_eq!(cache.stats().errors, errors, "{:?}", cache.stats());
        assert_eq!(item(&cache, &src, 100, "g").await, 1000);
        assert!(cache.stats().hits >= 1);
    });
}

#[tokio::test]
async fn the_sync_token_is_sent_back() {
    let backing = upstash::start();
    let rest = backing.rest();
    let cache = backing.upstash(builder()).await;
    let src = Source::default();
    item(&cache, &src, 1, "g").await;
    let back = rest.seen.sync_back.lock().unwrap().clone();
    let back: u64 = back.expect("a sync token sent back").parse().unwrap();
    assert!(back >= 1);
}

#[tokio::test]
async fn a_refused_token_is_an_auth_error_and_a_lazy_cache_reads_through() {
    let backing = upstash::start();
    let rest = backing.rest();
    let e = Cache::connect_upstash(&rest.url, "wrong")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(!e.to_string().contains(&rest.token), "{e}");

    let lazy = builder().connect_upstash_lazy(&rest.url, "wrong").unwrap();
    let src = Source::default();
    assert_eq!(item(&lazy, &src, 1, "g").await, 10);
    assert_eq!(item(&lazy, &src, 1, "g").await, 10);
    assert_eq!(src.runs(), 2, "read through");
    assert!(lazy.stats().errors >= 2);
    assert!(rest.seen.refused.load(std::sync::atomic::Ordering::SeqCst) >= 3);
}

#[tokio::test]
async fn urls_that_would_leak_the_token_are_refused() {
    for url in [
        "http://eu1-example.upstash.io",
        "https://eu1-example.upstash.io?_token=abc",
        "ftp://127.0.0.1",
    ] {
        let e = builder().connect_upstash_lazy(url, "abc").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{url}: {e}");
    }
    let e = builder()
        .connect_upstash_lazy("https://127.0.0.1:1", "two words")
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
}

#[tokio::test]
async fn an_unreachable_server_is_read_through() {
    let e = crate::support::impatient(Duration::from_millis(300))
        .connect_upstash("http://127.0.0.1:1", "abc")
        .await
        .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout),
        "{e}"
    );
    let cache = crate::support::impatient(Duration::from_millis(300))
        .connect_upstash_lazy("http://127.0.0.1:1", "abc")
        .unwrap();
    let src = Source::default();
    assert_eq!(item(&cache, &src, 1, "g").await, 10);
    assert_eq!(item(&cache, &src, 1, "g").await, 10);
    assert_eq!(src.runs(), 2);
    // An invalidation that cannot be delivered says so, and is kept.
    assert!(cache.invalidate_keys(["item:1"]).await.is_err());
    assert_eq!(cache.stats().pending_invalidations, 1);
}

/// Without a run id, a restart from older data could not be told apart
/// (I10): the server is refused at connection, and a lazy cache reads
/// through rather than trust what it reads.
#[tokio::test]
async fn a_server_that_does_not_report_its_run_id_is_refused() {
    let backing = upstash::start();
    let rest = backing.rest();
    rest.hide_run_id(true);
    let e = Cache::connect_upstash(&rest.url, &rest.token)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("run id"), "{e}");

    rest.hide_run_id(false);
    let cache = backing.upstash(builder()).await;
    let src = Source::default();
    item(&cache, &src, 1, "g").await;
    item(&cache, &src, 1, "g").await;
    assert_eq!(src.runs(), 1);
    rest.hide_run_id(true);
    item(&cache, &src, 1, "g").await;
    assert_eq!(src.runs(), 2, "not served without the server's scope");
}

/// One database, reached over TCP by one process and over REST by
/// another: each serves what the other filled, and each one's bust
/// reaches the other's reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_and_busts_are_shared_with_caches_on_tcp() {
    let backing = upstash::start();
    let rest = backing.upstash(builder()).await;
    let tcp = backing.redis.cache().await;
    let src = Source::default();
    assert_eq!(item(&rest, &src, 1, "g").await, 10);
    assert_eq!(item(&tcp, &src, 1, "g").await, 10);
    assert_eq!(src.runs(), 1, "TCP read the entry REST stored");
    assert_eq!(item(&tcp, &src, 2, "g").await, 20);
    assert_eq!(item(&rest, &src, 2, "g").await, 20);
    assert_eq!(src.runs(), 2, "REST read the entry TCP stored");
    assert_eq!(
        tcp.stats().decode_failures + rest.stats().decode_failures,
        0
    );

    src.version.store(5, std::sync::atomic::Ordering::SeqCst);
    tcp.invalidate_tags(["group:g"]).await.unwrap();
    assert_eq!(
        item(&rest, &src, 1, "g").await,
        15,
        "TCP's bust reached REST"
    );
    src.version.store(6, std::sync::atomic::Ordering::SeqCst);
    rest.invalidate_keys(["item:1"]).await.unwrap();
    assert_eq!(
        item(&tcp, &src, 1, "g").await,
        16,
        "REST's bust reached TCP"
    );
}

/// Replicas that must acknowledge a bust are asked with `WAIT` in the
/// bust's request; a server without them fails the bust, which is kept,
/// and what it names is not served meanwhile.
#[tokio::test]
async fn a_bust_that_replicas_must_hold_fails_without_them() {
    let backing = upstash::start();
    let cache = backing
        .upstash(
            builder()
                .replica_acks(ReplicaAcks::Require(1))
                .replica_ack_timeout(Duration::from_millis(50)),
        )
        .await;
    let src = Source::default();
    item(&cache, &src, 1, "g").await;
    item(&cache, &src, 1, "g").await;
    assert_eq!(src.runs(), 1);
    let e = cache.invalidate_keys(["item:1"]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert_eq!(cache.stats().pending_invalidations, 1);
    src.version.store(1, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        item(&cache, &src, 1, "g").await,
        11,
        "not served while pending"
    );
}

async fn workload_cache(backing: &crate::support::Backing) -> Cache {
    backing
        .upstash(
            Cache::builder()
                .command_timeout(Duration::from_millis(100))
                .connect_timeout(Duration::from_millis(200))
                .circuit_breaker(5, Duration::from_millis(200)),
        )
        .await
}

/// The stale-read checker over REST, while the REST server stalls
/// (requests past their timeout) and while Redis behind it is killed and
/// restarted with its data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stale_read_over_rest_through_stalls_and_a_restart() {
    let redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let rest = cachette_rest_server::RestServer::start(&redis.url());
    let mut backing = crate::support::Backing {
        redis,
        rest: Some(rest),
    };
    let cache = workload_cache(&backing).await;
    let work = workload::start(&cache, 20, 64);
    tokio::time::sleep(Duration::from_millis(500)).await;
    backing.rest().pause();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    backing.rest().resume();
    tokio::time::sleep(Duration::from_millis(500)).await;
    backing.rest().delay(150);
    tokio::time::sleep(Duration::from_millis(500)).await;
    backing.rest().delay(0);
    backing.redis.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    backing.redis.restart();
    let restarted = Instant::now();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let report = work.finish().await;
    check(
        "REST: stalls, slow replies, SIGKILL and restart",
        3,
        &report,
        &cache,
    );
    assert!(cache.stats().hits > 0 && restarted.elapsed() < Duration::from_secs(60));
    every_key_has_a_ttl(&backing.redis);
}

/// The default cache takes Upstash's variables when no Redis URL is set:
/// run in a child process of its own (the default cache is process-wide).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_cache_takes_upstash_variables() {
    let backing = upstash::start();
    let rest = backing.rest();
    let child = crate::support::child::spawn_test(
        "upstash::default_cache_child",
        &[
            ("UPSTASH_REDIS_REST_URL", rest.url.clone()),
            ("UPSTASH_REDIS_REST_TOKEN", rest.token.clone()),
            ("CACHETTE_NAMESPACE", "serverless".to_string()),
            // Set empty: the default cache skips empty URLs.
            ("CACHETTE_REDIS_URL", String::new()),
            ("REDIS_URL", String::new()),
        ],
    );
    let status = crate::support::child::wait_bounded(child, Duration::from_secs(60));
    assert!(status.success(), "the child failed: {status:?}");
    let entries: Vec<String> = redis::cmd("KEYS")
        .arg("serverless:e:*")
        .query(&mut backing.redis.raw())
        .unwrap();
    assert_eq!(entries.len(), 1, "stored through REST: {entries:?}");
}

#[cached(key = "env:<id>", ttl = 60, unkeyed = [src])]
async fn from_env(src: &Source, id: u64) -> u64 {
    src.read().await + id
}

#[tokio::test]
#[ignore = "run by the_default_cache_takes_upstash_variables in a child process"]
async fn default_cache_child() {
    for var in ["CACHETTE_REDIS_URL", "REDIS_URL"] {
        assert_eq!(std::env::var(var).unwrap_or_default(), "", "{var} is set");
    }
    let src = Source::default();
    assert_eq!(from_env(&src, 1).await, 1);
    assert_eq!(from_env(&src, 1).await, 1);
    assert_eq!(src.runs(), 1);
}

/// The folder of the TypeScript checks, with its packages installed.
fn sdk_dir() -> std::path::PathBuf {
    // This package is tests/suite; the checks are in tests/upstash-sdk.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../upstash-sdk");
    assert!(
        dir.join("node_modules/@upstash/redis").is_dir()
            && dir.join("node_modules/typescript").is_dir(),
        "the TypeScript checks need Node.js and their packages: install Node.js \
         (Debian: `apt-get install -y nodejs npm`), then run `npm ci --prefix tests/upstash-sdk`; \
         the README's test command (`./scripts/test.sh`) does both"
    );
    dir
}

/// Runs Node.js in the checks' folder against `rest`; fails the test with
/// what it printed unless it succeeds.
fn node(rest: &cachette_rest_server::RestServer, args: &[&str]) {
    let dir = sdk_dir();
    let out = std::process::Command::new("node")
        .args(args)
        .current_dir(&dir)
        .env("UPSTASH_REDIS_REST_URL", &rest.url)
        .env("UPSTASH_REDIS_REST_TOKEN", &rest.token)
        .env("UPSTASH_DISABLE_TELEMETRY", "1")
        .output()
        .expect("node was not found: install Node.js (Debian: `apt-get install -y nodejs npm`)");
    assert!(
        out.status.success(),
        "node {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Upstash's own TypeScript SDK through the protocol server: GET and SET,
/// pipelines, transactions, EVAL and EVALSHA, errors, a refused token,
/// automatic pipelining (see `tests/upstash-sdk/check.mjs`).
#[tokio::test]
async fn the_official_sdk_speaks_to_the_protocol_server() {
    let backing = upstash::start();
    let rest = backing.rest();
    node(rest, &["check.mjs"]);
    assert!(
        rest.seen.sync_back.lock().unwrap().is_some(),
        "the SDK sent the sync token back"
    );
}

/// The README's TypeScript snippet busts keys and tags a Rust service
/// caches, through the protocol server; the README quotes it as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typescript_app_busts_what_cachette_caches() {
    let snippet = std::fs::read_to_string(sdk_dir().join("bust.ts")).unwrap();
    // From the line after the scissors, a marker that the quoted text
    // cannot hold.
    let scissors = "// ---8<---\n";
    let at = snippet
        .find(scissors)
        .expect("bust.ts has its scissors line");
    let quoted = &snippet[at + scissors.len()..];
    assert!(!quoted.contains("---8<---"), "one scissors line");
    assert!(quoted.starts_with("import {"), "{quoted}");
    let readme = include_str!("../../README.md");
    assert!(
        readme.contains(quoted.trim_end()),
        "the README's snippet differs from tests/upstash-sdk/bust.ts"
    );
    let tsc = std::process::Command::new("node")
        .args(["node_modules/typescript/bin/tsc", "-p", "."])
        .current_dir(sdk_dir())
        .output()
        .expect("node");
    assert!(
        tsc.status.success(),
        "{}",
        String::from_utf8_lossy(&tsc.stdout)
    );

    let backing = upstash::start();
    let rest = backing.rest();
    let over_rest = backing.upstash(builder().namespace("shop")).await;
    let over_tcp = builder()
        .namespace("shop")
        .connect(&backing.redis.url())
        .await
        .unwrap();
    let src = Source::default();
    for cache in [&over_rest, &over_tcp] {
        for (id, group) in [(1, "g"), (2, "h"), (3, "h")] {
            item(cache, &src, id, group).await;
        }
    }
    assert_eq!(src.runs(), 3);
    src.version.store(100, std::sync::atomic::Ordering::SeqCst);
    node(
        rest,
        &["run.mjs", "shop", "--tag", "group:g", "--key", "item:2"],
    );
    for cache in [&over_rest, &over_tcp] {
        assert_eq!(item(cache, &src, 1, "g").await, 110, "the tag was busted");
        assert_eq!(item(cache, &src, 2, "h").await, 120, "the key was busted");
        assert_eq!(
            item(cache, &src, 3, "h").await,
            30,
            "the rest is still cached"
        );
    }
    assert_eq!(src.runs(), 5, "each busted entry ran once, then was shared");

    // Under a lease it waits: the namespace's (300 ms) once settled, the
    // longest while it is young; with none, nothing unless told to assume
    // lease readers.
    let lease = cachette::admin::lease_name("shop");
    let month: u64 = 30 * 24 * 3600 * 1000;
    let mut raw = backing.redis.raw();
    let timed = |args: &[&str]| {
        let started = std::time::Instant::now();
        node(rest, args);
        started.elapsed()
    };
    let bust = ["run.mjs", "shop", "--tag", "group:g"];
    let assumed = ["run.mjs", "shop", "--tag", "group:g", "--assume", "1"];
    let none = timed(&bust);
    let longest = Duration::from_millis(1_050);
    assert!(timed(&assumed) >= longest, "missing, assumed");
    redis::cmd("SET")
        .arg(&lease)
        .arg(300_000)
        .exec(&mut raw)
        .unwrap();
    redis::cmd("PEXPIRE")
        .arg(&lease)
        .arg(month - 10_000)
        .exec(&mut raw)
        .unwrap();
    let settled = timed(&bust);
    assert!(
        settled >= Duration::from_millis(300),
        "settled: {settled:?}"
    );
    assert!(
        settled < longest + none,
        "settled: {settled:?}, with none {none:?}"
    );
    redis::cmd("PEXPIRE")
        .arg(&lease)
        .arg(month)
        .exec(&mut raw)
        .unwrap();
    let young = timed(&bust);
    assert!(young >= longest, "young: {young:?}");
}

#[cached(cache = cache, key = "other:<id>", ttl = 60, unkeyed = [src])]
async fn other(cache: &Cache, src: &Source, id: u64) -> u64 {
    src.read().await + id * 10
}

/// Read-your-writes: a request that starts after a bust returned carries a
/// sync token at least as new as the bust's reply did, even when the reply
/// to an older request arrives after the bust's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_token_never_goes_back() {
    let backing = upstash::start();
    let rest = backing.rest();
    let cache = backing.upstash(builder()).await;
    let src = Source::default();
    item(&cache, &src, 1, "g").await;
    item(&cache, &src, 2, "g").await;
    other(&cache, &src, 7).await;
    cache.invalidate_tags(["group:none"]).await.unwrap();

    // A hit whose reply is held after the server answered it.
    rest.hold_replies_of("other:7");
    let held = tokio::spawn({
        let (cache, src) = (cache.clone(), src.clone());
        async move { other(&cache, &src, 7).await }
    });
    crate::support::eventually("a held reply", || rest.held() == 1).await;
    let held_token = rest.last_sync();
    cache.invalidate_keys(["item:1"]).await.unwrap();
    let bust_token = rest.last_sync();
    assert!(bust_token > held_token);
    rest.release_held();
    assert_eq!(held.await.unwrap(), 70);

    item(&cache, &src, 2, "g").await;
    let back: u64 = rest
        .seen
        .sync_back
        .lock()
        .unwrap()
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        back >= bust_token,
        "a request after the bust sent the sync token {back}, older than the bust's {bust_token}"
    );
}

/// Runtimes kept but no longer driven (a blocking facade's runtime between
/// calls), each of which made calls: calls from a live runtime are sent all
/// the same (requests never run on a caller's runtime).
#[test]
fn calls_made_on_runtimes_now_idle_block_nobody() {
    let backing = upstash::start();
    let rest = backing.rest();
    let main = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cache =
        main.block_on(backing.upstash(builder().command_timeout(Duration::from_millis(500))));
    let src = Source::default();
    let idle: Vec<tokio::runtime::Runtime> = (0..10u64)
        .map(|id| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            assert_eq!(runtime.block_on(item(&cache, &src, id, "g")), id * 10);
            runtime
        })
        .collect();
    main.block_on(async {
        let (errors, requests) = (cache.stats().errors, rest.requests());
        for id in 100..103u64 {
            assert_eq!(item(&cache, &src, id, "g").await, id * 10);
        }
        assert_eq!(
            cache.stats().errors,
            errors,
            "calls from a live runtime failed ({} requests reached the server): {:?}",
            rest.requests() - requests,
            cache.stats()
        );
    });
    drop(idle);
}

/// The token never crosses a network in clear text: an `http://` URL (to
/// loopback only) is not sent through a proxy named in the environment.
/// In a child process of its own, since it sets `HTTP_PROXY`.
#[test]
fn a_loopback_url_is_not_sent_through_a_proxy() {
    use std::io::Read;
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = proxy.local_addr().unwrap();
    proxy.set_nonblocking(true).unwrap();
    let child = crate::support::child::spawn_test(
        "upstash::proxy_child",
        &[
            ("HTTP_PROXY", format!("http://{addr}")),
            ("http_proxy", format!("http://{addr}")),
            ("ALL_PROXY", format!("http://{addr}")),
        ],
    );
    let status = crate::support::child::wait_bounded(child, Duration::from_secs(60));
    let mut seen = String::new();
    if let Ok((mut conn, _)) = proxy.accept() {
        conn.set_nonblocking(false).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let _ = conn.read_to_string(&mut seen);
    }
    assert!(
        !seen.contains("secret-token"),
        "the proxy received:\n{seen}"
    );
    assert!(seen.is_empty(), "the proxy was used:\n{seen}");
    assert!(status.success(), "the child failed: {status:?}");
}

#[tokio::test]
#[ignore = "run by a_loopback_url_is_not_sent_through_a_proxy in a child process"]
async fn proxy_child() {
    let backing = upstash::start();
    let cache = builder()
        .connect_upstash(&backing.rest().url, &backing.rest().token)
        .await
        .expect("reached directly, not through the proxy");
    let src = Source::default();
    item(&cache, &src, 1, "g").await;
    item(&cache, &src, 1, "g").await;
    assert_eq!(src.runs(), 1);
    let lazy = builder()
        .command_timeout(Duration::from_millis(300))
        .connect_upstash_lazy("http://127.0.0.1:9", "secret-token")
        .unwrap();
    item(&lazy, &src, 2, "g").await;
}

/// `max_value_bytes` up to `i64::MAX` reads entries whole: the end of the
/// range read stays within what Redis takes.
#[tokio::test]
async fn the_largest_value_bound_still_reads_entries() {
    for over_rest in [false, true] {
        let backing = upstash::start();
        let builder = builder().max_value_bytes(i64::MAX as usize);
        let cache = if over_rest {
            backing.upstash(builder).await
        } else {
            builder.connect(&backing.redis.url()).await.unwrap()
        };
        let src = Source::default();
        item(&cache, &src, 1, "g").await;
        item(&cache, &src, 1, "g").await;
        assert_eq!(src.runs(), 1, "rest {over_rest}: {:?}", cache.stats());
    }
}

/// Requests and their pooled connections run on cachette's own runtime: a
/// connection opened while a call ran on a runtime that is no longer driven
/// (a blocking facade's, between calls) never holds up a call on another.
#[test]
fn a_connection_opened_on_a_runtime_now_idle_holds_up_nobody() {
    let backing = upstash::start();
    let idle = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let live = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cache =
        idle.block_on(backing.upstash(builder().command_timeout(Duration::from_millis(500))));
    let src = Source::default();
    for round in 0..3u64 {
        assert_eq!(
            idle.block_on(item(&cache, &src, 1000 + round, "g")),
            (1000 + round) * 10
        );
        live.block_on(async {
            let errors = cache.stats().errors;
            assert_eq!(item(&cache, &src, round, "g").await, round * 10);
            assert_eq!(
                cache.stats().errors,
                errors,
                "round {round}: {:?}",
                cache.stats()
            );
        });
    }
}

/// A reply larger than any its commands may answer (a broken or hostile
/// server) is refused once past that size, not read whole: the call
/// reads through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_larger_than_its_commands_may_answer_is_refused() {
    let backing = upstash::start();
    let rest = backing.rest();
    let cache = backing.upstash(builder().max_value_bytes(1024)).await;
    let src = Source::default();
    assert_eq!(item(&cache, &src, 7, "g").await, 70);
    let (hits, errors) = (cache.stats().hits, cache.stats().errors);
    rest.pad_replies(64 << 20);
    assert_eq!(item(&cache, &src, 7, "g").await, 70);
    rest.pad_replies(0);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.errors), (hits, errors + 1), "{stats:?}");
    assert_eq!(item(&cache, &src, 7, "g").await, 70);
    assert_eq!(cache.stats().hits, hits + 1);
}

/// With server functions, scripts run as `FCALL` of the library an
/// administrator loaded, over REST as over TCP: `EVALSHA` is never sent.
#[tokio::test]
async fn server_functions_run_over_rest() {
    let backing = upstash::start();
    let rest = backing.rest();
    redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(cachette::SERVER_FUNCTIONS)
        .exec(&mut backing.redis.raw())
        .unwrap();
    let cache = backing.upstash(builder().server_functions(true)).await;
    rest.seen
        .record
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let src = Source::default();
    assert_eq!(item(&cache, &src, 1, "g").await, 10);
    // A version another server wrote: replaced through the adopt function.
    let version = crate::support::key_version_name(&backing.redis, "item:1");
    let _: () = redis::cmd("SET")
        .arg(&version)
        .arg("ffffffffffffffff0123456789abcdef")
        .query(&mut backing.redis.raw())
        .unwrap();
    src.version.store(1, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(item(&cache, &src, 1, "g").await, 11);
    cache.invalidate(["item:1"], ["group:g"]).await.unwrap();
    src.version.store(2, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(item(&cache, &src, 1, "g").await, 12);
    assert_eq!(item(&cache, &src, 1, "g").await, 12);
    let log = rest.seen.log.lock().unwrap().clone();
    assert!(
        log.iter().any(|c| c.starts_with("FCALL cachette_v2_bust")),
        "{log:?}"
    );
    assert!(
        log.iter().any(|c| c.starts_with("FCALL cachette_v2_adopt")),
        "{log:?}"
    );
    assert!(!log.iter().any(|c| c.starts_with("EVALSHA")), "{log:?}");
    let stats = cache.stats();
    assert_eq!((stats.errors, stats.hits), (0, 1), "{stats:?}");
}

/// A hostile REST server answers every request with one reply more than
/// the commands sent: the call is not panicked (it was, when an `MGET`
/// answered more versions than asked, at an `expect` of the fill), it
/// fails open with its body's value, counted as an error, and nothing is
/// stored.
#[tokio::test]
async fn a_reply_with_more_versions_than_asked_fails_open() {
    let backing = upstash::start();
    let cache = backing.upstash(builder()).await;
    backing.rest().extra_replies(1);
    let src = Source::default();
    for _ in 0..3 {
        let got = tokio::spawn({
            let (cache, src) = (cache.clone(), src.clone());
            async move { item(&cache, &src, 1, "g").await }
        })
        .await;
        assert!(got.is_ok(), "the call panicked: {got:?}");
    }
    let stats = cache.stats();
    assert_eq!(src.runs(), 3, "nothing stored from a misshapen reply");
    assert!(stats.errors >= 3, "{stats:?}");
}

/// A planted version costs a lookup over REST a few bytes too.
#[tokio::test]
async fn a_planted_version_is_never_read_whole() {
    let backing = upstash::start();
    let cache = backing
        .upstash(Cache::builder().command_timeout(Duration::from_secs(10)))
        .await;
    crate::security::a_planted_version_costs_a_few_bytes(&cache, &backing.redis).await;
}

/// A hostile REST server answers a lookup's read of a version with an
/// array of zeros, which no command cachette sends over REST answers.
/// Within what the lookup may read, the reply is refused as outside the
/// protocol where the array starts; past it (5 MB, which parsed into trees
/// cost 48 times its size), it is refused once past that bound, never read
/// whole. Either way the call fails open with its body's value, counted as
/// an error, and the next lookup Redis answers is a hit.
#[tokio::test]
async fn a_reply_with_an_array_is_refused_not_built() {
    let logs = crate::support::logs::Logs::capture();
    let backing = upstash::start();
    let rest = backing.rest();
    let cache = backing.upstash(builder()).await;
    let src = Source::default();
    assert_eq!(item(&cache, &src, 1, "g").await, 10);
    let version = crate::support::key_version_name(&backing.redis, "item:1");
    for (items, refused) in [
        (20_000, "sent a reply outside the REST protocol"),
        (2_500_000, "sent a reply of more than"),
    ] {
        let (errors, runs) = (cache.stats().errors, src.runs());
        rest.array_replies_to(&version, items);
        assert_eq!(item(&cache, &src, 1, "g").await, 10);
        rest.array_replies_to(&version, 0);
        let stats = cache.stats();
        assert_eq!(stats.errors, errors + 1, "{items} zeros: {stats:?}");
        assert_eq!(src.runs(), runs + 1, "{items} zeros: read through");
        let text = logs.text();
        assert!(text.contains(refused), "{items} zeros:\n{text:.3000}");
    }
    let hits = cache.stats().hits;
    assert_eq!(item(&cache, &src, 1, "g").await, 10);
    assert_eq!(cache.stats().hits, hits + 1, "{:?}", cache.stats());
}

/// A lookup reads no more than its commands may answer: with values of at
/// most 1 KiB, its entry, three versions and the server's `INFO` answer
/// well under 100 KB, so a reply padded to 200 KB is refused (the bound
/// was once a fixed quarter MB and more per command, whatever they were).
/// A reply within the bound is still read.
#[tokio::test]
async fn a_lookup_reads_no_more_than_its_commands_may_answer() {
    let logs = crate::support::logs::Logs::capture();
    let backing = upstash::start();
    let rest = backing.rest();
    let cache = backing.upstash(builder().max_value_bytes(1024)).await;
    let src = Source::default();
    assert_eq!(item(&cache, &src, 3, "g").await, 30);
    let (hits, errors) = (cache.stats().hits, cache.stats().errors);
    rest.pad_replies(40_000);
    assert_eq!(item(&cache, &src, 3, "g").await, 30);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.errors), (hits + 1, errors), "{stats:?}");
    rest.pad_replies(200_000);
    assert_eq!(item(&cache, &src, 3, "g").await, 30);
    rest.pad_replies(0);
    let stats = cache.stats();
    assert_eq!(
        (stats.hits, stats.errors),
        (hits + 1, errors + 1),
        "{stats:?}"
    );
    let text = logs.text();
    assert!(text.contains("sent a reply of more than"), "{text:.3000}");
}

/// Another Redis type under a name costs its key a miss over REST too.
#[tokio::test]
async fn another_type_under_a_name_costs_only_its_key() {
    let backing = upstash::start();
    let cache = backing.upstash(builder()).await;
    crate::security::another_type_costs_only_its_key(&cache, &backing.redis).await;
}
