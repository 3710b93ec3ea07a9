//! Test support: a real redis-server on loopback, started per test and
//! stopped when dropped, and helpers to build caches on each backend.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cachette::Cache;

/// A redis-server child process on a free loopback port, with its own
/// temporary directory. Killed on drop.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    killed: bool,
}

const INSTALL_HELP: &str = "redis-server was not found on PATH. The Redis tests need a real \
     redis-server: install it with `apt-get install -y redis-server` (Debian/Ubuntu; run \
     `apt-get update` first), or run the README's test command (`./scripts/test.sh`), which \
     installs it when missing.";

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> RedisServer {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        for _ in 0..5 {
            let port = free_port();
            let dir =
                std::env::temp_dir().join(format!("cachette-test-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let child = spawn(port, &dir, &extra);
            let mut server = RedisServer {
                child,
                port,
                dir,
                extra: extra.clone(),
                killed: false,
            };
            if server.wait_ready() {
                return server;
            }
        }
        panic!("redis-server did not start on a free loopback port after 5 attempts");
    }

    /// Starts the server again on the same port and directory (after
    /// `kill`); with persistence on, it comes back with its data.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(self.port, &self.dir, &self.extra);
        self.killed = false;
        assert!(
            self.wait_ready(),
            "redis-server did not restart on port {}",
            self.port
        );
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false; // exited: most likely the port was taken
            }
            if let Ok(client) = redis::Client::open(self.url()) {
                if let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(200))
                {
                    // Any reply will do, NOAUTH included: the server is up.
                    match redis::cmd("PING").query::<String>(&mut conn) {
                        Ok(_) => return true,
                        Err(e) if e.code().is_some() => return true,
                        Err(_) => {}
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's data directory (its RDB and AOF files).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// A plain synchronous connection for inspecting and tampering.
    pub fn raw(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(2))
            .unwrap()
    }

    /// A cache on this server, with timeouts generous enough for a loaded
    /// test machine.
    pub async fn cache(&self) -> Cache {
        Cache::builder()
            .command_timeout(Duration::from_secs(5))
            .connect(&self.url())
            .await
            .expect("connect to the test redis-server")
    }

    /// Command calls since the last `CONFIG RESETSTAT`, by command name,
    /// without the inspection commands themselves.
    pub fn command_calls(&self) -> Vec<(String, u64)> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.raw())
            .unwrap();
        let mut calls: Vec<(String, u64)> = info
            .lines()
            .filter_map(|line| {
                let rest = line.strip_prefix("cmdstat_")?;
                let (name, stats) = rest.split_once(':')?;
                let n = stats.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
                Some((name.to_string(), n.parse().ok()?))
            })
            .filter(|(name, _)| !matches!(name.as_str(), "info" | "config|resetstat" | "ping"))
            .collect();
        calls.sort();
        calls
    }

    pub fn reset_stats(&self) {
        redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .exec(&mut self.raw())
            .unwrap();
    }

    /// Freezes the process (SIGSTOP): its connections stay open, it
    /// answers nothing.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Undoes [`pause`](Self::pause) (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Whether the server has not been killed.
    /// The scope cachette gives the versions this server holds: 8 hex
    /// digits of a SHA-256 of its run id, then 8 of its replication id.
    pub fn scope(&self) -> String {
        use sha2::Digest;
        let field = |section: &str, name: &str| {
            let info: String = redis::cmd("INFO")
                .arg(section)
                .query(&mut self.raw())
                .unwrap();
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let hex4 = |text: &str| -> String {
            let digest = sha2::Sha256::digest(text.as_bytes());
            digest[..4].iter().map(|b| format!("{b:02x}")).collect()
        };
        hex4(&field("server", "run_id:")) + &hex4(&field("replication", "master_replid:"))
    }

    pub fn alive(&self) -> bool {
        !self.killed
    }

    /// Creates the ACL user `app` (password `s3cret`) on this server with
    /// the documented command set (`guide::redis`) on `~cachette:*`, plus `extra` commands.
    pub fn add_documented_acl_user(&self, extra: &[&str]) {
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg("app")
            .arg("on")
            .arg(">s3cret")
            .arg("resetkeys")
            .arg("~cachette:*")
            .arg("resetchannels")
            .arg("-@all")
            .arg(&[
                "+mget",
                "+getrange",
                "+set",
                "+get",
                "+del",
                "+evalsha",
                "+script|load",
                "+info",
                "+wait",
            ])
            .arg(extra)
            .exec(&mut self.raw())
            .unwrap();
    }

    /// Stops the server now (SIGKILL).
    pub fn kill(&mut self) {
        self.killed = true;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn(port: u16, dir: &std::path::Path, extra: &[String]) -> Child {
    let binary = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
    let spawned = Command::new(&binary)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
        ])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{INSTALL_HELP}"),
        Err(e) => panic!("could not start redis-server: {e}"),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A cache on each backend: the embedded one, and Redis on a fresh server.
/// The server is returned so it lives as long as the test.
pub async fn each_backend() -> Vec<(Cache, Option<RedisServer>)> {
    let server = RedisServer::start();
    let redis = server.cache().await;
    vec![(Cache::memory(), None), (redis, Some(server))]
}

/// A clock the test moves by hand.
#[derive(Clone, Default)]
pub struct ManualClock(pub std::sync::Arc<std::sync::atomic::AtomicU64>);

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        self.0
            .fetch_add(by.as_millis() as u64, std::sync::atomic::Ordering::SeqCst);
    }
}

impl cachette::Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        1_000_000 + self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A "random" source that always draws the same number.
pub struct FixedRandom(pub f64);

impl cachette::Random for FixedRandom {
    fn unit(&self) -> f64 {
        self.0
    }
}

/// Polls `done` until it holds, yielding between tries; panics after 10 s.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A real Redis Cluster on loopback: six redis-server processes, three
/// masters with one replica each, created with `redis-cli --cluster create`.
/// Every process is killed on drop.
#[cfg(feature = "cluster")]
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

#[cfg(feature = "cluster")]
impl RedisCluster {
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..6)
            .map(|_| {
                let bus = free_port().to_string();
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus,
                    "--cluster-node-timeout",
                    "1000",
                    // A replica may take over at once, however long its
                    // link to the master has been down.
                    "--cluster-replica-validity-factor",
                    "0",
                ])
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .unwrap_or_else(|e| {
                panic!("could not run redis-cli ({e}); install it with `apt-get install -y redis-tools`, or run ./scripts/test.sh, which does")
            });
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_healthy(&[]);
        cluster
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// A cache on the cluster, with timeouts generous enough for a loaded
    /// test machine.
    pub async fn cache(&self) -> Cache {
        Cache::builder()
            .command_timeout(Duration::from_secs(5))
            .replica_ack_timeout(Duration::from_secs(2))
            .connect_cluster(self.urls())
            .await
            .expect("connect to the test cluster")
    }

    /// Ports of the masters that serve slots, with each one's slot ranges.
    pub fn masters(&self) -> Vec<(u16, Vec<(u16, u16)>)> {
        let live = self.nodes.iter().find(|n| n.alive()).expect("a live node");
        let slots: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut live.raw())
            .unwrap();
        let mut masters: Vec<(u16, Vec<(u16, u16)>)> = Vec::new();
        for range in slots {
            let redis::Value::Array(parts) = range else {
                continue;
            };
            let (redis::Value::Int(first), redis::Value::Int(last), redis::Value::Array(master)) =
                (&parts[0], &parts[1], &parts[2])
            else {
                continue;
            };
            let redis::Value::Int(port) = master[1] else {
                continue;
            };
            let port = port as u16;
            let range = (*first as u16, *last as u16);
            match masters.iter_mut().find(|m| m.0 == port) {
                Some(m) => m.1.push(range),
                None => masters.push((port, vec![range])),
            }
        }
        masters.sort();
        masters
    }

    /// The port of the master serving `key`.
    pub fn master_of(&self, key: &str) -> u16 {
        let live = self.nodes.iter().find(|n| n.alive()).expect("a live node");
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut live.raw())
            .unwrap();
        self.masters()
            .into_iter()
            .find(|(_, ranges)| ranges.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
            .map(|(port, _)| port)
            .expect("every slot is served")
    }

    /// Moves `slot` from the master on port `from` to the one on `to` the
    /// way `redis-cli --cluster reshard` does: mark it importing and
    /// migrating, `MIGRATE` its keys in batches, then assign it. Between
    /// the steps, clients get ASK (and, after, MOVED) redirections; `pause`
    /// runs at each of those points so a workload meets them.
    pub fn migrate_slot(&self, slot: u16, from: u16, to: u16, mut pause: impl FnMut()) {
        let node = |port: u16| self.nodes.iter().find(|n| n.port == port).unwrap();
        let id = |port: u16| -> String {
            redis::cmd("CLUSTER")
                .arg("MYID")
                .query(&mut node(port).raw())
                .unwrap()
        };
        let (from_id, to_id) = (id(from), id(to));
        let setslot = |port: u16, args: &[&str]| {
            redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg(args)
                .exec(&mut node(port).raw())
                .unwrap();
        };
        setslot(to, &["IMPORTING", &from_id]);
        setslot(from, &["MIGRATING", &to_id]);
        pause();
        loop {
            let keys: Vec<String> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(100)
                .query(&mut node(from).raw())
                .unwrap();
            if keys.is_empty() {
                break;
            }
            redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(to)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("REPLACE")
                .arg("KEYS")
                .arg(&keys)
                .exec(&mut node(from).raw())
                .unwrap();
            pause();
        }
        // Every master learns the new owner at once, as `redis-cli` does.
        setslot(to, &["NODE", &to_id]);
        setslot(from, &["NODE", &to_id]);
        for (port, _) in self.masters() {
            if port != to && port != from {
                setslot(port, &["NODE", &to_id]);
            }
        }
        pause();
    }

    pub fn node(&mut self, port: u16) -> &mut RedisServer {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node of this cluster")
    }

    /// Waits until the live nodes agree the cluster is healthy: every slot
    /// served, and every master but those in `without_replica` with a
    /// replica whose link is up and that every node knows of.
    pub fn wait_healthy(&self, without_replica: &[u16]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = self.nodes.iter().filter(|n| n.alive()).all(|n| {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut n.raw())
                    .unwrap_or_default();
                info.contains("cluster_state:ok")
                    && info.contains("cluster_slots_ok:16384")
                    && replicas_known(n, without_replica)
            }) && self.masters().len() == 3
                && self.masters().iter().all(|(port, _)| {
                    without_replica.contains(port) || {
                        let info: String = redis::cmd("INFO")
                            .arg("replication")
                            .query(&mut self.nodes.iter().find(|n| n.port == *port).unwrap().raw())
                            .unwrap_or_default();
                        info.contains("connected_slaves:1") && info.contains("state=online")
                    }
                });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not become healthy within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Whether `node`'s `CLUSTER SLOTS` lists a replica for every range whose
/// master is not in `without_replica`.
#[cfg(feature = "cluster")]
fn replicas_known(node: &RedisServer, without_replica: &[u16]) -> bool {
    let Ok(slots) = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query::<Vec<Vec<redis::Value>>>(&mut node.raw())
    else {
        return false;
    };
    slots.iter().all(|range| match range.get(2) {
        Some(redis::Value::Array(master)) => {
            let port = match master.get(1) {
                Some(redis::Value::Int(p)) => *p as u16,
                _ => 0,
            };
            without_replica.contains(&port) || range.len() >= 4
        }
        _ => false,
    })
}

/// The one backend name on `server` that matches `pattern` (a `KEYS`
/// pattern): tests find names the way an operator would, instead of
/// spelling out the layout, which carries function ids and server run ids.
pub fn only_name(server: &RedisServer, pattern: &str) -> String {
    let mut found: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query(&mut server.raw())
        .unwrap();
    assert_eq!(found.len(), 1, "names matching {pattern}: {found:?}");
    found.pop().unwrap()
}

/// The pattern of the names of `kind` (`'e'`, `'l'`, `'k'` or `'t'`) for
/// `text` in the `cachette` namespace, from the library that writes them.
pub fn name_pattern(kind: char, text: &str) -> String {
    cachette::__private::name_pattern("cachette", kind, text)
}

/// The name of the one entry stored under `key` in the `cachette`
/// namespace (whatever function owns it).
pub fn entry_name(server: &RedisServer, key: &str) -> String {
    only_name(server, &name_pattern('e', key))
}

/// The name of the version of `tag` in the `cachette` namespace.
pub fn tag_version_name(server: &RedisServer, tag: &str) -> String {
    only_name(server, &name_pattern('t', tag))
}

/// The name of the version of `key` in the `cachette` namespace.
pub fn key_version_name(server: &RedisServer, key: &str) -> String {
    only_name(server, &name_pattern('k', key))
}
