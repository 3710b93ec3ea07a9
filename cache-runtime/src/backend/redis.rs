//! The Redis backend, on a single Redis (one multiplexed connection that
//! reconnects by itself) or a Redis Cluster (the `redis` crate's async
//! cluster connection, which follows MOVED and ASK and refreshes its slot
//! map after a failover).
//!
//! Costs, in round trips of latency:
//! - a lookup is one `MGET` of the entry and its versions. On a cluster it
//!   is one `MGET` per slot among them, all sent at once: the entry and its
//!   key's version share a slot, each tag's version has its own;
//! - a fill is one `SET ... PX`; creating missing versions is one pipeline
//!   of `SET ... NX GET PX` (on a cluster, one command per version, sent at
//!   once);
//! - a bust of any number of keys and tags is one `EVALSHA` of
//!   `lua/bust.lua` on a single Redis; on a cluster, one pipeline of plain
//!   `SET`s and `DEL`s per slot touched, sent at once. Either way a `WAIT`
//!   in the same pipeline makes it return only once a replica holds it
//!   (see [`ReplicaAcks`]);
//! - a stampede lock is `SET NX PX` with a random token, released by
//!   `lua/unlock.lua` only by its owner.
//!
//! Busts (and the questions about replicas) use a second connection: a
//! `WAIT` blocks the connection it is sent on until replicas answer, and
//! reads must not queue behind it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Cmd, Pipeline, RedisFuture, RedisResult, Script, Value};

use super::{millis, Blob, Lookup};
use crate::error::{Error, ErrorKind};
use crate::names::{Bust, Names, Namespace, Subject};
use crate::replicas::ReplicaAcks;
use crate::version::Token;

/// The connection: to one Redis, or to a cluster.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            #[cfg(feature = "cluster")]
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "cluster")]
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            #[cfg(feature = "cluster")]
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

pub(crate) struct RedisBackend {
    /// Reads, fills and locks.
    conn: Conn,
    /// Busts and the questions about replicas. A bust's `WAIT` blocks the
    /// connection it is sent on until replicas answer, so it must not hold
    /// up the reads queued behind it on a shared connection.
    busts: Conn,
    /// An outer bound on every operation, reconnection attempts included.
    deadline: Duration,
    acks: ReplicaAcks,
    /// How long a bust waits for replicas to acknowledge it.
    ack_timeout: Duration,
    /// Masters and replicas per slot range, as last learned.
    topology: Mutex<Option<Topology>>,
    /// The server refused to tell its replicas; warned once.
    warned_topology: std::sync::atomic::AtomicBool,
    bust: Script,
    unlock: Script,
}

/// Who serves each slot range: its master's address (on a cluster) and
/// how many healthy replicas it has. A single Redis is one range.
#[derive(Clone, Debug)]
struct Topology {
    learned: Instant,
    ranges: Vec<SlotRange>,
}

#[derive(Clone, Debug, PartialEq)]
struct SlotRange {
    first: u16,
    last: u16,
    /// `(host, port)` of the master; `None` on a single Redis.
    master: Option<(String, u16)>,
    replicas: u32,
}

impl Topology {
    /// How often it is asked again (it is also forgotten after a failed
    /// bust, so the retry asks again).
    const REFRESH: Duration = Duration::from_secs(1);

    fn range(&self, slot: u16) -> Option<&SlotRange> {
        self.ranges
            .iter()
            .find(|r| (r.first..=r.last).contains(&slot))
    }
}

/// Connection settings taken from the builder.
pub(crate) struct Settings {
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    /// PEM roots to trust for `rediss://` instead of the system's.
    #[cfg(feature = "tls")]
    pub root_ca: Option<Vec<u8>>,
    pub acks: ReplicaAcks,
    pub ack_timeout: Duration,
}

impl Settings {
    /// The client's own response timeout: long enough for a bust's `WAIT`.
    /// Every other operation is bounded by the command timeout through
    /// [`RedisBackend::within`].
    fn response_timeout(&self) -> Duration {
        self.command_timeout + self.ack_timeout
    }
}

impl RedisBackend {
    fn config(settings: &Settings) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.response_timeout()))
            .set_number_of_retries(3)
            .set_max_delay(Duration::from_secs(2))
    }

    fn client(url: &str, settings: &Settings) -> Result<Client, Error> {
        #[cfg(feature = "tls")]
        if let Some(root) = &settings.root_ca {
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root.clone()),
            };
            return Client::build_with_tls(url, certs).map_err(|e| {
                Error::new(ErrorKind::Config, "invalid Redis URL or certificate").with_source(e)
            });
        }
        #[cfg(not(feature = "tls"))]
        let _ = settings;
        Client::open(url).map_err(|e| {
            let hint = if url.starts_with("rediss://") && !cfg!(feature = "tls") {
                "rediss:// needs the `tls` feature of cachette"
            } else {
                "invalid Redis URL"
            };
            Error::new(ErrorKind::Config, hint).with_source(e)
        })
    }

    /// Connects now and fails if the server cannot be reached or refuses us.
    pub(crate) async fn connect(url: &str, settings: &Settings) -> Result<Self, Error> {
        let client = Self::client(url, settings)?;
        let connect = || async {
            ConnectionManager::new_with_config(client.clone(), Self::config(settings))
                .await
                .map_err(|e| connect_error(Error::from(e), "Redis"))
        };
        let (conn, busts) = futures_util::future::try_join(connect(), connect()).await?;
        Ok(Self::with_conn(
            Conn::Single(conn),
            Conn::Single(busts),
            settings,
        ))
    }

    /// Connects to a Redis Cluster through any of `nodes`, and fails if none
    /// can be reached or the cluster refuses us.
    #[cfg(feature = "cluster")]
    pub(crate) async fn connect_cluster(
        nodes: &[String],
        settings: &Settings,
    ) -> Result<Self, Error> {
        if nodes.is_empty() {
            return Err(Error::new(
                ErrorKind::Config,
                "connect_cluster needs at least one node URL",
            ));
        }
        let builder = redis::cluster::ClusterClientBuilder::new(nodes.iter().map(String::as_str))
            .connection_timeout(settings.connect_timeout)
            .response_timeout(settings.response_timeout())
            .retries(3)
            .min_retry_wait(10)
            .max_retry_wait(500);
        #[cfg(feature = "tls")]
        let builder = match &settings.root_ca {
            Some(root) => builder.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root.clone()),
            }),
            None => builder,
        };
        let client = builder.build().map_err(|e| {
            let hint = if nodes.iter().any(|n| n.starts_with("rediss://")) && !cfg!(feature = "tls")
            {
                "rediss:// needs the `tls` feature of cachette"
            } else {
                "invalid Redis Cluster node URL"
            };
            Error::new(ErrorKind::Config, hint).with_source(e)
        })?;
        let target = "the Redis Cluster";
        let connect = || async {
            tokio::time::timeout(settings.connect_timeout * 2, client.get_async_connection())
                .await
                .map_err(|_| {
                    Error::new(
                        ErrorKind::Timeout,
                        format!("timed out connecting to {target}"),
                    )
                })?
                .map_err(|e| connect_error(Error::from(e), target))
        };
        let (conn, busts) = futures_util::future::try_join(connect(), connect()).await?;
        Ok(Self::with_conn(
            Conn::Cluster(conn),
            Conn::Cluster(busts),
            settings,
        ))
    }

    /// `"redis"` or `"redis-cluster"`.
    pub(crate) fn label(&self) -> &'static str {
        match self.conn {
            Conn::Single(_) => "redis",
            #[cfg(feature = "cluster")]
            Conn::Cluster(_) => "redis-cluster",
        }
    }

    /// Connects on first use; until then, and while Redis is unreachable,
    /// operations fail and annotated functions read through.
    pub(crate) fn lazy(url: &str, settings: &Settings) -> Result<Self, Error> {
        let client = Self::client(url, settings)?;
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), Self::config(settings))?;
        let busts = ConnectionManager::new_lazy_with_config(client, Self::config(settings))?;
        Ok(Self::with_conn(
            Conn::Single(conn),
            Conn::Single(busts),
            settings,
        ))
    }

    fn with_conn(conn: Conn, busts: Conn, settings: &Settings) -> Self {
        RedisBackend {
            conn,
            busts,
            deadline: settings.command_timeout,
            acks: settings.acks,
            ack_timeout: settings.ack_timeout,
            topology: Mutex::new(None),
            warned_topology: std::sync::atomic::AtomicBool::new(false),
            bust: Script::new(include_str!("../lua/bust.lua")),
            unlock: Script::new(include_str!("../lua/unlock.lua")),
        }
    }

    /// Runs one operation within the command timeout. The client has its
    /// own response timeout, but waiting to reconnect to a server that is
    /// down is not covered by it.
    async fn within<T>(
        &self,
        op: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Error> {
        self.within_for(self.deadline, op).await
    }

    async fn within_for<T>(
        &self,
        deadline: Duration,
        op: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(deadline, op).await {
            Ok(result) => result.map_err(Error::from),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                "Redis did not answer within the command timeout",
            )),
        }
    }

    pub(crate) async fn lookup(&self, subject: &Subject<'_>) -> Result<Lookup, Error> {
        let names = subject.names("");
        let (entry, versions) = self.read(&names).await?;
        Ok(Lookup {
            names,
            entry,
            versions,
        })
    }

    async fn read(&self, names: &Names) -> Result<(Option<Blob>, Vec<Option<Token>>), Error> {
        #[cfg(feature = "cluster")]
        if let Conn::Cluster(conn) = &self.conn {
            return self.lookup_cluster(conn, names).await;
        }
        let mut cmd = redis::Cmd::with_capacity(2 + names.versions().len(), names.byte_len() + 8);
        cmd.arg("MGET").arg(names.entry());
        for version in names.versions() {
            cmd.arg(version);
        }
        let values: Vec<Value> = self.within(cmd.query_async(&mut self.conn.clone())).await?;
        Ok(decode_lookup(values))
    }

    /// One `MGET` per slot among the names, all sent at once.
    #[cfg(feature = "cluster")]
    async fn lookup_cluster(
        &self,
        conn: &redis::cluster_async::ClusterConnection,
        names: &Names,
    ) -> Result<(Option<Blob>, Vec<Option<Token>>), Error> {
        use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
        let all: Vec<&str> = std::iter::once(names.entry())
            .chain(names.versions())
            .collect();
        let mut groups: Vec<(u16, Vec<usize>)> = Vec::with_capacity(all.len());
        for (i, name) in all.iter().enumerate() {
            let slot = key_slot(name);
            match groups.iter_mut().find(|g| g.0 == slot) {
                Some(g) => g.1.push(i),
                None => groups.push((slot, vec![i])),
            }
        }
        let sends = groups.iter().map(|(slot, idx)| {
            let mut cmd = redis::Cmd::with_capacity(1 + idx.len(), 64 * idx.len());
            cmd.arg("MGET");
            for &i in idx {
                cmd.arg(all[i]);
            }
            let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
                *slot,
                SlotAddr::Master,
            )));
            let mut conn = conn.clone();
            async move { conn.route_command(cmd, route).await }
        });
        let replies = self
            .within(futures_util::future::try_join_all(sends))
            .await?;
        let mut values: Vec<Value> = vec![Value::Nil; all.len()];
        for ((_, idx), reply) in groups.iter().zip(replies) {
            let Value::Array(parts) = reply else {
                return Err(Error::new(ErrorKind::Backend, "unexpected MGET reply"));
            };
            for (&i, v) in idx.iter().zip(parts) {
                values[i] = v;
            }
        }
        Ok(decode_lookup(values))
    }

    pub(crate) async fn ensure(&self, keys: &[&str], ttl: Duration) -> Result<Vec<Token>, Error> {
        let ours: Vec<Token> = keys.iter().map(|_| Token::random()).collect();
        let create = |key: &str, token: &Token| {
            let mut cmd = redis::cmd("SET");
            cmd.arg(key)
                .arg(token.as_bytes().as_slice())
                .arg("NX")
                .arg("GET")
                .arg("PX")
                .arg(millis(ttl));
            cmd
        };
        let old: Vec<Option<Vec<u8>>> = match &self.conn {
            Conn::Single(conn) => {
                let mut pipe = redis::pipe();
                for (key, token) in keys.iter().zip(&ours) {
                    pipe.add_command(create(key, token));
                }
                self.within(pipe.query_async(&mut conn.clone())).await?
            }
            // Versions live in different slots: one command each, all sent
            // before any answer is awaited.
            #[cfg(feature = "cluster")]
            Conn::Cluster(conn) => {
                let sends = keys.iter().zip(&ours).map(|(key, token)| {
                    let cmd = create(key, token);
                    let mut conn = conn.clone();
                    async move { cmd.query_async::<Option<Vec<u8>>>(&mut conn).await }
                });
                self.within(futures_util::future::try_join_all(sends))
                    .await?
            }
        };
        ours.into_iter()
            .zip(old)
            .map(|(ours, old)| match old {
                None => Ok(ours),
                Some(b) => Token::from_bytes(&b).ok_or_else(|| {
                    Error::new(
                        ErrorKind::Backend,
                        "a version key holds a value cachette did not write",
                    )
                }),
            })
            .collect()
    }

    pub(crate) async fn store(
        &self,
        entry: &str,
        blob: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), Error> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(entry).arg(blob).arg("PX").arg(millis(ttl));
        self.within(cmd.exec_async(&mut self.conn.clone())).await
    }

    pub(crate) async fn try_lock(
        &self,
        key: &str,
        token: Token,
        ttl: Duration,
    ) -> Result<bool, Error> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key)
            .arg(token.as_bytes().as_slice())
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl));
        let reply: Value = self.within(cmd.query_async(&mut self.conn.clone())).await?;
        Ok(matches!(reply, Value::Okay))
    }

    pub(crate) async fn unlock(&self, key: &str, token: Token) -> Result<(), Error> {
        let mut call = self.unlock.key(key);
        call.arg(token.as_bytes().as_slice());
        let _: i64 = self
            .within(call.invoke_async(&mut self.conn.clone()))
            .await?;
        Ok(())
    }

    pub(crate) async fn bust(
        &self,
        ns: &Namespace,
        bust: &Bust,
        ttl: Duration,
    ) -> Result<(), Error> {
        if bust.is_empty() {
            return Ok(());
        }
        let versions: Vec<String> = bust.versions(ns, "").collect();
        let result = self.try_bust(&versions, ttl).await;
        if result.is_err() {
            // A failover or a slot move may be why: ask again next time.
            *self.topology.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        result
    }

    async fn try_bust(&self, bust: &[String], ttl: Duration) -> Result<(), Error> {
        let deadline = self.deadline * 2 + self.ack_timeout;
        let topology = self.topology().await?;
        match &self.busts {
            Conn::Single(conn) => {
                let replicas = topology
                    .as_ref()
                    .and_then(|t| t.range(0))
                    .map_or(0, |r| r.replicas);
                let acks = self.acks_for(replicas);
                self.within_for(deadline, self.bust_single(conn.clone(), bust, ttl, acks))
                    .await
            }
            #[cfg(feature = "cluster")]
            Conn::Cluster(conn) => {
                let topology = topology.ok_or_else(|| {
                    Error::new(ErrorKind::Backend, "the cluster's slot map is unknown")
                })?;
                let sends = by_master(bust, &topology)?.into_iter().map(|node| {
                    let acks = self.acks_for(node.replicas);
                    self.bust_node(conn.clone(), node, ttl, acks)
                });
                let done = self
                    .within_for(deadline, async {
                        Ok(futures_util::future::join_all(sends).await)
                    })
                    .await?;
                done.into_iter().collect()
            }
        }
    }

    /// How many replica acknowledgements a bust waits for on a master with
    /// `replicas` healthy replicas.
    fn acks_for(&self, replicas: u32) -> u32 {
        match self.acks {
            ReplicaAcks::Off => 0,
            ReplicaAcks::Require(n) => n,
            ReplicaAcks::Auto => replicas.min(1),
        }
    }

    /// Who serves which slots, asked again when older than
    /// [`Topology::REFRESH`]. Needed on a cluster (busts are grouped by
    /// master), and on a single Redis for `ReplicaAcks::Auto`. A single
    /// Redis that does not let us ask (an ACL without `info`) counts as
    /// having no replicas, with one warning.
    async fn topology(&self) -> Result<Option<Topology>, Error> {
        if self.acks != ReplicaAcks::Auto && matches!(self.conn, Conn::Single(_)) {
            return Ok(None);
        }
        {
            let known = self.topology.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(t) = known
                .as_ref()
                .filter(|t| t.learned.elapsed() < Topology::REFRESH)
            {
                return Ok(Some(t.clone()));
            }
        }
        let ranges = match self.within(self.ask_topology()).await {
            Ok(ranges) => ranges,
            Err(e) if e.kind() == ErrorKind::Auth && matches!(self.conn, Conn::Single(_)) => {
                if !self
                    .warned_topology
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::warn!(error = %e, "cachette: Redis does not let us ask for its replicas (`INFO replication`); invalidations will not wait for replicas");
                }
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        let topology = Topology {
            learned: Instant::now(),
            ranges,
        };
        *self.topology.lock().unwrap_or_else(|e| e.into_inner()) = Some(topology.clone());
        Ok(Some(topology))
    }

    async fn ask_topology(&self) -> RedisResult<Vec<SlotRange>> {
        match &self.busts {
            Conn::Single(conn) => {
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query_async(&mut conn.clone())
                    .await?;
                let replicas = info
                    .lines()
                    .find_map(|l| l.strip_prefix("connected_slaves:"))
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0);
                Ok(vec![SlotRange {
                    first: 0,
                    last: u16::MAX,
                    master: None,
                    replicas,
                }])
            }
            #[cfg(feature = "cluster")]
            Conn::Cluster(conn) => {
                // Each range: first slot, last slot, the master as
                // [host, port, id, ...], then one entry per replica that is
                // not failing.
                let ranges: Vec<Vec<Value>> = redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query_async(&mut conn.clone())
                    .await?;
                Ok(ranges.iter().filter_map(|r| slot_range(r)).collect())
            }
        }
    }

    /// The whole bust in one `EVALSHA`, followed in the same pipeline by a
    /// `WAIT` when replicas must acknowledge it: the `WAIT` runs on the
    /// connection that wrote the bust, so it covers it.
    async fn bust_single(
        &self,
        mut conn: ConnectionManager,
        versions: &[String],
        ttl: Duration,
        acks: u32,
    ) -> RedisResult<()> {
        let mut eval = redis::cmd("EVALSHA");
        eval.arg(self.bust.get_hash())
            .arg(versions.len())
            .arg(versions)
            .arg(millis(ttl));
        for _ in versions {
            eval.arg(Token::random().as_bytes().as_slice());
        }
        let mut pipe = redis::pipe();
        pipe.add_command(eval);
        if acks > 0 {
            pipe.add_command(self.wait(acks));
        }
        pipe.ignore_errors();
        let mut replies: Vec<RedisResult<Value>> = pipe.query_async(&mut conn).await?;
        if matches!(&replies[0], Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
        {
            self.bust.load_async(&mut conn).await?;
            replies = pipe.query_async(&mut conn).await?;
        }
        let mut replies = replies.into_iter();
        replies.next().unwrap_or(Ok(Value::Nil))?;
        if acks == 0 {
            return Ok(());
        }
        check_acks(replies.next(), acks)
    }

    fn wait(&self, acks: u32) -> Cmd {
        let mut wait = redis::cmd("WAIT");
        wait.arg(acks).arg(millis(self.ack_timeout));
        wait
    }

    /// One master's share of a cluster bust: a pipeline of a `SET` per
    /// version, a `DEL` per entry and the `WAIT`, on one connection.
    #[cfg(feature = "cluster")]
    async fn bust_node(
        &self,
        mut conn: redis::cluster_async::ClusterConnection,
        node: NodeBust<'_>,
        ttl: Duration,
        acks: u32,
    ) -> Result<(), Error> {
        use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
        let mut pipe = redis::pipe();
        for version in &node.versions {
            pipe.cmd("SET")
                .arg(version)
                .arg(Token::random().as_bytes().as_slice())
                .arg("PX")
                .arg(millis(ttl));
        }
        if acks > 0 {
            pipe.add_command(self.wait(acks));
        }
        // Routed by one of the group's slots, so the client's own slot map
        // picks the node; a name whose slot moved since our map was read
        // answers MOVED or ASK, which the client follows by sending the
        // pipeline again to the node named. If that fails too, the bust
        // fails and its retry reads the map again.
        let route = SingleNodeRoutingInfo::SpecificNode(Route::new(node.slot, SlotAddr::Master));
        let replies = conn
            .route_pipeline(pipe.clone(), 0, pipe.len(), route)
            .await?;
        for reply in &replies {
            if let Value::ServerError(e) = reply {
                return Err(Error::from(redis::RedisError::from(e.clone())));
            }
        }
        if acks > 0 {
            check_acks(replies.last().cloned().map(Ok), acks)?;
        }
        Ok(())
    }
}

/// The replies of a lookup, in `Names` order: the entry, then each version.
fn decode_lookup(values: Vec<Value>) -> (Option<Blob>, Vec<Option<Token>>) {
    let mut values = values.into_iter();
    let entry = match values.next() {
        Some(Value::BulkString(b)) => Some(Blob::Owned(b)),
        _ => None,
    };
    let versions = values
        .map(|v| match v {
            Value::BulkString(b) => Token::from_bytes(&b),
            _ => None,
        })
        .collect();
    (entry, versions)
}

/// Says what failed while connecting to `target`, keeping the kind.
fn connect_error(err: Error, target: &str) -> Error {
    let what = match err.kind() {
        ErrorKind::Tls => {
            format!("TLS handshake with {target} failed (is its certificate trusted?)")
        }
        ErrorKind::Auth => format!("{target} refused the credentials"),
        ErrorKind::Timeout => format!("timed out connecting to {target}"),
        _ => format!("could not connect to {target}"),
    };
    Error::new(err.kind(), what).with_source(err)
}

/// A `WAIT` reply must count at least `acks` replicas.
fn check_acks(reply: Option<RedisResult<Value>>, acks: u32) -> RedisResult<()> {
    match reply {
        Some(Ok(Value::Int(n))) if n >= i64::from(acks) => Ok(()),
        Some(Err(e)) => Err(e),
        other => Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "replicas did not acknowledge the invalidation in time",
            format!("wanted {acks}, got {other:?}"),
        ))),
    }
}

/// One `CLUSTER SLOTS` range.
#[cfg(feature = "cluster")]
fn slot_range(range: &[Value]) -> Option<SlotRange> {
    let [Value::Int(first), Value::Int(last), Value::Array(master), replicas @ ..] = range else {
        return None;
    };
    let host = match master.first()? {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok()?,
        Value::SimpleString(s) => s.clone(),
        _ => return None,
    };
    let Value::Int(port) = master.get(1)? else {
        return None;
    };
    Some(SlotRange {
        first: u16::try_from(*first).ok()?,
        last: u16::try_from(*last).ok()?,
        master: Some((host, u16::try_from(*port).ok()?)),
        replicas: u32::try_from(replicas.len()).unwrap_or(u32::MAX),
    })
}

/// What one master gets of a bust.
#[cfg(feature = "cluster")]
#[derive(Debug, PartialEq)]
struct NodeBust<'a> {
    master: (&'a str, u16),
    /// The slot of the group's first name, to route by.
    slot: u16,
    replicas: u32,
    versions: Vec<&'a str>,
}

/// The names of a bust grouped by the master serving their slots.
#[cfg(feature = "cluster")]
fn by_master<'a>(bust: &'a [String], topology: &'a Topology) -> Result<Vec<NodeBust<'a>>, Error> {
    let mut nodes: Vec<NodeBust<'a>> = Vec::new();
    let mut node_of = |name: &str| -> Result<usize, Error> {
        let slot = key_slot(name);
        let range = topology
            .range(slot)
            .and_then(|r| Some((r.master.as_ref()?, r.replicas)));
        let Some(((host, port), replicas)) = range else {
            return Err(Error::new(
                ErrorKind::Backend,
                "no master serves the slot of an invalidated name",
            ));
        };
        let master = (host.as_str(), *port);
        Ok(match nodes.iter().position(|n| n.master == master) {
            Some(i) => i,
            None => {
                nodes.push(NodeBust {
                    master,
                    slot,
                    replicas,
                    versions: Vec::new(),
                });
                nodes.len() - 1
            }
        })
    };
    let versions: Vec<usize> = bust.iter().map(|v| node_of(v)).collect::<Result<_, _>>()?;
    for (v, i) in bust.iter().zip(versions) {
        nodes[i].versions.push(v);
    }
    Ok(nodes)
}

/// The cluster slot of `key`: CRC16 (XMODEM) of its hash tag, the text
/// between the first `{` and the next `}` when that is not empty, or of the
/// whole key, modulo 16384.
#[cfg(feature = "cluster")]
fn key_slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let hashed = bytes
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &bytes[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(bytes);
    crc16::State::<crc16::XMODEM>::calculate(hashed) % 16384
}

#[cfg(all(test, feature = "cluster"))]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_hash_tags() {
        // Values from `CLUSTER KEYSLOT`.
        assert_eq!(key_slot("foo"), 12182);
        assert_eq!(key_slot("{user1000}.following"), key_slot("user1000"));
        assert_eq!(key_slot("foo{}{bar}"), key_slot("foo{}{bar}"));
        assert_ne!(key_slot("foo{}{bar}"), key_slot("bar"));
        assert_eq!(key_slot("foo{{bar}}zap"), key_slot("{bar"));
        let ns = crate::names::Namespace::new("ns").unwrap();
        let f = crate::names::Function::named("f", "f");
        let subject = Subject::new(&ns, f, "user:1", &[] as &[&str]);
        let names = subject.names("run");
        let k = names.versions().next().unwrap();
        assert_eq!(key_slot(subject.entry()), key_slot("user:1"));
        assert_eq!(key_slot(k), key_slot(subject.entry()));
        assert_eq!(key_slot(&subject.lock()), key_slot(subject.entry()));
    }

    #[test]
    fn a_bust_is_grouped_by_master() {
        let range = |first, last, port| SlotRange {
            first,
            last,
            master: Some(("127.0.0.1".to_string(), port)),
            replicas: 1,
        };
        let topology = Topology {
            learned: Instant::now(),
            ranges: vec![range(0, 8191, 7000), range(8192, 16383, 7001)],
        };
        let bust: Vec<String> = vec!["ns:k:{a}".into(), "ns:t:{b}".into(), "ns:t:{c}".into()];
        // a: 15495, b: 3300, c: 7365.
        let nodes = by_master(&bust, &topology).unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].master, ("127.0.0.1", 7001));
        assert_eq!(nodes[0].versions, ["ns:k:{a}"]);
        assert_eq!(nodes[1].master, ("127.0.0.1", 7000));
        assert_eq!(nodes[1].versions, ["ns:t:{b}", "ns:t:{c}"]);

        let uncovered = Topology {
            learned: Instant::now(),
            ranges: vec![range(0, 8191, 7000)],
        };
        assert!(by_master(&bust, &uncovered).is_err(), "slot of a unserved");
    }
}
