//! Where entries and versions live, as one dispatch level: [`Backend`]
//! is the embedded backend, a single Redis, a Redis Cluster or Upstash's
//! REST API, and each operation is matched once, here, where the bounds
//! on Redis operations are applied. Every variant stores the same bytes
//! and keeps the contract documented on each operation below; the cache
//! logic above them is shared.

pub(crate) mod memory;
#[cfg(feature = "redis")]
pub(crate) mod redis;

use std::time::Duration;

use crate::error::Error;
use crate::names::{Bust, EpochOf, Namespace, Subject};
use crate::version::Token;

#[cfg(feature = "redis")]
mod open;
mod stored;
pub(crate) use self::stored::{Lookup, NearStats, Wanted, EPOCH_TTL};

#[cfg(feature = "redis")]
pub(crate) use self::redis::Settings;
#[cfg(feature = "redis")]
use self::redis::{single::Single, wire};

/// A lookup from Redis, refused unless it read one version per name
/// asked (a reply is the server's to shape).
#[cfg(feature = "redis")]
fn shaped(subject: &Subject<'_>, lookup: Result<Lookup, Error>) -> Result<Lookup, Error> {
    let lookup = lookup?;
    let asked = subject.names().versions().count();
    if lookup.versions.len() != asked {
        return Err(misshapen("lookup", asked, lookup.versions.len()));
    }
    Ok(lookup)
}

/// A reply with another number of values than the names it answers.
#[cfg(feature = "redis")]
fn misshapen(what: &str, asked: usize, got: usize) -> Error {
    Error::new(
        crate::error::ErrorKind::Backend,
        format!("the {what} reply has {got} values for {asked} names; refused"),
    )
}

/// The most entries a batch read looks up in one request (per master on a
/// cluster): a larger batch is read in chunks of this many, one after the
/// other, so that no request or reply grows without bound.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) const BATCH_CHUNK: usize = 256;

/// Where entries and versions live.
///
/// The Redis variants' operations are polled inside cachette's runtime
/// context (`crate::background::entered`): their deadlines are on its
/// timer, whatever runtime, or nested executor, awaits them.
pub(crate) struct Backend {
    servers: Servers,
    /// The bound on every operation, reconnection included (connections
    /// have their own response timeout, but waiting for one is not
    /// covered by it); a bust, `WAIT` included, has its own.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    deadline: Duration,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    bust_deadline: Duration,
    /// What every bust waits after its acknowledgement, for lease reads
    /// (`redis/near/lease.rs`); none on the embedded backend.
    #[cfg(feature = "redis")]
    lease: Option<std::sync::Arc<self::redis::near::lease::Lease>>,
}

enum Servers {
    Memory(memory::MemoryBackend),
    /// One Redis (or a master with replicas).
    #[cfg(feature = "redis")]
    Single(Single),
    #[cfg(feature = "cluster")]
    Cluster(std::sync::Arc<self::redis::cluster::Cluster>),
    /// Upstash's REST API: one database, over HTTPS.
    #[cfg(feature = "upstash")]
    Rest(self::redis::rest::Rest),
}

impl Backend {
    /// The embedded backend.
    pub(crate) fn memory(memory: memory::MemoryBackend) -> Backend {
        Backend {
            servers: Servers::Memory(memory),
            deadline: Duration::MAX,
            bust_deadline: Duration::MAX,
            #[cfg(feature = "redis")]
            lease: None,
        }
    }

    /// `"memory"`, `"redis"`, `"redis-cluster"` or `"upstash"`.
    pub(crate) fn label(&self) -> &'static str {
        match &self.servers {
            Servers::Memory(_) => "memory",
            #[cfg(feature = "redis")]
            Servers::Single(_) => "redis",
            #[cfg(feature = "cluster")]
            Servers::Cluster(_) => "redis-cluster",
            #[cfg(feature = "upstash")]
            Servers::Rest(_) => "upstash",
        }
    }

    /// `db.system` for spans: `"memory"` for the embedded backend, else
    /// `"redis"` (a cluster and Upstash's REST API included).
    pub(crate) fn system(&self) -> &'static str {
        match &self.servers {
            Servers::Memory(_) => "memory",
            #[cfg(feature = "redis")]
            _ => "redis",
        }
    }

    /// The host and port of the one server this backend reaches, for
    /// spans (`server.address`, `server.port`): never a user or a
    /// password. `None` for the embedded backend and for a cluster (many
    /// servers).
    pub(crate) fn address(&self) -> Option<(&str, Option<u16>)> {
        let addr: &str = match &self.servers {
            Servers::Memory(_) => None?,
            // Not cut out of the identity (`host:port/db/user`): a user
            // name may hold slashes.
            #[cfg(feature = "redis")]
            Servers::Single(s) => s.address(),
            #[cfg(feature = "cluster")]
            Servers::Cluster(_) => None?,
            // `upstash:host:port/path`.
            #[cfg(feature = "upstash")]
            Servers::Rest(r) => {
                let rest = r.identity().strip_prefix("upstash:")?;
                rest.split_once('/').map_or(rest, |(addr, _)| addr)
            }
        };
        Some(match addr.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok() => (host, port.parse().ok()),
            _ => (addr, None),
        })
    }

    /// The server (or cluster), database and user this backend reaches,
    /// however the URLs spelled them: caches of one process with the same
    /// identity and namespace share their undelivered busts. `None` for
    /// the embedded backend, which shares nothing.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn identity(&self) -> Option<String> {
        match &self.servers {
            Servers::Memory(_) => None,
            #[cfg(feature = "redis")]
            Servers::Single(s) => Some(s.identity().to_string()),
            #[cfg(feature = "cluster")]
            Servers::Cluster(c) => Some(c.identity()),
            #[cfg(feature = "upstash")]
            Servers::Rest(r) => Some(r.identity().to_string()),
        }
    }

    /// Where the namespace's epoch lives for a key, if the backend keeps
    /// one (Redis, where a restart or an overflow of pending busts may
    /// need the whole namespace invalidated).
    pub(crate) fn epoch_of(&self) -> Option<EpochOf> {
        match &self.servers {
            Servers::Memory(_) => None,
            #[cfg(feature = "redis")]
            Servers::Single(_) => Some(self::redis::single::epoch_of),
            #[cfg(feature = "cluster")]
            Servers::Cluster(_) => Some(self::redis::cluster::epoch_of),
            #[cfg(feature = "upstash")]
            Servers::Rest(_) => Some(self::redis::single::epoch_of),
        }
    }

    /// The near-cache's counters: zero where there is none.
    pub(crate) fn near_stats(&self) -> NearStats {
        #[cfg(feature = "redis")]
        if let Some(near) = self.near() {
            return near.stats();
        }
        NearStats::default()
    }

    /// Reads the entry and its versions in one round trip: each version
    /// as seen, in the order of the subject's `names().versions()`. A
    /// reply that does not read one version per name asked is refused
    /// (a backend error, which fails open).
    pub(crate) async fn lookup(&self, subject: &Subject<'_>) -> Result<Lookup, Error> {
        crate::spans::backend(self.system(), "lookup", async {
            match &self.servers {
                Servers::Memory(m) => Ok(m.lookup(subject)),
                // A hit of the near-cache needs no timer of its own: its
                // ordering round trip is bounded once for all the callers
                // that share it.
                #[cfg(feature = "redis")]
                Servers::Single(s) => {
                    if let Some(hit) = s.leased_hit(subject) {
                        return shaped(subject, Ok(Lookup { near: true, ..hit }));
                    }
                    let read = entered(async {
                        match s.near_hit(subject).await {
                            Some(hit) => hit.map(|hit| Lookup { near: true, ..hit }),
                            None => within(self.deadline, s.lookup(subject)).await,
                        }
                    });
                    shaped(subject, read.await)
                }
                #[cfg(feature = "cluster")]
                Servers::Cluster(c) => {
                    let read = entered(async {
                        match c.near_hit(subject).await {
                            Some(hit) => hit.map(|hit| Lookup { near: true, ..hit }),
                            None => within(self.deadline, c.lookup(subject)).await,
                        }
                    });
                    shaped(subject, read.await)
                }
                #[cfg(feature = "upstash")]
                Servers::Rest(r) => shaped(subject, self.bounded(r.lookup(subject)).await),
            }
        })
        .await
    }

    /// The lookups of a batch read, in the order of `subjects`, and the
    /// number of requests sent for them: near-cache hits are served from
    /// memory (after one ordering round trip shared by all of them, or at
    /// once under a lease); the others are read in chunks of at most
    /// [`BATCH_CHUNK`] entries, one request per chunk (per master on a
    /// cluster), each within the command timeout. Each lookup is refused
    /// as [`lookup`](Self::lookup) refuses one.
    pub(crate) async fn lookup_many(
        &self,
        subjects: &[&Subject<'_>],
    ) -> Result<(Vec<Lookup>, usize), Error> {
        crate::spans::backend(self.system(), "lookup_many", async {
            match &self.servers {
                Servers::Memory(m) => Ok((subjects.iter().map(|s| m.lookup(s)).collect(), 0)),
                #[cfg(feature = "redis")]
                _ => self.lookup_many_remote(subjects).await,
            }
        })
        .await
    }

    /// [`lookup_many`](Self::lookup_many) on Redis.
    #[cfg(feature = "redis")]
    async fn lookup_many_remote(
        &self,
        subjects: &[&Subject<'_>],
    ) -> Result<(Vec<Lookup>, usize), Error> {
        let mut found: Vec<Option<Lookup>> = Vec::with_capacity(subjects.len());
        match &self.servers {
            Servers::Memory(_) => unreachable!("read by `lookup_many`"),
            Servers::Single(s) => {
                found.extend(subjects.iter().map(|subject| s.leased_hit(subject)));
                if s.near_cache().is_some() {
                    let near = subjects
                        .iter()
                        .zip(&found)
                        .map(|(subject, leased)| async move {
                            match leased {
                                Some(_) => None,
                                None => s.near_hit(subject).await,
                            }
                        });
                    let near = entered(futures_util::future::join_all(near)).await;
                    for (slot, hit) in found.iter_mut().zip(near) {
                        if let Some(Ok(hit)) = hit {
                            *slot = Some(hit);
                        }
                    }
                }
            }
            #[cfg(feature = "cluster")]
            Servers::Cluster(c) => {
                found.resize_with(subjects.len(), || None);
                if c.near_cache().is_some() {
                    let near = subjects.iter().map(|subject| c.near_hit(subject));
                    let near = entered(futures_util::future::join_all(near)).await;
                    for (slot, hit) in found.iter_mut().zip(near) {
                        if let Some(Ok(hit)) = hit {
                            *slot = Some(hit);
                        }
                    }
                }
            }
            #[cfg(feature = "upstash")]
            Servers::Rest(_) => found.resize_with(subjects.len(), || None),
        }
        {
            let missing: Vec<usize> = (0..subjects.len())
                .filter(|&i| found[i].is_none())
                .collect();
            let mut requests = 0;
            for chunk in missing.chunks(BATCH_CHUNK) {
                let asked: Vec<&Subject<'_>> = chunk.iter().map(|&i| subjects[i]).collect();
                let (lookups, sent) = match &self.servers {
                    Servers::Memory(_) => unreachable!("answered above"),
                    Servers::Single(s) => {
                        let read = within(self.deadline, s.lookup_many(&asked));
                        (entered(read).await?, 1)
                    }
                    #[cfg(feature = "cluster")]
                    Servers::Cluster(c) => {
                        entered(within(self.deadline, c.lookup_many(&asked))).await?
                    }
                    #[cfg(feature = "upstash")]
                    Servers::Rest(r) => (self.bounded(r.lookup_many(&asked)).await?, 1),
                };
                requests += sent;
                if lookups.len() != chunk.len() {
                    return Err(misshapen("batch lookup", chunk.len(), lookups.len()));
                }
                for (&i, lookup) in chunk.iter().zip(lookups) {
                    found[i] = Some(lookup);
                }
            }
            let lookups = subjects
                .iter()
                .zip(found)
                .map(|(subject, lookup)| match lookup {
                    Some(lookup) => shaped(subject, Ok(lookup)),
                    None => Err(Error::new(
                        crate::error::ErrorKind::Backend,
                        "an entry was left unread",
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((lookups, requests))
        }
    }

    /// Gives each version that a lookup saw missing (`None`) or foreign
    /// (the bytes seen) a fresh token, unless a concurrent caller did
    /// first, in which case its token is used; returns the tokens in
    /// order, each with whether this call wrote it. A reply with another
    /// number of tokens is refused.
    pub(crate) async fn ensure(
        &self,
        versions: &[Wanted<'_>],
    ) -> Result<Vec<(Token, bool)>, Error> {
        crate::spans::backend(self.system(), "ensure", async {
            let tokens = match &self.servers {
                Servers::Memory(m) => m.ensure(versions),
                #[cfg(feature = "redis")]
                Servers::Single(s) => self.bounded(s.ensure(versions)).await?,
                #[cfg(feature = "cluster")]
                Servers::Cluster(c) => self.bounded(c.ensure(versions)).await?,
                #[cfg(feature = "upstash")]
                Servers::Rest(r) => self.bounded(r.ensure(versions)).await?,
            };
            #[cfg(feature = "redis")]
            if tokens.len() != versions.len() {
                return Err(misshapen("version write", versions.len(), tokens.len()));
            }
            Ok(tokens)
        })
        .await
    }

    /// Drops versions this process created for a fill that did not happen
    /// (the result was not cacheable): a miss on an id that does not exist
    /// leaves nothing behind. Losing a version only causes misses (I2).
    pub(crate) async fn forget(&self, names: &[&str]) -> Result<(), Error> {
        crate::spans::backend(self.system(), "forget", async {
            match &self.servers {
                Servers::Memory(m) => m.forget(names),
                #[cfg(feature = "redis")]
                _ => {
                    for name in names {
                        self.one(name, wire::del(name)).await?;
                    }
                }
            }
            Ok(())
        })
        .await
    }

    /// Makes these versions, if they still hold these tokens (in memory; in
    /// Redis whatever they hold), live at least `ttl`: an entry whose value
    /// chose a longer TTL than its function's (`ttl_fn`, `none_ttl`) must
    /// not lose its versions first. Only ever lengthens.
    pub(crate) async fn extend(
        &self,
        versions: &[(&str, Token)],
        ttl: Duration,
    ) -> Result<(), Error> {
        crate::spans::backend(self.system(), "extend", async {
            match &self.servers {
                Servers::Memory(m) => m.extend(versions, ttl),
                #[cfg(feature = "redis")]
                _ => {
                    for (name, _) in versions {
                        self.one(name, wire::expire_at_least(name, ttl)).await?;
                    }
                }
            }
            Ok(())
        })
        .await
    }

    /// Stores an entry for `ttl`.
    pub(crate) async fn store(
        &self,
        entry: &str,
        blob: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), Error> {
        crate::spans::backend(self.system(), "store", async {
            match &self.servers {
                Servers::Memory(m) => m.store(entry, blob, ttl),
                // Requests carry text: the entry goes in base64 (`wire::armor`).
                #[cfg(feature = "upstash")]
                Servers::Rest(r) => {
                    let armored = wire::set(entry, wire::armor(&blob).as_bytes(), ttl);
                    self.bounded(r.one(armored)).await?;
                }
                #[cfg(feature = "redis")]
                _ => {
                    self.one(entry, wire::set(entry, &blob, ttl)).await?;
                }
            }
            Ok(())
        })
        .await
    }

    /// Takes the lock `key` with `token` unless someone holds it.
    pub(crate) async fn try_lock(
        &self,
        key: &str,
        token: Token,
        ttl: Duration,
    ) -> Result<bool, Error> {
        crate::spans::backend(self.system(), "lock", async {
            match &self.servers {
                Servers::Memory(m) => Ok(m.try_lock(key, token, ttl)),
                #[cfg(feature = "redis")]
                _ => Ok(wire::locked(
                    &self.one(key, wire::lock(key, token, ttl)).await?,
                )),
            }
        })
        .await
    }

    /// Releases the lock `key` if it is still held with `token`, with the
    /// unlock script (loaded first if the server does not know it).
    pub(crate) async fn unlock(&self, key: &str, token: Token) -> Result<(), Error> {
        crate::spans::backend(self.system(), "unlock", async {
            match &self.servers {
                Servers::Memory(m) => m.unlock(key, token),
                #[cfg(feature = "redis")]
                _ => {
                    use self::redis::scripts::{self, UNLOCK};
                    let how = self.scripting();
                    let release = scripts::unlock(how, key, token);
                    let send = || self.one(key, release.clone());
                    scripts::with_script(how, &UNLOCK, send, |load| self.one(key, load)).await?;
                }
            }
            Ok(())
        })
        .await
    }

    /// Replaces the namespace's epoch (every one, on a cluster): every
    /// entry of the namespace stops validating, in one step whatever their
    /// number.
    #[cfg_attr(not(feature = "redis"), allow(unused_variables))]
    pub(crate) async fn bust_everything(&self, ns: &Namespace) -> Result<(), Error> {
        crate::spans::backend(self.system(), "bust_everything", async {
            match &self.servers {
                Servers::Memory(m) => {
                    m.bust_everything();
                    Ok(())
                }
                #[cfg(feature = "redis")]
                Servers::Single(s) => {
                    let leased = self.bounded_bust(s.bust_everything(ns)).await?;
                    self.leases_passed(leased).await;
                    Ok(())
                }
                // Thousands of names, a chunk per pipeline: its own bounds.
                #[cfg(feature = "cluster")]
                Servers::Cluster(c) => {
                    entered(c.bust_everything(ns)).await?;
                    self.leases_passed_after_reading(ns).await;
                    Ok(())
                }
                #[cfg(feature = "upstash")]
                Servers::Rest(r) => {
                    let leased = self.bounded_bust(r.bust_everything(ns)).await?;
                    self.leases_passed(leased).await;
                    Ok(())
                }
            }
        })
        .await
    }

    /// Replaces the version of every key and tag in `bust`, in one round
    /// trip.
    pub(crate) async fn bust(
        &self,
        ns: &Namespace,
        bust: &Bust,
        ttl: Duration,
    ) -> Result<(), Error> {
        crate::spans::backend(self.system(), "bust", async {
            match &self.servers {
                Servers::Memory(m) => {
                    m.bust(ns, bust, ttl);
                    Ok(())
                }
                #[cfg(feature = "redis")]
                _ if bust.is_empty() => Ok(()),
                #[cfg(feature = "redis")]
                Servers::Single(s) => {
                    let leased = self.bounded_bust(s.bust(ns, bust, ttl)).await?;
                    self.leases_passed(leased).await;
                    Ok(())
                }
                #[cfg(feature = "cluster")]
                Servers::Cluster(c) => {
                    self.bounded_bust(c.bust(ns, bust, ttl)).await?;
                    self.leases_passed_after_reading(ns).await;
                    Ok(())
                }
                #[cfg(feature = "upstash")]
                Servers::Rest(r) => {
                    let leased = self.bounded_bust(r.bust(ns, bust, ttl)).await?;
                    self.leases_passed(leased).await;
                    Ok(())
                }
            }
        })
        .await
    }
}

/// Lease reads: what a bust waits once Redis acknowledged it.
#[cfg(feature = "redis")]
impl Backend {
    /// Waits, after a bust's acknowledgement, until no confirmation a
    /// reader could still serve a hit under predates it, given what the
    /// bust read of the namespace's lease (`Lease::writer_wait`, padded:
    /// see `redis/near/lease.rs`).
    async fn leases_passed(&self, leased: self::redis::near::lease::Read) {
        let Some(lease) = &self.lease else { return };
        if leased == self::redis::near::lease::Read::Missing {
            if let Some(create) = lease.create_cmd() {
                // Refused or unanswered: the next bust or reader tries again.
                let _ = self.one(&lease.name, create).await;
            }
        }
        let wait = lease.writer_wait(leased);
        if wait.is_zero() {
            return;
        }
        // Measured on the system's clock as well as on cachette's timer (a
        // sleep made inside its context: never the caller's, which may be
        // paused, moved by hand, shutting down, not driven, or missing): the
        // wait is real time. The timer rounds a sleep up to its next
        // millisecond, so a millisecond less is asked for while more than
        // one is left.
        let until = std::time::Instant::now() + wait;
        const TICK: Duration = Duration::from_millis(1);
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            let nap = if left > TICK { left - TICK } else { left };
            crate::background::sleep(nap).await;
        }
    }

    /// The same for a bust on a cluster, whose writes span masters: the
    /// namespace's lease is read once every write is acknowledged, its
    /// value then its lifetime (that order: see `Read::of`). Unanswered,
    /// it may be any lease: the bust waits the longest there is.
    #[cfg(feature = "cluster")]
    async fn leases_passed_after_reading(&self, ns: &Namespace) {
        use self::redis::near::lease::{self, Read};
        let name = crate::names::lease_name(ns);
        let unanswered = |e: &Error| e.is_connection() || e.is_timeout();
        let read = match self.one(&name, lease::value_cmd(&name)).await {
            Ok(value) => match self.one(&name, lease::pttl_cmd(&name)).await {
                Ok(pttl) => Read::of(&value, &pttl),
                Err(e) if unanswered(&e) => Read::Young,
                Err(_) => Read::Unreadable,
            },
            Err(e) if unanswered(&e) => Read::Young,
            Err(_) => Read::Unreadable,
        };
        self.leases_passed(read).await;
    }
}

/// The Redis variants' shared parts: one command about one name, and the
/// bounds.
#[cfg(feature = "redis")]
impl Backend {
    /// One command about the single name `name` (an entry, a version or a
    /// lock), to the server that holds it.
    #[cfg_attr(not(feature = "cluster"), allow(unused_variables))]
    async fn one(&self, name: &str, cmd: ::redis::Cmd) -> Result<::redis::Value, Error> {
        match &self.servers {
            Servers::Memory(_) => Err(Error::new(
                crate::error::ErrorKind::Backend,
                "the embedded backend takes no Redis commands",
            )),
            Servers::Single(s) => self.bounded(s.one(cmd)).await,
            #[cfg(feature = "cluster")]
            Servers::Cluster(c) => self.bounded(c.one(name, cmd)).await,
            #[cfg(feature = "upstash")]
            Servers::Rest(r) => self.bounded(r.one(cmd)).await,
        }
    }

    /// The near-cache, where the servers keep one.
    fn near(&self) -> Option<&self::redis::near::Near> {
        match &self.servers {
            Servers::Single(s) => s.near_cache(),
            #[cfg(feature = "cluster")]
            Servers::Cluster(c) => c.near_cache(),
            #[cfg(feature = "upstash")]
            Servers::Rest(_) => None,
            Servers::Memory(_) => None,
        }
    }

    /// How the servers' scripts are called.
    fn scripting(&self) -> self::redis::scripts::Scripting {
        match &self.servers {
            Servers::Single(s) => s.scripting(),
            #[cfg(feature = "cluster")]
            Servers::Cluster(c) => c.scripting(),
            #[cfg(feature = "upstash")]
            Servers::Rest(r) => r.scripting(),
            Servers::Memory(_) => self::redis::scripts::Scripting::Eval,
        }
    }

    /// Runs a Redis operation within the command timeout.
    async fn bounded<T>(
        &self,
        op: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        entered(within(self.deadline, op)).await
    }

    /// Runs a bust within its own bound (`WAIT` included).
    async fn bounded_bust<T>(
        &self,
        op: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        entered(within(self.bust_deadline, op)).await
    }
}

#[cfg(feature = "redis")]
use crate::background::entered;

/// Runs one operation within `deadline`.
#[cfg(feature = "redis")]
async fn within<T>(
    deadline: Duration,
    op: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(deadline, op).await {
        Ok(result) => result,
        Err(_) => Err(Error::new(
            crate::error::ErrorKind::Timeout,
            "Redis did not answer within the command timeout",
        )),
    }
}
