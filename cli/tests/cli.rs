//! The `cachette` binary against real servers: a single Redis, a Redis
//! Cluster, and an ACL user with too few rights. The human output is
//! compared with snapshots under `tests/snapshots/` (numbers and ids
//! normalized); `CACHETTE_BLESS=1` rewrites them after a deliberate change.

#[allow(dead_code)]
#[path = "../../tests/suite/support/cluster.rs"]
mod cluster;
#[allow(dead_code)]
#[path = "../../tests/suite/support/server.rs"]
mod server;

use std::process::Command;
use std::time::Duration;

use cachette::{cached, Cache};

use crate::cluster::RedisCluster;
use crate::server::RedisServer;

/// What the suite's `server.rs` builds its caches with.
fn builder() -> cachette::CacheBuilder {
    Cache::builder().command_timeout(Duration::from_secs(5))
}

#[cached(key = "user:<id>", ttl = 300, tags = ["org:<org>"], cache = cache)]
async fn user(cache: &Cache, id: u64, org: &str) -> String {
    format!("user {id} of {org}")
}

#[cached(key = "user:<id>", ttl = 300, strategy = "swr", cache = cache)]
async fn user_card(cache: &Cache, id: u64) -> String {
    format!("card {id}")
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl From<std::process::Output> for Run {
    fn from(out: std::process::Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

fn cachette(url: &str, args: &[&str]) -> Run {
    Command::new(env!("CARGO_BIN_EXE_cachette"))
        .arg("--url")
        .arg(url)
        .args(args)
        .env_remove("REDIS_URL")
        .output()
        .expect("the cachette binary runs")
        .into()
}

/// Digits become `#` and hex ids `<id>`, so that snapshots keep the
/// output's shape and words, not what changes between runs.
fn normalize(text: &str) -> String {
    let mut out = String::new();
    for word in text.split_inclusive([' ', '\n', '(', ')', ',', '"']) {
        let core = word.trim_end_matches([' ', '\n', '(', ')', ',', '"']);
        let tail = &word[core.len()..];
        if core.len() == 16 && core.bytes().all(|b| b.is_ascii_hexdigit()) {
            out.push_str("<id>");
        } else {
            let mut digits = false;
            for c in core.chars() {
                if c.is_ascii_digit() {
                    if !digits {
                        out.push('#');
                    }
                    digits = true;
                } else {
                    digits = false;
                    out.push(c);
                }
            }
        }
        out.push_str(tail);
    }
    out
}

fn snapshot(name: &str, text: &str) {
    let text = normalize(text);
    let path = format!("{}/tests/snapshots/{name}.txt", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("CACHETTE_BLESS").is_some() {
        std::fs::create_dir_all(format!("{}/tests/snapshots", env!("CARGO_MANIFEST_DIR"))).unwrap();
        std::fs::write(&path, &text).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{path} is missing: run with CACHETTE_BLESS=1"));
    assert_eq!(
        text, expected,
        "the output of {name} changed; rerun with CACHETTE_BLESS=1 and review"
    );
}

/// `inspect` finds every function's entry under a key, says it would be
/// served, and after a bust by the tool says why it would not.
#[tokio::test]
async fn inspect_and_bust_on_a_single_server() {
    let server = RedisServer::start();
    let url = server.url();
    let cache = server.cache().await;
    user(&cache, 1, "acme").await;
    user_card(&cache, 1).await;

    let run = cachette(&url, &["inspect", "user:1", "--tag", "org:acme"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.matches("\nentry of function").count(),
        2,
        "{}",
        run.stdout
    );
    assert_eq!(
        run.stdout.matches("served: yes").count(),
        2,
        "{}",
        run.stdout
    );
    // The swr entry records no tag: its check is against the key alone.
    snapshot("inspect_fresh", &run.stdout);

    let templated = cachette(
        &url,
        &["inspect", "--template", "user:<id>", "--arg", "id=1"],
    );
    assert_eq!(templated.code, 0, "{}", templated.stderr);
    assert!(
        templated.stdout.starts_with("key \"user:1\""),
        "{}",
        templated.stdout
    );

    let bust = cachette(&url, &["bust", "--tag", "org:acme"]);
    assert_eq!(bust.code, 0, "{}{}", bust.stdout, bust.stderr);
    assert!(
        bust.stdout.starts_with("invalidated 0 key(s) and 1 tag(s)"),
        "{}",
        bust.stdout
    );
    let after = cachette(&url, &["inspect", "user:1", "--tag", "org:acme"]);
    assert!(
        after
            .stdout
            .contains("served: no; tag \"org:acme\" changed since the fill: invalidated"),
        "{}",
        after.stdout
    );
    snapshot("inspect_after_tag_bust", &after.stdout);
    // The library agrees: the tagged entry misses, the other hits.
    let misses = cache.stats().misses;
    user(&cache, 1, "acme").await;
    user_card(&cache, 1).await;
    assert_eq!(cache.stats().misses, misses + 1);

    let json = cachette(&url, &["--json", "inspect", "user:1"]);
    let parsed: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(parsed["entries"].as_array().unwrap().len(), 2);
    assert_eq!(parsed["key_version"], "current");
}

/// `stats` counts the namespace's names by kind.
#[tokio::test]
async fn stats_counts_names_by_kind() {
    let server = RedisServer::start();
    let url = server.url();
    let cache = server.cache().await;
    for id in 0..5 {
        user(&cache, id, "acme").await;
    }
    let run = cachette(&url, &["stats"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("  entries: 5\n"), "{}", run.stdout);
    assert!(run.stdout.contains("  key versions: 5\n"), "{}", run.stdout);
    assert!(run.stdout.contains("  tag versions: 1\n"), "{}", run.stdout);
    snapshot("stats", &run.stdout);
    let json = cachette(&url, &["--json", "stats"]);
    let parsed: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(parsed["entries"], 5);
    assert!(parsed["memory_bytes"].as_u64().unwrap() > 0);
}

/// `cachette` with its address space limited to `kib`: a command that
/// holds more than that fails to allocate, and exits non-zero.
fn cachette_within(kib: u64, url: &str, args: &[&str]) -> Run {
    Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_cachette"))
        .arg("--url")
        .arg(url)
        .args(args)
        .env_remove("REDIS_URL")
        .output()
        .expect("sh runs")
        .into()
}

/// `stats` and `inspect` hold one page of names at a time: 50,000 planted
/// names of 4 KB (200 MB) are counted within 128 MiB of address space.
/// `stats` held every name before.
#[tokio::test]
async fn stats_and_inspect_hold_one_page_of_names() {
    let server = RedisServer::start();
    let url = server.url();
    let cache = server.cache().await;
    user(&cache, 1, "acme").await;
    let mut raw = server.raw();
    let filler = "x".repeat(4096);
    for chunk in 0..50 {
        let mut pipe = redis::pipe();
        for i in 0..1000 {
            pipe.cmd("SET")
                .arg(format!("cachette:e:f:{{user:1{chunk}.{i}{filler}}}"))
                .arg("")
                .ignore();
        }
        pipe.exec(&mut raw).unwrap();
    }
    let limit = 128 << 10;
    let run = cachette_within(limit, &url, &["stats"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("  entries: 50001\n"), "{}", run.stdout);
    let run = cachette_within(limit, &url, &["inspect", "user:1"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
}

/// `doctor` passes a plain server (with a warning: no maxmemory), fails an
/// ACL user without the documented commands and a `noeviction` limit, and
/// exits non-zero then; `bust` exits non-zero when it cannot confirm.
#[tokio::test]
async fn doctor_and_bust_with_too_few_rights() {
    let server = RedisServer::start();
    let url = server.url();
    let fine = cachette(&url, &["doctor", "--timeout-ms", "1000"]);
    assert_eq!(fine.code, 0, "{}", fine.stdout);
    snapshot("doctor", &fine.stdout);

    let mut raw = server.raw();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("100mb")
        .query(&mut raw)
        .unwrap();
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("weak")
        .arg("on")
        .arg(">secret")
        .arg("~cachette:*")
        .arg("-@all")
        .arg("+get")
        .arg("+set")
        .arg("+info")
        .arg("+ping")
        .arg("+acl|whoami")
        .query(&mut raw)
        .unwrap();
    let weak = url.replace("redis://", "redis://weak:secret@");
    let run = cachette(&weak, &["doctor"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("[FAIL] permissions: user \"weak\" lacks"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("+evalsha"), "{}", run.stdout);
    let admin = cachette(&url, &["doctor"]);
    assert!(
        admin.stdout.contains("[FAIL] memory: maxmemory"),
        "{}",
        admin.stdout
    );
    assert_eq!(admin.code, 1);

    let bust = cachette(&weak, &["bust", "--key", "user:1", "--timeout-ms", "500"]);
    assert_ne!(bust.code, 0, "{}", bust.stdout);
    let gone = cachette("redis://127.0.0.1:1", &["bust", "--key", "user:1"]);
    assert_eq!(gone.code, 2, "{}", gone.stderr);
}

/// On a Redis Cluster: `inspect` reads the master of the key's slot,
/// `bust` goes through the cluster backend, `stats` and `doctor` cover
/// every master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_on_a_cluster() {
    let cluster = RedisCluster::start();
    let url = cluster.urls()[0].clone();
    let cache = cluster.cache().await;
    for id in 0..20 {
        user(&cache, id, "acme").await;
    }
    let run = cachette(&url, &["inspect", "user:7", "--tag", "org:acme"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("served: yes"), "{}", run.stdout);
    let bust = cachette(&url, &["bust", "--key", "user:7"]);
    assert_eq!(bust.code, 0, "{}{}", bust.stdout, bust.stderr);
    let after = cachette(&url, &["inspect", "user:7", "--tag", "org:acme"]);
    assert!(
        after
            .stdout
            .contains("served: no; the key's version changed since the fill"),
        "{}",
        after.stdout
    );
    let stats = cachette(&url, &["--json", "stats"]);
    let parsed: serde_json::Value = serde_json::from_str(&stats.stdout).unwrap();
    assert_eq!(parsed["entries"], 20, "{}", stats.stdout);
    let doctor = cachette(&url, &["doctor"]);
    assert!(
        doctor.stdout.starts_with("Redis Cluster (3 masters)"),
        "{}",
        doctor.stdout
    );
}

/// `inspect` lists only the key's own entries, though its pattern matches
/// other keys' (`x:{1` under `1`); `stats` counts only its namespace, not
/// one that shares its prefix (`app:tenant` under `app`); a signed entry
/// is not reported as invalidated.
#[tokio::test]
async fn hostile_keys_namespaces_and_signed_entries() {
    let server = RedisServer::start();
    let url = server.url();
    let cache = server.cache().await;
    let ttl = Duration::from_secs(60);
    for key in ["1", "x:{1"] {
        cache
            .get_or_fetch(key, &[] as &[&str], ttl, async { Ok::<_, String>(1u64) })
            .await
            .unwrap();
    }
    let run = cachette(&url, &["--json", "inspect", "1"]);
    let parsed: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        parsed["entries"].as_array().unwrap().len(),
        1,
        "{}",
        run.stdout
    );

    let app = builder().namespace("app").connect(&url).await.unwrap();
    let tenant = builder()
        .namespace("app:tenant")
        .connect(&url)
        .await
        .unwrap();
    user(&app, 1, "acme").await;
    for id in 0..10 {
        user(&tenant, id, "acme").await;
    }
    let stats = cachette(&url, &["--json", "--namespace", "app", "stats"]);
    let parsed: serde_json::Value = serde_json::from_str(&stats.stdout).unwrap();
    assert_eq!(parsed["entries"], 1, "{}", stats.stdout);
    assert_eq!(parsed["tag_versions"], 1, "{}", stats.stdout);

    let signed = builder()
        .namespace("signed")
        .signing_key([7u8; 32])
        .unwrap()
        .connect(&url)
        .await
        .unwrap();
    user(&signed, 1, "acme").await;
    user(&signed, 1, "acme").await;
    assert_eq!(signed.stats().hits, 1);
    let run = cachette(
        &url,
        &[
            "--namespace",
            "signed",
            "inspect",
            "user:1",
            "--tag",
            "org:acme",
        ],
    );
    assert!(
        !run.stdout.contains("the key's version changed"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("signs its entries"), "{}", run.stdout);
}

/// No URL is ever printed with its password, in text or JSON, whatever
/// fails: an unparseable URL, a TLS URL, an unreachable server (every one
/// of these echoed the password before).
#[test]
fn no_url_is_printed_with_its_password() {
    let urls = [
        "redis://app:hunter2@127.0.0.1:1",
        "rediss://app:hunter2@127.0.0.1:1",
        "redis://app:hunter2@127.0.0.1:notaport",
        "redis://app:hunter2@[::1",
        "unknown://app:hunter2@127.0.0.1:1",
        "redis+unix:///tmp/none.sock?pass=hunter2",
    ];
    for url in urls {
        for args in [
            &["doctor"][..],
            &["--json", "doctor"][..],
            &["stats"][..],
            &["inspect", "user:1"][..],
            &["bust", "--key", "user:1"][..],
        ] {
            let run = cachette(url, args);
            assert_ne!(run.code, 0, "{url} {args:?}: {}", run.stdout);
            let all = format!("{}{}", run.stdout, run.stderr);
            assert!(
                !all.contains("hunter2"),
                "{url} {args:?} printed the password: {all}"
            );
        }
    }
}

/// Entries are untrusted input to `inspect`: a header that claims no
/// version, or a fresh-until that overflows, is reported as such (both
/// panicked), and no entry or version is read whole (`GET` is never sent;
/// a planted 64 MiB entry is read in its header's range).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_reads_planted_entries_safely_and_in_bounded_ranges() {
    let server = RedisServer::start();
    let url = server.url();
    let cache = server.cache().await;
    user(&cache, 1, "acme").await;
    user(&cache, 2, "acme").await;
    let mut raw = server.raw();
    let names: Vec<String> = redis::cmd("KEYS")
        .arg("cachette:*user:*")
        .query(&mut raw)
        .unwrap();
    let entries: Vec<&String> = names.iter().filter(|n| n.contains(":e:")).collect();
    assert_eq!(entries.len(), 2, "{names:?}");
    let one = entries.iter().find(|n| n.contains("{user:1}")).unwrap();
    let two = entries.iter().find(|n| n.contains("{user:2}")).unwrap();
    // user:1: no versions, and a fresh-until at the top of the range.
    let _: () = redis::cmd("SETRANGE")
        .arg(one.as_str())
        .arg(2)
        .arg(&[0u8][..])
        .query(&mut raw)
        .unwrap();
    let _: () = redis::cmd("SETRANGE")
        .arg(one.as_str())
        .arg(3)
        .arg(&[0x80u8, 0, 0, 0, 0, 0, 0, 0][..])
        .query(&mut raw)
        .unwrap();
    // user:2: 64 MiB.
    let _: () = redis::cmd("SETRANGE")
        .arg(two.as_str())
        .arg(64 << 20)
        .arg("x")
        .query(&mut raw)
        .unwrap();
    server.reset_stats();
    let run = cachette(&url, &["inspect", "user:1"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("malformed"), "{}", run.stdout);
    let run = cachette(&url, &["--json", "inspect", "user:2"]);
    assert!(
        run.stdout.contains("67108865"),
        "the planted size is reported: {}",
        run.stdout
    );
    let gets = server
        .command_calls()
        .into_iter()
        .filter(|(c, _)| c == "get")
        .count();
    assert_eq!(
        gets,
        0,
        "a name was read whole: {:?}",
        server.command_calls()
    );
}

/// `doctor` judges permissions on the namespace's own names: the guide's
/// least-privilege user (`~cachette:*`) passes (it failed: names were
/// sampled as the literal `{ns}:k:{x}`), `+fcall` stands in for `+evalsha
/// +script|load`, and a user that reaches keys outside the namespace is
/// warned about (it passed as `[ok]`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_judges_the_documented_acl_on_the_namespace() {
    let server = RedisServer::start();
    // Doctor asks `ACL WHOAMI` and `ACL DRYRUN` as the user.
    server.add_documented_acl_user(&["+acl|whoami", "+acl|dryrun"]);
    let app = format!("redis://app:s3cret@127.0.0.1:{}", server.port);
    let run = cachette(&app, &["doctor"]);
    assert!(
        run.stdout.contains("[ok  ] permissions"),
        "the documented ACL: {}",
        run.stdout
    );
    let mut raw = server.raw();
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("fns")
        .arg("on")
        .arg(">s3cret")
        .arg("~cachette:*")
        .arg("-@all")
        .arg(&[
            "+getrange",
            "+set",
            "+get",
            "+del",
            "+fcall",
            "+info",
            "+wait",
            "+ping",
            "+client|tracking",
            "+acl|whoami",
            "+acl|dryrun",
        ])
        .query(&mut raw)
        .unwrap();
    let fns = format!("redis://fns:s3cret@127.0.0.1:{}", server.port);
    let run = cachette(&fns, &["doctor"]);
    assert!(
        run.stdout.contains("[ok  ] permissions"),
        "+fcall: {}",
        run.stdout
    );
    // The functions: an older library is told apart from this release's.
    let _: () = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("#!lua name=cachette_v1\nredis.register_function('cachette_v1_bust', function() return 0 end)")
        .query(&mut raw)
        .unwrap();
    let run = cachette(&server.url(), &["doctor"]);
    assert!(
        run.stdout
            .contains("[warn] functions: an older cachette library"),
        "{}",
        run.stdout
    );
    let _: () = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(cachette::SERVER_FUNCTIONS)
        .query(&mut raw)
        .unwrap();
    let run = cachette(&server.url(), &["doctor"]);
    assert!(
        run.stdout.contains("[ok  ] functions: cachette_v2 loaded"),
        "{}",
        run.stdout
    );
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("app")
        .arg("~*")
        .query(&mut raw)
        .unwrap();
    let run = cachette(&app, &["doctor"]);
    assert!(
        run.stdout.contains("reaches keys outside the namespace"),
        "~*: {}",
        run.stdout
    );
}

/// `doctor` shows the namespace's lease, and says when busts wait the
/// longest lease because it was just made again (or has a lifetime
/// cachette never gives it); `bust` assumes lease readers, so it waits
/// the longest lease when the lease is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_shows_the_lease_and_bust_assumes_lease_readers() {
    let server = RedisServer::start();
    let url = server.url();
    let started = std::time::Instant::now();
    let bust = cachette(&url, &["bust", "--tag", "org:1"]);
    assert_eq!(bust.code, 0, "{}", bust.stdout);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1_050),
        "a bust with the lease missing waited {:?}",
        started.elapsed()
    );
    let lease = cachette::admin::lease_name("cachette");
    let mut raw = server.raw();
    let month: u64 = 30 * 24 * 3600 * 1000;
    let _: () = redis::cmd("SET")
        .arg(&lease)
        .arg(2000)
        .query(&mut raw)
        .unwrap();
    let _: () = redis::cmd("PEXPIRE")
        .arg(&lease)
        .arg(month)
        .query(&mut raw)
        .unwrap();
    let young = cachette(&url, &["doctor"]);
    assert!(
        young.stdout.contains("[warn] lease: 2 ms") && young.stdout.contains("made again"),
        "{}",
        young.stdout
    );
    let _: () = redis::cmd("PEXPIRE")
        .arg(&lease)
        .arg(month - 60_000)
        .query(&mut raw)
        .unwrap();
    let settled = cachette(&url, &["doctor"]);
    assert!(
        settled.stdout.contains("[ok  ] lease: 2 ms"),
        "{}",
        settled.stdout
    );
}

/// `doctor` says when the lease holds something the library does not take
/// for one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_warns_of_a_lease_it_cannot_read() {
    let server = RedisServer::start();
    let url = server.url();
    let lease = cachette::admin::lease_name("cachette");
    let mut raw = server.raw();
    for planted in ["12345678", "0", "five"] {
        let _: () = redis::cmd("SET")
            .arg(&lease)
            .arg(planted)
            .query(&mut raw)
            .unwrap();
        let run = cachette(&url, &["doctor"]);
        assert!(
            run.stdout.contains("[warn] lease") && run.stdout.contains("holds no lease"),
            "{planted}: {}",
            run.stdout
        );
    }
}
