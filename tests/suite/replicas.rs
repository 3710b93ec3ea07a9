//! Invalidations wait for a replica (`WAIT` on the connection that wrote
//! them), so a master that dies right after acknowledging one cannot take
//! it with it; one that no replica acknowledges in time is handled like an
//! undelivered invalidation (I9).

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cachette::{Cache, ReplicaAcks};

use crate::support::{eventually, RedisServer};

fn wait_for_replica(master: &RedisServer) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut master.raw())
            .unwrap();
        if info.contains("connected_slaves:1") && info.contains("state=online") {
            return;
        }
        assert!(Instant::now() < deadline, "the replica did not sync");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn waits(server: &RedisServer) -> u64 {
    server
        .command_calls()
        .into_iter()
        .find(|(name, _)| name == "wait")
        .map_or(0, |(_, n)| n)
}

async fn read(cache: &Cache, runs: &AtomicU64) -> u64 {
    cache
        .get_or_fetch("user:1", &["org:1"], Duration::from_secs(60), async {
            Ok::<_, String>(runs.fetch_add(1, SeqCst))
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidations_wait_for_a_replica_and_a_silent_one_fails_them() {
    let master = RedisServer::start();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    wait_for_replica(&master);
    let cache = Cache::builder()
        .command_timeout(Duration::from_secs(2))
        .replica_ack_timeout(Duration::from_millis(300))
        .connect(&master.url())
        .await
        .unwrap();
    let runs = AtomicU64::new(0);
    read(&cache, &runs).await;

    // A replica answers: the bust waits for it, in the same round trip
    // (after a first bust has loaded the script).
    cache.invalidate_keys(["warm-up"]).await.unwrap();
    master.reset_stats();
    cache.invalidate_tags(["org:1"]).await.unwrap();
    assert_eq!(waits(&master), 1, "{:?}", master.command_calls());
    assert_eq!(read(&cache, &runs).await, 1, "busted");

    // The replica is frozen: its link stays up but it acknowledges nothing.
    replica.pause();
    let started = Instant::now();
    let err = cache.invalidate_tags(["org:1"]).await.unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(300), "{err}");
    assert_eq!(cache.stats().pending_busts, 1, "kept for retry: {err}");
    // Until it is delivered, what it names is read through, every time.
    assert_eq!(read(&cache, &runs).await, 2);
    assert_eq!(read(&cache, &runs).await, 3);

    replica.resume();
    eventually("the bust to be delivered with the replica's ack", || {
        cache.stats().pending_busts == 0
    })
    .await;
    let now = read(&cache, &runs).await;
    assert_eq!(read(&cache, &runs).await, now, "cached again");

    // Off: the bust returns without asking the replica.
    let off = Cache::builder()
        .replica_acks(ReplicaAcks::Off)
        .command_timeout(Duration::from_secs(2))
        .connect(&master.url())
        .await
        .unwrap();
    replica.pause();
    master.reset_stats();
    off.invalidate_tags(["org:1"]).await.unwrap();
    assert_eq!(waits(&master), 0);
    replica.resume();
}

#[tokio::test]
async fn without_replicas_auto_does_not_wait_and_require_fails() {
    let server = RedisServer::start();
    let auto = server.cache().await;
    server.reset_stats();
    auto.invalidate_keys(["a"]).await.unwrap();
    assert_eq!(waits(&server), 0, "no replica, no WAIT");

    let required = Cache::builder()
        .replica_acks(ReplicaAcks::Require(1))
        .replica_ack_timeout(Duration::from_millis(50))
        .connect(&server.url())
        .await
        .unwrap();
    assert!(required.invalidate_keys(["a"]).await.is_err());
    assert_eq!(required.stats().pending_busts, 1);
}
