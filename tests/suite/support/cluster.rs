//! A real Redis Cluster on loopback, made with `redis-cli --cluster
//! create` and stopped when dropped.

use std::process::Command;
use std::time::{Duration, Instant};

use cachette::Cache;

use super::server::{free_port, RedisServer};

/// A real Redis Cluster on loopback: six redis-server processes, three
/// masters with one replica each, created with `redis-cli --cluster create`.
/// Every process is killed on drop.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

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
        self.cache_with(super::builder()).await
    }

    /// The same, from `builder`.
    pub async fn cache_with(&self, builder: cachette::CacheBuilder) -> Cache {
        builder
            .replica_ack_timeout(Duration::from_secs(2))
            .connect_cluster(self.urls())
            .await
            .expect("connect to the test cluster")
    }

    /// Adds a seventh node, a replica of the master on `master`, once it
    /// is in sync.
    pub fn add_replica(&mut self, master: u16) {
        let bus = free_port();
        let server = RedisServer::start_with(&[
            "--cluster-enabled",
            "yes",
            "--cluster-port",
            &bus.to_string(),
            "--cluster-node-timeout",
            "1000",
            "--cluster-replica-validity-factor",
            "0",
        ]);
        let of = self.node_at(master);
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query(&mut of.raw())
            .unwrap();
        let me = nodes.lines().find(|l| l.contains("myself")).unwrap();
        // <id> <ip:port@bus[,hostname]> ...
        let mut fields = me.split_whitespace();
        let id = fields.next().unwrap().to_string();
        let master_bus: u16 = fields
            .next()
            .unwrap()
            .split('@')
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        redis::cmd("CLUSTER")
            .arg("MEET")
            .arg("127.0.0.1")
            .arg(master)
            .arg(master_bus)
            .exec(&mut server.raw())
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while redis::cmd("CLUSTER")
            .arg("REPLICATE")
            .arg(&id)
            .exec(&mut server.raw())
            .is_err()
        {
            assert!(Instant::now() < deadline, "the node never met the cluster");
            std::thread::sleep(Duration::from_millis(100));
        }
        loop {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut of.raw())
                .unwrap();
            if info.matches("state=online").count() == 2 {
                break;
            }
            assert!(Instant::now() < deadline, "the new replica never synced");
            std::thread::sleep(Duration::from_millis(100));
        }
        self.nodes.push(server);
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
        let node = |port: u16| self.node_at(port);
        let (from_id, to_id) = (self.node_id(from), self.node_id(to));
        let setslot = |port: u16, args: &[&str]| self.set_slot(port, slot, args);
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

    /// The node on `port`.
    pub fn node_at(&self, port: u16) -> &RedisServer {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .expect("a node of this cluster")
    }

    /// The cluster id of the node on `port` (`CLUSTER MYID`).
    pub fn node_id(&self, port: u16) -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut self.node_at(port).raw())
            .unwrap()
    }

    /// `CLUSTER SETSLOT <slot> <args>` on the node on `port`.
    pub fn set_slot(&self, port: u16, slot: u16, args: &[&str]) {
        redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(args)
            .exec(&mut self.node_at(port).raw())
            .unwrap();
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
