//! The Redis backend, on a single Redis or a Redis Cluster.
//!
//! Costs, in round trips of latency:
//! - a lookup is one pipeline of bounded `GETRANGE`s, of the entry and of
//!   each of its versions (no name is ever read whole). On a cluster it is
//!   one pipeline per slot among them, each on the master of its slot, all
//!   sent at once: the entry and its key's version share a slot, each
//!   tag's version has its own;
//! - a fill is one `SET ... PX`; creating missing versions is one pipeline
//!   of the adopt script, a call per version (on a cluster, one call per
//!   version, sent at once);
//! - a bust of any number of keys and tags is one `EVALSHA` of
//!   `lua/bust.lua` on a single Redis; on a cluster, one pipeline of plain
//!   `SET`s per master touched, sent at once. Either way a `WAIT` in the
//!   same pipeline makes it return only once a replica holds it (see
//!   [`ReplicaAcks`](crate::ReplicaAcks));
//! - a stampede lock is `SET NX PX` with a random token, released by
//!   `lua/unlock.lua` only by its owner.
//!
//! Every server is reached through [`Link`]s, whose connections are bound
//! to the scope of the server they reached (its run and replication ids,
//! I10): versions are written and judged in that scope. Busts (and the questions about replicas) have
//! links of their own: a `WAIT` blocks the connection it is sent on, and
//! reads must not queue behind it.

pub(crate) mod bust;
#[cfg(feature = "cluster")]
pub(crate) mod cluster;
pub(crate) mod connect;
pub(crate) mod link;
pub(crate) mod near;
#[cfg(feature = "upstash")]
pub(crate) mod rest;
pub(crate) mod single;

use std::time::Duration;

use redis::Value;

use super::{Blob, Lookup, Wanted, EPOCH_TTL};
use crate::error::{Error, ErrorKind};
use crate::names::{Bust, Namespace, Subject};
use crate::version::{Head, Seen, Token, VERSION_READ};

pub(crate) use connect::Settings;

/// Which servers hold the data.
enum Servers {
    Single(single::Single),
    #[cfg(feature = "cluster")]
    Cluster(std::sync::Arc<cluster::Cluster>),
    /// Upstash's REST API: one database, over HTTPS.
    #[cfg(feature = "upstash")]
    Rest(rest::Rest),
}

pub(crate) struct RedisBackend {
    servers: Servers,
    /// An outer bound on every operation, reconnection included.
    deadline: Duration,
    /// The bound on a bust, `WAIT` included.
    bust_deadline: Duration,
    scripting: bust::Scripting,
}

impl Read {
    pub(crate) fn split(self) -> (Option<Blob>, bool) {
        match self {
            Read::None => (None, false),
            Read::Entry(b) => (Some(b), false),
            Read::Oversized => (None, true),
        }
    }
}

impl RedisBackend {
    /// Connects now and fails if the server cannot be reached or refuses us.
    pub(crate) async fn connect(url: &str, settings: &Settings) -> Result<Self, Error> {
        let single = single::Single::new(url, settings)?;
        single.connect_now().await?;
        Ok(Self::with(Servers::Single(single), settings))
    }

    /// Connects on first use; until then, and while Redis is unreachable,
    /// operations fail and annotated functions read through.
    pub(crate) fn lazy(url: &str, settings: &Settings) -> Result<Self, Error> {
        let single = single::Single::new(url, settings)?;
        Ok(Self::with(Servers::Single(single), settings))
    }

    /// Connects to a Redis Cluster through any of `nodes`, and fails if none
    /// can be reached or the cluster refuses us.
    #[cfg(feature = "cluster")]
    pub(crate) async fn connect_cluster(
        nodes: &[String],
        settings: &Settings,
    ) -> Result<Self, Error> {
        let cluster = cluster::Cluster::connect(nodes, settings).await?;
        Ok(Self::with(Servers::Cluster(cluster), settings))
    }

    /// Upstash's REST API at `url` with `token`; asks the server who it
    /// is before returning, and fails if it cannot.
    #[cfg(feature = "upstash")]
    pub(crate) async fn upstash(
        url: &str,
        token: &str,
        settings: &Settings,
    ) -> Result<Self, Error> {
        let rest = rest::Rest::new(url, token, settings)?;
        Self::within(settings.command_timeout, rest.connect_now()).await?;
        Ok(Self::with(Servers::Rest(rest), settings))
    }

    /// Upstash's REST API, first reached on first use.
    #[cfg(feature = "upstash")]
    pub(crate) fn upstash_lazy(url: &str, token: &str, settings: &Settings) -> Result<Self, Error> {
        let rest = rest::Rest::new(url, token, settings)?;
        Ok(Self::with(Servers::Rest(rest), settings))
    }

    fn with(servers: Servers, settings: &Settings) -> Self {
        RedisBackend {
            servers,
            deadline: settings.command_timeout,
            bust_deadline: settings.command_timeout * 2 + settings.ack_timeout,
            scripting: settings.scripting,
        }
    }

    /// The server (or cluster), database and user this backend reaches,
    /// however the URLs spelled them: caches of one process with the same
    /// identity and namespace share their undelivered busts.
    pub(crate) fn identity(&self) -> String {
        match &self.servers {
            Servers::Single(s) => s.identity().to_string(),
            #[cfg(feature = "cluster")]
            Servers::Cluster(c) => c.identity(),
            #[cfg(feature = "upstash")]
            Servers::Rest(r) => r.identity().to_string(),
        }
    }

    /// The near-cache's counters: hits, ordering round trips, invalidation
    /// messages applied (names), flushes, and the lookups it holds now.
    pub(crate) fn near_counters(&self) -> [u64; 5] {
        use std::sync::atomic::Ordering::Relaxed;
        let near = match &self.servers {
            Servers::Single(s) => s.near_cache(),
            #[cfg(feature = "cluster")]
            Servers::Cluster(c) => c.near_cache(),
            #[cfg(feature = "upstash")]
            Servers::Rest(_) => None,
        };
        near.map_or([0; 5], |near| {
            let c = &near.counters;
            [
                c.hits.load(Relaxed),
                c.orderings.load(Relaxed),
                c.invalidations.load(Relaxed),
                c.flushes.load(Relaxed),
                near.len(),
            ]
        })
    }

    pub(crate) fn epoch_of(&self) -> crate::names::EpochOf {
        match &self.servers {
            Servers::Single(_) => single::epoch_of,
            #[cfg(feature = "cluster")]
            Servers::Cluster(_) => cluster::epoch_of,
            #[cfg(feature = "upstash")]
            Servers::Rest(_) => single::epoch_of,
        }
    }

    /// `"redis"`, `"redis-cluster"` or `"upstash"`.
    pub(crate) fn label(&self) -> &'static str {
        match self.servers {
            Servers::Single(_) => "redis",
            #[cfg(feature = "cluster")]
            Servers::Cluster(_) => "redis-cluster",
            #[cfg(feature = "upstash")]
            Servers::Rest(_) => "upstash",
        }
    }

    /// Runs one operation within `deadline`. Connections have their own
    /// response timeout, but waiting for a connection is not covered by it.
    async fn within<T>(
        deadline: Duration,
        op: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(deadline, op).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                "Redis did not answer within the command timeout",
            )),
        }
    }

    pub(crate) async fn lookup(&self, subject: &Subject<'_>) -> Result<Lookup, Error> {
        // A hit of the near-cache needs no timer of its own: its ordering
        // round trip is bounded once for all the callers that share it.
        let hit = match &self.servers {
            Servers::Single(s) => s.near_hit(subject).await,
            #[cfg(feature = "cluster")]
            Servers::Cluster(c) => c.near_hit(subject).await,
            #[cfg(feature = "upstash")]
            Servers::Rest(_) => None,
        };
        if let Some(hit) = hit {
            return hit;
        }
        Self::within(self.deadline, async {
            match &self.servers {
                Servers::Single(s) => s.lookup(subject).await,
                #[cfg(feature = "cluster")]
                Servers::Cluster(c) => c.lookup(subject).await,
                #[cfg(feature = "upstash")]
                Servers::Rest(r) => r.lookup(subject).await,
            }
        })
        .await
    }

    pub(crate) async fn ensure(
        &self,
        versions: &[Wanted<'_>],
    ) -> Result<Vec<(Token, bool)>, Error> {
        Self::within(self.deadline, async {
            match &self.servers {
                Servers::Single(s) => s.ensure(versions).await,
                #[cfg(feature = "cluster")]
                Servers::Cluster(c) => c.ensure(versions).await,
                #[cfg(feature = "upstash")]
                Servers::Rest(r) => r.ensure(versions).await,
            }
        })
        .await
    }

    pub(crate) async fn bust_everything(&self, ns: &Namespace) -> Result<(), Error> {
        match &self.servers {
            Servers::Single(s) => Self::within(self.bust_deadline, s.bust_everything(ns)).await,
            // Thousands of names, a chunk per pipeline: its own bounds.
            #[cfg(feature = "cluster")]
            Servers::Cluster(c) => c.bust_everything(ns).await,
            #[cfg(feature = "upstash")]
            Servers::Rest(r) => Self::within(self.bust_deadline, r.bust_everything(ns)).await,
        }
    }

    pub(crate) async fn forget(&self, names: &[&str]) -> Result<(), Error> {
        for name in names {
            let mut cmd = redis::cmd("DEL");
            cmd.arg(*name);
            self.one(name, cmd).await?;
        }
        Ok(())
    }

    pub(crate) async fn extend(
        &self,
        versions: &[(&str, Token)],
        ttl: Duration,
    ) -> Result<(), Error> {
        for (name, _) in versions {
            // `GT`: never shortens (a bust's version may live longer).
            let mut cmd = redis::cmd("PEXPIRE");
            cmd.arg(*name).arg(millis(ttl)).arg("GT");
            self.one(name, cmd).await?;
        }
        Ok(())
    }

    pub(crate) async fn store(
        &self,
        entry: &str,
        blob: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), Error> {
        #[cfg(feature = "upstash")]
        if let Servers::Rest(r) = &self.servers {
            return Self::within(self.deadline, r.store(entry, &blob, ttl)).await;
        }
        let mut cmd = redis::cmd("SET");
        cmd.arg(entry).arg(blob).arg("PX").arg(millis(ttl));
        self.one(entry, cmd).await.map(drop)
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
        Ok(matches!(self.one(key, cmd).await?, Value::Okay))
    }

    pub(crate) async fn unlock(&self, key: &str, token: Token) -> Result<(), Error> {
        let cmd = bust::unlock(self.scripting, key, token);
        match self.one(key, cmd.clone()).await {
            Err(e) if e.is_no_script() && self.scripting == bust::Scripting::Eval => {
                self.one(key, bust::UNLOCK.load()).await?;
                self.one(key, cmd).await.map(drop)
            }
            other => other.map(drop),
        }
    }

    /// One command about the single name `name`.
    #[cfg_attr(not(feature = "cluster"), allow(unused_variables))]
    async fn one(&self, name: &str, cmd: redis::Cmd) -> Result<Value, Error> {
        Self::within(self.deadline, async {
            match &self.servers {
                Servers::Single(s) => s.one(cmd).await,
                #[cfg(feature = "cluster")]
                Servers::Cluster(c) => c.one(name, cmd).await,
                #[cfg(feature = "upstash")]
                Servers::Rest(r) => r.one(cmd).await,
            }
        })
        .await
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
        Self::within(self.bust_deadline, async {
            match &self.servers {
                Servers::Single(s) => s.bust(ns, bust, ttl).await,
                #[cfg(feature = "cluster")]
                Servers::Cluster(c) => c.bust(ns, bust, ttl).await,
                #[cfg(feature = "upstash")]
                Servers::Rest(r) => r.bust(ns, bust, ttl).await,
            }
        })
        .await
    }
}

/// Reads at most `max` bytes of `entry`, or its length in base64 when it
/// is armored (see [`armor`]), and one more, to tell a larger one: added to
/// a lookup's pipeline before its versions.
fn read_entry(pipe: &mut redis::Pipeline, entry: &str, max: usize) {
    pipe.add_command(entry_range(entry, max));
}

/// The `GETRANGE` of [`read_entry`].
pub(crate) fn entry_range(entry: &str, max: usize) -> redis::Cmd {
    let mut cmd = redis::Cmd::with_capacity(4, entry.len() + 32);
    cmd.arg("GETRANGE").arg(entry).arg(0).arg(armored_len(max));
    cmd
}

/// An entry as a request of the REST API carries it: in base64, since
/// requests carry text only. Lookups take entries in either form (see
/// [`decode_entry`]), so caches on one database over TCP and over REST
/// share them.
#[cfg_attr(not(feature = "upstash"), allow(dead_code))]
pub(crate) fn armor(blob: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(blob)
}

/// The length of `n` bytes in base64, at most what Redis takes as the end
/// of a range (`i64::MAX`).
pub(crate) fn armored_len(n: usize) -> usize {
    n.div_ceil(3)
        .saturating_mul(4)
        .min(usize::try_from(i64::MAX).unwrap_or(usize::MAX))
}

/// Reads each of `names`, versions, as far as [`VERSION_READ`]: one
/// `GETRANGE` each, added to a lookup's pipeline. A version's size is
/// fixed, so a longer value (planted under the name) is never read whole;
/// an `MGET` would read it all.
fn read_versions<'a>(pipe: &mut redis::Pipeline, names: impl Iterator<Item = &'a str>) {
    for name in names {
        pipe.add_command(version_range(name));
    }
}

/// The replies of a lookup's pipeline, sent with `ignore_errors`: a name
/// that holds another Redis type (`WRONGTYPE`, not cachette's) stays in
/// place as that error, and reads as foreign (a version, replaced by the
/// next fill) or as no entry (overwritten by the next fill), so it costs
/// its own key a miss, not the lookup; any other error fails the lookup.
fn lookup_replies(replies: Vec<Value>) -> redis::RedisResult<Vec<Value>> {
    for reply in &replies {
        if let Value::ServerError(e) = reply {
            if !is_wrong_type(e) {
                return Err(e.clone().into());
            }
        }
    }
    Ok(replies)
}

/// Whether a command failed on a name of another Redis type.
pub(crate) fn is_wrong_type(e: &redis::ServerError) -> bool {
    e.code() == "WRONGTYPE"
}

/// The `GETRANGE` of [`read_versions`].
fn version_range(name: &str) -> redis::Cmd {
    let mut cmd = redis::Cmd::with_capacity(4, name.len() + 16);
    cmd.arg("GETRANGE").arg(name).arg(0).arg(VERSION_READ - 1);
    cmd
}

/// The reply for an entry read by [`read_entry`]: a blob (unarmored, if it
/// was stored in base64), or `Oversized` when the stored value is longer
/// than `max` bytes. Bytes that are neither an entry nor base64 stay as
/// they are, and fail to decode like any foreign value.
fn decode_entry(value: Value, max: usize) -> Read {
    use base64::Engine as _;
    let stored = match value {
        // GETRANGE answers "" for a missing key.
        Value::BulkString(b) if b.is_empty() => return Read::None,
        Value::BulkString(b) if b.len() > armored_len(max) => return Read::Oversized,
        Value::BulkString(b) => b,
        _ => return Read::None,
    };
    let bytes = if crate::entry::looks_binary(&stored) {
        stored
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(&stored)
            .unwrap_or(stored)
    };
    if bytes.len() > max {
        Read::Oversized
    } else {
        Read::Entry(Blob::Owned(bytes))
    }
}

/// What a lookup found under an entry's name.
pub(crate) enum Read {
    None,
    Entry(Blob),
    /// Longer than any entry cachette writes: not read whole.
    Oversized,
}

/// The reply for a version read by [`read_versions`], on a server whose
/// scope is `run`.
fn decode_version(value: Value, run: &str) -> Seen {
    match value {
        // GETRANGE answers "" for a missing key; an empty value is no
        // version either, and is replaced the same way.
        Value::BulkString(b) if b.is_empty() => Seen::Missing,
        Value::BulkString(b) => Seen::read(Some(&b), run),
        Value::Nil => Seen::Missing,
        // Another Redis type under a version's name (`WRONGTYPE`, see
        // `lookup_replies`): not cachette's, and replaced as one seen ''.
        _ => Seen::Foreign(Head::of(b"")),
    }
}

/// Creates or replaces one version on a server whose scope is `run`, with
/// the adopt script: `seen` is what the lookup saw of it (`None`:
/// missing), and the reply, read by [`ensured`], is at most
/// [`VERSION_READ`] bytes of what is in place.
fn ensure_cmd(
    how: bust::Scripting,
    name: &str,
    seen: Option<&[u8]>,
    run: &str,
    ours: &Token,
    ttl: Duration,
) -> redis::Cmd {
    let value = crate::version::stored(run, ours);
    bust::adopt(how, name, seen.unwrap_or_default(), &value, ttl)
}

/// What an [`ensure_cmd`] left in place: our token (and that we wrote
/// it), or the one a concurrent caller of this server wrote first.
fn ensured(reply: Value, run: &str, ours: Token) -> Result<(Token, bool), Error> {
    let now = match reply {
        Value::BulkString(b) => b,
        other => {
            return Err(Error::new(
                ErrorKind::Backend,
                format!(
                    "unexpected reply when creating a version: {}",
                    kind_of(&other)
                ),
            ))
        }
    };
    match Seen::read(Some(&now), run) {
        Seen::Current(token) => Ok((token, token == ours)),
        _ => Err(Error::new(
            ErrorKind::Backend,
            "a version was rewritten by another server, or by something else than cachette",
        )),
    }
}

/// What kind of reply `v` is, without its content (which came from the
/// server, and may be large).
pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Int(_) => "an integer",
        Value::BulkString(_) => "a string",
        Value::Array(_) => "an array",
        Value::SimpleString(_) | Value::Okay => "a status",
        Value::ServerError(_) => "an error",
        _ => "another type",
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    crate::policy::millis(d).clamp(1, MAX_PX)
}

/// The longest TTL written, in milliseconds (about 31,700 years): Redis
/// refuses an expiry past the range of its clock, so longer ones (up to
/// `Duration::MAX`) are kept this long.
const MAX_PX: u64 = 1_000_000_000_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_read_in_either_form_and_bounded_once_unarmored() {
        let binary = vec![0xCA, 3, 0, 1, 2, 3];
        for stored in [binary.clone(), armor(&binary).into_bytes()] {
            match decode_entry(Value::BulkString(stored), 6) {
                Read::Entry(b) => assert_eq!(&*b, &binary[..]),
                _ => panic!("not read"),
            }
        }
        let long = armor(&[0xCA; 7]).into_bytes();
        assert!(matches!(
            decode_entry(Value::BulkString(long), 6),
            Read::Oversized
        ));
        let long = vec![0xCA; 7];
        assert!(matches!(
            decode_entry(Value::BulkString(long), 6),
            Read::Oversized
        ));
        // Neither form: kept as it is, to fail decoding.
        let foreign = b"not an entry".to_vec();
        match decode_entry(Value::BulkString(foreign.clone()), 100) {
            Read::Entry(b) => assert_eq!(&*b, &foreign[..]),
            _ => panic!("not read"),
        }
        assert_eq!(armored_len(6), 8);
        assert_eq!(armored_len(7), 12);
    }
}
