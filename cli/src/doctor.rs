//! `cachette doctor`: checks a server against what the library needs, and
//! says what to change.

use crate::failure::Failure;
use std::fmt::Write;
use std::time::{Duration, Instant};

use redis::Connection;
use serde_json::json;

use crate::server::Server;
use crate::Report;

#[derive(clap::Args)]
pub struct Args {
    /// The command timeout the application runs with, in milliseconds
    /// (the library's default is 50).
    #[arg(long, default_value_t = 50)]
    timeout_ms: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Fail,
}

struct Check {
    node: String,
    name: &'static str,
    level: Level,
    found: String,
    advice: String,
}

/// The commands the documented ACL grants (`guide::redis`), each with a
/// sample of arguments for `ACL DRYRUN`.
const NEEDED: [(&str, &[&str]); 11] = [
    ("getrange", &["{ns}:e:f:{x}", "0", "1"]),
    ("set", &["{ns}:k:{x}", "v"]),
    ("get", &["{ns}:k:{x}"]),
    ("del", &["{ns}:k:{x}"]),
    (
        "evalsha",
        &["0000000000000000000000000000000000000000", "0"],
    ),
    ("script|load", &["return 1"]),
    ("info", &["server"]),
    ("wait", &["0", "0"]),
    ("ping", &[]),
    ("client|tracking", &["on"]),
    ("exists", &["{ns}:k:{x}"]),
];

fn info(conn: &mut Connection, section: &str) -> Result<String, Failure> {
    redis::cmd("INFO")
        .arg(section)
        .query(conn)
        .map_err(Failure::during(format!("INFO {section}")))
}

fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

fn config(conn: &mut Connection, name: &str) -> Option<String> {
    let reply: Vec<String> = redis::cmd("CONFIG").arg("GET").arg(name).query(conn).ok()?;
    reply.get(1).cloned()
}

fn check_node(
    node: &str,
    conn: &mut Connection,
    timeout: Duration,
    cluster: bool,
    ns: &str,
) -> Vec<Check> {
    let mut out = Vec::new();
    let mut add = |name, level, found: String, advice: &str| {
        out.push(Check {
            node: node.to_string(),
            name,
            level,
            found,
            advice: advice.to_string(),
        })
    };
    let server = info(conn, "server").unwrap_or_default();
    let version = field(&server, "redis_version")
        .unwrap_or("unknown")
        .to_string();
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    match major {
        7.. => add("version", Level::Ok, format!("Redis {version}"), ""),
        6 => add(
            "version",
            Level::Warn,
            format!("Redis {version}"),
            "works; Redis 7 adds ACL DRYRUN (checked below) and functions (+fcall)",
        ),
        _ => add(
            "version",
            Level::Fail,
            format!("Redis {version}"),
            "cachette needs Redis 6 or later (RESP3, CLIENT TRACKING, SET ... GET)",
        ),
    }
    if field(&server, "run_id").is_none() {
        add(
            "run id",
            Level::Fail,
            "INFO server has no run_id".into(),
            "cachette ties versions to the server's run id; this server (a proxy?) hides it",
        );
    }

    // RESP3 and tracking, on a connection of their own.
    let tracking = (|| -> Result<(), Failure> {
        let _: redis::Value = redis::cmd("HELLO")
            .arg(3)
            .query(conn)
            .map_err(Failure::of)?;
        let on: redis::RedisResult<redis::Value> =
            redis::cmd("CLIENT").arg("TRACKING").arg("ON").query(conn);
        let _: redis::RedisResult<redis::Value> =
            redis::cmd("CLIENT").arg("TRACKING").arg("OFF").query(conn);
        let _: redis::RedisResult<redis::Value> = redis::cmd("HELLO").arg(2).query(conn);
        on.map(|_| ()).map_err(Failure::of)
    })();
    match tracking {
        Ok(()) => add("near-cache", Level::Ok, "RESP3 and CLIENT TRACKING".into(), ""),
        Err(e) => add(
            "near-cache",
            Level::Warn,
            format!("refused: {e}"),
            "the near-cache turns itself off: hits read Redis; grant +ping +client|tracking, or use Redis 6+",
        ),
    }

    // Permissions of the connected user.
    let user: Option<String> = redis::cmd("ACL").arg("WHOAMI").query(conn).ok();
    match user {
        None => add(
            "permissions",
            Level::Warn,
            "ACL WHOAMI refused".into(),
            "could not check; grant the commands listed in guide::redis",
        ),
        Some(user) => {
            let mut refused = Vec::new();
            let mut unknown = false;
            // `Some(true)`: allowed; `Some(false)`: refused; `None`: no
            // `ACL DRYRUN` here. Sample names are the namespace's own, as
            // the library names them, so that `~<ns>:*` is judged as it is.
            let mut allowed = |command: &str, args: &[&str]| -> Option<bool> {
                let mut dry = redis::cmd("ACL");
                dry.arg("DRYRUN").arg(&user);
                for part in command.split('|') {
                    dry.arg(part);
                }
                for a in args {
                    dry.arg(a.replace("{ns}", ns));
                }
                match dry.query::<String>(conn) {
                    Ok(reply) => Some(reply == "OK"),
                    Err(e)
                        if e.to_string().contains("unknown subcommand")
                            || e.to_string().contains("DRYRUN") =>
                    {
                        None
                    }
                    Err(_) => Some(false),
                }
            };
            for (command, args) in NEEDED {
                if command == "exists" && !cluster {
                    continue;
                }
                match allowed(command, args) {
                    Some(true) => {}
                    Some(false) => refused.push(command),
                    None => {
                        unknown = true;
                        break;
                    }
                }
            }
            // Server functions (`server_functions(true)`) need `+fcall` in
            // place of `+evalsha +script|load`.
            if !unknown
                && refused
                    .iter()
                    .any(|c| matches!(*c, "evalsha" | "script|load"))
                && allowed("fcall", &["cachette_bust", "0"]) == Some(true)
            {
                refused.retain(|c| !matches!(*c, "evalsha" | "script|load"));
            }
            // A name no namespace's names start with (theirs go on with
            // `:`), unless the namespace is that very word.
            let probe = if ns == "cachette-doctor-outside" {
                "elsewhere:{x}"
            } else {
                "cachette-doctor-outside:{x}"
            };
            let outside = !unknown && allowed("get", &[probe]) == Some(true);
            if unknown {
                add(
                    "permissions",
                    Level::Warn,
                    format!("user {user:?}; ACL DRYRUN unavailable"),
                    "could not check (Redis 7 needed for ACL DRYRUN); see guide::redis",
                );
            } else if refused.is_empty() && outside {
                add(
                    "permissions",
                    Level::Warn,
                    format!("user {user:?} has every command cachette uses, and reaches keys outside the namespace {ns:?}"),
                    "restrict its keys to the namespace (`resetkeys ~<namespace>:*`, guide::redis, \"Permissions\")",
                );
            } else if refused.is_empty() {
                add(
                    "permissions",
                    Level::Ok,
                    format!("user {user:?} has every command cachette uses"),
                    "",
                );
            } else {
                add(
                    "permissions",
                    Level::Fail,
                    format!("user {user:?} lacks {}", refused.iter().map(|c| format!("+{c}")).collect::<Vec<_>>().join(" ")),
                    "grant them (guide::redis, \"Permissions\"): without them calls read through and busts fail",
                );
            }
        }
    }

    // Server functions, for `server_functions(true)`: this release's
    // library, or an older one that this release does not call.
    let library = cachette::SERVER_FUNCTIONS
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("#!lua name="))
        .unwrap_or_default();
    // Libraries matching `pattern` (a glob), if the user may list them.
    let mut listed = |pattern: &str| -> Option<bool> {
        let found: redis::Value = redis::cmd("FUNCTION")
            .arg("LIST")
            .arg("LIBRARYNAME")
            .arg(pattern)
            .query(conn)
            .ok()?;
        Some(matches!(found, redis::Value::Array(a) if !a.is_empty()))
    };
    if let (Some(this), Some(any)) = (listed(library), listed("cachette_v*")) {
        if this {
            add("functions", Level::Ok, format!("{library} loaded"), "");
        } else if any {
            add(
                "functions",
                Level::Warn,
                format!("an older cachette library is loaded, not {library}"),
                "with server_functions(true), load cachette::SERVER_FUNCTIONS of this release (FUNCTION LOAD REPLACE); the older one can stay for older processes",
            );
        }
    }

    // Memory.
    let maxmemory = config(conn, "maxmemory");
    let policy = config(conn, "maxmemory-policy");
    match (maxmemory.as_deref(), policy.as_deref()) {
        (None, _) | (_, None) => add(
            "memory",
            Level::Warn,
            "CONFIG GET refused".into(),
            "could not check maxmemory; set a limit with an allkeys-* or volatile-* policy",
        ),
        (Some("0"), Some(p)) => add(
            "memory",
            Level::Warn,
            format!("no maxmemory (policy {p})"),
            "set maxmemory with allkeys-lru or volatile-lru: every name cachette writes has a TTL, so eviction only costs misses",
        ),
        (Some(m), Some("noeviction")) => add(
            "memory",
            Level::Fail,
            format!("maxmemory {m}, policy noeviction"),
            "when memory is full, fills and busts fail (busts are then kept and retried, and reads go through): use allkeys-lru or volatile-lru",
        ),
        (Some(m), Some(p)) => add("memory", Level::Ok, format!("maxmemory {m}, policy {p}"), ""),
    }

    // The namespace's lease (`near_cache_lease`): what every bust waits.
    let lease = cachette::admin::lease_name(ns);
    // At most 32 bytes of it (a lease is at most 7 digits).
    let read: redis::RedisResult<String> = redis::cmd("GETRANGE")
        .arg(&lease)
        .arg(0)
        .arg(31)
        .query(conn);
    // What the library takes for a lease: 1 to 7 digits, not zero.
    let parsed = |v: &str| {
        let digits = (1..=7).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit());
        v.parse::<u64>().ok().filter(|us| digits && *us > 0)
    };
    let leases: redis::RedisResult<Vec<u64>> = read.map(|v| parsed(&v).into_iter().collect());
    let planted = matches!(&leases, Ok(l) if l.is_empty())
        && redis::cmd("EXISTS")
            .arg(&lease)
            .query::<i64>(conn)
            .unwrap_or(0)
            == 1;
    match leases {
        Ok(_) if planted => add(
            "lease",
            Level::Warn,
            format!("{lease:?} holds no lease cachette writes (1 to 7 digits of microseconds): readers serve nothing under it, and busts of processes that know leases are in use wait the longest lease (about 1.05 s)"),
            "delete it, or set the lease (guide::redis, \"Lease reads\")",
        ),
        Ok(leases) if leases.is_empty() => add(
            "lease",
            Level::Ok,
            "none: near-cache hits keep their ordering round trip".into(),
            "",
        ),
        Ok(leases) => {
            let largest = leases.iter().max().copied().unwrap_or_default();
            // Its lifetime says how long ago it was made (30 days, never
            // renewed): young, busts wait the longest lease.
            let month: i64 = 30 * 24 * 3600 * 1000;
            let left: i64 = redis::cmd("PTTL").arg(&lease).query(conn).unwrap_or(-1);
            let young = left < 0 || left > month || month - left < 2_200;
            let text = format!(
                "{} ms: every bust of the namespace waits that long after Redis acknowledges it",
                largest as f64 / 1000.0
            );
            if young {
                add(
                    "lease",
                    Level::Warn,
                    format!("{text}; made again moments ago, or given a lifetime cachette never gives it (PTTL {left} ms), so busts wait the longest lease (about 1.05 s) for now"),
                    "a reader's next round trip puts its 30 days back; it settles 2.2 s after that",
                )
            } else {
                add("lease", Level::Ok, text, "")
            }
        }
        // Another node holds it (a cluster), or it cannot be read.
        Err(e) if e.code() == Some("MOVED") => {}
        Err(e) => add(
            "lease",
            Level::Warn,
            format!("could not read {lease:?}: {}", e.code().unwrap_or("error")),
            "lease reads need +getrange +pttl, and +set +pexpire for readers (guide::redis, \"Lease reads\")",
        ),
    }

    // Persistence.
    let persistence = info(conn, "persistence").unwrap_or_default();
    let aof = field(&persistence, "aof_enabled") == Some("1");
    let rdb = config(conn, "save").map(|s| !s.is_empty());
    let found = format!(
        "AOF {}, snapshots {}",
        if aof { "on" } else { "off" },
        match rdb {
            Some(true) => "on",
            Some(false) => "off",
            None => "unknown",
        }
    );
    add(
        "persistence",
        Level::Ok,
        found,
        "after a restart, entries from before it are never served (versions are tied to the server's run id): a restart costs a cold cache, not stale reads",
    );

    // Replicas.
    let replication = info(conn, "replication").unwrap_or_default();
    let replicas: usize = field(&replication, "connected_slaves")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if replicas == 0 {
        add("replicas", Level::Ok, "none".into(), "");
    } else {
        let offset: i64 = field(&replication, "master_repl_offset")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let lags: Vec<i64> = (0..replicas)
            .filter_map(|i| field(&replication, &format!("slave{i}")))
            .filter_map(|l| l.split(',').find_map(|p| p.strip_prefix("offset=")))
            .filter_map(|o| o.parse::<i64>().ok())
            .map(|o| offset - o)
            .collect();
        add(
            "replicas",
            Level::Ok,
            format!("{replicas}, lag {lags:?} bytes"),
            "busts wait for a replica's acknowledgement (ReplicaAcks::Auto), so a failover cannot lose one",
        );
    }

    // Round trip against the command timeout.
    let mut times: Vec<Duration> = (0..20)
        .filter_map(|_| {
            let t = Instant::now();
            redis::cmd("PING")
                .query::<String>(conn)
                .ok()
                .map(|_| t.elapsed())
        })
        .collect();
    times.sort();
    match times.get(times.len() * 9 / 10) {
        None => add(
            "round trip",
            Level::Fail,
            "PING refused".into(),
            "grant +ping",
        ),
        Some(p90) => {
            let found = format!(
                "p90 {:.2} ms against a {} ms timeout",
                p90.as_secs_f64() * 1000.0,
                timeout.as_millis()
            );
            if *p90 * 4 > timeout {
                add(
                    "round trip",
                    Level::Warn,
                    found,
                    "commands near the timeout count as failures and open the breaker: raise command_timeout or move closer",
                );
            } else {
                add("round trip", Level::Ok, found, "");
            }
        }
    }
    out
}

pub fn run(url: &str, ns: &str, args: &Args) -> Result<Report, Failure> {
    let mut server = Server::connect(url)?;
    let cluster = server.cluster;
    let timeout = Duration::from_millis(args.timeout_ms);
    let mut checks = Vec::new();
    for node in &mut server.nodes {
        checks.extend(check_node(&node.addr, &mut node.conn, timeout, cluster, ns));
    }
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{} ({} master{})",
        if cluster { "Redis Cluster" } else { "Redis" },
        server.nodes.len(),
        if server.nodes.len() == 1 { "" } else { "s" }
    );
    let mut node = "";
    for c in &checks {
        if server.nodes.len() > 1 && c.node != node {
            node = &c.node;
            let _ = writeln!(text, "{node}");
        }
        let mark = match c.level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        let _ = writeln!(text, "  [{mark}] {}: {}", c.name, c.found);
        // Advice for what is not fine, and what a restart means anyway.
        let shown = c.level != Level::Ok || c.name == "persistence";
        if shown && !c.advice.is_empty() {
            let _ = writeln!(text, "         {}", c.advice);
        }
    }
    let failed = checks.iter().filter(|c| c.level == Level::Fail).count();
    let warned = checks.iter().filter(|c| c.level == Level::Warn).count();
    let _ = writeln!(text, "{failed} failed, {warned} warning(s)");
    let json = json!({
        "cluster": cluster,
        "checks": checks.iter().map(|c| json!({
            "node": c.node,
            "check": c.name,
            "level": match c.level { Level::Ok => "ok", Level::Warn => "warn", Level::Fail => "fail" },
            "found": c.found,
            "advice": c.advice,
        })).collect::<Vec<_>>(),
        "failed": failed,
        "warnings": warned,
    });
    Ok(Report {
        text,
        json,
        ok: failed == 0,
    })
}
