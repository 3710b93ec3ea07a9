//! Child processes: this test binary started again to run one ignored test
//! as a separate process, and counters in Redis that processes share.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Starts this test binary running only the ignored test `test` (a full
/// path such as `strategies::lock_child_process`), with `env` set.
pub fn spawn_test(test: &str, env: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--ignored", "--test-threads=1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd.spawn().unwrap()
}

/// Waits for a child for at most `limit`, killing it past that.
pub fn wait_bounded(mut child: Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a child process hung for {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A counter in Redis, so that several processes can share it.
#[derive(Clone)]
pub struct RedisCounter {
    conn: redis::aio::MultiplexedConnection,
    key: String,
}

impl RedisCounter {
    pub async fn new(url: &str, key: &str) -> RedisCounter {
        let client = redis::Client::open(url).unwrap();
        RedisCounter {
            conn: client.get_multiplexed_async_connection().await.unwrap(),
            key: key.to_string(),
        }
    }

    pub async fn bump(&self) -> u64 {
        redis::cmd("INCR")
            .arg(&self.key)
            .query_async(&mut self.conn.clone())
            .await
            .unwrap()
    }

    pub async fn get(&self) -> u64 {
        let n: Option<u64> = redis::cmd("GET")
            .arg(&self.key)
            .query_async(&mut self.conn.clone())
            .await
            .unwrap();
        n.unwrap_or(0)
    }

    /// Waits until the counter reaches `n` (30 s at most).
    pub async fn reaches(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.get().await < n {
            assert!(Instant::now() < deadline, "{} never reached {n}", self.key);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}
