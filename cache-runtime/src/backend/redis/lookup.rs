//! The steps of a lookup that a single Redis and a Redis Cluster share:
//! register it with the near-cache, read the entry and its versions, ask
//! the server again (once) when a version says its replication id moved
//! on, decode what was read, and keep it in the near-cache when every
//! name was read on a tracked connection. Only the reading differs: one
//! pipeline on one connection, or one per slot on each slot's master.

use std::future::Future;
use std::sync::Arc;

use redis::Value;

use super::link::{Link, Session};
use super::near::hit::tracked_conns;
use super::near::{InFlight, Near};
use super::wire::{decode_entry, decode_version};
use crate::backend::stored::Lookup;
use crate::error::Error;
use crate::names::Subject;

/// What one name read: its reply, the session that read it, and the link
/// of that session.
pub(crate) type Answer = (Value, Arc<Session>, Arc<Link>);

/// A lookup of `subject` whose entry is read as far as `max` bytes:
/// `read` gives the entry's reply (first) and each version's, in the
/// order of `names().versions()`.
pub(crate) async fn lookup<R, F>(
    subject: &Subject<'_>,
    near: Option<&Near>,
    max: usize,
    mut read: R,
) -> Result<Lookup, Error>
where
    R: FnMut() -> F,
    F: Future<Output = Result<Vec<Answer>, Error>>,
{
    let mut asked = false;
    loop {
        // Registered before the lookup is sent: an invalidation of any of
        // its names until it is kept means it is not kept.
        let reading = near.map(|near| near.reading(all_names(subject)));
        let seen = read().await?;
        if !std::mem::replace(&mut asked, true) && recheck_drifted(&seen).await? {
            continue;
        }
        return Ok(decoded(reading, seen, max));
    }
}

/// The lookups of `subjects` (a batch read), every name read at once:
/// `read` gives, for each subject, the entry's reply then each version's.
/// As [`lookup`], a version under another replication id makes its
/// session ask again, and the whole read is made once more.
pub(crate) async fn lookup_many<R, F>(
    subjects: &[&Subject<'_>],
    near: Option<&Near>,
    max: usize,
    mut read: R,
) -> Result<Vec<Lookup>, Error>
where
    R: FnMut() -> F,
    F: Future<Output = Result<Vec<Vec<Answer>>, Error>>,
{
    let mut asked = false;
    loop {
        let readings: Vec<_> = subjects
            .iter()
            .map(|s| near.map(|near| near.reading(all_names(s))))
            .collect();
        let seen = read().await?;
        if seen.len() != subjects.len() {
            return Err(Error::new(
                crate::error::ErrorKind::Backend,
                "a batch lookup was answered for another number of entries; refused",
            ));
        }
        if !std::mem::replace(&mut asked, true) {
            let mut again = false;
            for one in &seen {
                again |= recheck_drifted(one).await?;
            }
            if again {
                continue;
            }
        }
        return Ok(readings
            .into_iter()
            .zip(seen)
            .map(|(reading, seen)| decoded(reading, seen, max))
            .collect());
    }
}

/// The names a batch read asks for, each once (a version many subjects
/// share is read once), and where each subject's names are among them.
pub(crate) struct Shared<'s> {
    /// Each name, and whether it is an entry (read as one) or a version.
    pub names: Vec<(&'s str, bool)>,
    /// For each subject, the position of its entry, then of each version.
    positions: Vec<Vec<usize>>,
}

impl<'s> Shared<'s> {
    pub(crate) fn of(subjects: &'s [&'s Subject<'_>]) -> Shared<'s> {
        let mut names: Vec<(&'s str, bool)> = Vec::new();
        let mut at: std::collections::HashMap<&'s str, usize> = std::collections::HashMap::new();
        let positions = subjects
            .iter()
            .map(|subject| {
                let all = subject.names();
                std::iter::once((all.entry(), true))
                    .chain(all.versions().map(|v| (v, false)))
                    .map(|(name, entry)| {
                        *at.entry(name).or_insert_with(|| {
                            names.push((name, entry));
                            names.len() - 1
                        })
                    })
                    .collect()
            })
            .collect();
        Shared { names, positions }
    }

    /// Each subject's answers, from the replies to `names` (a reply short
    /// of them leaves the subjects it does not cover short, which the
    /// caller refuses).
    pub(crate) fn answers<A>(
        &self,
        replies: Vec<Value>,
        mut with: impl FnMut(Value) -> A,
    ) -> Vec<Vec<A>> {
        self.positions
            .iter()
            .map(|positions| {
                positions
                    .iter()
                    .filter_map(|&p| replies.get(p).cloned().map(&mut with))
                    .collect()
            })
            .collect()
    }
}

/// The entry's name, then each version's.
fn all_names<'s>(subject: &'s Subject<'_>) -> impl Iterator<Item = &'s str> {
    let names = subject.names();
    std::iter::once(names.entry()).chain(names.versions())
}

/// A version of the server's own process under another replication id
/// (see `Session::drifted`): that session asks again, and `true` says the
/// lookup is to be made once more.
async fn recheck_drifted(seen: &[Answer]) -> Result<bool, Error> {
    let drifted = seen.iter().skip(1).find_map(|(v, session, link)| match v {
        Value::BulkString(raw) => session
            .drifted(raw)
            .filter(|_| link.may_check_drift())
            .map(|r| (session, link, r)),
        _ => None,
    });
    match drifted {
        Some((session, link, replid)) => {
            link.recheck(session, Some(replid)).await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// What one lookup read, decoded, and kept in the near-cache when every
/// name was read on a tracked connection.
fn decoded(reading: Option<InFlight<'_>>, seen: Vec<Answer>, max: usize) -> Lookup {
    let conns = tracked_conns(seen.iter().map(|(_, s, link)| (s, &**link)));
    let mut seen = seen.into_iter();
    let (entry, oversized) = seen
        .next()
        .map_or((None, false), |(v, _, _)| decode_entry(v, max).split());
    let versions: Vec<_> = seen.map(|(v, s, _)| decode_version(v, &s.run)).collect();
    if let (Some(reading), Some(blob), Some(conns)) = (reading, &entry, conns) {
        reading.keep(conns, blob, &versions);
    }
    Lookup {
        entry,
        oversized,
        versions,
        decoded: None,
        near: false,
    }
}
