//! Busts and lock releases as Redis commands: the scripts, the pipelines
//! that carry them with a `WAIT`, and reading their replies.

use std::sync::OnceLock;
use std::time::Duration;

use redis::{Cmd, Pipeline, Script, Value};

use super::millis;
use crate::error::{Error, ErrorKind};
use crate::pending::CHUNK;
use crate::replicas::ReplicaAcks;
use crate::version::{stored, Token};

/// One of cachette's Lua scripts: sent with `EVALSHA` (loaded by the
/// application when Redis does not know it), or called with `FCALL` as a
/// function of the library an administrator loaded (`SERVER_FUNCTIONS`).
pub(crate) struct Lua {
    source: &'static str,
    sha: OnceLock<String>,
    function: &'static str,
}

impl Lua {
    const fn new(source: &'static str, function: &'static str) -> Lua {
        Lua {
            source,
            sha: OnceLock::new(),
            function,
        }
    }

    fn sha(&self) -> &str {
        self.sha
            .get_or_init(|| Script::new(self.source).get_hash().to_string())
    }

    /// The command that runs this script with `keys` (counted) then the
    /// arguments the caller adds.
    pub(crate) fn call(&self, how: Scripting, keys: &[&[u8]]) -> Cmd {
        let mut cmd = match how {
            Scripting::Eval => {
                let mut cmd = redis::cmd("EVALSHA");
                cmd.arg(self.sha());
                cmd
            }
            Scripting::Functions => {
                let mut cmd = redis::cmd("FCALL");
                cmd.arg(self.function);
                cmd
            }
        };
        cmd.arg(keys.len());
        for key in keys {
            cmd.arg(*key);
        }
        cmd
    }

    /// `SCRIPT LOAD` of this script, after a `NOSCRIPT`.
    pub(crate) fn load(&self) -> Cmd {
        let mut cmd = redis::cmd("SCRIPT");
        cmd.arg("LOAD").arg(self.source);
        cmd
    }
}

/// How cachette runs its scripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scripting {
    /// `EVALSHA`, loading the script with `SCRIPT LOAD` when Redis does
    /// not know it (the application needs `+evalsha +script|load`).
    Eval,
    /// `FCALL` of the functions an administrator loaded
    /// (`SERVER_FUNCTIONS`; the application needs `+fcall` only).
    Functions,
}

/// `lua/bust.lua`: KEYS are the version names, ARGV the TTL then one new
/// value per name.
pub(crate) static BUST: Lua = Lua::new(include_str!("../../lua/bust.lua"), "cachette_v2_bust");

/// `lua/adopt.lua`: KEYS[1] a version, ARGV the value seen, the new value
/// and its TTL.
pub(crate) static ADOPT: Lua = Lua::new(include_str!("../../lua/adopt.lua"), "cachette_v2_adopt");

/// `lua/unlock.lua`: KEYS[1] the lock, ARGV[1] the owner's token.
pub(crate) static UNLOCK: Lua =
    Lua::new(include_str!("../../lua/unlock.lua"), "cachette_v2_unlock");

/// cachette's scripts as one Redis function library (Redis 7), for an
/// administrator to load once with `FUNCTION LOAD REPLACE`, so that the
/// application needs `+fcall` rather than `+evalsha +script|load`. See
/// `CacheBuilder::server_functions`.
pub const SERVER_FUNCTIONS: &str = concat!(
    "#!lua name=cachette_v2\n",
    "local function bust(KEYS, ARGV)\n",
    include_str!("../../lua/bust.lua"),
    "\nend\n",
    "local function adopt(KEYS, ARGV)\n",
    include_str!("../../lua/adopt.lua"),
    "\nend\n",
    "local function unlock(KEYS, ARGV)\n",
    include_str!("../../lua/unlock.lua"),
    "\nend\n",
    "redis.register_function('cachette_v2_bust', bust)\n",
    "redis.register_function('cachette_v2_adopt', adopt)\n",
    "redis.register_function('cachette_v2_unlock', unlock)\n",
);

/// How many replica acknowledgements a bust waits for on a master with
/// `replicas` healthy replicas.
pub(crate) fn acks_for(setting: ReplicaAcks, replicas: u32) -> u32 {
    match setting {
        ReplicaAcks::Off => 0,
        ReplicaAcks::Require(n) => n,
        ReplicaAcks::Auto => replicas.min(1),
    }
}

/// A whole single-node bust: script calls giving every version a fresh
/// token under `run`, each over at most [`CHUNK`] names so that none holds
/// Redis for long, then a `WAIT` on the same connection when replicas must
/// hold it, in one pipeline.
pub(crate) fn scripted(
    how: Scripting,
    names: &[String],
    run: &str,
    ttl: Duration,
    acks: u32,
    ack_timeout: Duration,
) -> Pipeline {
    let mut pipe = redis::pipe();
    for chunk in names.chunks(CHUNK) {
        let keys: Vec<&[u8]> = chunk.iter().map(|n| n.as_bytes()).collect();
        let mut call = BUST.call(how, &keys);
        call.arg(millis(ttl));
        for _ in chunk {
            call.arg(stored(run, &Token::random()));
        }
        pipe.add_command(call);
    }
    wait(&mut pipe, acks, ack_timeout);
    pipe
}

/// One cluster master's share of a bust: a plain `SET` per version (a
/// script may only touch one slot) with a fresh token under `run`, then the
/// `WAIT`, in one pipeline.
pub(crate) fn plain(
    names: &[String],
    run: &str,
    ttl: Duration,
    acks: u32,
    ack_timeout: Duration,
) -> Pipeline {
    let mut pipe = redis::pipe();
    for name in names {
        pipe.cmd("SET")
            .arg(name)
            .arg(stored(run, &Token::random()))
            .arg("PX")
            .arg(millis(ttl));
    }
    wait(&mut pipe, acks, ack_timeout);
    pipe
}

/// Ends a bust pipeline: the `WAIT`, if any; replies come back whole, a
/// failed command as a `Value::ServerError` in its place.
fn wait(pipe: &mut Pipeline, acks: u32, ack_timeout: Duration) {
    if acks > 0 {
        pipe.cmd("WAIT").arg(acks).arg(millis(ack_timeout));
    }
    pipe.ignore_errors();
}

/// Replaces the version `name`, seen as `seen` (empty: missing), with
/// `value`, unless it changed since.
pub(crate) fn adopt(how: Scripting, name: &str, seen: &[u8], value: &[u8], ttl: Duration) -> Cmd {
    let mut cmd = ADOPT.call(how, &[name.as_bytes()]);
    cmd.arg(seen).arg(value).arg(millis(ttl));
    cmd
}

/// Releases `key` if `token` still holds it.
pub(crate) fn unlock(how: Scripting, key: &str, token: Token) -> Cmd {
    let mut cmd = UNLOCK.call(how, &[key.as_bytes()]);
    cmd.arg(token.as_bytes().as_slice());
    cmd
}

/// Checks the replies of a bust pipeline: every write done, and the
/// `WAIT` (last) counting at least `acks` replicas.
pub(crate) fn check(replies: &[Value], acks: u32) -> Result<(), Error> {
    for reply in replies {
        if let Value::ServerError(e) = reply {
            return Err(Error::from(redis::RedisError::from(e.clone())));
        }
    }
    if acks == 0 {
        return Ok(());
    }
    match replies.last() {
        Some(Value::Int(n)) if *n >= i64::from(acks) => Ok(()),
        other => Err(Error::new(
            ErrorKind::Timeout,
            format!("replicas did not acknowledge the invalidation in time (wanted {acks}, got {other:?})"),
        )),
    }
}

/// Whether the first reply of a bust is `NOSCRIPT`.
pub(crate) fn no_script(replies: &[Value]) -> bool {
    replies.first().is_some_and(is_no_script)
}

/// Whether a reply is `NOSCRIPT`.
pub(crate) fn is_no_script(reply: &Value) -> bool {
    matches!(reply, Value::ServerError(e) if e.kind() == Some(redis::ServerErrorKind::NoScript))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_that_counts_too_few_replicas_fails_the_bust() {
        assert!(check(&[Value::Okay, Value::Int(1)], 1).is_ok());
        assert!(check(&[Value::Okay, Value::Int(0)], 1).is_err());
        assert!(check(&[Value::Okay], 0).is_ok());
        assert_eq!(acks_for(ReplicaAcks::Auto, 3), 1);
        assert_eq!(acks_for(ReplicaAcks::Auto, 0), 0);
        assert_eq!(acks_for(ReplicaAcks::Require(2), 0), 2);
    }
}
