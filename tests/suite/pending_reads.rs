//! Calls already past their gates when a bust that names their entry
//! fails (kept, undelivered: I9) do not serve what it names: a follower of
//! a flight, a waiter for a lock, and a call waiting out a soft timeout
//! for its background refresh. Each scenario runs twice: with the bust
//! delivered (the value after it is read) and with it refused by Redis
//! (an ACL without `EVALSHA`: busts run a script, lookups and fills do
//! not), where the value the held body read before the write must not be
//! returned.

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use cachette::{cached, Cache};

use crate::support::source::Source;
use crate::support::{eventually, ManualClock, RedisServer};

/// A cache of the user `app`, whose busts `RedisServer::allow_busts` can refuse.
async fn app_cache(server: &RedisServer, clock: &ManualClock) -> Cache {
    server.add_documented_acl_user(&[]);
    crate::support::builder()
        .clock(clock.clone())
        .connect(&format!("redis://app:s3cret@127.0.0.1:{}", server.port))
        .await
        .unwrap()
}

/// The write to version 2 and its bust, delivered or refused, while a
/// body that read version 1 is held; returns once the bust returned.
async fn write_and_bust(
    server: &RedisServer,
    cache: &Cache,
    source: &Source,
    key: &str,
    deliver: bool,
) {
    source.version.store(2, SeqCst);
    server.allow_busts(deliver);
    let bust = cache.invalidate_keys([key]).await;
    assert_eq!(bust.is_ok(), deliver, "{bust:?}");
    assert_eq!(cache.stats().pending_invalidations > 0, !deliver);
}

#[cached(key = "pr_follow:<id>", ttl = 60, cache = cache, unkeyed = [source])]
async fn pr_follow(cache: &Cache, source: &Source, id: u64) -> Result<u64, String> {
    let _ = id;
    Ok(source.read().await)
}

/// A follower of an in-process flight: the leader read version 1, the
/// bust fails, the leader stores version 1; the follower reads again.
/// (It used to serve the leader's fill: the pending busts were asked only
/// before the first lookup.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_does_not_serve_its_leaders_fill_past_a_kept_bust() {
    for deliver in [true, false] {
        let server = RedisServer::start();
        let cache = app_cache(&server, &ManualClock::default()).await;
        let source = Source::default();
        source.version.store(1, SeqCst);
        let (reached, release) = source.hold_next(false);
        let leader = tokio::spawn({
            let (cache, source) = (cache.clone(), source.clone());
            async move { pr_follow(&cache, &source, 1).await }
        });
        reached.notified().await;
        let follower = tokio::spawn({
            let (cache, source) = (cache.clone(), source.clone());
            async move { pr_follow(&cache, &source, 1).await }
        });
        eventually("the follower to follow", || cache.stats().coalesced > 0).await;
        write_and_bust(&server, &cache, &source, "pr_follow:1", deliver).await;
        release.notify_one();
        leader.await.unwrap().unwrap();
        assert_eq!(follower.await.unwrap(), Ok(2), "delivered: {deliver}");
    }
}

#[cached(key = "pr_lock:<id>", ttl = 60, strategy = "lock", lock_ttl = "10s", lock_wait = "5s", cache = cache, unkeyed = [source])]
async fn pr_lock(cache: &Cache, source: &Source, id: u64) -> Result<u64, String> {
    let _ = id;
    Ok(source.read().await)
}

/// A waiter for the entry's lock (another cache of this process on the
/// same server: they share their pending busts): the holder read version
/// 1, the bust fails, the holder stores version 1; the waiter polls. (It
/// used to serve the holder's fill.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_waiter_does_not_serve_the_holders_fill_past_a_kept_bust() {
    for deliver in [true, false] {
        let server = RedisServer::start();
        let clock = ManualClock::default();
        let (holder_cache, waiter_cache) = (
            app_cache(&server, &clock).await,
            app_cache(&server, &clock).await,
        );
        let source = Source::default();
        source.version.store(1, SeqCst);
        let (reached, release) = source.hold_next(false);
        let holder = tokio::spawn({
            let (cache, source) = (holder_cache.clone(), source.clone());
            async move { pr_lock(&cache, &source, 1).await }
        });
        reached.notified().await;
        let waiter = tokio::spawn({
            let (cache, source) = (waiter_cache.clone(), source.clone());
            async move { pr_lock(&cache, &source, 1).await }
        });
        eventually("the waiter to wait", || waiter_cache.stats().lock_waits > 0).await;
        write_and_bust(&server, &holder_cache, &source, "pr_lock:1", deliver).await;
        release.notify_one();
        holder.await.unwrap().unwrap();
        assert_eq!(waiter.await.unwrap(), Ok(2), "delivered: {deliver}");
    }
}

#[cached(key = "pr_soft:<id>", ttl = 60, stale_if_error = "10m", soft_timeout = "20s", cache = cache, unkeyed = [source])]
async fn pr_soft(cache: &Cache, source: &Source, id: u64) -> Result<u64, String> {
    let _ = id;
    Ok(source.read().await)
}

/// A call waiting for the background refresh its soft timeout started:
/// the refresh read version 1, the bust fails, the refresh stores version
/// 1 and ends within the soft timeout. (The call used to return that
/// fill.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soft_timeout_does_not_serve_its_refresh_past_a_kept_bust() {
    for deliver in [true, false] {
        let server = RedisServer::start();
        let clock = ManualClock::default();
        let cache = app_cache(&server, &clock).await;
        let source = Source::default();
        source.version.store(1, SeqCst);
        assert_eq!(pr_soft(&cache, &source, 1).await, Ok(1));
        clock.advance(Duration::from_secs(70)); // past the TTL, kept
        let (reached, release) = source.hold_next(false);
        let call = tokio::spawn({
            let (cache, source) = (cache.clone(), source.clone());
            async move { pr_soft(&cache, &source, 1).await }
        });
        reached.notified().await; // the background body read version 1
        write_and_bust(&server, &cache, &source, "pr_soft:1", deliver).await;
        release.notify_one();
        assert_eq!(call.await.unwrap(), Ok(2), "delivered: {deliver}");
    }
}

/// Rows behind a gate, for batch bodies.
#[derive(Default)]
struct GatedRows {
    rows: std::sync::Mutex<std::collections::HashMap<u64, u64>>,
    gate: crate::support::source::Gate,
}

#[cached(batch = "id in ids", key = "pr_batch:<id>", ttl = 60, strategy = "lock", lock_ttl = "30s", lock_wait = "4s", cache = cache, unkeyed = [rows])]
async fn pr_batch(
    cache: &Cache,
    rows: &GatedRows,
    ids: &[u64],
) -> std::collections::HashMap<u64, u64> {
    let out: std::collections::HashMap<u64, u64> = {
        let rows = rows.rows.lock().unwrap();
        ids.iter()
            .filter_map(|id| Some((*id, *rows.get(id)?)))
            .collect()
    };
    rows.gate.pass().await;
    out
}

/// A batch element following an in-process flight whose leader found
/// nothing: the leader (waiting out another process's lock, so its flight
/// has not started) is joined by a follower; it reads "not found", the
/// row is written and its bust fails; the leader hands its "not found".
/// (The follower used to return it: the versions had not changed.) The
/// follower joins 2 s after the leader began waiting, so that its own
/// wait for the flight outlasts the leader's for the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_follower_does_not_take_a_not_found_past_a_kept_bust() {
    for deliver in [true, false] {
        let server = RedisServer::start();
        let clock = ManualClock::default();
        let (cache, other) = (
            app_cache(&server, &clock).await,
            app_cache(&server, &clock).await,
        );
        let rows = std::sync::Arc::new(GatedRows::default());
        let (reached_other, release_other) = rows.gate.hold_next(false);
        let holder = tokio::spawn({
            let (cache, rows) = (other.clone(), rows.clone());
            async move { pr_batch(&cache, &rows, &[1]).await }
        });
        reached_other.notified().await; // another process holds the lock
        let (reached, release) = rows.gate.hold_next(false);
        let leader = tokio::spawn({
            let (cache, rows) = (cache.clone(), rows.clone());
            async move { pr_batch(&cache, &rows, &[1]).await }
        });
        eventually("the leader to wait for the lock", || {
            cache.stats().lock_waits > 0
        })
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let follower = tokio::spawn({
            let (cache, rows) = (cache.clone(), rows.clone());
            async move { pr_batch(&cache, &rows, &[1]).await }
        });
        eventually("the follower to follow", || cache.stats().coalesced > 0).await;
        reached.notified().await; // the leader read "not found"
        rows.rows.lock().unwrap().insert(1, 2);
        server.allow_busts(deliver);
        let bust = cache.invalidate_keys(["pr_batch:1"]).await;
        assert_eq!(bust.is_ok(), deliver, "{bust:?}");
        release.notify_one();
        leader.await.unwrap();
        let followed = follower.await.unwrap();
        release_other.notify_one();
        holder.await.unwrap();
        assert_eq!(followed.get(&1), Some(&2), "delivered: {deliver}");
    }
}
