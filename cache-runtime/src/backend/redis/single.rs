//! A single Redis: one link for reads, fills and locks, one for busts and
//! the questions about replicas.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::Value;

use super::bust;
use super::connect::{self, Settings};
use super::link::{ending, Link};
use super::lookup;
use super::near::tracking::Tracking;
use super::near::{self, Near};
use super::scripts::{self, ensure_cmd, Scripting, ADOPT, BUST};
use super::wire::{ensured_all, lookup_replies, read_entry, read_versions};
use crate::backend::redis::near::lease::Read;
use crate::backend::stored::{Lookup, Wanted, EPOCH_TTL};
use crate::error::{Error, ErrorKind};
use crate::names::{lease_name, Bust, Kind, Name, Namespace, Subject};
use crate::replicas::ReplicaAcks;
use crate::version::Token;

pub(crate) struct Single {
    /// Most bytes read of an entry.
    max_entry: usize,
    scripting: Scripting,
    /// The server, database and user, however the URL spelled them.
    identity: String,
    /// The server alone (`connect::address`): what spans name.
    address: String,
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
        let near = settings.near_cache.map(|bytes| {
            Arc::new(
                Near::new(bytes, settings.keep_decoded, Some(settings.lease.clone()))
                    .with_events(settings.events.clone()),
            )
        });
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
            address: connect::address(&client),
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

    /// `host:port`, or a socket's path: never a user.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// The near-cache, if it was configured.
    pub(crate) fn near_cache(&self) -> Option<&Near> {
        self.near.as_deref()
    }

    /// How the server's scripts are called.
    pub(crate) fn scripting(&self) -> Scripting {
        self.scripting
    }

    /// Connects both links now, at once.
    pub(crate) async fn connect_now(&self) -> Result<(), Error> {
        futures_util::future::try_join(self.reads.connect_now(), self.busts.connect_now())
            .await
            .map(drop)
    }

    /// The lookup kept in the near-cache for `subject`, served after an
    /// ordering round trip (`near::hit::on_one`); `None`: read Redis.
    pub(crate) async fn near_hit(&self, subject: &Subject<'_>) -> Option<Result<Lookup, Error>> {
        near::hit::on_one(&self.reads, subject).await
    }

    /// The lookup kept in the near-cache for `subject`, served at once
    /// under a lease (`near::hit::leased`).
    pub(crate) fn leased_hit(&self, subject: &Subject<'_>) -> Option<Lookup> {
        near::hit::leased(&self.reads, subject)
    }

    /// The entry (at most `max_entry` bytes of it) and its versions, in one
    /// pipeline: a `GETRANGE` of each. A version of this server process under another
    /// replication id makes the session ask the server again (see
    /// `Session::drifted`), and the lookup is made once more.
    ///
    /// With the near-cache, a lookup that found an entry is kept.
    pub(crate) async fn lookup(&self, subject: &Subject<'_>) -> Result<Lookup, Error> {
        let names = subject.names();
        let max = self.max_entry;
        let read = || async move {
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
            Ok(replies
                .into_iter()
                .map(|reply| (reply, session.clone(), self.reads.clone()))
                .collect())
        };
        lookup::lookup(subject, self.reads.near().map(|n| &**n), max, read).await
    }

    /// The lookups of `subjects` (a batch read), in one pipeline: as
    /// [`lookup`](Self::lookup) for each. A version many of them share (a
    /// tag's, the epoch) is read once.
    pub(crate) async fn lookup_many(
        &self,
        subjects: &[&Subject<'_>],
    ) -> Result<Vec<Lookup>, Error> {
        let max = self.max_entry;
        let shared = super::lookup::Shared::of(subjects);
        let shared = &shared;
        let read = || async move {
            let (session, replies) = self
                .reads
                .run(move |session| async move {
                    let mut pipe = redis::Pipeline::with_capacity(shared.names.len());
                    for (name, entry) in &shared.names {
                        if *entry {
                            read_entry(&mut pipe, name, max);
                        } else {
                            read_versions(&mut pipe, std::iter::once(*name));
                        }
                    }
                    pipe.ignore_errors();
                    let replies = pipe.query_async(&mut session.conn.clone()).await?;
                    let replies = lookup_replies(replies)?;
                    Ok((session, replies))
                })
                .await?;
            Ok(shared.answers(replies, |reply| {
                (reply, session.clone(), self.reads.clone())
            }))
        };
        lookup::lookup_many(subjects, self.reads.near().map(|n| &**n), max, read).await
    }

    /// Creates or replaces versions (see `Backend::ensure`), in one
    /// pipeline, in this server's origin.
    pub(crate) async fn ensure(
        &self,
        versions: &[Wanted<'_>],
    ) -> Result<Vec<(Token, bool)>, Error> {
        let ours: Vec<Token> = versions.iter().map(|_| Token::random()).collect();
        let ours = &ours;
        let how = self.scripting;
        let send = || {
            self.reads.run(|session| async move {
                let mut pipe = redis::pipe();
                for ((name, seen, ttl), token) in versions.iter().zip(ours) {
                    pipe.add_command(ensure_cmd(how, name, *seen, &session.run, token, *ttl));
                }
                pipe.ignore_errors();
                let replies: Vec<Value> = pipe.query_async(&mut session.conn.clone()).await?;
                ending(&replies)?;
                Ok((replies, session.run.clone()))
            })
        };
        let (replies, run) = scripts::with_script(how, &ADOPT, send, |load| self.one(load)).await?;
        ensured_all(replies, &run, ours)
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
    ) -> Result<Read, Error> {
        let acks = bust::acks_for(self.acks, self.replicas().await?);
        let (ack_timeout, how) = (self.ack_timeout, self.scripting);
        let names: Vec<String> = bust.versions(ns).collect();
        let names = &names;
        let lease = &lease_name(ns);
        let send = || {
            self.busts.run(|session| async move {
                let pipe = bust::scripted(
                    how,
                    names,
                    &session.run,
                    ttl,
                    (acks, ack_timeout),
                    Some(lease),
                );
                let replies: Vec<Value> = pipe.query_async(&mut session.conn.clone()).await?;
                ending(&replies)?;
                Ok(replies)
            })
        };
        let load = |load: redis::Cmd| {
            self.busts
                .run(|session| async move { load.query_async(&mut session.conn.clone()).await })
        };
        let mut replies = scripts::with_script(how, &BUST, send, load).await?;
        let leased = bust::leased(&mut replies, acks);
        bust::check(&replies, acks)?;
        Ok(leased)
    }

    /// A new epoch for the namespace, with a `WAIT` like any bust.
    pub(crate) async fn bust_everything(&self, ns: &Namespace) -> Result<Read, Error> {
        let acks = bust::acks_for(self.acks, self.replicas().await?);
        let ack_timeout = self.ack_timeout;
        let name = epoch_version(ns);
        let lease = &lease_name(ns);
        let mut replies = self
            .busts
            .run(|session| async move {
                let pipe = bust::plain(
                    &[name],
                    &session.run,
                    EPOCH_TTL,
                    (acks, ack_timeout),
                    Some(lease),
                );
                let replies = pipe
                    .query_async::<Vec<Value>>(&mut session.conn.clone())
                    .await?;
                ending(&replies)?;
                Ok(replies)
            })
            .await?;
        let leased = bust::leased(&mut replies, acks);
        bust::check(&replies, acks)?;
        Ok(leased)
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
