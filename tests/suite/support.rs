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

    /// Stops the server now (SIGKILL).
    pub fn kill(&mut self) {
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
