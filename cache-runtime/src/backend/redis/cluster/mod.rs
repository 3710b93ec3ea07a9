//! A Redis Cluster: the slot map, one pair of [`Link`]s per master, and the
//! routing of each operation to the masters that hold its names.
//!
//! cachette routes by itself rather than through a cluster client that
//! reconnects and resends on its own, for two promises:
//! - I10: a version is judged, and written, in the origin of the master
//!   whose session carries the command; a restarted or promoted master is
//!   a new session in a new origin, and nothing it brings back is trusted;
//! - busts and their `WAIT`: a master's share of a bust is one pipeline on
//!   one connection, `WAIT` last, so the `WAIT` covers exactly those
//!   writes. A redirection fails the bust (it is kept and retried, I9)
//!   instead of sending part of it elsewhere.
//!
//! Reads and single-name writes follow one redirection (`ASK` during a slot
//! migration, with `ASKING` in the same pipeline; `MOVED` after one); the
//! versions read are then judged in the origin of the node that answered.
//! Any redirection or lost node makes the slot map be read again (`CLUSTER
//! SLOTS`), in the background; a `MOVED` also ends the sessions to the node
//! that sent it, which may have been demoted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt as _;
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, Value};

use super::bust;
use super::connect::{self, Settings};
use super::link::{Link, Session};
use super::scripts::{self, ensure_cmd, Scripting, ADOPT};
use super::wire::{ensured, entry_range, lookup_replies, version_range};
use crate::backend::stored::{Lookup, Wanted, EPOCH_TTL};
use crate::error::{Error, ErrorKind};

mod busts;
mod slots;

use super::lookup;
use super::near::{self, Near};

pub(crate) use self::slots::epoch_of;
pub(crate) use self::slots::key_slot;
use self::slots::{key_slot_of_name, redirection, SlotMap};
use crate::names::Subject;
use crate::replicas::ReplicaAcks;
use crate::version::Token;

pub(super) type Addr = (String, u16);

/// The links to one master.
struct Node {
    reads: Arc<Link>,
    busts: Arc<Link>,
}

pub(crate) struct Cluster {
    /// Template for every node's client: credentials, database, TLS.
    seed: Client,
    /// The nodes given to `connect_cluster`, to ask when no master answers.
    seeds: Vec<Addr>,
    config: AsyncConnectionConfig,
    connect_timeout: Duration,
    /// Most bytes read of an entry.
    max_entry: usize,
    scripting: Scripting,
    acks: ReplicaAcks,
    ack_timeout: Duration,
    map: Mutex<Option<Arc<SlotMap>>>,
    nodes: Mutex<HashMap<Addr, Arc<Node>>>,
    /// One reading of the slot map at a time.
    refreshing: tokio::sync::Mutex<()>,
    /// What the masters' reads links keep in memory, if on.
    near: Option<Arc<Near>>,
    /// How long an ordering round trip may take.
    command_timeout: Duration,
}

impl Cluster {
    /// The cluster as reached through its seed nodes, however their URLs
    /// spell them.
    pub(crate) fn identity(&self) -> String {
        let mut seeds: Vec<String> = self
            .seeds
            .iter()
            .map(|(host, port)| format!("{}:{port}", host.to_ascii_lowercase()))
            .collect();
        seeds.sort();
        let info = self.seed.get_connection_info();
        let user = info.redis_settings().username().unwrap_or("default");
        format!("cluster {}/{user}", seeds.join(","))
    }

    /// Reaches the cluster now: fails if no seed answers with a slot map.
    pub(crate) async fn connect(
        urls: &[String],
        settings: &Settings,
    ) -> Result<Arc<Cluster>, Error> {
        let cluster = Cluster::lazy(urls, settings)?;
        let target = connect::Target::new("the Redis Cluster", connect::speaks_tls(&cluster.seed));
        match tokio::time::timeout(settings.connect_timeout * 2, cluster.refresh(None)).await {
            Ok(Ok(_)) => Ok(cluster),
            Ok(Err(e)) => Err(connect::connect_error(e, &target)),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("timed out connecting to {target}"),
            )),
        }
    }

    /// The cluster, first reached on first use (its slot map is read
    /// then); only the URLs are checked now.
    pub(crate) fn lazy(urls: &[String], settings: &Settings) -> Result<Arc<Cluster>, Error> {
        let Some(first) = urls.first() else {
            return Err(Error::new(
                ErrorKind::Config,
                "connect_cluster needs at least one node URL",
            ));
        };
        let seed = connect::client(first, settings).map_err(|e| cluster_config(e, urls))?;
        let mut seeds = Vec::new();
        for url in urls {
            let client = connect::client(url, settings).map_err(|e| cluster_config(e, urls))?;
            match client.get_connection_info().addr() {
                ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                    seeds.push((host.clone(), *port));
                }
                _ => {
                    return Err(Error::new(
                        ErrorKind::Config,
                        "Redis Cluster nodes are reached over TCP: redis:// or rediss:// URLs",
                    ))
                }
            }
        }
        Ok(Arc::new(Cluster {
            seed,
            seeds,
            config: settings.connection(),
            connect_timeout: settings.connect_timeout,
            max_entry: settings.max_entry_bytes,
            scripting: settings.scripting,
            acks: settings.acks,
            ack_timeout: settings.ack_timeout,
            map: Mutex::new(None),
            nodes: Mutex::new(HashMap::new()),
            refreshing: tokio::sync::Mutex::new(()),
            near: settings.near_cache.map(|bytes| {
                Arc::new(
                    Near::new(bytes, settings.keep_decoded, Some(settings.lease.clone()))
                        .with_events(settings.events.clone()),
                )
            }),
            command_timeout: settings.command_timeout,
        }))
    }

    /// How the cluster's scripts are called.
    pub(crate) fn scripting(&self) -> Scripting {
        self.scripting
    }

    /// The near-cache, if it was configured.
    pub(crate) fn near_cache(&self) -> Option<&Near> {
        self.near.as_deref()
    }

    /// The lookup kept in the near-cache for `subject`, served after an
    /// ordering round trip on each master that read one of its names
    /// (`near::hit::on_masters`); `None`: read the masters.
    pub(crate) async fn near_hit(&self, subject: &Subject<'_>) -> Option<Result<Lookup, Error>> {
        let near = self.near.as_ref()?;
        let map = self.current()?;
        let reads_of = |tag: &str| {
            let slot = key_slot(tag);
            let master = &map.master(slot).ok()?.master;
            let node = crate::sync::lock(&self.nodes).get(master)?.clone();
            Some((slot, node.reads.clone()))
        };
        // The reads link of the master holding the namespace's lease,
        // made if this process never spoke to it.
        let lease_holder = || {
            let master = &map.master(key_slot(near::hit::LEASE_TAG)).ok()?.master;
            Some(self.node(master).ok()?.reads.clone())
        };
        near::hit::on_masters(near, subject, reads_of, lease_holder).await
    }

    fn node(&self, addr: &Addr) -> Result<Arc<Node>, Error> {
        let mut nodes = crate::sync::lock(&self.nodes);
        if let Some(node) = nodes.get(addr) {
            return Ok(node.clone());
        }
        let client = connect::node_client(&self.seed, &addr.0, addr.1)?;
        let target = connect::Target::new(
            format!("Redis Cluster node {}:{}", addr.0, addr.1),
            connect::speaks_tls(&client),
        );
        let tracking = match &self.near {
            Some(near) => Some(near::tracking::Tracking::new(
                &client,
                near.clone(),
                self.command_timeout,
            )?),
            None => None,
        };
        let link = |tracking| {
            Link::new(
                client.clone(),
                self.config.clone(),
                (self.connect_timeout, self.command_timeout),
                target.clone(),
                tracking,
            )
        };
        let node = Arc::new(Node {
            reads: link(tracking),
            busts: link(None),
        });
        nodes.insert(addr.clone(), node.clone());
        Ok(node)
    }

    /// The entry and its versions, each group of names from the master of
    /// its slot, all at once. A version of a master's own process under
    /// another replication id makes that session ask again (see
    /// `Session::drifted`), and the lookup is made once more.
    pub(crate) async fn lookup(self: &Arc<Self>, subject: &Subject<'_>) -> Result<Lookup, Error> {
        let read = || async move {
            let seen = self.read_names(subject).await?;
            Ok(seen
                .into_iter()
                .map(|(reply, session, node)| (reply, session, node.reads.clone()))
                .collect())
        };
        lookup::lookup(subject, self.near.as_deref(), self.max_entry, read).await
    }

    /// The lookups of `subjects` (a batch read): every name of every
    /// subject read at once, in one pipeline per master, and the number of
    /// pipelines. A redirection or a failure on any master makes the slot
    /// map be read again, and each subject be looked up on its own (which
    /// follows redirections), as [`lookup`](Self::lookup) does.
    pub(crate) async fn lookup_many(
        self: &Arc<Self>,
        subjects: &[&Subject<'_>],
    ) -> Result<(Vec<Lookup>, usize), Error> {
        let map = self.map().await?;
        let max = self.max_entry;
        // Every name, as (subject, name index): 0 the entry, j a version.
        let mut groups: Vec<(Addr, Vec<(usize, usize)>)> = Vec::new();
        for (s, subject) in subjects.iter().enumerate() {
            let names = subject.names();
            let epoch = names.versions().len();
            for (i, name) in subject.version_names().enumerate() {
                let master = &map.master(key_slot(name.hash_tag()))?.master;
                let group = match groups.iter().position(|g| g.0 == *master) {
                    Some(g) => g,
                    None => {
                        groups.push((master.clone(), Vec::new()));
                        groups.len() - 1
                    }
                };
                let members = &mut groups[group].1;
                if i == 0 {
                    // The entry and the epoch share the key's slot.
                    members.extend([(s, 0), (s, 1)]);
                    if names.is_epoch(epoch - 1) {
                        members.push((s, epoch));
                    }
                } else {
                    members.push((s, i + 1));
                }
            }
        }
        let all: Vec<Vec<&str>> = subjects
            .iter()
            .map(|s| {
                let names = s.names();
                std::iter::once(names.entry())
                    .chain(names.versions())
                    .collect()
            })
            .collect();
        let pipelines = groups.len();
        let read = || {
            let (groups, all, map) = (&groups, &all, &map);
            async move {
                let sends = groups.iter().map(|(master, members)| async move {
                    let node = self.node(master)?;
                    let session = node.reads.session().await?;
                    let mut pipe = redis::Pipeline::with_capacity(members.len());
                    for &(s, j) in members {
                        pipe.add_command(if j == 0 {
                            entry_range(all[s][0], max)
                        } else {
                            version_range(all[s][j])
                        });
                    }
                    pipe.ignore_errors();
                    let reply = node
                        .reads
                        .watched(
                            &session,
                            pipe.query_async::<Vec<Value>>(&mut session.conn.clone())
                                .map(|r| r.and_then(lookup_replies)),
                        )
                        .await;
                    match reply {
                        Ok(replies) if replies.len() == members.len() => {
                            Ok::<_, Error>(Some((node, session, replies)))
                        }
                        Ok(_) => Ok(None),
                        Err(e) => {
                            if redirection(&e).is_none() {
                                node.reads.failed(&session, &e);
                            }
                            Ok(None)
                        }
                    }
                });
                let replies = futures_util::future::try_join_all(sends).await?;
                let mut seen: Vec<Vec<Option<lookup::Answer>>> =
                    all.iter().map(|names| vec![None; names.len()]).collect();
                for ((_, members), reply) in groups.iter().zip(replies) {
                    // Any share refused: each subject goes on its own.
                    let Some((node, session, replies)) = reply else {
                        self.stale(map);
                        return Ok(None);
                    };
                    for (&(s, j), v) in members.iter().zip(replies) {
                        seen[s][j] = Some((v, session.clone(), node.reads.clone()));
                    }
                }
                Ok::<_, Error>(
                    seen.into_iter()
                        .map(|names| names.into_iter().collect::<Option<Vec<_>>>())
                        .collect::<Option<Vec<_>>>(),
                )
            }
        };
        // Read once as a whole; else each subject on its own.
        let whole = {
            let mut once = Some(read);
            let read_whole = || {
                let read = once.take();
                async move {
                    match read {
                        Some(read) => read().await?.ok_or_else(|| {
                            Error::new(ErrorKind::Backend, "redirected: read each on its own")
                        }),
                        None => Err(Error::new(ErrorKind::Backend, "read once")),
                    }
                }
            };
            lookup::lookup_many(subjects, self.near.as_deref(), max, read_whole).await
        };
        match whole {
            Ok(lookups) => Ok((lookups, pipelines)),
            Err(_) => {
                let each = subjects.iter().map(|subject| self.lookup(subject));
                let lookups = futures_util::future::try_join_all(each).await?;
                Ok((lookups, pipelines + subjects.len()))
            }
        }
    }

    /// The replies for the entry (first) and each version, with the session
    /// and node that answered each.
    async fn read_names(self: &Arc<Self>, subject: &Subject<'_>) -> Result<Vec<Answer>, Error> {
        let map = self.map().await?;
        // The epoch of the key's slot shares that slot.
        let names = subject.names();
        // Name j is the entry (0) or version j - 1; the entry and the epoch
        // (last) share the key's slot (version 0).
        let all: Vec<&str> = std::iter::once(names.entry())
            .chain(names.versions())
            .collect();
        let epoch = all.len() - 1;
        let mut groups: Vec<(u16, Vec<usize>)> = Vec::with_capacity(all.len());
        for (i, name) in subject.version_names().enumerate() {
            let slot = key_slot(name.hash_tag());
            let members: &[usize] = if i == 0 { &[0, 1, epoch] } else { &[i + 1] };
            match groups.iter_mut().find(|g| g.0 == slot) {
                Some(g) => g.1.extend_from_slice(members),
                None => groups.push((slot, members.to_vec())),
            }
        }
        let max = self.max_entry;
        let sends = groups.iter().map(|(slot, members)| {
            let map = &map;
            let all = &all;
            async move {
                let node = self.node(&map.master(*slot)?.master)?;
                let session = node.reads.session().await?;
                let reply = node
                    .reads
                    .watched(
                        &session,
                        group_pipe(members, all, max, false)
                            .query_async::<Vec<Value>>(&mut session.conn.clone())
                            .map(|r| r.and_then(lookup_replies)),
                    )
                    .await;
                Ok::<_, Error>((node, session, reply))
            }
        });
        let replies = futures_util::future::try_join_all(sends)
            .await
            .inspect_err(|_| self.stale(&map))?;
        let mut seen: Vec<Option<Answer>> = vec![None; all.len()];
        for ((_, members), (node, session, reply)) in groups.iter().zip(replies) {
            let (replies, session, node) = match reply {
                Ok(replies) => (replies, session, node),
                Err(e) => {
                    // Follow a redirection once: the versions are then
                    // judged by the origin of the node that answers.
                    let (node, session, ask) = self.follow(&node, &session, e, &map).await?;
                    let again = group_pipe(members, &all, max, ask);
                    match node
                        .reads
                        .watched(
                            &session,
                            again
                                .query_async::<Vec<Value>>(&mut session.conn.clone())
                                .map(|r| r.and_then(lookup_replies)),
                        )
                        .await
                    {
                        Ok(replies) => (replies, session, node),
                        Err(e) => {
                            self.failed(&node, &session, &e, &map);
                            return Err(Error::from(e));
                        }
                    }
                }
            };
            for (j, v) in group_reply(members, replies)? {
                seen[j] = Some((v, session.clone(), node.clone()));
            }
        }
        seen.into_iter()
            .collect::<Option<Vec<Answer>>>()
            .ok_or_else(|| Error::new(ErrorKind::Backend, "a name was left unread"))
    }

    /// A command on `node` failed with `e`: for a redirection, the node to
    /// follow it to (once), a session there, and whether it is `ASK` (a
    /// `MOVED` also makes every session with `node` ask again, and the map
    /// is read again); anything else is recorded and returned.
    async fn follow(
        self: &Arc<Self>,
        node: &Node,
        session: &Session,
        e: redis::RedisError,
        map: &SlotMap,
    ) -> Result<(Arc<Node>, Arc<Session>, bool), Error> {
        let Some((addr, ask)) = redirection(&e) else {
            self.failed(node, session, &e, map);
            return Err(Error::from(e));
        };
        if !ask {
            session.changed();
            self.stale(map);
        }
        let target = self.node(&addr)?;
        let session = target.reads.session().await?;
        Ok((target, session, ask))
    }

    /// A command failed on `node`: a lost connection is replaced, and the
    /// map is read again (the node may be gone, or demoted).
    fn failed(
        self: &Arc<Self>,
        node: &Node,
        session: &Session,
        e: &redis::RedisError,
        map: &SlotMap,
    ) {
        node.reads.failed(session, e);
        self.stale(map);
    }

    /// Creates or replaces versions (see `Backend::ensure`): one
    /// command each (they live in different slots), built in the origin
    /// of the master that holds it, all sent at once.
    pub(crate) async fn ensure(
        self: &Arc<Self>,
        versions: &[Wanted<'_>],
    ) -> Result<Vec<(Token, bool)>, Error> {
        let map = self.map().await?;
        let how = self.scripting;
        let sends = versions.iter().map(|&(name, seen, ttl)| {
            let map = &map;
            async move {
                let node = self.node(&map.master(key_slot_of_name(name))?.master)?;
                let ours = Token::random();
                let send = || {
                    node.reads.run(|s| async move {
                        let cmd = ensure_cmd(how, name, seen, &s.run, &ours, ttl);
                        let reply = cmd.query_async::<Value>(&mut s.conn.clone()).await?;
                        Ok((reply, s.run.clone()))
                    })
                };
                let load = |load: redis::Cmd| {
                    node.reads
                        .run(|s| async move { load.query_async(&mut s.conn.clone()).await })
                };
                let made = scripts::with_script(how, &ADOPT, send, load).await;
                let made = made.and_then(|(reply, run)| ensured(reply, &run, ours));
                if made.is_err() {
                    self.stale(map);
                }
                made
            }
        });
        futures_util::future::try_join_all(sends).await
    }

    /// One command about the single name `name` (run-independent: an entry
    /// or a lock), following one redirection.
    pub(crate) async fn one(self: &Arc<Self>, name: &str, cmd: redis::Cmd) -> Result<Value, Error> {
        let map = self.map().await?;
        let node = self.node(&map.master(key_slot_of_name(name))?.master)?;
        let session = node.reads.session().await?;
        let mut conn = session.conn.clone();
        let sent = cmd.query_async::<Value>(&mut conn);
        let e = match node.reads.watched(&session, sent).await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let (target, session, ask) = self.follow(&node, &session, e, &map).await?;
        let mut pipe = redis::pipe();
        if ask {
            pipe.cmd("ASKING").ignore();
        }
        pipe.add_command(cmd);
        let mut conn = session.conn.clone();
        let sent = pipe.query_async::<(Value,)>(&mut conn);
        match target.reads.watched(&session, sent).await {
            Ok((v,)) => Ok(v),
            Err(e) => {
                self.failed(&target, &session, &e, &map);
                Err(Error::from(e))
            }
        }
    }
}

/// The commands of one slot's share of a lookup: a `GETRANGE` of the entry
/// when the share holds it (name 0), then of each version. Following an
/// `ASK`, each is preceded by an `ASKING`, which lets only the command
/// right after it through.
fn group_pipe(members: &[usize], all: &[&str], max: usize, ask: bool) -> redis::Pipeline {
    let mut pipe = redis::Pipeline::with_capacity((1 + usize::from(ask)) * members.len());
    let entry = members.contains(&0).then(|| entry_range(all[0], max));
    let versions = members
        .iter()
        .filter(|j| **j != 0)
        .map(|&j| version_range(all[j]));
    for cmd in entry.into_iter().chain(versions) {
        if ask {
            pipe.cmd("ASKING").ignore();
        }
        pipe.add_command(cmd);
    }
    // See `lookup_replies`.
    pipe.ignore_errors();
    pipe
}

/// The values of a [`group_pipe`], by name.
fn group_reply(members: &[usize], replies: Vec<Value>) -> Result<Vec<(usize, Value)>, Error> {
    // The entry's reply, if the share holds it, comes first.
    let order = members
        .iter()
        .copied()
        .filter(|j| *j == 0)
        .chain(members.iter().copied().filter(|j| *j != 0));
    if replies.len() != members.len() {
        return Err(Error::new(
            ErrorKind::Backend,
            format!(
                "a lookup's reply has {} values for {} names; refused",
                replies.len(),
                members.len()
            ),
        ));
    }
    Ok(order.zip(replies).collect())
}

/// A configuration error about the node URLs.
fn cluster_config(e: Error, urls: &[String]) -> Error {
    let hint = if urls.iter().any(|n| n.starts_with("rediss://")) && !cfg!(feature = "tls") {
        "rediss:// needs the `tls` feature of cachette"
    } else {
        "invalid Redis Cluster node URL"
    };
    Error::new(ErrorKind::Config, hint).with_source(e)
}

/// A reply, with the session and node that gave it.
type Answer = (Value, Arc<Session>, Arc<Node>);
