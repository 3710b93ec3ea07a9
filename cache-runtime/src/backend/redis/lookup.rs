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
use super::near::Near;
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
    let names = subject.names();
    let mut asked = false;
    loop {
        // Registered before the lookup is sent: an invalidation of any of
        // its names until it is kept means it is not kept.
        let reading =
            near.map(|near| near.reading(std::iter::once(names.entry()).chain(names.versions())));
        let seen = read().await?;
        if !asked {
            // A version of the server's own process under another
            // replication id (see `Session::drifted`): that session asks
            // again, and the lookup is made once more.
            let drifted = seen.iter().skip(1).find_map(|(v, session, link)| match v {
                Value::BulkString(raw) => session
                    .drifted(raw)
                    .filter(|_| link.may_check_drift())
                    .map(|r| (session, link, r)),
                _ => None,
            });
            if let Some((session, link, replid)) = drifted {
                link.recheck(session, Some(replid)).await?;
                asked = true;
                continue;
            }
        }
        let conns = tracked_conns(seen.iter().map(|(_, s, link)| (s, &**link)));
        let mut seen = seen.into_iter();
        let (entry, oversized) = seen
            .next()
            .map_or((None, false), |(v, _, _)| decode_entry(v, max).split());
        let versions: Vec<_> = seen.map(|(v, s, _)| decode_version(v, &s.run)).collect();
        if let (Some(reading), Some(blob), Some(conns)) = (reading, &entry, conns) {
            reading.keep(conns, blob, &versions);
        }
        return Ok(Lookup {
            entry,
            oversized,
            versions,
            decoded: None,
        });
    }
}
