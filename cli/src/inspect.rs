//! `cachette inspect`: every function's entry under a key, and whether it
//! would be served now, and if not, why.

use crate::failure::Failure;
use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use cachette::admin::{self, VersionState, VERSION_READ};
use serde_json::json;

use crate::server::{scan, Server};
use crate::Report;

/// The most entries of one key listed: one per function that caches it,
/// so more are planted names, and not worth holding.
const MAX_ENTRIES: usize = 1_000;

#[derive(clap::Args)]
pub struct Args {
    /// The key, as rendered (omit it with `--template`).
    key: Option<String>,
    /// A key template, rendered exactly as the attributes render it.
    #[arg(long)]
    template: Option<String>,
    /// A value for the template: `--arg id=42` (repeatable).
    #[arg(long = "arg", value_name = "NAME=VALUE")]
    args: Vec<String>,
    /// The function's tags, rendered, in the order of its `tags = [...]`
    /// (entries record their tags' versions, not their names).
    #[arg(long = "tag")]
    tags: Vec<String>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The key as the attributes would render it.
pub fn key_of(args: &Args) -> Result<String, Failure> {
    match (&args.key, &args.template) {
        (Some(key), None) => Ok(key.clone()),
        (None, Some(template)) => {
            let mut builder = cachette::KeyBuilder::new(template);
            for arg in &args.args {
                let (name, value) = arg
                    .split_once('=')
                    .ok_or_else(|| format!("--arg {arg:?}: expected NAME=VALUE"))?;
                builder = builder.arg(name, value);
            }
            builder.build().map_err(Failure::during("--template"))
        }
        (Some(_), Some(_)) => Err("give a key or --template, not both".into()),
        (None, None) => Err("give a key, or --template with --arg".into()),
    }
}

fn state_text(state: &VersionState) -> &'static str {
    match state {
        VersionState::Current(_) => "current",
        VersionState::Missing => "lost",
        VersionState::Foreign => "foreign",
    }
}

/// Why a recorded token does not match the version now, if it does not.
fn mismatch(what: &str, recorded: &str, now: &VersionState) -> Option<String> {
    match now {
        VersionState::Current(t) if t == recorded => None,
        VersionState::Current(_) => Some(format!("{what} changed since the fill: invalidated")),
        VersionState::Missing => Some(format!(
            "{what} is lost (expired, evicted or flushed): a miss, never stale"
        )),
        VersionState::Foreign => Some(format!(
            "{what} was written by another server process (a restart or a failover): a miss"
        )),
    }
}

/// The function id in an entry's name (`<ns>:e:<function>:{<key>}`).
fn function_of(name: &str, ns: &str) -> String {
    name.strip_prefix(ns)
        .and_then(|rest| {
            rest.strip_prefix(":e:")
                .or_else(|| rest.strip_prefix(":e#:"))
        })
        .and_then(|rest| rest.split(':').next())
        .unwrap_or("?")
        .to_string()
}

fn duration(ms: i64) -> String {
    let s = ms / 1000;
    if ms < 0 {
        "none".into()
    } else if s < 120 {
        format!("{}.{:01}s", s, (ms % 1000) / 100)
    } else if s < 7200 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{}h{}m", s / 3600, (s % 3600) / 60)
    }
}

pub fn run(url: &str, ns: &str, args: &Args) -> Result<Report, Failure> {
    let key = key_of(args)?;
    let names = admin::key_names(ns, &key);
    let mut server = Server::connect(url)?;
    let cluster = server.cluster;
    let node = server.node_for(names.slot);
    let conn = &mut node.conn;
    let info = |section: &str, conn: &mut redis::Connection| -> Result<String, Failure> {
        redis::cmd("INFO")
            .arg(section)
            .query(conn)
            .map_err(Failure::during(format!("INFO {section}")))
    };
    let origin = admin::origin(&info("server", conn)?, &info("replication", conn)?)
        .ok_or("the server does not report its run id")?;
    // Every name is read in a bounded range, with its length: anyone who
    // can write to Redis can plant a name of any size.
    let read = |name: &str,
                max: usize,
                conn: &mut redis::Connection|
     -> Result<Option<(Vec<u8>, usize)>, Failure> {
        let (exists, total, head): (bool, usize, Vec<u8>) = redis::pipe()
            .cmd("EXISTS")
            .arg(name)
            .cmd("STRLEN")
            .arg(name)
            .cmd("GETRANGE")
            .arg(name)
            .arg(0)
            .arg(max.saturating_sub(1))
            .query(conn)
            .map_err(Failure::during("GETRANGE"))?;
        Ok(exists.then_some((head, total)))
    };
    let get = |name: &str, conn: &mut redis::Connection| -> Result<Option<Vec<u8>>, Failure> {
        Ok(read(name, VERSION_READ, conn)?.map(|(head, _)| head))
    };
    let key_version = admin::version_state(get(&names.version, conn)?, &origin);
    let epoch_name = if cluster {
        &names.cluster_epoch
    } else {
        &names.epoch
    };
    let epoch = admin::version_state(get(epoch_name, conn)?, &origin);
    let mut tags = Vec::new();
    for tag in &args.tags {
        let state = admin::version_state(get(&admin::tag_version(ns, tag), conn)?, &origin);
        tags.push((tag.clone(), state));
    }
    // The pattern also matches other keys' and namespaces' names.
    let mut entries = Vec::new();
    scan(conn, &names.entries, 100_000, |_, page| {
        entries.extend(
            page.into_iter()
                .filter(|name| admin::is_entry_of(name, ns, &key))
                .take(MAX_ENTRIES - entries.len().min(MAX_ENTRIES)),
        );
        Ok(())
    })?;
    let now = now_ms();

    let mut text = String::new();
    let _ = writeln!(text, "key {key:?} in namespace {ns:?}");
    let _ = writeln!(
        text,
        "  key version: {}; namespace epoch: {}",
        state_text(&key_version),
        state_text(&epoch)
    );
    for (tag, state) in &tags {
        let _ = writeln!(text, "  tag {tag:?}: {}", state_text(state));
    }
    if entries.is_empty() {
        let _ = writeln!(
            text,
            "no entry: the next call of any function under this key misses"
        );
    }
    let mut json_entries = Vec::new();
    let mut sorted = entries;
    sorted.sort();
    for name in &sorted {
        let function = function_of(name, ns);
        let (head, total) = read(name, admin::ENTRY_HEADER_MAX, conn)?.unwrap_or_default();
        let pttl: i64 = redis::cmd("PTTL").arg(name).query(conn).unwrap_or(-2);
        let _ = writeln!(text, "\nentry of function {function} ({total} bytes)");
        // An entry that is not one cachette reads: said once, in both forms.
        let mut unread = |reason: &str| {
            let _ = writeln!(text, "  served: no; {reason}");
            json_entries.push(json!({
                "name": name, "function": function, "bytes": total,
                "served": false, "reasons": [reason],
            }));
        };
        let Some(header) = admin::entry_header_of(&head, total) else {
            unread("not an entry of this version's format (an older cachette, a signed entry, or foreign bytes): a miss, overwritten by the next fill");
            continue;
        };
        let n = header.tokens.len();
        let Some(first) = header.tokens.first() else {
            unread("malformed: it records no version (written by something else than cachette): a miss, overwritten by the next fill");
            continue;
        };
        let mut reasons = Vec::new();
        if let Some(why) = mismatch("the key's version", first, &key_version) {
            reasons.push(why);
        }
        if n >= 2 {
            if let Some(why) = mismatch("the namespace's epoch", &header.tokens[n - 1], &epoch) {
                reasons.push(why);
            }
        }
        let recorded_tags = n.saturating_sub(2);
        let mut tag_notes = Vec::new();
        if !args.tags.is_empty() && args.tags.len() == recorded_tags {
            for (i, (tag, state)) in tags.iter().enumerate() {
                if let Some(why) = mismatch(&format!("tag {tag:?}"), &header.tokens[1 + i], state) {
                    reasons.push(why);
                }
            }
        } else if recorded_tags > 0 {
            tag_notes.push(format!(
                "{recorded_tags} tag version(s) recorded; pass --tag for each, in the function's order, to check them"
            ));
        }
        let fresh_left = if header.fresh_until_ms == 0 {
            None
        } else {
            // Checked: the header is untrusted.
            let left = i128::from(header.fresh_until_ms) - i128::from(now);
            Some(left.clamp(i128::from(i64::MIN + 1), i128::from(i64::MAX)) as i64)
        };
        if let Some(left) = fresh_left {
            if left <= 0 && reasons.is_empty() {
                reasons.push(format!(
                    "past its fresh window by {}: swr serves it stale while it refreshes (within stale_ttl), stale_if_error only when the body fails, others miss",
                    duration(-left)
                ));
            }
        }
        // A signed entry records keyed hashes of its tokens: none matches.
        let signed_maybe = !matches!(key_version, VersionState::Missing)
            && !matches!(epoch, VersionState::Missing)
            && reasons.len() >= 2
            && n >= 2;
        if signed_maybe {
            reasons = vec![
                "no recorded version matches the current ones: every one was invalidated, or the cache signs its entries (then the tokens are keyed hashes, which only the key can check, and the last 32 bytes are the signature)".to_string(),
            ];
        }
        let served = reasons.is_empty();
        let age = now.saturating_sub(header.filled_ms) as i64;
        let _ = writeln!(
            text,
            "  served: {}",
            if served {
                "yes".to_string()
            } else {
                format!("no; {}", reasons.join("; "))
            }
        );
        let _ = writeln!(
            text,
            "  age {}, expires in {}{}",
            duration(age),
            duration(pttl),
            fresh_left.map_or(String::new(), |l| format!(
                ", fresh for {}",
                duration(l.max(0))
            ))
        );
        let _ = writeln!(
            text,
            "  value {} bytes{}, fingerprint {:016x}, body took {} ms",
            header.value_bytes,
            if header.compressed {
                " (compressed)"
            } else {
                ""
            },
            header.fingerprint,
            header.compute_ms
        );
        for note in &tag_notes {
            let _ = writeln!(text, "  {note}");
        }
        json_entries.push(json!({
            "name": name,
            "function": function,
            "bytes": total,
            "served": served,
            "reasons": reasons,
            "age_ms": age,
            "ttl_ms": pttl,
            "fresh_for_ms": fresh_left,
            "value_bytes": header.value_bytes,
            "compressed": header.compressed,
            "fingerprint": format!("{:016x}", header.fingerprint),
            "compute_ms": header.compute_ms,
            "tag_versions_recorded": recorded_tags,
        }));
    }
    let json = json!({
        "key": key,
        "namespace": ns,
        "key_version": state_text(&key_version),
        "epoch": state_text(&epoch),
        "tags": tags.iter().map(|(t, s)| json!({"tag": t, "version": state_text(s)})).collect::<Vec<_>>(),
        "entries": json_entries,
    });
    Ok(Report {
        text,
        json,
        ok: true,
    })
}
