//! Busts as Redis pipelines: the scripted bust of a single server, the
//! plain `SET`s of a cluster master's share, each with its `WAIT`, and
//! reading their replies.

use std::time::Duration;

use redis::{Pipeline, Value};

use super::scripts::{Scripting, BUST};
use super::wire::{millis, refused};
use crate::backend::redis::near::lease::Read;
use crate::error::{Error, ErrorKind};
use crate::pending::CHUNK;
use crate::replicas::ReplicaAcks;
use crate::version::{stored, Token};

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
    (acks, ack_timeout): (u32, Duration),
    lease: Option<&str>,
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
    end(&mut pipe, acks, ack_timeout, lease);
    pipe
}

/// One cluster master's share of a bust: a plain `SET` per version (a
/// script may only touch one slot) with a fresh token under `run`, then the
/// `WAIT`, in one pipeline.
pub(crate) fn plain(
    names: &[String],
    run: &str,
    ttl: Duration,
    (acks, ack_timeout): (u32, Duration),
    lease: Option<&str>,
) -> Pipeline {
    let mut pipe = redis::pipe();
    for name in names {
        pipe.cmd("SET")
            .arg(name)
            .arg(stored(run, &Token::random()))
            .arg("PX")
            .arg(millis(ttl));
    }
    end(&mut pipe, acks, ack_timeout, lease);
    pipe
}

/// Ends a bust pipeline: the reads of the namespace's lease `lease`, after
/// the writes (`near/lease.rs`), then the `WAIT`, if any; replies come back
/// whole, a failed command as a `Value::ServerError` in its place.
fn end(pipe: &mut Pipeline, acks: u32, ack_timeout: Duration, lease: Option<&str>) {
    if let Some(name) = lease {
        crate::backend::redis::near::lease::read_cmds(pipe, name);
    }
    if acks > 0 {
        pipe.cmd("WAIT").arg(acks).arg(millis(ack_timeout));
    }
    pipe.ignore_errors();
}

/// Takes the replies of the lease reads out of a bust pipeline's replies
/// (the last two before the `WAIT`): what the bust learned of the
/// namespace's lease.
pub(crate) fn leased(replies: &mut Vec<Value>, acks: u32) -> Read {
    let Some(at) = replies.len().checked_sub(2 + usize::from(acks > 0)) else {
        return Read::Unreadable;
    };
    let mut read = replies.drain(at..at + 2);
    match (read.next(), read.next()) {
        (Some(value), Some(pttl)) => {
            if matches!(pttl, Value::ServerError(_)) {
                crate::loud::warn_once("lease pttl refused", "", || {
                    "cachette: the server refused PTTL on the namespace's lease: every bust then takes a lease there for young and waits the longest lease; grant +pttl (guide::redis, \"Permissions (ACL)\")".into()
                });
            }
            Read::of(&value, &pttl)
        }
        _ => Read::Unreadable,
    }
}

/// Checks the replies of a bust pipeline: every write done, and the
/// `WAIT` (last) counting at least `acks` replicas.
pub(crate) fn check(replies: &[Value], acks: u32) -> Result<(), Error> {
    refused(replies)?;
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
