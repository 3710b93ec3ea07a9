//! Redis over Upstash's REST API: the same commands, entries and versions
//! as over TCP, carried by HTTPS requests (see `batch.rs`).
//!
//! Costs, in requests:
//! - a lookup is one request: `GETRANGE` of the entry and of each of its
//!   versions, and the server's `INFO server replication` after them;
//! - a fill is one `SET ... PX` of the entry, armored in base64: a request
//!   carries text only;
//! - creating missing versions is one request of the adopt script, a call
//!   per version;
//! - a bust of any number of keys and tags is one request of `EVALSHA` of
//!   `lua/bust.lua` (or `FCALL`, with server functions), followed by a
//!   `WAIT` when replicas must hold it;
//! - concurrent callers share requests (see `batch.rs`).
//!
//! A request has no connection to be bound to, so the server's origin (I10)
//! is asked in every lookup's request, after its reads: versions are judged
//! under the origin of the server that answered that very request. A server
//! restarted from older data answers with another run id, and everything
//! it brought back is a miss. A server that does not report its run id is
//! refused, as over TCP.

mod batch;
mod client;
mod protocol;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::Value;

use super::bust;
use super::connect::Settings;
use super::near::lease::Read;
use super::scripts::{self, ensure_cmd, Lua, Scripting, ADOPT, BUST};
use super::wire::{decode_entry, decode_version, ensured_all, entry_range, version_range};
use crate::backend::stored::EPOCH_TTL;
use crate::backend::stored::{Lookup, Wanted};
use crate::error::{Error, ErrorKind};
use crate::names::{lease_name, Bust, Namespace, Subject};
use crate::replicas::ReplicaAcks;
use crate::version::Token;

pub(crate) struct Rest {
    http: Arc<batch::Http>,
    identity: String,
    /// Most bytes of an entry, unarmored.
    max_entry: usize,
    /// Replicas that must hold a bust before it returns (`WAIT`).
    acks: u32,
    /// How scripts run: `EVALSHA`, or `FCALL` of the functions an
    /// administrator loaded.
    scripting: Scripting,
    ack_timeout: Duration,
    /// The origin the server reported last: new versions are written under
    /// it. One that is out of date only makes them foreign (misses).
    origin: Mutex<Arc<str>>,
}

/// The origin versions are written under before the server reported one:
/// not hex, so never a server's (they are foreign, and only cost a miss).
const UNKNOWN: &str = "????????????????";

impl Rest {
    pub(crate) fn new(url: &str, token: &str, settings: &Settings) -> Result<Rest, Error> {
        // The near-cache (`settings.near_cache`, on by default) needs
        // invalidation messages on a connection (`CLIENT TRACKING`), which
        // requests cannot carry: it is off here.
        let acks = match settings.acks {
            ReplicaAcks::Require(n) => n,
            // Replicas cannot be counted over REST (`INFO replication` is
            // not answered there).
            ReplicaAcks::Auto | ReplicaAcks::Off => 0,
        };
        let http = batch::Http::new(
            url,
            token,
            &batch::Options {
                connect_timeout: settings.connect_timeout,
                request_timeout: settings.command_timeout + settings.ack_timeout,
                #[cfg(feature = "tls")]
                root_ca: settings.root_ca.clone(),
                #[cfg(not(feature = "tls"))]
                root_ca: None,
            },
        )?;
        let identity = {
            let parsed = url::Url::parse(url).ok();
            let host = parsed
                .as_ref()
                .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)));
            let path = parsed
                .as_ref()
                .map_or("", |u| u.path().trim_end_matches('/'));
            format!(
                "upstash:{}{path}",
                host.unwrap_or_default().to_ascii_lowercase()
            )
        };
        Ok(Rest {
            http: Arc::new(http),
            identity,
            max_entry: settings.max_entry_bytes,
            acks,
            scripting: settings.scripting,
            ack_timeout: settings.ack_timeout,
            origin: Mutex::new(Arc::from(UNKNOWN)),
        })
    }

    pub(crate) fn identity(&self) -> &str {
        &self.identity
    }

    /// Asks the server who it is: fails if it cannot be reached, refuses
    /// the token, or does not report its run id.
    pub(crate) async fn connect_now(&self) -> Result<(), Error> {
        let mut replies = self.http.run([], true).await?;
        self.origin_of(replies.pop()).map(drop)
    }

    /// The origin in an `INFO server replication` reply, remembered for the
    /// versions written next.
    fn origin_of(&self, info: Option<Value>) -> Result<Arc<str>, Error> {
        let info = match info {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(&b).into_owned(),
            Some(Value::ServerError(e)) => return Err(Error::from(redis::RedisError::from(e))),
            _ => String::new(),
        };
        let Some(origin) = super::link::origin(&info, &info) else {
            return Err(Error::new(
                ErrorKind::Backend,
                format!(
                    "{} does not report its run id (INFO server): a restart from older \
                     data could not be told apart, so cachette does not cache on it",
                    self.http.target
                ),
            ));
        };
        let mut last = crate::sync::lock(&self.origin);
        if **last != *origin {
            if **last != *UNKNOWN {
                // Restarted or replaced: its sync tokens start again.
                self.http.forget_sync();
            }
            *last = Arc::from(origin);
        }
        Ok(last.clone())
    }

    fn origin(&self) -> Arc<str> {
        crate::sync::lock(&self.origin).clone()
    }

    /// The entry and its versions, in one request, judged under the origin
    /// the same request reported after reading them.
    pub(crate) async fn lookup(&self, subject: &Subject<'_>) -> Result<Lookup, Error> {
        let names = subject.names();
        let commands: Vec<redis::Cmd> = std::iter::once(entry_range(names.entry(), self.max_entry))
            .chain(names.versions().map(version_range))
            .collect();
        let mut replies = self.http.run(&commands, true).await?;
        // The request asked for the origin: it ends with the `INFO` it added.
        if replies.len() != commands.len() + 1 {
            return Err(Error::new(
                ErrorKind::Backend,
                format!(
                    "a lookup's reply has {} values for {} commands; refused",
                    replies.len(),
                    commands.len() + 1
                ),
            ));
        }
        let origin = self.origin_of(replies.pop())?;
        let mut replies = replies.into_iter();
        let entry = replies.next().unwrap_or(Value::Nil);
        let (entry, oversized) = decode_entry(entry, self.max_entry).split();
        let mut versions = Vec::with_capacity(replies.len());
        for v in replies {
            // Another Redis type reads as foreign (see `lookup_replies`).
            match v {
                Value::ServerError(e) if !super::wire::is_wrong_type(&e) => {
                    return Err(Error::from(redis::RedisError::from(e)))
                }
                v => versions.push(decode_version(v, &origin)),
            }
        }
        Ok(Lookup {
            entry,
            oversized,
            versions,
            decoded: None,
            near: false,
        })
    }

    /// The lookups of `subjects` (a batch read), in one request: as
    /// [`lookup`](Self::lookup) for each.
    pub(crate) async fn lookup_many(
        &self,
        subjects: &[&Subject<'_>],
    ) -> Result<Vec<Lookup>, Error> {
        // A version many subjects share (a tag's, the epoch) is read once.
        let shared = super::lookup::Shared::of(subjects);
        let commands: Vec<redis::Cmd> = shared
            .names
            .iter()
            .map(|(name, entry)| {
                if *entry {
                    entry_range(name, self.max_entry)
                } else {
                    version_range(name)
                }
            })
            .collect();
        let mut replies = self.http.run(&commands, true).await?;
        if replies.len() != commands.len() + 1 {
            return Err(Error::new(
                ErrorKind::Backend,
                format!(
                    "a lookup's reply has {} values for {} commands; refused",
                    replies.len(),
                    commands.len() + 1
                ),
            ));
        }
        let origin = self.origin_of(replies.pop())?;
        let mut lookups = Vec::with_capacity(subjects.len());
        for (subject, replies) in subjects.iter().zip(shared.answers(replies, |v| v)) {
            let mut replies = replies.into_iter();
            let entry = replies.next().unwrap_or(Value::Nil);
            let (entry, oversized) = decode_entry(entry, self.max_entry).split();
            let mut versions = Vec::with_capacity(subject.names().versions().len());
            for v in replies.by_ref().take(subject.names().versions().len()) {
                match v {
                    Value::ServerError(e) if !super::wire::is_wrong_type(&e) => {
                        return Err(Error::from(redis::RedisError::from(e)))
                    }
                    v => versions.push(decode_version(v, &origin)),
                }
            }
            lookups.push(Lookup {
                entry,
                oversized,
                versions,
                decoded: None,
                near: false,
            });
        }
        Ok(lookups)
    }

    /// Creates or replaces versions (see `Backend::ensure`), in one
    /// request, under the origin last reported.
    pub(crate) async fn ensure(
        &self,
        versions: &[Wanted<'_>],
    ) -> Result<Vec<(Token, bool)>, Error> {
        let origin = self.origin();
        let ours: Vec<Token> = versions.iter().map(|_| Token::random()).collect();
        let commands: Vec<redis::Cmd> = versions
            .iter()
            .zip(&ours)
            .map(|((name, seen, ttl), token)| {
                ensure_cmd(self.scripting, name, *seen, &origin, token, *ttl)
            })
            .collect();
        let commands: Vec<&redis::Cmd> = commands.iter().collect();
        let replies = self.scripted(&commands, &ADOPT).await?;
        ensured_all(replies, &origin, &ours)
    }

    /// How the server's scripts are called.
    pub(crate) fn scripting(&self) -> Scripting {
        self.scripting
    }

    /// One command; a refusal is an error.
    pub(crate) async fn one(&self, cmd: redis::Cmd) -> Result<Value, Error> {
        match self.http.run([&cmd], false).await?.pop() {
            Some(Value::ServerError(e)) => Err(Error::from(redis::RedisError::from(e))),
            Some(value) => Ok(value),
            None => Err(Error::new(ErrorKind::Backend, "no reply")),
        }
    }

    /// The whole bust in one request: the script, then a `WAIT` when
    /// replicas must hold it.
    pub(crate) async fn bust(
        &self,
        ns: &Namespace,
        bust: &Bust,
        ttl: Duration,
    ) -> Result<Read, Error> {
        let names: Vec<String> = bust.versions(ns).collect();
        let lease = lease_name(ns);
        let pipe = bust::scripted(
            self.scripting,
            &names,
            &self.origin(),
            ttl,
            (self.acks, self.ack_timeout),
            Some(&lease),
        );
        let commands: Vec<&redis::Cmd> = pipe.cmd_iter().collect();
        let mut replies = self.scripted(&commands, &BUST).await?;
        let leased = bust::leased(&mut replies, self.acks);
        bust::check(&replies, self.acks)?;
        Ok(leased)
    }

    /// A new epoch for the namespace, with a `WAIT` like any bust.
    pub(crate) async fn bust_everything(&self, ns: &Namespace) -> Result<Read, Error> {
        let name = super::single::epoch_version(ns);
        let lease = lease_name(ns);
        let pipe = bust::plain(
            &[name],
            &self.origin(),
            EPOCH_TTL,
            (self.acks, self.ack_timeout),
            Some(&lease),
        );
        let mut replies = self.http.run(pipe.cmd_iter(), false).await?;
        let leased = bust::leased(&mut replies, self.acks);
        bust::check(&replies, self.acks)?;
        Ok(leased)
    }

    /// Runs `commands`, loading `script` and running them again when the
    /// server did not know it (its script cache does not survive a
    /// restart). Running them again is safe: each writes what it wrote.
    async fn scripted(&self, commands: &[&redis::Cmd], script: &Lua) -> Result<Vec<Value>, Error> {
        let send = || self.http.run(commands.iter().copied(), false);
        scripts::with_script(self.scripting, script, send, |load| self.one(load)).await
    }
}
