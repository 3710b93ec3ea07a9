//! `cachette bust`: invalidates keys and tags through the library itself
//! (`Cache::invalidate`: new versions, and `WAIT` for replicas as the
//! library's defaults ask).

use crate::failure::Failure;
use std::time::Duration;

use cachette::Cache;
use serde_json::json;

use crate::Report;

#[derive(clap::Args)]
pub struct Args {
    /// A key to invalidate, as rendered (repeatable).
    #[arg(long = "key")]
    keys: Vec<String>,
    /// A tag to invalidate, as rendered (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// The command timeout, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
}

pub fn run(url: &str, ns: &str, args: &Args) -> Result<Report, Failure> {
    if args.keys.is_empty() && args.tags.is_empty() {
        return Err("nothing to bust: give --key or --tag".into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::of)?;
    let cluster = crate::server::Server::connect(url)?.cluster;
    let result = runtime.block_on(async {
        let timeout = Duration::from_millis(args.timeout_ms);
        let builder = Cache::builder()
            .namespace(ns)
            .command_timeout(timeout)
            .connect_timeout(timeout)
            .near_cache(false)
            // A one-off process never read the namespace's lease: should it
            // be missing, it takes it for lost (`guide::redis`).
            .assume_lease_readers();
        let cache = if cluster {
            builder.connect_cluster(&[url]).await
        } else {
            builder.connect(url).await
        }
        .map_err(Failure::during("cannot connect"))?;
        cache
            .invalidate(&args.keys, &args.tags)
            .await
            .map_err(Failure::during("the bust was not confirmed"))
    });
    let (ok, text) = match &result {
        Ok(()) => (
            true,
            format!(
                "invalidated {} key(s) and {} tag(s) in namespace {ns:?}: no read that starts now returns a value filled before\n",
                args.keys.len(),
                args.tags.len()
            ),
        ),
        Err(e) => (false, format!("{e}\n")),
    };
    Ok(Report {
        text,
        json: json!({
            "namespace": ns,
            "keys": args.keys,
            "tags": args.tags,
            "confirmed": ok,
            "error": result.err().map(|e| e.to_string()),
        }),
        ok,
    })
}
