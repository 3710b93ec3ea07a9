//! Busts and lock releases as Redis commands: the scripts, the pipelines
//! that carry them with a `WAIT`, and reading their replies.

use std::sync::LazyLock;
use std::time::Duration;

use redis::{Cmd, Pipeline, Script, Value};

use super::millis;
use crate::error::{Error, ErrorKind};
use crate::pending::CHUNK;
use crate::replicas::ReplicaAcks;
use crate::version::{stored, Token};

/// `lua/bust.lua`: KEYS are the version names, ARGV the TTL then one new
/// token per name.
static BUST: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../lua/bust.lua")));

/// `lua/adopt.lua`: KEYS[1] a version, ARGV the value seen, the new value
/// and its TTL.
static ADOPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../lua/adopt.lua")));

/// `lua/unlock.lua`: KEYS[1] the lock, ARGV[1] the owner's token.
static UNLOCK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/unlock.lua")));

/// How many replica acknowledgements a bust waits for on a master with
/// `replicas` healthy replicas.
pub(crate) fn acks_for(setting: ReplicaAcks, replicas: u32) -> u32 {
    match setting {
        ReplicaAcks::Off => 0,
        ReplicaAcks::Require(n) => n,
        ReplicaAcks::Auto => replicas.min(1),
    }
}

/// A whole single-node bust: script invocations giving every version a
/// fresh token under `run`, each over at most [`CHUNK`] names so that none
/// holds Redis for long, then a `WAIT` on the same connection when replicas
/// must hold it, in one pipeline.
pub(crate) fn scripted(
    names: &[String],
    run: &str,
    ttl: Duration,
    acks: u32,
    ack_timeout: Duration,
) -> Pipeline {
    let mut pipe = redis::pipe();
    for chunk in names.chunks(CHUNK) {
        let mut invocation = BUST.prepare_invoke();
        invocation.key(chunk).arg(millis(ttl));
        for _ in chunk {
            invocation.arg(stored(run, &Token::random()));
        }
        pipe.invoke_script(&invocation);
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
pub(crate) fn adopt(name: &str, seen: &[u8], value: &[u8], ttl: Duration) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(ADOPT.get_hash())
        .arg(1)
        .arg(name)
        .arg(seen)
        .arg(value)
        .arg(millis(ttl));
    cmd
}

/// `SCRIPT LOAD` of the adopt script, after a `NOSCRIPT`.
pub(crate) fn load_adopt() -> Cmd {
    let mut cmd = redis::cmd("SCRIPT");
    cmd.arg("LOAD").arg(include_str!("../../lua/adopt.lua"));
    cmd
}

/// `SCRIPT LOAD` of the bust script, after a `NOSCRIPT`.
pub(crate) fn load_bust() -> Cmd {
    let mut cmd = redis::cmd("SCRIPT");
    cmd.arg("LOAD").arg(include_str!("../../lua/bust.lua"));
    cmd
}

/// Releases `key` if `token` still holds it.
pub(crate) fn unlock(key: &str, token: Token) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(UNLOCK.get_hash())
        .arg(1)
        .arg(key)
        .arg(token.as_bytes().as_slice());
    cmd
}

/// `SCRIPT LOAD` of the unlock script, after a `NOSCRIPT`.
pub(crate) fn load_unlock() -> Cmd {
    let mut cmd = redis::cmd("SCRIPT");
    cmd.arg("LOAD").arg(include_str!("../../lua/unlock.lua"));
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
