//! Invalidations wait for a replica (`WAIT` on the connection that wrote
//! them), so a master that dies right after acknowledging one cannot take
//! it with it; one that no replica acknowledges in time is handled like an
//! undelivered invalidation (I9).

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cachette::{Cache, ReplicaAcks};

use crate::support::proxy::{FaultProxy, Mode};
use crate::support::{delivered, eventually, RedisServer};

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
    read_key(cache, "user:1", runs).await
}

async fn read_key(cache: &Cache, key: &str, runs: &AtomicU64) -> u64 {
    cache
        .get_or_fetch(key, &["org:1"], Duration::from_secs(60), async {
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
    let ack_timeout = Duration::from_secs(2);
    let cache = Cache::builder()
        .command_timeout(Duration::from_secs(2))
        .replica_ack_timeout(ack_timeout)
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
    let bust = tokio::spawn({
        let cache = cache.clone();
        async move { cache.invalidate_tags(["org:1"]).await }
    });
    // While the bust's WAIT blocks its connection, reads still flow: busts
    // have a connection of their own.
    eventually("the bust to block in WAIT", || {
        let info: String = redis::cmd("INFO")
            .arg("clients")
            .query(&mut master.raw())
            .unwrap();
        info.contains("blocked_clients:1")
    })
    .await;
    let other = cache
        .get_or_fetch("other", &[], Duration::from_secs(60), async {
            Ok::<_, String>(7)
        })
        .await;
    assert_eq!(other, Ok(7));
    assert!(!bust.is_finished(), "the read did not wait for the bust");
    assert_eq!(cache.stats().errors, 0, "{:?}", cache.stats());
    let err = bust.await.unwrap().unwrap_err();
    assert!(started.elapsed() >= ack_timeout, "{err}");
    assert_eq!(
        cache.stats().pending_invalidations,
        1,
        "kept for retry: {err}"
    );
    // Until it is delivered, what it names is read through, every time.
    assert_eq!(read(&cache, &runs).await, 2);
    assert_eq!(read(&cache, &runs).await, 3);

    replica.resume();
    delivered(&cache).await;
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
    assert_eq!(required.stats().pending_invalidations, 1);
}

/// A failover only causes misses (I10): the promoted replica is another
/// server process, with another run id, so every version it holds from
/// the old master is under names nobody reads any more. This holds for a
/// bust the old master alone acknowledged (`Off`) as much as for one a
/// replica acknowledged, and for one still pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_to_a_replica_serves_nothing_from_before_it() {
    let mut master = RedisServer::start();
    let link = FaultProxy::start(master.port).await;
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &link.port.to_string()]);
    wait_for_replica(&master);
    let url = master.url();
    let writer = |acks| {
        Cache::builder()
            .replica_acks(acks)
            .replica_ack_timeout(Duration::from_millis(300))
            .command_timeout(Duration::from_secs(2))
            .connect(&url)
    };
    let (auto, off) = (
        writer(ReplicaAcks::Auto).await.unwrap(),
        writer(ReplicaAcks::Off).await.unwrap(),
    );
    let runs = AtomicU64::new(0);
    for key in ["user:1", "user:2", "user:3", "user:4"] {
        read_key(&auto, key, &runs).await;
    }
    // With the link up, a bust returns once the replica holds it.
    acknowledged(&auto, "user:3").await;

    link.set(Mode::Stall);
    off.invalidate_keys(["user:1"])
        .await
        .expect("Off: the master's acknowledgement is enough");
    let err = auto.invalidate_keys(["user:2"]).await.unwrap_err();
    assert_eq!(
        auto.stats().pending_invalidations,
        1,
        "kept for retry: {err}"
    );

    master.kill();
    redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .exec(&mut replica.raw())
        .unwrap();
    let reader = replica.cache().await;
    let mut stale = 0;
    for key in ["user:1", "user:2", "user:3", "user:4"] {
        let before = runs.load(SeqCst);
        if read_key(&reader, key, &runs).await != before {
            stale += 1;
        }
    }
    eprintln!(
        "RELIABILITY | failover to a replica (link stalled, master killed) | 4 reads after it | {stale} from before it | {} misses |",
        reader.stats().misses
    );
    assert_eq!(stale, 0, "an entry from before the failover was served");
}

/// What `WAIT` still protects: a split brain. The replica is promoted while
/// the old master lives on, cut off from it, and each has clients. A bust
/// sent to the old master that only it acknowledged (`Off`) returns `Ok`
/// while the new master's clients go on serving the old value; with
/// `Auto`, no replica acknowledges it, so it fails and is kept (I9).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_split_brain_only_replica_acknowledged_busts_return_ok() {
    let master = RedisServer::start();
    let link = FaultProxy::start(master.port).await;
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &link.port.to_string()]);
    wait_for_replica(&master);
    let url = master.url();
    let writer = |acks| {
        Cache::builder()
            .replica_acks(acks)
            .replica_ack_timeout(Duration::from_millis(300))
            .command_timeout(Duration::from_secs(2))
            .connect(&url)
    };
    let (auto, off) = (
        writer(ReplicaAcks::Auto).await.unwrap(),
        writer(ReplicaAcks::Off).await.unwrap(),
    );
    acknowledged(&auto, "warm-up").await; // learns the replica

    // The partition, then the promotion, with the old master alive.
    link.set(Mode::Stall);
    redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .exec(&mut replica.raw())
        .unwrap();
    let other_side = replica.cache().await;
    let runs = AtomicU64::new(0);
    for key in ["user:1", "user:2"] {
        read_key(&other_side, key, &runs).await;
    }
    let filled = runs.load(SeqCst);

    // The database changes; the writers bust through the old master.
    off.invalidate_keys(["user:1"])
        .await
        .expect("Off: the old master alone acknowledged it");
    assert_eq!(
        read_key(&other_side, "user:1", &runs).await,
        0,
        "Off returned Ok, and the other side still serves the old value"
    );
    assert!(
        auto.invalidate_keys(["user:2"]).await.is_err(),
        "Auto: no replica acknowledged it, so it must not return Ok"
    );
    assert_eq!(auto.stats().pending_invalidations, 1, "kept and retried");
    assert_eq!(runs.load(SeqCst), filled);
}

/// Busts `key` until the replica acknowledges it in time (a loaded machine
/// can make one `WAIT` miss its timeout).
async fn acknowledged(cache: &Cache, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(e) = cache.invalidate_keys([key]).await {
        assert!(Instant::now() < deadline, "never acknowledged: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    delivered(cache).await;
}

fn replicaof(server: &RedisServer, master: Option<u16>) {
    let mut cmd = redis::cmd("REPLICAOF");
    match master {
        Some(port) => cmd.arg("127.0.0.1").arg(port),
        None => cmd.arg("NO").arg("ONE"),
    };
    cmd.exec(&mut server.raw()).unwrap();
}

/// Waits until `master`'s one replica holds everything it was sent.
fn synced(master: &RedisServer) {
    wait_for_replica(master);
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query(&mut master.raw())
        .unwrap();
    assert_eq!(acked, 1);
}

/// I1 and I10 on a single Redis behind an address that moves (a proxy or a
/// virtual IP in front of a failover): the roles swap, a bust lands on
/// the new master, the roles swap back to the first server process (same
/// run id). The bust replicated back with the version's one name, and the
/// entry from before it never validates again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_and_failback_behind_one_address_bring_their_busts_with_them() {
    let a = RedisServer::start();
    let b = RedisServer::start();
    replicaof(&b, Some(a.port));
    let address = FaultProxy::start(a.port).await;
    let cache = Cache::builder()
        .command_timeout(Duration::from_secs(2))
        .connect(&address.url())
        .await
        .unwrap();
    let db = AtomicU64::new(1);
    let read = |db: &AtomicU64| {
        let v = db.load(SeqCst);
        cache.get_or_fetch("user:1", &[], Duration::from_secs(600), async move {
            Ok::<_, String>(v)
        })
    };
    assert_eq!(read(&db).await.unwrap(), 1);
    assert_eq!(read(&db).await.unwrap(), 1);

    synced(&a);
    replicaof(&b, None);
    replicaof(&a, Some(b.port));
    address.retarget(b.port);
    db.store(2, SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = cache.invalidate_keys(["user:1"]).await {
        assert!(
            Instant::now() < deadline,
            "the bust never went through: {e}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    delivered(&cache).await;

    synced(&b);
    replicaof(&a, None);
    replicaof(&b, Some(a.port));
    address.retarget(a.port);
    for _ in 0..5 {
        assert_eq!(
            read(&db).await.unwrap(),
            2,
            "the entry from before the bust came back with the failback"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn run_id(server: &RedisServer) -> String {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut server.raw())
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .unwrap()
        .trim()
        .to_string()
}

/// I1 and I10: a master that took an older copy of its data from another
/// server and was promoted back is the same process (same run id) with
/// other data. Every bust here is acknowledged by the replica; the
/// replica then restarts from a snapshot it took before the last one, the
/// address fails over to it, the first master resyncs from it (taking the
/// old entry and the version it was valid under) and the roles swap back.
/// The promotion gave the first master a new replication id, so its
/// versions are in a new scope and the old entry is a miss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_resynced_from_an_older_copy_and_promoted_back_serves_nothing_from_it() {
    let a = RedisServer::start();
    let mut b = RedisServer::start();
    replicaof(&b, Some(a.port));
    let address = FaultProxy::start(a.port).await;
    let cache = Cache::builder()
        .command_timeout(Duration::from_secs(2))
        .replica_ack_timeout(Duration::from_secs(2))
        .connect(&address.url())
        .await
        .unwrap();
    let db = AtomicU64::new(1);
    let read = |db: &AtomicU64| {
        let v = db.load(SeqCst);
        cache.get_or_fetch("user:1", &[], Duration::from_secs(600), async move {
            Ok::<_, String>(v)
        })
    };
    assert_eq!(read(&db).await.unwrap(), 1);
    assert_eq!(read(&db).await.unwrap(), 1);
    synced(&a);
    redis::cmd("SAVE").exec(&mut b.raw()).unwrap();
    let run_a = run_id(&a);

    db.store(2, SeqCst);
    acknowledged(&cache, "user:1").await;
    assert_eq!(read(&db).await.unwrap(), 2, "busted");

    // B restarts from its snapshot and is promoted; A resyncs from it.
    b.restart();
    address.retarget(b.port);
    replicaof(&a, Some(b.port));
    synced(&b);
    // Failback to the same A process.
    replicaof(&a, None);
    replicaof(&b, Some(a.port));
    address.retarget(a.port);
    assert_eq!(run_id(&a), run_a, "A was never restarted");
    for _ in 0..5 {
        assert_eq!(
            read(&db).await.unwrap(),
            2,
            "the entry from before an acknowledged bust came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The same, with the connection to the first master kept open through
/// all of it (a failover that disconnects nobody): the write it refuses
/// while it is a replica (`READONLY`) ends the session, and the next one
/// learns the new scope after the failback. `user:2`'s acknowledged bust
/// was lost with the replica's snapshot and is never written again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_ends_the_session_so_a_promotion_is_noticed() {
    let a = RedisServer::start();
    let mut b = RedisServer::start();
    replicaof(&b, Some(a.port));
    let cache = Cache::builder()
        .command_timeout(Duration::from_secs(2))
        .replica_ack_timeout(Duration::from_secs(2))
        .connect(&a.url())
        .await
        .unwrap();
    let db = AtomicU64::new(1);
    let read = |key: &'static str, db: &AtomicU64| {
        let v = db.load(SeqCst);
        cache.get_or_fetch(key, &[], Duration::from_secs(600), async move {
            Ok::<_, String>(v)
        })
    };
    assert_eq!(read("user:2", &db).await.unwrap(), 1);
    synced(&a);
    redis::cmd("SAVE").exec(&mut b.raw()).unwrap();
    db.store(2, SeqCst);
    acknowledged(&cache, "user:2").await;
    assert_eq!(read("user:2", &db).await.unwrap(), 2, "busted");

    b.restart();
    replicaof(&a, Some(b.port));
    synced(&b);
    // A is a replica: the bust of another key is refused.
    let refused = cache.invalidate_keys(["user:3"]).await;
    assert!(refused.is_err(), "a replica took a write: {refused:?}");
    replicaof(&a, None);
    replicaof(&b, Some(a.port));
    delivered(&cache).await;
    for _ in 0..5 {
        assert_eq!(
            read("user:2", &db).await.unwrap(),
            2,
            "the entry from before an acknowledged bust came back"
        );
    }
}

/// The same as `a_refused_write_ends_the_session...`, with two handles to
/// one server in one process (two components of one service): the write
/// refused on one makes the other ask the server again too, before its
/// next read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_makes_every_handle_of_the_process_ask_again() {
    let a = RedisServer::start();
    let mut b = RedisServer::start();
    replicaof(&b, Some(a.port));
    let url = a.url();
    let handle = || async {
        Cache::builder()
            .command_timeout(Duration::from_secs(2))
            .replica_ack_timeout(Duration::from_secs(2))
            .connect(&url)
            .await
            .unwrap()
    };
    let (writer, reader) = (handle().await, handle().await);
    let db = AtomicU64::new(1);
    let read = |db: &AtomicU64| {
        let v = db.load(SeqCst);
        reader.get_or_fetch("user:2", &[], Duration::from_secs(600), async move {
            Ok::<_, String>(v)
        })
    };
    assert_eq!(read(&db).await.unwrap(), 1);
    synced(&a);
    redis::cmd("SAVE").exec(&mut b.raw()).unwrap();
    db.store(2, SeqCst);
    acknowledged(&writer, "user:2").await;
    assert_eq!(read(&db).await.unwrap(), 2, "busted");

    b.restart();
    replicaof(&a, Some(b.port));
    synced(&b);
    let refused = writer.invalidate_keys(["user:3"]).await;
    assert!(refused.is_err(), "a replica took a write: {refused:?}");
    replicaof(&a, None);
    replicaof(&b, Some(a.port));
    delivered(&writer).await;
    for _ in 0..5 {
        assert_eq!(
            read(&db).await.unwrap(),
            2,
            "the other handle served the entry from before an acknowledged bust"
        );
    }
}

fn replid(server: &RedisServer) -> String {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut server.raw())
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("master_replid:"))
        .unwrap()
        .trim()
        .to_string()
}

/// A master takes a new replication id when its first replica attaches
/// (and when `repl-backlog-ttl` frees its backlog), with no change of
/// data. Connections made before and after converge on the new scope
/// after one miss, instead of replacing each other's versions forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_from_before_and_after_a_new_replication_id_converge() {
    let a = RedisServer::start();
    let b = RedisServer::start();
    let old = a.cache().await;
    let before = replid(&a);
    replicaof(&b, Some(a.port));
    synced(&a);
    assert_ne!(replid(&a), before, "the master took a new replication id");
    let new = a.cache().await;
    let runs = AtomicU64::new(0);
    let read = |cache: &Cache| {
        let cache = cache.clone();
        let runs = &runs;
        async move {
            cache
                .get_or_fetch("user:9", &[], Duration::from_secs(600), async move {
                    runs.fetch_add(1, SeqCst);
                    Ok::<_, String>(7u8)
                })
                .await
                .unwrap()
        }
    };
    for _ in 0..2 {
        read(&old).await;
        read(&new).await;
    }
    let converged = runs.load(SeqCst);
    assert!(converged <= 3, "{converged} runs of the body to converge");
    for _ in 0..10 {
        read(&old).await;
        read(&new).await;
    }
    assert_eq!(runs.load(SeqCst), converged, "warm reads ran the body");
}

/// A cache pointed at a replica by mistake: every fill is refused there
/// (`READONLY`), which is what a replica does, not news of a failover; its
/// connection is kept (it was once remade for every miss).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_on_a_replica_keeps_its_connection() {
    let a = RedisServer::start();
    let b = RedisServer::start();
    replicaof(&b, Some(a.port));
    synced(&a);
    let cache = b.cache().await;
    let connections = || -> u64 {
        let info: String = redis::cmd("INFO").arg("stats").query(&mut b.raw()).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("total_connections_received:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let before = connections();
    for i in 0..50 {
        let v = cache
            .get_or_fetch(&format!("k{i}"), &[], Duration::from_secs(60), async {
                Ok::<_, String>(1u8)
            })
            .await
            .unwrap();
        assert_eq!(v, 1, "read through");
    }
    // `connections()` opens one itself.
    let made = connections() - before - 1;
    assert!(made <= 2, "{made} connections for 50 reads");
}

/// How many `INFO` commands the server ran.
fn info_calls(server: &RedisServer) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut server.raw())
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_info:"))
        .and_then(|s| s.split(',').find_map(|kv| kv.strip_prefix("calls=")))
        .map_or(0, |n| n.parse().unwrap())
}

/// A cache that connected while its server was a replica, which was then
/// promoted (nothing disconnected the cache), takes writes; the server is
/// later demoted and resynced from an older copy. The write it refuses then
/// still makes the cache ask again: what a server said when the connection
/// was made is not trusted later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_is_news_even_from_a_server_that_was_a_replica() {
    let a = RedisServer::start();
    let mut b = RedisServer::start();
    // A starts as a replica of B; the cache connects to A now.
    replicaof(&a, Some(b.port));
    synced(&b);
    let cache = Cache::builder()
        .command_timeout(Duration::from_secs(2))
        .replica_ack_timeout(Duration::from_secs(2))
        .connect(&a.url())
        .await
        .unwrap();
    // A is promoted; B follows A. Nothing disconnects the cache.
    replicaof(&a, None);
    replicaof(&b, Some(a.port));
    synced(&a);

    let db = AtomicU64::new(1);
    let read = |key: &'static str, db: &AtomicU64| {
        let v = db.load(SeqCst);
        cache.get_or_fetch(key, &[], Duration::from_secs(600), async move {
            Ok::<_, String>(v)
        })
    };
    assert_eq!(read("user:2", &db).await.unwrap(), 1);
    assert_eq!(read("user:2", &db).await.unwrap(), 1, "cached on A");
    synced(&a);
    redis::cmd("SAVE").exec(&mut b.raw()).unwrap();
    db.store(2, SeqCst);
    acknowledged(&cache, "user:2").await;
    assert_eq!(read("user:2", &db).await.unwrap(), 2, "busted");

    // B restarts from its snapshot (before the bust); A resyncs from it.
    b.restart();
    replicaof(&a, Some(b.port));
    synced(&b);
    // A is a replica: writes are refused (a bust, and a fill).
    let refused = cache.invalidate_keys(["user:3"]).await;
    assert!(refused.is_err(), "a replica took a write: {refused:?}");
    let _ = read("user:4", &db).await;
    let after_refusal = read("user:2", &db).await.unwrap();
    // Failback, as in a_refused_write_ends_the_session_so_a_promotion_is_noticed.
    replicaof(&a, None);
    replicaof(&b, Some(a.port));
    delivered(&cache).await;
    let mut served = Vec::new();
    for _ in 0..5 {
        served.push(read("user:2", &db).await.unwrap());
    }
    assert_eq!(
        after_refusal, 2,
        "a refused write did not end the old scope"
    );
    assert!(
        served.iter().all(|&v| v == 2),
        "the entry from before an acknowledged bust came back: {served:?}"
    );
}

/// As `a_refused_write_makes_every_handle_of_the_process_ask_again`, with
/// the two handles reaching the server through `localhost` and
/// `127.0.0.1`: sessions share what they learn by the server process they
/// reached, not by how its address was spelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_reaches_handles_that_spell_the_server_otherwise() {
    let a = RedisServer::start();
    let mut b = RedisServer::start();
    replicaof(&b, Some(a.port));
    let handle = |url: String| async move {
        Cache::builder()
            .command_timeout(Duration::from_secs(2))
            .replica_ack_timeout(Duration::from_secs(2))
            .connect(&url)
            .await
            .unwrap()
    };
    let writer = handle(format!("redis://localhost:{}", a.port)).await;
    let reader = handle(a.url()).await;
    let db = AtomicU64::new(1);
    let read = |db: &AtomicU64| {
        let v = db.load(SeqCst);
        reader.get_or_fetch("user:2", &[], Duration::from_secs(600), async move {
            Ok::<_, String>(v)
        })
    };
    assert_eq!(read(&db).await.unwrap(), 1);
    synced(&a);
    redis::cmd("SAVE").exec(&mut b.raw()).unwrap();
    db.store(2, SeqCst);
    acknowledged(&writer, "user:2").await;
    assert_eq!(read(&db).await.unwrap(), 2, "busted");

    b.restart();
    replicaof(&a, Some(b.port));
    synced(&b);
    let refused = writer.invalidate_keys(["user:3"]).await;
    assert!(refused.is_err(), "a replica took a write: {refused:?}");
    replicaof(&a, None);
    replicaof(&b, Some(a.port));
    delivered(&writer).await;
    let mut served = Vec::new();
    for _ in 0..5 {
        served.push(read(&db).await.unwrap());
    }
    assert!(
        served.iter().all(|&v| v == 2),
        "the other handle served the entry from before an acknowledged bust: {served:?}"
    );
}

/// After a refused write, the callers that find their session out of date
/// wait for one question to the server instead of each asking it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_callers_after_a_refused_write_ask_the_server_once() {
    let a = RedisServer::start();
    let b = RedisServer::start();
    let cache = Cache::builder()
        .command_timeout(Duration::from_secs(5))
        .connect(&a.url())
        .await
        .unwrap();
    for i in 0..50 {
        let _ = cache
            .get_or_fetch(&format!("k{i}"), &[], Duration::from_secs(600), async {
                Ok::<_, String>(1u8)
            })
            .await;
    }
    replicaof(&a, Some(b.port));
    synced(&b);
    // One refused write (a fill on the reads link).
    let _ = cache
        .get_or_fetch("refused", &[], Duration::from_secs(600), async {
            Ok::<_, String>(1u8)
        })
        .await;
    let before = info_calls(&a);
    let reads: Vec<_> = (0..200)
        .map(|i| {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .get_or_fetch(
                        &format!("k{}", i % 50),
                        &[],
                        Duration::from_secs(600),
                        async { Ok::<_, String>(1u8) },
                    )
                    .await
            })
        })
        .collect();
    for r in reads {
        let _ = r.await.unwrap();
    }
    let infos = info_calls(&a) - before;
    assert!(infos <= 8, "{infos} INFO commands: one recheck per caller");
}
