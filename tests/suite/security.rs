//! Hostile conditions: someone with write access to Redis but without the
//! signing key, values planted to exhaust memory, and the like. What each
//! protection covers is in SECURITY.md.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use cachette::{cached, Cache};

use crate::support::logs::Logs;
use crate::support::{delivered, entry_name, key_version_name, ManualClock, RedisServer};

const KEY: &[u8; 32] = b"a 32-byte key for the test suite";

#[cached(cache = cache, key = "acct:<id>", ttl = 60, unkeyed = [src])]
async fn balance(cache: &Cache, src: &AtomicU64, id: u64) -> u64 {
    src.load(SeqCst) + id
}

/// An entry records what its versions were; with signing on, those are
/// keyed hashes. Writing any 16 bytes taken from a busted entry back into
/// its key's version (the attack on clear tokens) never revives it.
#[tokio::test]
async fn a_token_copied_out_of_a_signed_entry_cannot_revive_it() {
    let server = RedisServer::start();
    let cache = Cache::builder()
        .signing_key(KEY)
        .unwrap()
        .connect(&server.url())
        .await
        .unwrap();
    let src = AtomicU64::new(0);
    assert_eq!(balance(&cache, &src, 1).await, 1);
    let mut raw = server.raw();
    let entry_key = entry_name(&server, "acct:1");
    let entry: Vec<u8> = redis::cmd("GET").arg(&entry_key).query(&mut raw).unwrap();
    let version = key_version_name(&server, "acct:1");

    src.store(100, SeqCst);
    cache.invalidate_keys(["acct:1"]).await.unwrap();
    // Put the busted entry back too, as a replay would.
    for window in entry.windows(16) {
        let _: () = redis::cmd("SET")
            .arg(&version)
            .arg(window)
            .query(&mut raw)
            .unwrap();
        let _: () = redis::cmd("SET")
            .arg(&entry_key)
            .arg(&entry)
            .query(&mut raw)
            .unwrap();
        assert_eq!(
            balance(&cache, &src, 1).await,
            101,
            "an invalidated entry was revived with bytes copied out of it"
        );
    }
}

/// A signed entry carries its expiry under the signature: a copy kept past
/// it (`PERSIST`, or written back without a TTL) is not served.
#[tokio::test]
async fn a_signed_entry_kept_past_its_expiry_is_not_served() {
    let server = RedisServer::start();
    let clock = ManualClock::default();
    let cache = Cache::builder()
        .signing_key(KEY)
        .unwrap()
        .clock(clock.clone())
        .connect(&server.url())
        .await
        .unwrap();
    let src = AtomicU64::new(0);
    assert_eq!(balance(&cache, &src, 2).await, 2);
    let entry = entry_name(&server, "acct:2");
    redis::cmd("PERSIST")
        .arg(&entry)
        .exec(&mut server.raw())
        .unwrap();
    src.store(50, SeqCst); // the source changed; nothing busted
    let hits = cache.stats().hits;
    assert_eq!(balance(&cache, &src, 2).await, 2, "within its TTL: a hit");
    assert_eq!(cache.stats().hits, hits + 1);

    // Past the TTL (60 s) and the allowance for clock skew (60 s).
    clock.advance(Duration::from_secs(121));
    let failures = cache.stats().signature_failures;
    assert_eq!(
        balance(&cache, &src, 2).await,
        52,
        "an entry kept past its signed expiry was served"
    );
    assert_eq!(cache.stats().signature_failures, failures + 1);
}

#[cached(cache = cache, key = "profile:<email>", ttl = 60, tags = ["person:<email>"])]
async fn profile(cache: &Cache, email: &str) -> u64 {
    email.len() as u64
}

/// Keys built from arguments (here an email) are personal data: by default
/// logs show the template and a short hash, at every level, in hits,
/// misses, backend failures, undecodable values and failed busts; a
/// stored value that does not decode is not echoed. Full names are opt-in.
#[tokio::test]
async fn logs_do_not_carry_keys_or_values_unless_asked() {
    let email = "ada@example.com";
    for full in [false, true] {
        let mut server = RedisServer::start();
        let logs = Logs::capture();
        let cache = Cache::builder()
            .log_full_names(full)
            .command_timeout(Duration::from_millis(300))
            .connect_timeout(Duration::from_millis(300))
            .connect(&server.url())
            .await
            .unwrap();
        profile(&cache, email).await; // miss
        profile(&cache, email).await; // hit
        let entry = entry_name(&server, &format!("profile:{}", cachette::escape(email)));
        let planted = b"\"SECRET-VALUE planted where a number belongs\"";
        let mut stored: Vec<u8> = redis::cmd("GET")
            .arg(&entry)
            .query(&mut server.raw())
            .unwrap();
        let header = stored.len() - "15".len();
        stored.truncate(header);
        stored.extend_from_slice(planted);
        let _: () = redis::cmd("SET")
            .arg(&entry)
            .arg(stored)
            .query(&mut server.raw())
            .unwrap();
        profile(&cache, email).await; // undecodable: a miss
        assert!(cache.stats().decode_failures >= 1);
        server.kill();
        profile(&cache, email).await; // backend failure
        let _ = cache
            .invalidate_tags([format!("person:{}", cachette::escape(email))])
            .await; // failed bust
        let text = logs.text();
        let escaped = cachette::escape(email);
        assert!(
            !text.contains("SECRET-VALUE"),
            "a stored value was logged:\n{text}"
        );
        if full {
            assert!(
                text.contains(&escaped),
                "full names were asked for:\n{text}"
            );
        } else {
            assert!(
                !text.contains(&escaped) && !text.contains(email) && !text.contains("example.com"),
                "a key built from an email was logged:\n{text}"
            );
            assert!(text.contains("profile:<email>#"), "{text}");
        }
    }
}

static PAUSED_PORT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);

#[cached(cache = cache, key = "account:<email>", ttl = 60, strategy = "lock")]
async fn account(cache: &Cache, email: &str) -> u64 {
    // Redis stops taking writes while the body runs (a failover, a full
    // Redis, `CLIENT PAUSE WRITE`): the fill and the lock's release fail.
    let port = PAUSED_PORT.load(SeqCst);
    let mut raw = redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_connection()
        .unwrap();
    // Long enough to outlast the fill's and the release's timeouts however
    // loaded the machine is; the test does not wait for it to end.
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(10_000)
        .arg("WRITE")
        .exec(&mut raw)
        .unwrap();
    email.len() as u64
}

/// A lock whose release fails is logged by the entry's shown key, not by
/// the lock's backend name (which holds the whole key).
#[tokio::test]
async fn a_failed_lock_release_does_not_log_the_key() {
    let email = "ada@example.com";
    let server = RedisServer::start();
    PAUSED_PORT.store(server.port, SeqCst);
    let logs = Logs::capture();
    let cache = Cache::builder()
        .command_timeout(Duration::from_millis(300))
        .connect(&server.url())
        .await
        .unwrap();
    assert_eq!(account(&cache, email).await, email.len() as u64);
    let text = logs.text();
    assert!(
        text.contains("op=\"unlock\"") || text.contains("op=unlock"),
        "the release failed:\n{text}"
    );
    let escaped = cachette::escape(email);
    assert!(
        !text.contains(&escaped) && !text.contains("example.com"),
        "a key built from an email was logged:\n{text}"
    );
    assert!(text.contains("account:<email>#"), "{text}");
}

/// `#insecure` on a `rediss://` URL would turn certificate checks off in
/// the `redis` crate, if another crate enabled the feature that reads it:
/// fragments are refused outright.
#[tokio::test]
async fn url_fragments_are_refused() {
    for url in ["rediss://127.0.0.1:1/#insecure", "redis://127.0.0.1:1/0#x"] {
        let err = Cache::connect(url).await.unwrap_err();
        assert!(err.is_config(), "{url}: {err}");
        let err = Cache::builder().connect_lazy(url).unwrap_err();
        assert!(err.is_config(), "{url}: {err}");
    }
}

#[cached(cache = cache, key = "member:<id>", ttl = 60, tags = ["team:<team>"])]
async fn member(cache: &Cache, id: u64, team: u64) -> Option<u64> {
    let _ = team;
    id.is_multiple_of(1_000).then_some(id)
}

/// Misses on ids that do not exist (a scan of random ids) leave no
/// versions behind, and the versions created for real fills live as long
/// as the entry, not a day: Redis holds what the cache holds.
#[tokio::test]
async fn misses_do_not_leave_versions_behind() {
    let server = RedisServer::start();
    let cache = server.cache().await;
    let mut raw = server.raw();
    for id in 1..=2_000 {
        assert_eq!(
            member(&cache, id, id).await,
            id.is_multiple_of(1_000).then_some(id)
        );
    }
    let versions: Vec<String> = redis::cmd("KEYS")
        .arg("cachette:[kt]*")
        .query(&mut raw)
        .unwrap();
    // Two ids exist (1000 and 2000): their key and team versions stay.
    assert_eq!(versions.len(), 4, "{} versions left behind", versions.len());
    for name in versions {
        let ttl: i64 = redis::cmd("PTTL").arg(&name).query(&mut raw).unwrap();
        assert!(
            ttl > 0 && ttl <= 60_000,
            "{name} lives {ttl} ms, longer than its entry"
        );
    }
}

/// Commands slower than `micros` since the last reset, by name.
fn slow_commands(server: &RedisServer) -> Vec<(String, i64)> {
    let entries: Vec<redis::Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(1000)
        .query(&mut server.raw())
        .unwrap();
    entries
        .into_iter()
        .filter_map(|e| {
            let redis::Value::Array(parts) = e else {
                return None;
            };
            let redis::Value::Int(micros) = parts.get(2)? else {
                return None;
            };
            let redis::Value::Array(args) = parts.get(3)? else {
                return None;
            };
            let name = match args.first()? {
                redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                _ => return None,
            };
            Some((name, *micros))
        })
        .collect()
}

/// Fails a bust of `n` tags while Redis refuses writes (`CLIENT PAUSE
/// WRITE`), then lets it write again; returns the cache once everything
/// pending was delivered.
async fn pending_after_a_pause(server: &RedisServer, cache: &Cache, n: usize) {
    let tags: Vec<String> = (0..n).map(|i| format!("bulk:{i}")).collect();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(10_000)
        .exec(&mut server.raw())
        .unwrap();
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(2_000)
        .arg("WRITE")
        .exec(&mut server.raw())
        .unwrap();
    let _: () = redis::cmd("SLOWLOG")
        .arg("RESET")
        .query(&mut server.raw())
        .unwrap();
    assert!(
        cache.invalidate_tags(&tags).await.is_err(),
        "Redis refused writes"
    );
    assert!(cache.stats().pending_invalidations > 0);
    redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .exec(&mut server.raw())
        .unwrap();
    delivered(cache).await;
}

#[cached(cache = cache, key = "bulk-item:<id>", ttl = 300, tags = ["bulk:<id>"], unkeyed = [src])]
async fn bulk_item(cache: &Cache, src: &AtomicU64, id: u64) -> u64 {
    src.load(SeqCst) + id
}

/// I9 under a write burst that Redis refuses: 200,000 undelivered names
/// (kept one by one under a raised bound) are delivered a chunk at a time;
/// 50,000 at the default bound are replaced by one namespace-wide step.
/// Either way every entry they name misses afterwards, in this process and
/// another, and no step holds Redis for long.
///
/// "Long" is measured against a baseline on the same server in the same
/// run: one script doing a whole delivery's writes (`SET ... PX` on
/// 200,000 names) at once, as the single script this replaced did. A step
/// is refused if `SLOWLOG` timed it at a fifth of that or more: a chunk
/// is a 400th of it, and a delivery in four steps or fewer would fail.
/// `SLOWLOG` times commands by the wall clock, so on this two-core
/// machine, with other tests beside this one, a preempted command can pass
/// any fixed bound (a plain `SET` was seen at 21 ms); the baseline is
/// slowed by the same load. A scenario that fails is run again on a new
/// server, up to three times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_undelivered_busts_are_delivered_in_bounded_steps() {
    for (n, limit) in [(200_000usize, 250_000usize), (50_000, 10_000)] {
        let mut attempts = Vec::new();
        for _ in 0..3 {
            let (slow, baseline) = delivered_in_bounded_steps(n, limit).await;
            let long: Vec<_> = slow
                .into_iter()
                .filter(|(_, micros)| *micros * 5 >= baseline)
                .collect();
            if long.is_empty() {
                break;
            }
            attempts.push((long, baseline));
        }
        assert!(
            attempts.len() < 3,
            "{n} names: steps of a fifth of a whole delivery (µs) or more, in every \
             attempt, as (steps, whole delivery): {attempts:?}"
        );
    }
}

/// One run of the scenario above: the commands that took over 10 ms while
/// the busts were delivered, and the microseconds one script takes to
/// write 200,000 versions on the same server.
async fn delivered_in_bounded_steps(n: usize, limit: usize) -> (Vec<(String, i64)>, i64) {
    let server = RedisServer::start();
    let cache = Cache::builder()
        .command_timeout(Duration::from_millis(500))
        .max_pending_invalidations(limit)
        .connect(&server.url())
        .await
        .unwrap();
    let other = server.cache().await;
    let src = AtomicU64::new(0);
    for id in [0, 1, 2, (n - 1) as u64] {
        assert_eq!(bulk_item(&other, &src, id).await, id);
    }
    src.store(1_000_000, SeqCst);
    pending_after_a_pause(&server, &cache, n).await;
    let slow = slow_commands(&server);
    for id in [0, 1, 2, (n - 1) as u64] {
        assert_eq!(
            bulk_item(&other, &src, id).await,
            1_000_000 + id,
            "{n} names: another process served an entry a delivered bust named"
        );
    }
    (slow, whole_delivery(&server))
}

/// The microseconds, by `SLOWLOG`, of one script writing 200,000 versions
/// (`SET name token PX ttl`, as a bust does): a delivery in one step.
fn whole_delivery(server: &RedisServer) -> i64 {
    let _: () = redis::cmd("SLOWLOG")
        .arg("RESET")
        .query(&mut server.raw())
        .unwrap();
    let script = "for i = 1, tonumber(ARGV[1]) do \
                  redis.call('SET', 'baseline:' .. i, 'token-' .. i, 'PX', 60000) end";
    redis::cmd("EVAL")
        .arg(script)
        .arg(0)
        .arg(200_000)
        .exec(&mut server.raw())
        .unwrap();
    slow_commands(server)
        .into_iter()
        .filter(|(name, _)| name == "EVAL")
        .map(|(_, micros)| micros)
        .max()
        .expect("a script writing 200,000 keys takes over 10 ms")
}

/// A cache that waits long enough to read a planted value whole, if it
/// would.
async fn patient(server: &RedisServer) -> Cache {
    Cache::builder()
        .command_timeout(Duration::from_secs(10))
        .connect(&server.url())
        .await
        .unwrap()
}

#[cached(cache = cache, key = "note:<id>", ttl = 60)]
async fn note(cache: &Cache, id: u64) -> String {
    format!("note {id}")
}

/// A value planted under an entry's name, larger than any entry cachette
/// writes (`max_value_bytes`), is cut at the server and never read whole:
/// it is a miss, counted, and the fill replaces it. Here the planted entry
/// is otherwise valid (its header and versions copied from a real one),
/// so reading it whole would serve 64 MiB as a hit.
#[tokio::test]
async fn an_oversized_entry_is_never_read_whole() {
    let server = RedisServer::start();
    let cache = patient(&server).await;
    assert_eq!(note(&cache, 1).await, "note 1");
    let entry = entry_name(&server, "note:1");
    let stored: Vec<u8> = redis::cmd("GET")
        .arg(&entry)
        .query(&mut server.raw())
        .unwrap();
    let value = b"\"note 1\"";
    let mut planted = stored[..stored.len() - value.len()].to_vec();
    planted.push(b'"');
    planted.resize(planted.len() + (64 << 20), b'x');
    planted.push(b'"');
    let _: () = redis::cmd("SET")
        .arg(&entry)
        .arg(planted)
        .query(&mut server.raw())
        .unwrap();
    let read = note(&cache, 1).await;
    assert_eq!(
        read.len(),
        "note 1".len(),
        "a planted 64 MiB value was served"
    );
    assert_eq!(cache.stats().too_large, 1);
    let hits = cache.stats().hits;
    assert_eq!(note(&cache, 1).await, "note 1");
    assert_eq!(cache.stats().hits, hits + 1, "the fill replaced it");
}

#[cached(cache = cache, key = "fn:<id>", ttl = 60, tags = ["fns"], strategy = "lock", unkeyed = [src])]
async fn through_functions(cache: &Cache, src: &AtomicU64, id: u64) -> u64 {
    src.load(SeqCst) + id
}

/// The application need not be allowed to run Lua of its own: with
/// `server_functions(true)`, an administrator loads `SERVER_FUNCTIONS`
/// once, and a user with `+fcall` instead of `+evalsha +script|load` runs
/// hits, fills (replacing a foreign version too), locks and busts.
#[tokio::test]
async fn an_acl_user_without_scripts_runs_everything_through_server_functions() {
    let server = RedisServer::start();
    redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(cachette::SERVER_FUNCTIONS)
        .exec(&mut server.raw())
        .unwrap();
    // The documented set, with `FCALL` in place of running scripts.
    server.add_documented_acl_user(&["-evalsha", "-script|load", "+fcall"]);
    let url = format!("redis://app:s3cret@127.0.0.1:{}", server.port);
    let cache = Cache::builder()
        .server_functions(true)
        .command_timeout(Duration::from_secs(5))
        .connect(&url)
        .await
        .unwrap();
    let src = AtomicU64::new(0);
    assert_eq!(through_functions(&cache, &src, 1).await, 1);
    assert_eq!(through_functions(&cache, &src, 1).await, 1);
    // A version written by another server (as a restored snapshot would
    // leave it): the next fill replaces it through `cachette_v2_adopt`.
    let version = key_version_name(&server, "fn:1");
    let _: () = redis::cmd("SET")
        .arg(&version)
        .arg("ffffffffffffffff0123456789abcdef")
        .query(&mut server.raw())
        .unwrap();
    src.store(10, SeqCst);
    assert_eq!(through_functions(&cache, &src, 1).await, 11);
    cache.invalidate(["fn:1"], ["fns"]).await.unwrap();
    src.store(20, SeqCst);
    assert_eq!(through_functions(&cache, &src, 1).await, 21);
    assert_eq!(through_functions(&cache, &src, 1).await, 21);
    let stats = cache.stats();
    assert_eq!((stats.errors, stats.hits), (0, 2), "{stats:?}");
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

/// Someone with write access (no signing key) writes versions with the
/// server's run part and a fresh replication part before each read. Such a
/// version makes a session ask the server again at most once a second per
/// connection; otherwise it is foreign (a miss), and what a session
/// remembers of them is bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_replication_ids_cannot_make_every_read_ask_the_server() {
    let server = RedisServer::start();
    let cache = server.cache().await;
    let read = || {
        cache.get_or_fetch("user:1", &[], Duration::from_secs(600), async {
            Ok::<_, String>(7u8)
        })
    };
    read().await.unwrap();
    let name = key_version_name(&server, "user:1");
    let mut raw = server.raw();
    let stored: Vec<u8> = redis::cmd("GET").arg(&name).query(&mut raw).unwrap();
    let run8 = String::from_utf8(stored[..8].to_vec()).unwrap();
    let before = info_calls(&server);
    let n = 2000u64;
    for i in 0..n {
        let crafted = format!("{run8}{:08x}{:016x}", 0x1000_0000u64 + i, i + 1);
        redis::cmd("SET")
            .arg(&name)
            .arg(crafted)
            .exec(&mut raw)
            .unwrap();
        read().await.unwrap();
    }
    let infos = info_calls(&server) - before;
    assert!(
        infos <= 64,
        "{infos} INFO commands for {n} reads: unbounded"
    );
}

/// Without a signing key, a logged key hash is keyed with a random key of
/// the process: the unkeyed SHA-256 prefix it was (which recovered an
/// email from ten thousand candidates) never appears.
#[tokio::test]
async fn log_hashes_are_keyed_even_without_a_signing_key() {
    use sha2::Digest;
    let logs = Logs::capture();
    let cache = Cache::memory();
    let key = "user:jane.doe4711@example.com";
    cache
        .get_or_fetch(key, &[] as &[&str], Duration::from_secs(60), async {
            Ok::<_, String>(1u64)
        })
        .await
        .unwrap();
    let text = logs.text();
    let d = sha2::Sha256::digest(key.as_bytes());
    let unkeyed = format!("#{:02x}{:02x}{:02x}{:02x}", d[0], d[1], d[2], d[3]);
    assert!(text.contains("key=#"), "a hash is logged: {text}");
    assert!(
        !text.contains(&unkeyed),
        "the unkeyed hash is logged: {text}"
    );
    assert!(!text.contains("jane"), "{text}");
}

/// A failed bust of 50,000 keys logs a line of bounded size (it was one
/// line of 550 KB): the first names and a count.
#[tokio::test]
async fn a_failed_bust_of_many_names_logs_a_short_line() {
    let logs = Logs::capture();
    let cache = crate::support::impatient(Duration::from_millis(100))
        .connect_lazy("redis://127.0.0.1:1")
        .unwrap();
    let keys: Vec<String> = (0..50_000).map(|i| format!("k:{i}")).collect();
    assert!(cache.invalidate_keys(&keys).await.is_err());
    let text = logs.text();
    assert!(text.contains("invalidation failed"), "{text:.2000}");
    assert!(text.contains("and 49992 more"), "{text:.2000}");
    let longest = text.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 4096, "a log line of {longest} bytes");
}

#[cached(key = "sie-log:<id>", ttl = 60, stale_if_error = "10m", cache = cache, unkeyed = [fail])]
async fn failing_later(
    cache: &Cache,
    fail: &std::sync::atomic::AtomicBool,
    id: u64,
) -> Result<u64, String> {
    if fail.load(SeqCst) {
        Err("down".into())
    } else {
        Ok(id)
    }
}

/// `stale_if_error` warns at most once a period, not once a call (5,000
/// calls logged 5,000 lines), and counts every one in the stats.
#[tokio::test]
async fn stale_if_error_warnings_are_rate_limited() {
    let clock = ManualClock::default();
    let cache = Cache::builder().clock(clock.clone()).memory();
    let fail = std::sync::atomic::AtomicBool::new(false);
    assert_eq!(failing_later(&cache, &fail, 1).await, Ok(1));
    clock.advance(Duration::from_secs(70));
    fail.store(true, SeqCst);
    let logs = Logs::capture();
    for _ in 0..5_000 {
        assert_eq!(failing_later(&cache, &fail, 1).await, Ok(1));
    }
    assert_eq!(cache.stats().stale_on_error, 5_000);
    let lines = logs.text().matches("stale_if_error").count();
    assert!(lines <= 2, "{lines} warning lines for 5,000 calls");
}

#[cached(cache = cache, key = "doc:<id>", ttl = 60, tags = ["docs"], unkeyed = [src])]
async fn doc(cache: &Cache, src: &AtomicU64, id: u64) -> u64 {
    src.load(SeqCst) + id
}

/// Bytes the server has sent and received since it started.
fn net_bytes(server: &RedisServer) -> (u64, u64) {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query(&mut server.raw())
        .unwrap();
    let field = |name: &str| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in INFO stats"))
    };
    (
        field("total_net_output_bytes"),
        field("total_net_input_bytes"),
    )
}

/// Versions have a fixed size, so a value planted under a version's name
/// (here the namespace's epoch, which every lookup reads, and a tag's
/// version) is read only as far as a version can reach, and replaced
/// without being sent back: a 16 MiB epoch costs a lookup a few bytes.
pub(crate) async fn a_planted_version_costs_a_few_bytes(cache: &Cache, server: &RedisServer) {
    let src = AtomicU64::new(0);
    assert_eq!(doc(cache, &src, 1).await, 1);
    let epoch = crate::support::only_name(server, "cachette:n:*");
    let tag = crate::support::tag_version_name(server, "docs");
    for planted in [&epoch, &tag] {
        let _: () = redis::cmd("SETRANGE")
            .arg(planted)
            .arg(16 << 20)
            .arg("x")
            .query(&mut server.raw())
            .unwrap();
    }
    src.store(10, SeqCst);
    let (out, ins) = net_bytes(server);
    assert_eq!(doc(cache, &src, 2).await, 12);
    let (out_after, ins_after) = net_bytes(server);
    let (read, sent) = (out_after - out, ins_after - ins);
    assert!(read < 1 << 20, "a lookup and fill read {read} bytes");
    assert!(sent < 1 << 20, "a lookup and fill sent {sent} bytes");
    for planted in [&epoch, &tag] {
        let len: u64 = redis::cmd("STRLEN")
            .arg(planted)
            .query(&mut server.raw())
            .unwrap();
        assert_eq!(len, 32, "the planted version was replaced");
    }
    let hits = cache.stats().hits;
    assert_eq!(doc(cache, &src, 2).await, 12);
    assert_eq!(cache.stats().hits, hits + 1);
}

#[tokio::test]
async fn a_planted_version_is_never_read_whole() {
    let server = RedisServer::start();
    let cache = patient(&server).await;
    a_planted_version_costs_a_few_bytes(&cache, &server).await;
}

#[cached(cache = cache, key = "slot:<id>", ttl = 60, unkeyed = [src])]
async fn slot_of(cache: &Cache, src: &AtomicU64, id: u64) -> u64 {
    src.fetch_add(1, SeqCst);
    id
}

/// Another Redis type planted under a version, the epoch or an entry is
/// foreign, and replaced: it costs its key a miss, and no other key
/// anything. A hash under one key's version made every lookup of that key
/// fail, which opened the breaker for the whole cache.
#[tokio::test]
async fn another_type_under_a_name_costs_only_its_key() {
    let server = RedisServer::start();
    let cache = crate::support::builder()
        .near_cache(false)
        .connect(&server.url())
        .await
        .unwrap();
    another_type_costs_only_its_key(&cache, &server).await;
}

pub(crate) async fn another_type_costs_only_its_key(cache: &Cache, server: &RedisServer) {
    let (cached, poisoned) = (AtomicU64::new(0), AtomicU64::new(0));
    slot_of(cache, &cached, 1).await;
    slot_of(cache, &poisoned, 2).await;
    let plant = |name: &str, kind: &str| {
        let _: () = redis::cmd("DEL")
            .arg(name)
            .query(&mut server.raw())
            .unwrap();
        let cmd = match kind {
            "hash" => redis::cmd("HSET").arg(name).arg("f").arg("v").clone(),
            _ => redis::cmd("RPUSH").arg(name).arg("x").clone(),
        };
        let _: () = cmd.query(&mut server.raw()).unwrap();
    };
    let type_of = |name: &str| -> String {
        redis::cmd("TYPE")
            .arg(name)
            .query(&mut server.raw())
            .unwrap()
    };
    let version = key_version_name(server, "slot:2");
    let entry = entry_name(server, "slot:2");
    let epoch = crate::support::only_name(server, "cachette:n:*");
    for (name, kind) in [(&version, "hash"), (&entry, "hash"), (&epoch, "list")] {
        plant(name, kind);
        let ran = poisoned.load(SeqCst);
        for _ in 0..10 {
            assert_eq!(slot_of(cache, &poisoned, 2).await, 2);
        }
        assert_eq!(
            poisoned.load(SeqCst) - ran,
            1,
            "{kind} under {name}: one miss, then hits"
        );
        assert_eq!(type_of(name), "string", "{kind} under {name} was replaced");
        let ran = cached.load(SeqCst);
        for _ in 0..10 {
            assert_eq!(slot_of(cache, &cached, 1).await, 1);
        }
        // The epoch is every key's: its replacement costs each key one miss.
        let misses = u64::from(name == &epoch);
        assert_eq!(
            cached.load(SeqCst) - ran,
            misses,
            "{kind} under {name}: another key"
        );
    }
    assert_eq!(cache.stats().errors, 0, "{:?}", cache.stats());
}
