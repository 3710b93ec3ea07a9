//! Backend behaviour: bad stored data is a miss, an unreachable Redis is
//! read through, and connection errors say what went wrong.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use cachette::{cached, Cache};

use crate::support::RedisServer;

static LOADS: AtomicU64 = AtomicU64::new(0);

#[cached(cache = cache, key = "n:<id>", ttl = 60)]
async fn number(cache: &Cache, id: u64) -> Result<u64, String> {
    LOADS.fetch_add(1, SeqCst);
    Ok(id * 10)
}

#[tokio::test]
async fn undecodable_values_are_misses_that_get_overwritten() {
    let server = RedisServer::start();
    let cache = server.cache().await;
    let mut raw = server.raw();
    number(&cache, 1).await.unwrap();
    let entry = crate::support::entry_name(&server, "n:1");
    let good: Vec<u8> = redis::cmd("GET").arg(&entry).query(&mut raw).unwrap();

    let header = good.len() - "10".len();
    let tampered: Vec<Vec<u8>> = vec![
        b"written by another tool".to_vec(), // foreign
        good[..header - 3].to_vec(),         // truncated
        [&good[..header], b"\"not a number\"".as_slice()].concat(), // another type
        [&good[..header], b"{\"broken".as_slice()].concat(), // corrupt value
    ];
    for (i, bytes) in tampered.into_iter().enumerate() {
        let _: () = redis::cmd("SET")
            .arg(&entry)
            .arg(bytes)
            .query(&mut raw)
            .unwrap();
        let before = cache.stats();
        assert_eq!(number(&cache, 1).await.unwrap(), 10, "case {i}");
        let after = cache.stats();
        assert_eq!(
            after.decode_failures,
            before.decode_failures + 1,
            "case {i}"
        );
        assert_eq!(after.misses, before.misses + 1, "case {i}");
        // Overwritten: the next read is a hit.
        assert_eq!(number(&cache, 1).await.unwrap(), 10);
        assert_eq!(cache.stats().hits, after.hits + 1, "case {i}");
    }

    // A value of another Redis type under the entry key is a miss too.
    let _: () = redis::cmd("DEL").arg(&entry).query(&mut raw).unwrap();
    let _: () = redis::cmd("LPUSH")
        .arg(&entry)
        .arg("x")
        .query(&mut raw)
        .unwrap();
    assert_eq!(number(&cache, 1).await.unwrap(), 10);
}

#[tokio::test]
async fn an_unreachable_redis_is_read_through() {
    let mut server = RedisServer::start();
    let cache = Cache::builder()
        .command_timeout(Duration::from_millis(200))
        .connect_timeout(Duration::from_millis(200))
        .connect(&server.url())
        .await
        .unwrap();
    assert_eq!(number(&cache, 2).await.unwrap(), 20);
    server.kill();
    for _ in 0..3 {
        assert_eq!(number(&cache, 2).await.unwrap(), 20);
    }
    assert!(cache.stats().errors >= 3, "{:?}", cache.stats());
    assert!(cache.invalidate_keys(["n:2"]).await.is_err());
}

#[tokio::test]
async fn connect_errors_say_what_failed() {
    let server = RedisServer::start();
    let port = server.port;
    drop(server);
    let err = Cache::connect(&format!("redis://127.0.0.1:{port}"))
        .await
        .unwrap_err();
    assert!(err.is_connection(), "{err:?}");
    let err = Cache::connect("http://127.0.0.1:1").await.unwrap_err();
    assert!(err.is_config(), "{err:?}");

    let server = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let err = Cache::connect(&format!("redis://:wrong@127.0.0.1:{}", server.port))
        .await
        .unwrap_err();
    assert!(err.is_auth(), "{err:?}");
    let ok = Cache::connect(&format!("redis://:s3cret@127.0.0.1:{}", server.port)).await;
    assert!(ok.is_ok(), "{ok:?}");
}

#[tokio::test]
async fn namespaces_keep_caches_apart() {
    let server = RedisServer::start();
    let a = server.cache().await;
    let b = Cache::builder()
        .namespace("other")
        .connect(&server.url())
        .await
        .unwrap();
    number(&a, 3).await.unwrap();
    number(&b, 3).await.unwrap();
    assert_eq!(b.stats().misses, 1);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("other:*")
        .query(&mut server.raw())
        .unwrap();
    assert!(!keys.is_empty());
}

#[cached(cache = cache, key = "big:<id>", ttl = 60, unkeyed = [bytes])]
async fn big(cache: &Cache, id: u64, bytes: usize) -> String {
    let _ = id;
    "x".repeat(bytes)
}

/// The embedded backend is bounded by bytes: at the defaults, ninety
/// values of almost a megabyte each (the largest cached by default) do not
/// all stay; its default budget is 64 MiB, not ten thousand entries of any
/// size.
#[tokio::test]
async fn the_embedded_backend_is_bounded_by_bytes() {
    for (cache, budget, size, count) in [
        (Cache::memory(), 64u64 << 20, 1_000_000, 90),
        (
            Cache::builder().max_memory_bytes(1 << 20).memory(),
            1 << 20,
            20_000,
            200,
        ),
    ] {
        for id in 0..count {
            big(&cache, id, size).await;
        }
        // moka evicts asynchronously; what matters is that what stays is
        // near the budget rather than growing with the values.
        let mut kept = 0;
        for id in 0..count {
            let before = cache.stats().hits;
            big(&cache, id, size).await;
            kept += cache.stats().hits - before;
        }
        let held = kept * size as u64;
        assert!(
            held <= budget + budget / 4,
            "{kept} values of {size} bytes stayed in a budget of {budget} bytes"
        );
    }
}

#[tokio::test]
async fn unix_sockets_and_tls_urls() {
    let dir = std::env::temp_dir().join(format!("cachette-sock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("redis.sock");
    let socket_arg = socket.to_str().unwrap().to_string();
    let _server =
        RedisServer::start_with(&["--unixsocket", &socket_arg, "--unixsocketperm", "700"]);
    let cache = Cache::connect(&format!("redis+unix://{socket_arg}"))
        .await
        .unwrap();
    assert_eq!(number(&cache, 4).await.unwrap(), 40);
    assert_eq!(number(&cache, 4).await.unwrap(), 40);
    assert_eq!(cache.stats().hits, 1);
    assert_eq!(cache.backend_name(), "redis");

    // Whether cachette has TLS depends on what else the build unifies
    // (the command line enables it): without it, `rediss://` is refused
    // and the refusal names the feature; with it, a TLS connection is
    // attempted.
    let err = Cache::connect("rediss://127.0.0.1:1").await.unwrap_err();
    if err.is_config() {
        assert!(err.to_string().contains("`tls` feature"), "{err}");
    } else {
        assert!(err.to_string().contains("(TLS)"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[cached(cache = cache, key = "blob:<n>", ttl = 60)]
async fn blob(cache: &Cache, n: usize) -> String {
    LOADS.fetch_add(1, SeqCst);
    "x".repeat(n)
}

#[tokio::test]
async fn values_over_the_size_limit_are_returned_but_not_cached() {
    let server = RedisServer::start();
    let redis = Cache::builder()
        .max_value_bytes(1_000)
        .connect(&server.url())
        .await
        .unwrap();
    let memory = Cache::builder().max_value_bytes(1_000).memory();
    for cache in [redis, memory] {
        assert_eq!(blob(&cache, 5_000).await.len(), 5_000);
        assert_eq!(blob(&cache, 5_000).await.len(), 5_000);
        assert_eq!(cache.stats().too_large, 2);
        assert_eq!(cache.stats().hits, 0);
        blob(&cache, 10).await;
        blob(&cache, 10).await;
        assert_eq!(cache.stats().hits, 1, "small values are still cached");
    }
}

/// The minimal ACL command set of `guide::redis` is enough for every
/// strategy, and for the near-cache.
#[tokio::test]
async fn an_acl_user_with_the_documented_commands_can_do_everything() {
    let server = RedisServer::start();
    server.add_documented_acl_user(&[]);
    let logs = crate::support::logs::Logs::capture();
    let url = format!("redis://app:s3cret@127.0.0.1:{}", server.port);
    let cache = Cache::builder()
        .command_timeout(Duration::from_secs(5))
        .connect(&url)
        .await
        .unwrap();
    number(&cache, 7).await.unwrap();
    number(&cache, 7).await.unwrap();
    cache.invalidate_keys(["n:7"]).await.unwrap();
    cache.invalidate_tags(["any"]).await.unwrap();
    number(&cache, 7).await.unwrap();
    let stats = cache.stats();
    assert_eq!(
        (stats.errors, stats.hits, stats.misses),
        (0, 1, 2),
        "{stats:?}"
    );
    // Lookups of Redis are kept in memory, and served from it.
    for _ in 0..20 {
        if cache.stats().near_hits > 0 {
            break;
        }
        number(&cache, 7).await.unwrap();
    }
    assert!(cache.stats().near_hits > 0, "{:?}", cache.stats());
    let text = logs.text();
    assert!(!text.contains("near-cache is off"), "{text}");

    let wrong = format!("redis://app:nope@127.0.0.1:{}", server.port);
    assert!(Cache::connect(&wrong).await.unwrap_err().is_auth());
}

#[tokio::test]
async fn signed_values_reject_tampering_moves_and_unsigned_writes() {
    let server = RedisServer::start();
    let cache = Cache::builder()
        .signing_key(b"a 32-byte key for the test suite")
        .unwrap()
        .connect(&server.url())
        .await
        .unwrap();
    let mut raw = server.raw();
    let get = |raw: &mut redis::Connection, k: &str| -> Vec<u8> {
        redis::cmd("GET").arg(k).query(raw).unwrap()
    };
    let set = |raw: &mut redis::Connection, k: &str, v: &[u8]| {
        let _: () = redis::cmd("SET").arg(k).arg(v).query(raw).unwrap();
    };
    number(&cache, 1).await.unwrap(); // stores 10, signed
    number(&cache, 2).await.unwrap(); // stores 20, signed
    let one = crate::support::entry_name(&server, "n:1");
    let two_name = crate::support::entry_name(&server, "n:2");

    // Tampered: the value's digit changed, the JSON still valid.
    let mut tampered = get(&mut raw, &one);
    let digit = tampered.iter().rposition(|b| *b == b'1').unwrap();
    tampered[digit] = b'9';
    set(&mut raw, &one, &tampered);
    assert_eq!(number(&cache, 1).await.unwrap(), 10);
    assert_eq!(cache.stats().signature_failures, 1);

    // Copied under another key: a valid entry of n:2 moved to n:1 (both
    // have their key versions, so only the signature can tell).
    let two = get(&mut raw, &two_name);
    set(&mut raw, &one, &two);
    assert_eq!(number(&cache, 1).await.unwrap(), 10);
    assert_eq!(cache.stats().signature_failures, 2);

    // No downgrade: an unsigned cache's write is rejected by a signed one.
    let unsigned = Cache::connect(&server.url()).await.unwrap();
    unsigned.invalidate_keys(["n:3"]).await.unwrap();
    number(&unsigned, 3).await.unwrap();
    assert_eq!(number(&cache, 3).await.unwrap(), 30);
    assert_eq!(cache.stats().signature_failures, 3);
    // And the signed entries still hit.
    let hits = cache.stats().hits;
    number(&cache, 3).await.unwrap();
    assert_eq!(cache.stats().hits, hits + 1);
}
