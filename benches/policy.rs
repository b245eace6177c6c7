//! `Policy::lookup`, called for every key of every command, with 1,000 rules:
//! 900 `prefixN:*`, 50 exact keys and 50 general globs (half `userN:*:bookmarks`,
//! half `*:tagN`, which every lookup may have to try). A first-match linear scan
//! over the same globs is measured beside it for scale.
//!
//! Run with `cargo bench --bench policy`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use respite::{
    Config,
    policy::{Policy, glob::Glob},
};

const RULES: usize = 1000;

fn pattern(i: usize) -> String {
    match i % 20 {
        0 if i % 40 == 0 => format!("user{i}:*:bookmarks"),
        0 => format!("*:tag{i}"),
        10 => format!("literal:{i}"),
        _ => format!("prefix{i}:*"),
    }
}

fn rules_toml() -> String {
    (0..RULES)
        .map(|i| {
            let l1 = if i % 3 == 0 { "l1 = true\n" } else { "" };
            format!(
                "[[namespace]]\nname = \"r{i}\"\nmatch = \"{}\"\nttl = \"1h\"\n{l1}\n",
                pattern(i)
            )
        })
        .collect()
}

const KEYS: &[(&str, &str)] = &[
    ("hit_prefix_early", "prefix1:quran:2:255"),
    ("hit_prefix_late", "prefix999:quran:2:255"),
    ("hit_exact", "literal:510"),
    ("hit_glob", "user480:42:bookmarks"),
    ("hit_glob_root", "x:tag980"),
    ("miss", "session:7f3a9c:profile"),
    ("miss_near_prefix", "prefix1000:x"),
];

fn lookup(c: &mut Criterion) {
    let config = Config::parse(&rules_toml()).expect("generated rules parse");
    let policy = Policy::compile(&config.namespaces).expect("generated rules compile");
    let globs: Vec<Glob> = (0..RULES)
        .map(|i| Glob::new(pattern(i).as_bytes()).unwrap())
        .collect();
    let long_miss = format!("session:{}", "x".repeat(200));
    let keys = KEYS.iter().map(|&(n, k)| (n, k.to_owned()));
    let keys: Vec<(&str, String)> = keys.chain([("miss_long_key", long_miss)]).collect();

    let mut group = c.benchmark_group("policy_lookup_1000_rules");
    for (name, key) in &keys {
        let expected = globs.iter().position(|g| g.matches(key.as_bytes()));
        assert_eq!(
            policy.lookup(key.as_bytes()).map(|r| r.index),
            expected,
            "{name}"
        );
        group.bench_function(*name, |b| {
            b.iter(|| policy.lookup(black_box(key.as_bytes())).map(|r| r.index))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("linear_scan_1000_rules");
    for (name, key) in keys
        .iter()
        .filter(|(n, _)| matches!(*n, "hit_prefix_late" | "miss"))
    {
        group.bench_function(*name, |b| {
            b.iter(|| {
                globs
                    .iter()
                    .position(|g| g.matches(black_box(key.as_bytes())))
            })
        });
    }
    group.finish();

    c.bench_function("policy_compile_1000_rules", |b| {
        b.iter(|| Policy::compile(black_box(&config.namespaces)).unwrap())
    });
}

criterion_group!(benches, lookup);
criterion_main!(benches);
