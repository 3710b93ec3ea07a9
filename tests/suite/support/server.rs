//! A real redis-server on loopback, started per test and stopped when
//! dropped.

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
                    // Any reply will do, NOAUTH included: the server is up;
                    // but one still loading its data (AOF, RDB) is not.
                    match redis::cmd("PING").query::<String>(&mut conn) {
                        Ok(_) => return true,
                        Err(e) if e.code().is_some_and(|c| c != "LOADING") => return true,
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
        super::builder()
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

    /// Lets the ACL user `app` (`add_documented_acl_user`) run
    /// `EVALSHA`, or not: without it every bust fails (busts run a script;
    /// lookups and fills do not).
    pub fn allow_busts(&self, allowed: bool) {
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg("app")
            .arg(if allowed { "+evalsha" } else { "-evalsha" })
            .exec(&mut self.raw())
            .unwrap();
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
                "+getrange",
                "+set",
                "+get",
                "+del",
                "+evalsha",
                "+script|load",
                "+info",
                "+wait",
                "+ping",
                "+client|tracking",
                "+pttl",
                "+pexpire",
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

pub(super) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
