//! A hit and a bust over Upstash's REST protocol (the protocol server of
//! `tests/rest-server`, on loopback, in front of the same redis-server)
//! beside the same over TCP: what HTTP adds to each. The near-cache is off
//! on TCP too, so that both read Redis on every hit; the first row is TCP
//! with its default near-cache, for reference.

use std::time::Duration;

use cachette::Cache;
use cachette_rest_server::RestServer;

use super::{measure, micros, on_cache, user_hit, Variant};

pub async fn run(quick: bool, url: &str) {
    let rest = RestServer::start(url);
    let builder = || Cache::builder().command_timeout(Duration::from_secs(2));
    let near = builder().namespace("tcpnear").connect(url).await.unwrap();
    let tcp = builder()
        .namespace("tcp")
        .near_cache(false)
        .connect(url)
        .await
        .unwrap();
    let http = builder()
        .namespace("rest")
        .connect_upstash(&rest.url, &rest.token)
        .await
        .unwrap();
    let mut variants = Vec::new();
    for (name, cache) in [
        ("TCP, hit, near-cache on (default)", &near),
        ("TCP, hit", &tcp),
        ("REST, hit", &http),
    ] {
        variants.push(Variant::new(name, on_cache(cache, user_hit)));
    }
    for (name, cache) in [
        ("TCP, bust of a key and a tag", &tcp),
        ("REST, bust of a key and a tag", &http),
    ] {
        variants.push(Variant::new(
            name,
            on_cache(cache, |cache| async move {
                cache.invalidate(["user:2"], ["org:8"]).await.unwrap();
            }),
        ));
    }
    let requests = rest.requests();
    measure(&mut variants, quick, None).await;
    let sent = rest.requests() - requests;
    println!("| variant | p50 | p99 | calls/s at 64 callers |");
    println!("|---|---|---|---|");
    for v in &variants {
        let s = v.summary();
        println!(
            "| {} | {} | {} | {:.0} |",
            v.name,
            micros(s.p50),
            micros(s.p99),
            s.ops_per_sec
        );
    }
    let stats = http.stats();
    println!(
        "REST: {sent} requests for the measured calls; {} hits, {} errors",
        stats.hits, stats.errors
    );
    assert_eq!(stats.errors, 0);
}
