//! `cachette stats`: the namespace's names by kind, and their memory.

use crate::failure::Failure;
use std::fmt::Write;

use serde_json::json;

use crate::server::{scan, Server};
use crate::Report;

#[derive(clap::Args)]
pub struct Args {
    /// Stop after this many names (per master).
    #[arg(long, default_value_t = 1_000_000)]
    max_names: usize,
}

/// The kinds of names, by their letter.
const KINDS: [(char, &str); 5] = [
    ('e', "entries"),
    ('k', "key versions"),
    ('t', "tag versions"),
    ('l', "stampede locks"),
    ('n', "namespace epochs"),
];

pub fn run(url: &str, ns: &str, args: &Args) -> Result<Report, Failure> {
    let mut server = Server::connect(url)?;
    let mut counts = [0u64; KINDS.len()];
    let mut other = 0u64;
    let mut bytes = 0u64;
    let mut cut = false;
    let pattern = format!("{}:*", cachette::admin::glob_escape(ns));
    for node in &mut server.nodes {
        let addr = node.addr.clone();
        let mut scanned = 0;
        let (_, stopped) = scan(&mut node.conn, &pattern, args.max_names, |conn, names| {
            let mut pipe = redis::pipe();
            for name in &names {
                // Names of other namespaces that share the prefix
                // (`app:tenant` under `app`) are not this namespace's.
                let Some(kind) = cachette::admin::kind_of(name, ns) else {
                    other += 1;
                    continue;
                };
                if let Some(i) = KINDS.iter().position(|(l, _)| *l == kind) {
                    counts[i] += 1;
                }
                pipe.cmd("MEMORY").arg("USAGE").arg(name);
            }
            let sizes: Vec<Option<u64>> = pipe.query(conn).unwrap_or_default();
            bytes += sizes.iter().flatten().sum::<u64>();
            let before = scanned;
            scanned += names.len();
            if scanned / 10_000 > before / 10_000 {
                eprintln!("{addr}: {scanned} names scanned...");
            }
            Ok(())
        })?;
        cut |= stopped;
    }
    let total: u64 = counts.iter().sum::<u64>();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "namespace {ns:?}: {total} names{}, {} in memory",
        if cut { " (stopped at --max-names)" } else { "" },
        human(bytes)
    );
    for ((_, label), n) in KINDS.iter().zip(counts) {
        let _ = writeln!(text, "  {label}: {n}");
    }
    if other > 0 {
        let _ = writeln!(
            text,
            "  not counted: {other} names of other namespaces under the same prefix"
        );
    }
    let json = json!({
        "namespace": ns,
        "names": total,
        "entries": counts[0],
        "key_versions": counts[1],
        "tag_versions": counts[2],
        "locks": counts[3],
        "epochs": counts[4],
        "other": other,
        "memory_bytes": bytes,
        "complete": !cut,
    });
    Ok(Report {
        text,
        json,
        ok: true,
    })
}

fn human(bytes: u64) -> String {
    match bytes {
        0..=9_999 => format!("{bytes} B"),
        10_000..=9_999_999 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MiB", bytes as f64 / 1048576.0),
    }
}
