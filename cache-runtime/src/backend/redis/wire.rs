//! Redis commands as cachette sends them, and their replies read back:
//! the bounded reads of a lookup, the version writes of a fill, entries
//! in either stored form, and the single-name commands (delete, expire,
//! store, lock) every server kind sends the same way.

use std::time::Duration;

use redis::Value;

use crate::backend::stored::Blob;
use crate::error::{Error, ErrorKind};
use crate::version::{Head, Seen, Token, VERSION_READ};

/// Reads at most `max` bytes of `entry`, or its length in base64 when it
/// is armored (see [`armor`]), and one more, to tell a larger one: added to
/// a lookup's pipeline before its versions.
pub(crate) fn read_entry(pipe: &mut redis::Pipeline, entry: &str, max: usize) {
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
pub(crate) fn read_versions<'a>(pipe: &mut redis::Pipeline, names: impl Iterator<Item = &'a str>) {
    for name in names {
        pipe.add_command(version_range(name));
    }
}

/// The replies of a lookup's pipeline, sent with `ignore_errors`: a name
/// that holds another Redis type (`WRONGTYPE`, not cachette's) stays in
/// place as that error, and reads as foreign (a version, replaced by the
/// next fill) or as no entry (overwritten by the next fill), so it costs
/// its own key a miss, not the lookup; any other error fails the lookup.
pub(crate) fn lookup_replies(replies: Vec<Value>) -> redis::RedisResult<Vec<Value>> {
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
pub(crate) fn version_range(name: &str) -> redis::Cmd {
    let mut cmd = redis::Cmd::with_capacity(4, name.len() + 16);
    cmd.arg("GETRANGE").arg(name).arg(0).arg(VERSION_READ - 1);
    cmd
}

/// The reply for an entry read by [`read_entry`]: a blob (unarmored, if it
/// was stored in base64), or `Oversized` when the stored value is longer
/// than `max` bytes. Bytes that are neither an entry nor base64 stay as
/// they are, and fail to decode like any foreign value.
pub(crate) fn decode_entry(value: Value, max: usize) -> Read {
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

impl Read {
    /// The entry, and whether one was there but too long to read.
    pub(crate) fn split(self) -> (Option<Blob>, bool) {
        match self {
            Read::None => (None, false),
            Read::Entry(b) => (Some(b), false),
            Read::Oversized => (None, true),
        }
    }
}

/// The reply for a version read by [`read_versions`], on a server whose
/// origin is `run`.
pub(crate) fn decode_version(value: Value, run: &str) -> Seen {
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

/// What a `scripts::ensure_cmd` left in place: our token (and that we wrote
/// it), or the one a concurrent caller of this server wrote first.
pub(crate) fn ensured(reply: Value, run: &str, ours: Token) -> Result<(Token, bool), Error> {
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

/// The first refusal among a pipeline's replies (sent with
/// `ignore_errors`), as an error.
pub(crate) fn refused(replies: &[Value]) -> Result<(), Error> {
    for reply in replies {
        if let Value::ServerError(e) = reply {
            return Err(Error::from(redis::RedisError::from(e.clone())));
        }
    }
    Ok(())
}

/// What a pipeline of `scripts::ensure_cmd`s left in place, one version each,
/// in order: a refusal fails them all.
pub(crate) fn ensured_all(
    replies: Vec<Value>,
    run: &str,
    ours: &[Token],
) -> Result<Vec<(Token, bool)>, Error> {
    refused(&replies)?;
    replies
        .into_iter()
        .zip(ours)
        .map(|(reply, ours)| ensured(reply, run, *ours))
        .collect()
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

/// Deletes `name`.
pub(crate) fn del(name: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("DEL");
    cmd.arg(name);
    cmd
}

/// Makes `name` live at least `ttl`; `GT` never shortens it (a bust's
/// version may live longer).
pub(crate) fn expire_at_least(name: &str, ttl: Duration) -> redis::Cmd {
    let mut cmd = redis::cmd("PEXPIRE");
    cmd.arg(name).arg(millis(ttl)).arg("GT");
    cmd
}

/// Stores `value` under `name` for `ttl`.
pub(crate) fn set(name: &str, value: &[u8], ttl: Duration) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(name).arg(value).arg("PX").arg(millis(ttl));
    cmd
}

/// Takes the lock `key` with `token` unless someone holds it: answered
/// `OK` when taken (see [`locked`]).
pub(crate) fn lock(key: &str, token: Token, ttl: Duration) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key)
        .arg(token.as_bytes().as_slice())
        .arg("NX")
        .arg("PX")
        .arg(millis(ttl));
    cmd
}

/// Whether a [`lock`] took the lock.
pub(crate) fn locked(reply: &Value) -> bool {
    matches!(reply, Value::Okay)
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
