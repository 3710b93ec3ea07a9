//! A single Redis: one link for reads, fills and locks, one for busts and
//! the questions about replicas.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::Value;

use super::bust;
use super::connect::{self, Settings};
use super::link::tracking::Tracking;
use super::link::{ending, Link};
use super::near::Near;
use super::{
    decode_entry, decode_version, ensure_cmd, ensured, lookup_replies, read_entry, read_versions,
    Lookup, Wanted, EPOCH_TTL,
};
use crate::error::{Error, ErrorKind};
use crate::names::{Bust, Kind, Name, Namespace, Subject};
use crate::replicas::ReplicaAcks;
use crate::version::Token;

pub(crate) struct Single {
    /// Most bytes read of an entry.
    max_entry: usize,
    scripting: bust::Scripting,
    /// The server, database and user, however the URL spelled them.
    identity: String,
    reads: Arc<Link>,
    busts: Arc<Link>,
    /// What the reads link keeps in process memory, if on.
    near: Option<Arc<Near>>,
    acks: ReplicaAcks,
    ack_timeout: Duration,
    /// Healthy replicas, as last learned, and when.
    replicas: Mutex<Option<(Instant, u32)>>,
    /// The server refused to tell its replicas; warned once.
    warned: std::sync::atomic::AtomicBool,
}

/// The namespace's epoch on a single Redis: one name.
static EPOCH: Name<'static> = Name::fixed("*");

/// Where the namespace's epoch lives: one name for every key.
pub(crate) fn epoch_of(_key: &Name<'_>) -> Name<'static> {
    EPOCH.clone()
}

/// The name of the namespace's epoch on a single server.
pub(crate) fn epoch_version(ns: &Namespace) -> String {
    EPOCH.version(ns, Kind::Epoch)
}

/// How often the replica count is asked again.
const REPLICAS_REFRESH: Duration = Duration::from_secs(1);

impl Single {
    pub(crate) fn new(url: &str, settings: &Settings) -> Result<Single, Error> {
        let client = connect::client(url, settings)?;
        let target = connect::target(&client);
        let near = settings
            .near_cache
            .map(|bytes| Arc::new(Near::new(bytes, settings.keep_decoded)));
        let tracking = match &near {
            Some(near) => Some(Tracking::new(
                &client,
                near.clone(),
                settings.command_timeout,
            )?),
            None => None,
        };
        let link = |tracking| {
            Link::new(
                client.clone(),
                settings.connection(),
                (settings.connect_timeout, settings.command_timeout),
                target.clone(),
                tracking,
            )
        };
        Ok(Single {
            max_entry: settings.max_entry_bytes,
            scripting: settings.scripting,
            identity: connect::identity(&client),
            reads: link(tracking),
            busts: link(None),
            near,
            acks: settings.acks,
            ack_timeout: settings.ack_timeout,
            replicas: Mutex::new(None),
            warned: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub(crate) fn identity(&self) -> &str {
        &self.identity
    }

    /// The near-cache's counters, if it was configured.
    pub(crate) fn near_cache(&self) -> Option<&Near> {
        self.near.as_deref()
    }

    /// Connects both links now, at once.
    pub(crate) async fn connect_now(&self) -> Result<(), Error> {
        futures_util::future::try_join(self.reads.connect_now(), self.busts.connect_now())
            .await
            .map(drop)
    }

    /// The lookup kept in the near-cache for `subject`, if one was read on
    /// the current connection and is still kept after an ordering round
    /// trip (see `near.rs`); `None`: read Redis.
    pub(crate) async fn near_hit(&self, subject: &Subject<'_>) -> Option<Result<Lookup, Error>> {
        let near = self.reads.near()?;
        let names = subject.names();
        let kept = near.get(names.entry())?;
        let session = self.reads.current()?;
        if !session.tracked
            || kept.conns != [session.conn_id]
            || !kept.read_the_same(names.versions())
        {
            return None;
        }
        if let Err(e) = self.reads.order(&session, &[]).await {
            return Some(Err(e));
        }
        near.serve(&kept).map(Ok)
    }

    /// The entry (at most `max_entry` bytes of it) and its versions, in one
    /// pipeline: a `GETRANGE` of each. A version of this server process under another
    /// replication id makes the session ask the server again (see
    /// `Session::drifted`), and the lookup is made once more.
    ///
    /// With the near-cache, a lookup that found an entry is kept.
    pub(crate) async fn lookup(&self, subject: &Subject<'_>) -> Result<Lookup, Error> {
        let names = subject.names();
        let near = self.reads.near();
        let max = self.max_entry;
        let mut asked = false;
        loop {
            // Registered before the lookup is sent: an invalidation of any
            // of its names until it is kept means it is not kept.
            let reading = near
                .map(|near| near.reading(std::iter::once(names.entry()).chain(names.versions())));
            let (session, replies) = self
                .reads
                .run(move |session| async move {
                    let mut pipe = redis::Pipeline::with_capacity(1 + names.versions().len());
                    read_entry(&mut pipe, names.entry(), max);
                    read_versions(&mut pipe, names.versions());
                    pipe.ignore_errors();
                    let replies = pipe.query_async(&mut session.conn.clone()).await?;
                    let replies = lookup_replies(replies)?;
                    Ok((session, replies))
                })
                .await?;
            // The dispatcher checks that every version was answered.
            let mut replies = replies.into_iter();
            let entry = replies.next().unwrap_or(Value::Nil);
            let versions: Vec<Value> = replies.collect();
            if !asked {
                let drifted = versions.iter().find_map(|v| match v {
                    Value::BulkString(raw) => session.drifted(raw),
                    _ => None,
                });
                if let Some(replid) = drifted.filter(|_| self.reads.may_check_drift()) {
                    self.reads.recheck(&session, Some(replid)).await?;
                    asked = true;
                    continue;
                }
            }
            let (entry, oversized) = decode_entry(entry, max).split();
            let versions: Vec<_> = versions
                .into_iter()
                .map(|v| decode_version(v, &session.run))
                .collect();
            if let (Some(reading), Some(blob), true) = (reading, &entry, session.tracked) {
                reading.keep(vec![session.conn_id], blob, &versions);
            }
            return Ok(Lookup {
                entry,
                oversized,
                versions,
                decoded: None,
            });
        }
    }

    /// Creates or replaces versions (see `RedisBackend::ensure`), in one
    /// pipeline, in this server's scope.
    pub(crate) async fn ensure(
        &self,
        versions: &[Wanted<'_>],
    ) -> Result<Vec<(Token, bool)>, Error> {
        let ours: Vec<Token> = versions.iter().map(|_| Token::random()).collect();
        let ours = &ours;
        let how = self.scripting;
        let (run, replies) = self
            .reads
            .run(|session| async move {
                let mut pipe = redis::pipe();
                for ((name, seen, ttl), token) in versions.iter().zip(ours) {
                    pipe.add_command(ensure_cmd(how, name, *seen, &session.run, token, *ttl));
                }
                pipe.ignore_errors();
                let mut conn = session.conn.clone();
                let mut replies: Vec<Value> = pipe.query_async(&mut conn).await?;
                if how == bust::Scripting::Eval && replies.iter().any(bust::is_no_script) {
                    bust::ADOPT.load().exec_async(&mut conn).await?;
                    replies = pipe.query_async(&mut conn).await?;
                }
                ending(&replies)?;
                Ok((session.run.clone(), replies))
            })
            .await?;
        bust::check(&replies, 0)?;
        replies
            .into_iter()
            .zip(ours)
            .map(|(reply, ours)| ensured(reply, &run, *ours))
            .collect()
    }

    pub(crate) async fn one(&self, cmd: redis::Cmd) -> Result<Value, Error> {
        self.reads
            .run(|session| async move { cmd.query_async(&mut session.conn.clone()).await })
            .await
    }

    /// The whole bust in one `EVALSHA`, followed in the same pipeline by a
    /// `WAIT` when replicas must acknowledge it: the `WAIT` runs on the
    /// connection that wrote the bust, so it covers it.
    pub(crate) async fn bust(
        &self,
        ns: &Namespace,
        bust: &Bust,
        ttl: Duration,
    ) -> Result<(), Error> {
        let acks = bust::acks_for(self.acks, self.replicas().await?);
        let (ack_timeout, how) = (self.ack_timeout, self.scripting);
        let replies = self
            .busts
            .run(|session| async move {
                let names: Vec<String> = bust.versions(ns).collect();
                let pipe = bust::scripted(how, &names, &session.run, ttl, acks, ack_timeout);
                let mut conn = session.conn.clone();
                let mut replies: Vec<Value> = pipe.query_async(&mut conn).await?;
                if how == bust::Scripting::Eval && bust::no_script(&replies) {
                    bust::BUST.load().exec_async(&mut conn).await?;
                    replies = pipe.query_async(&mut conn).await?;
                }
                ending(&replies)?;
                Ok(replies)
            })
            .await?;
        bust::check(&replies, acks)
    }

    /// A new epoch for the namespace, with a `WAIT` like any bust.
    pub(crate) async fn bust_everything(&self, ns: &Namespace) -> Result<(), Error> {
        let acks = bust::acks_for(self.acks, self.replicas().await?);
        let ack_timeout = self.ack_timeout;
        let name = epoch_version(ns);
        let replies = self
            .busts
            .run(|session| async move {
                let replies = bust::plain(&[name], &session.run, EPOCH_TTL, acks, ack_timeout)
                    .query_async::<Vec<Value>>(&mut session.conn.clone())
                    .await?;
                ending(&replies)?;
                Ok(replies)
            })
            .await?;
        bust::check(&replies, acks)
    }

    /// Healthy replicas of the server, asked again when older than a
    /// second; only needed with `ReplicaAcks::Auto`. A server that does not
    /// let us ask (an ACL without `info`) counts as having none, with one
    /// warning.
    async fn replicas(&self) -> Result<u32, Error> {
        if self.acks != ReplicaAcks::Auto {
            return Ok(0);
        }
        if let Some((learned, n)) = *crate::sync::lock(&self.replicas) {
            if learned.elapsed() < REPLICAS_REFRESH {
                return Ok(n);
            }
        }
        let asked = self
            .busts
            .run(|session| async move {
                redis::cmd("INFO")
                    .arg("replication")
                    .query_async::<String>(&mut session.conn.clone())
                    .await
            })
            .await;
        let n = match asked {
            Ok(info) => info
                .lines()
                .find_map(|l| l.strip_prefix("connected_slaves:"))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0),
            Err(e) if e.kind() == ErrorKind::Auth => {
                if !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    tracing::warn!(error = %e, "cachette: Redis does not let us ask for its replicas (`INFO replication`); invalidations will not wait for replicas");
                }
                0
            }
            Err(e) => return Err(e),
        };
        *crate::sync::lock(&self.replicas) = Some((Instant::now(), n));
        Ok(n)
    }
}
