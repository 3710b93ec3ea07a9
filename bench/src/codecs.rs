//! Hits per codec, for the 200-byte payload and a 20 KB one, with and
//! without compression, on Redis and on the embedded backend; and the
//! bytes each entry takes in Redis. Values are decoded on every hit here
//! (`keep_decoded(false)`) and Redis hits read Redis (`near_cache(false)`),
//! so that what the codec and compression cost is what is measured.

use std::time::Duration;

use cachette::{Cache, CacheBuilder, Codec};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use super::{measure, on_cache, op, ratios_table, user, user_hit, DbError, User, Variant};

/// About 20 KB of JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Doc {
    id: u64,
    title: String,
    sections: Vec<Section>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Section {
    heading: String,
    words: u32,
    body: String,
}

fn doc(id: u64) -> Doc {
    Doc {
        id,
        title: "On the analytical engine".into(),
        sections: (0..40)
            .map(|i| Section {
                heading: format!("Note {i}"),
                words: 80 + i,
                body:
                    "The engine weaves algebraic patterns as the loom weaves flowers and leaves. "
                        .repeat(6),
            })
            .collect(),
    }
}

struct Setup {
    name: &'static str,
    codec: Codec,
    compress: bool,
    redis: bool,
}

const SETUPS: [Setup; 6] = [
    Setup {
        name: "Redis, JSON",
        codec: Codec::Json,
        compress: false,
        redis: true,
    },
    Setup {
        name: "Redis, postcard",
        codec: Codec::Postcard,
        compress: false,
        redis: true,
    },
    Setup {
        name: "Redis, JSON + LZ4",
        codec: Codec::Json,
        compress: true,
        redis: true,
    },
    Setup {
        name: "Redis, postcard + LZ4",
        codec: Codec::Postcard,
        compress: true,
        redis: true,
    },
    Setup {
        name: "embedded, JSON",
        codec: Codec::Json,
        compress: false,
        redis: false,
    },
    Setup {
        name: "embedded, postcard",
        codec: Codec::Postcard,
        compress: false,
        redis: false,
    },
];

async fn cache_for(setup: &Setup, url: &str) -> Cache {
    let mut builder: CacheBuilder = Cache::builder()
        .command_timeout(Duration::from_secs(1))
        .keep_decoded(false)
        .near_cache(false)
        .namespace(setup.name.replace([',', ' ', '+'], ""))
        .codec(setup.codec);
    if setup.compress {
        builder = builder.compress_above(1024);
    }
    if setup.redis {
        builder.connect(url).await.unwrap()
    } else {
        builder.memory()
    }
}

pub async fn run(quick: bool, url: &str, raw: &ConnectionManager) {
    let _: () = redis::cmd("SET")
        .arg("raw:doc:1")
        .arg(serde_json::to_vec(&doc(1)).unwrap())
        .query_async(&mut raw.clone())
        .await
        .unwrap();
    let ttl = Duration::from_secs(300);
    let mut variants = Vec::new();
    let raw_small = raw.clone();
    variants.push(Variant::new(
        "raw `redis` GET + JSON decode, 200 B (baseline)",
        op(move || {
            let raw = raw_small.clone();
            async move {
                std::hint::black_box(super::raw_get(&raw).await);
            }
        }),
    ));
    let raw_big = raw.clone();
    variants.push(Variant::new(
        "raw `redis` GET + JSON decode, 20 KB",
        op(move || {
            let raw = raw_big.clone();
            async move {
                let bytes: Vec<u8> = redis::cmd("GET")
                    .arg("raw:doc:1")
                    .query_async(&mut raw.clone())
                    .await
                    .unwrap();
                std::hint::black_box(serde_json::from_slice::<Doc>(&bytes).unwrap());
            }
        }),
    ));
    let mut stored = Vec::new();
    for setup in &SETUPS {
        let cache = cache_for(setup, url).await;
        variants.push(Variant::new(
            leak(format!("{}, 200 B", setup.name)),
            on_cache(&cache, user_hit),
        ));
        variants.push(Variant::new(
            leak(format!("{}, 20 KB", setup.name)),
            on_cache(&cache, move |cache| async move {
                cache
                    .get_or_fetch("doc:1", &["org:7"], ttl, async { Ok::<_, DbError>(doc(1)) })
                    .await
                    .unwrap();
            }),
        ));
        if setup.redis {
            stored.push((setup.name, cache));
        }
    }
    measure(&mut variants, quick, Some(200)).await;
    ratios_table(
        "Hits per codec (decoded on every hit; Redis read on every hit)",
        "raw 200 B",
        "hit",
        &variants,
    );
    println!("\n## Bytes stored per entry in Redis (`STRLEN`: header, versions, value)\n");
    println!("| setup | 200 B payload | 20 KB payload |");
    println!("|---|---|---|");
    let mut conn = raw.clone();
    for (name, _cache) in &stored {
        let ns = name.replace([',', ' ', '+'], "");
        let mut sizes = Vec::new();
        for key in ["user:1", "doc:1"] {
            let names: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{ns}:e:*{{{key}}}"))
                .query_async(&mut conn)
                .await
                .unwrap();
            let len: usize = redis::cmd("STRLEN")
                .arg(&names[0])
                .query_async(&mut conn)
                .await
                .unwrap();
            sizes.push(len);
        }
        println!("| {name} | {} | {} |", sizes[0], sizes[1]);
    }
    let json = serde_json::to_vec(&doc(1)).unwrap().len();
    let small: usize = serde_json::to_vec::<User>(&user(1)).unwrap().len();
    println!("\nThe payloads as JSON: {small} and {json} bytes.");
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}
