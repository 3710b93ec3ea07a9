//! Connections to a single Redis, or to every master of a Redis Cluster.

use crate::failure::Failure;
use std::time::Duration;

use redis::{Connection, Value};

/// A master and what it serves.
pub struct Node {
    pub addr: String,
    pub conn: Connection,
    /// Slot ranges (a single server serves them all).
    pub slots: Vec<(u16, u16)>,
}

/// The server the tool talks to.
pub struct Server {
    pub nodes: Vec<Node>,
    pub cluster: bool,
}

const TIMEOUT: Duration = Duration::from_secs(5);

fn open(url: &str) -> Result<Connection, Failure> {
    let client =
        redis::Client::open(url).map_err(Failure::during(format!("bad URL {}", shown(url))))?;
    let conn = client
        .get_connection_with_timeout(TIMEOUT)
        .map_err(Failure::during(format!("cannot reach {}", shown(url))))?;
    conn.set_read_timeout(Some(TIMEOUT)).map_err(Failure::of)?;
    conn.set_write_timeout(Some(TIMEOUT)).map_err(Failure::of)?;
    Ok(conn)
}

/// The secrets a URL may carry, however malformed it is: the password of
/// its user part, and a `pass=` or `password=` query value. Whatever the
/// command prints is scrubbed of them (see `scrub`), so that no message,
/// ours or a library's, can echo them.
pub fn secrets(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Some((_, rest)) = url.split_once("://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if let Some((_, password)) = userinfo.split_once(':') {
                found.push(password.to_string());
            }
        }
    }
    if let Some((_, query)) = url.split_once('?') {
        for pair in query.split('&') {
            if let Some(v) = pair
                .strip_prefix("pass=")
                .or_else(|| pair.strip_prefix("password="))
            {
                found.push(v.to_string());
            }
        }
    }
    found.retain(|s| !s.is_empty());
    found
}

/// `text` with every one of `secrets` replaced by `***`.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        out = out.replace(secret.as_str(), "***");
    }
    out
}

/// The URL without its credentials, for messages.
pub fn shown(url: &str) -> String {
    cachette::admin::redact(url)
}

impl Server {
    pub fn connect(url: &str) -> Result<Server, Failure> {
        let mut seed = open(url)?;
        let info: String = redis::cmd("INFO")
            .arg("cluster")
            .query(&mut seed)
            .unwrap_or_default();
        if !info.lines().any(|l| l.trim() == "cluster_enabled:1") {
            return Ok(Server {
                nodes: vec![Node {
                    addr: shown(url),
                    conn: seed,
                    slots: vec![(0, 16383)],
                }],
                cluster: false,
            });
        }
        let slots: Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut seed)
            .map_err(Failure::during("CLUSTER SLOTS"))?;
        let mut nodes: Vec<Node> = Vec::new();
        let Value::Array(ranges) = slots else {
            return Err("CLUSTER SLOTS: an unexpected reply".into());
        };
        for range in ranges {
            let Value::Array(fields) = range else {
                continue;
            };
            let (Some(start), Some(end), Some(Value::Array(master))) =
                (int(fields.first()), int(fields.get(1)), fields.get(2))
            else {
                continue;
            };
            let host = match master.first() {
                Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(Value::SimpleString(s)) => s.clone(),
                _ => continue,
            };
            let Some(port) = int(master.get(1)) else {
                continue;
            };
            let addr = format!("{host}:{port}");
            let range = (start as u16, end as u16);
            match nodes.iter_mut().find(|n| n.addr == addr) {
                Some(node) => node.slots.push(range),
                None => {
                    let mut node_url = url::Url::parse(url).map_err(Failure::of)?;
                    node_url
                        .set_host(Some(&host))
                        .map_err(Failure::during(format!("node {addr}")))?;
                    let _ = node_url.set_port(Some(port as u16));
                    nodes.push(Node {
                        addr,
                        conn: open(node_url.as_str())?,
                        slots: vec![range],
                    });
                }
            }
        }
        if nodes.is_empty() {
            return Err("the cluster reports no master".into());
        }
        Ok(Server {
            nodes,
            cluster: true,
        })
    }

    /// The master serving `slot`.
    pub fn node_for(&mut self, slot: u16) -> &mut Node {
        let i = self
            .nodes
            .iter()
            .position(|n| n.slots.iter().any(|&(a, b)| (a..=b).contains(&slot)))
            .unwrap_or(0);
        &mut self.nodes[i]
    }
}

fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

/// Visits the names matching `pattern` on `conn`, by `SCAN`, one page at
/// a time (each dropped before the next is read, so a namespace of any
/// size costs one page of memory), at most `limit` names. Returns how many
/// were visited and whether `limit` stopped the scan.
pub fn scan(
    conn: &mut Connection,
    pattern: &str,
    limit: usize,
    mut page: impl FnMut(&mut Connection, Vec<String>) -> Result<(), Failure>,
) -> Result<(usize, bool), Failure> {
    let mut cursor: u64 = 0;
    let mut seen = 0;
    loop {
        let (next, mut batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query(conn)
            .map_err(Failure::during("SCAN"))?;
        let room = limit - seen;
        let stopped = batch.len() >= room;
        batch.truncate(room);
        seen += batch.len();
        page(conn, batch)?;
        if stopped {
            return Ok((seen, true));
        }
        if next == 0 {
            return Ok((seen, false));
        }
        cursor = next;
    }
}
