//! Compilation, first-match-wins across the index's structures (also as a property
//! against a linear scan), tracking prefixes and explain output.

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::config::Config;

fn policy(toml: &str) -> Result<Policy, PolicyError> {
    Policy::compile(&Config::parse(toml).unwrap().namespaces)
}

/// One `[[namespace]]` table per (name, match, extra lines).
fn rules(rules: &[(&str, &str, &str)]) -> String {
    rules
        .iter()
        .map(|(name, pattern, extra)| {
            format!("[[namespace]]\nname = '{name}'\nmatch = '{pattern}'\n{extra}\n")
        })
        .collect()
}

fn names(policy: &Policy, keys: &[&str]) -> Vec<Option<String>> {
    keys.iter()
        .map(|k| policy.lookup(k.as_bytes()).map(|r| r.name.to_string()))
        .collect()
}

fn some(names: &[&str]) -> Vec<Option<String>> {
    names
        .iter()
        .map(|n| (!n.is_empty()).then(|| n.to_string()))
        .collect()
}

#[test]
fn first_match_wins_across_globs_prefixes_and_exact_keys() {
    let p = policy(&rules(&[
        ("bookmarks", "user:*:bookmarks", ""),
        ("user", "user:*", ""),
        ("alice", "user:42:bookmarks", ""),
        ("config", "config", ""),
        ("conf", "conf*", ""),
        ("all", "*", ""),
    ]))
    .unwrap();
    let keys = [
        "user:1:bookmarks",
        "user:1:x",
        "user:42:bookmarks",
        "config",
    ];
    assert_eq!(
        names(&p, &keys),
        some(&["bookmarks", "user", "bookmarks", "config"])
    );
    let keys = ["configx", "conf", "other", "", "use"];
    assert_eq!(
        names(&p, &keys),
        some(&["conf", "conf", "all", "all", "all"])
    );
}

#[test]
fn earlier_rules_win_whatever_their_shape() {
    let p = policy(&rules(&[
        ("ab", "ab*", ""),
        ("a", "a*", ""),
        ("exact", "abc", ""),
        ("glob", "a?c", ""),
        ("late", "*c", ""),
    ]))
    .unwrap();
    let keys = ["abc", "ac", "axc", "xc", "b"];
    assert_eq!(names(&p, &keys), some(&["ab", "a", "a", "late", ""]));
    let p = policy(&rules(&[
        ("glob", "[xy]*", ""),
        ("x", "x*", ""),
        ("esc", "\\*x", ""),
    ]))
    .unwrap();
    assert_eq!(names(&p, &["xa", "za", "*x"]), some(&["glob", "", "esc"]));
    // Globs filed by literal suffix (walked from the key's end) and at the root.
    let p = policy(&rules(&[
        ("x", "x:*", ""),
        ("lock", "*:lock", ""),
        ("slock", "*s:lock", ""),
        ("tmp", "?:tmp", ""),
        ("mid", "*mid*", ""),
    ]))
    .unwrap();
    let keys = [
        "x:lock", "s:lock", "as:lock", "a:tmp", "ab:tmp", "amidb", "lock",
    ];
    assert_eq!(
        names(&p, &keys),
        some(&["x", "lock", "lock", "tmp", "", "mid", ""])
    );
}

#[test]
fn defaults_and_settings_are_compiled() {
    let p = policy(&rules(&[
        ("a", "a:*", "l1 = true"),
        (
            "b",
            "b:*",
            "compress = 'lz4'\ncompress_min_size = 0\nttl = '1h'\nmax_ttl = '1h'",
        ),
        (
            "c",
            "c:*",
            "compress = 'none'\nl1 = true\nl1_ttl = '5s'\nlease = true",
        ),
    ]))
    .unwrap();
    let [a, b, c] = p.rules() else { panic!() };
    assert_eq!(
        (a.index, a.l1_ttl, a.compress),
        (0, DEFAULT_L1_TTL, Compress::None)
    );
    assert_eq!(a.compress_min_size, 1024);
    assert_eq!((b.compress, b.compress_min_size), (Compress::Lz4, 0));
    assert_eq!(b.ttl, Some(Duration::from_secs(3600)));
    assert_eq!(
        (c.l1_ttl, c.compress.as_str(), c.lease),
        (Duration::from_secs(5), "none", true)
    );
    assert!(p.has_l1());
    assert!(!Policy::empty().has_l1());
    assert!(Policy::empty().lookup(b"x").is_none());
}

#[test]
fn errors_name_the_rule_and_the_key() {
    let cases = [
        (("", "x", ""), "namespace (rule 2): name: must not be empty"),
        (
            ("ok", "y", ""),
            "namespace `ok` (rule 2): name: already used by rule 1",
        ),
        (
            ("x", "", ""),
            "namespace `x` (rule 2): match: must not be empty",
        ),
        (
            ("x", "user:[abc", ""),
            "namespace `x` (rule 2): match: unbalanced `[` in glob",
        ),
        (
            ("x", "a[]", ""),
            "namespace `x` (rule 2): match: empty class",
        ),
        (
            ("x", "a\\", ""),
            "namespace `x` (rule 2): match: trailing `\\`",
        ),
        (
            ("x", "a", "ttl = '2h'\nmax_ttl = '1h'"),
            "namespace `x` (rule 2): ttl: 2h exceeds max_ttl 1h",
        ),
        (
            ("x", "a", "ttl = '0s'"),
            "namespace `x` (rule 2): ttl: 0s is under 1ms",
        ),
        (
            ("x", "a", "max_ttl = '10us'"),
            "namespace `x` (rule 2): max_ttl: 10us is under 1ms",
        ),
        (
            ("x", "a", "l1 = true\nl1_ttl = '0s'"),
            "namespace `x` (rule 2): l1_ttl: must be greater",
        ),
        (
            ("x", "a", "compress = 'gzip'"),
            "namespace `x` (rule 2): compress: `gzip` is not one of",
        ),
    ];
    for ((name, pattern, extra), expected) in cases {
        let err = policy(&rules(&[("ok", "ok:*", ""), (name, pattern, extra)])).unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with(expected), "{message}");
        assert_eq!(err.rule().index, 1);
        assert_eq!(err.rule().name, name);
        assert!(
            expected.contains(&format!(": {}: ", err.key())),
            "{expected}"
        );
    }
}

#[test]
fn reference_file_compiles() {
    let p = policy(include_str!("../../proxy.toml")).unwrap();
    assert!(!p.rules().is_empty());
}

#[test]
fn tracking_prefixes_drop_extensions_and_ignore_non_l1_rules() {
    let p = policy(&rules(&[
        ("quran", "quran:*", "l1 = true"),
        ("qu", "qu*", "l1 = true"),
        ("bookmarks", "user:*:bookmarks", "l1 = true"),
        ("profile", "user:[0-9]*", "l1 = true"),
        ("sessions", "*:session", ""),
        ("exact", "abc", "l1 = true"),
        ("ab", "ab\\*x:*", "l1 = true"),
        ("dup", "user:*", "l1 = true"),
    ]))
    .unwrap();
    let prefixes = p.tracking_prefixes().unwrap();
    assert_eq!(
        prefixes,
        [&b"ab*x:"[..], b"abc", b"qu", b"user:"].map(Bytes::from_static)
    );
}

#[test]
fn tracking_everything_when_an_l1_rule_starts_with_a_wildcard() {
    let p = policy(&rules(&[
        ("a", "a:*", "l1 = true"),
        ("tmp", "?:tmp", "l1 = true"),
    ]))
    .unwrap();
    assert_eq!(p.tracking_prefixes(), None);
    let p = policy(&rules(&[("a", "a:*", "l1 = true"), ("tmp", "*:tmp", "")])).unwrap();
    assert_eq!(p.tracking_prefixes(), Some(vec![Bytes::from_static(b"a:")]));
    assert_eq!(Policy::empty().tracking_prefixes(), Some(vec![]));
}

#[test]
fn compress_level_only_for_zstd_and_in_range() {
    let ok = policy(&rules(&[(
        "a",
        "a:*",
        "compress = 'zstd'\ncompress_level = 19",
    )]))
    .unwrap();
    assert_eq!(ok.rules()[0].compress_level, 19);
    for bad in [
        "compress = 'zstd'\ncompress_level = 0",
        "compress = 'zstd'\ncompress_level = 20",
        "compress = 'lz4'\ncompress_level = 3",
        "compress_level = 3",
    ] {
        let err = policy(&rules(&[("a", "a:*", bad)])).unwrap_err();
        assert_eq!(err.key(), "compress_level", "{bad}");
    }
}

#[test]
fn explain_says_which_rule_and_what_it_does() {
    let p = policy(&rules(&[
        (
            "quran",
            "quran:*",
            "ttl = '7d'\nmax_ttl = '30d'\nl1 = true\nl1_ttl = '10m'\ncompress = 'zstd'\nstale_if_error = '5m'",
        ),
        ("plain", "plain:*", "lease = true"),
    ]))
    .unwrap();
    assert_eq!(p.explain(b"other"), "no rule: passed through unchanged");
    assert_eq!(
        p.explain(b"quran:1:2"),
        "namespace `quran` (rule 1, match `quran:*`): ttl 7days added to writes that set none; \
         TTLs capped at 30days and PERSIST refused; cached in L1 for up to 10m; values of 1024 bytes or more \
         compressed with zstd level 1; L1 copies served up to 5m past expiry while Redis is unreachable"
    );
    assert_eq!(
        p.explain(b"plain:x"),
        "namespace `plain` (rule 2, match `plain:*`): no ttl added; TTLs not capped; not \
         cached in L1; not compressed; on a miss one client refills while the others wait"
    );
}

#[test]
fn long_chains_of_nested_literal_prefixes() {
    // Globs under 12 nested prefixes (more than a lookup defers), deepest first, and
    // 3000 nested prefix rules (a deep tree, built without recursion).
    let mut table: Vec<(String, String)> = (1..=12)
        .rev()
        .map(|n| (format!("g{n}"), format!("{}?b*", "a".repeat(n))))
        .collect();
    table.extend((1..=3000).map(|n| (format!("p{n}"), format!("{}*", "a".repeat(n)))));
    let table: Vec<_> = table
        .iter()
        .map(|(n, p)| (n.as_str(), p.as_str(), ""))
        .collect();
    let p = policy(&rules(&table)).unwrap();
    let globs: Vec<Glob> = table
        .iter()
        .map(|t| Glob::new(t.1.as_bytes()).unwrap())
        .collect();
    for k in 0..20 {
        for tail in ["", "b", "xb", "bb"] {
            let key = format!("{}{tail}", "a".repeat(k));
            let expected = globs.iter().position(|g| g.matches(key.as_bytes()));
            assert_eq!(p.lookup(key.as_bytes()).map(|r| r.index), expected, "{key}");
        }
    }
    assert_eq!(p.lookup(&[b'a'; 5000]).unwrap().name.as_ref(), "p1");
}

/// Pieces of patterns that land in every structure of the index.
fn pattern() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec!["a", "b", ":", "ab", "*", "?", "[ab]", "[^a]", "\\*"]);
    prop::collection::vec(piece, 1..5).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn lookup_equals_the_first_matching_rule(
        patterns in prop::collection::vec(pattern(), 1..24),
        keys in prop::collection::vec(prop::collection::vec(prop::sample::select(b"ab:*x".to_vec()), 0..7), 1..32),
    ) {
        let names: Vec<String> = (0..patterns.len()).map(|i| format!("r{i}")).collect();
        let table: Vec<_> = names.iter().zip(&patterns).map(|(n, p)| (n.as_str(), p.as_str(), "")).collect();
        let namespaces = Config::parse(&rules(&table)).unwrap().namespaces;
        let policy = Policy::compile(&namespaces).unwrap();
        let globs: Vec<Glob> = patterns.iter().map(|p| Glob::new(p.as_bytes()).unwrap()).collect();
        for key in &keys {
            let expected = globs.iter().position(|g| g.matches(key));
            prop_assert_eq!(policy.lookup(key).map(|r| r.index), expected, "key {:?}", key);
        }
    }
}

#[test]
fn slow_compression_levels_move_off_the_loop_sooner() {
    let min = |extra: &str| {
        policy(&rules(&[("n", "n:*", extra)]))
            .unwrap()
            .offload_min()
    };
    assert_eq!(min(""), usize::MAX);
    assert_eq!(min("compress = 'lz4'"), 256 * 1024);
    assert_eq!(min("compress = 'zstd'"), 256 * 1024);
    assert_eq!(min("compress = 'zstd'\ncompress_level = 6"), 64 * 1024);
    assert_eq!(min("compress = 'zstd'\ncompress_level = 19"), 1024);
    let two = rules(&[
        ("a", "a:*", "compress = 'zstd'"),
        ("b", "b:*", "compress = 'zstd'\ncompress_level = 12"),
    ]);
    assert_eq!(policy(&two).unwrap().offload_min(), 1024);
}

#[test]
fn config_errors_name_the_rule_key_and_line() {
    let from = |text: &str| Policy::from_config(&Config::parse(text).unwrap()).map(|_| ());
    let text = "[[namespace]]\nname = \"a\"\nmatch = \"a:*\"\nttl = \"2h\"\nmax_ttl = \"1h\"\n";
    let err = from(text).unwrap_err().to_string();
    assert!(
        err.contains("namespace[0].ttl") && err.contains("`a`"),
        "{err}"
    );
    assert!(err.contains("line 4"), "{err}");
    let text = "[[namespace]]\nname = \"a\"\nmatch = \"a:*\"\n\n[[namespace]]\nname = \"b\"\nmatch = \"b:[x\"\n";
    let err = from(text).unwrap_err().to_string();
    assert!(err.contains("namespace[1].match"), "{err}");
    assert!(err.contains("line 7"), "{err}");
}
