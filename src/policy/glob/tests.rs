//! Glob semantics: a table of Redis's cases, the compiled [`Glob`] against
//! [`stringmatch`], and both against a line-by-line port of Redis's recursive C
//! code (which also covers the case-insensitive mode `KEYS` cannot reach).
//! `redis_tests.rs` compares with a real `redis-server`.

use proptest::prelude::*;

use super::{reference::stringmatchlen, *};

/// (pattern, key, matches case-sensitively, matches with nocase)
const CASES: &[(&[u8], &[u8], bool, bool)] = &[
    (b"", b"", true, true),
    (b"", b"a", false, false),
    (b"*", b"", false, false), // KEYS short-cuts `*` before matching
    (b"**", b"", false, false),
    (b"a", b"", false, false),
    (b"*", b"abc", true, true),
    (b"**", b"abc", true, true),
    (b"a*", b"a", true, true),
    (b"a**", b"a", true, true),
    (b"a*", b"ba", false, false),
    (b"*a", b"ba", true, true),
    (b"*a", b"ab", false, false),
    (b"a*b*c", b"aXbYc", true, true),
    (b"a*b*c", b"aXbY", false, false),
    (
        b"*a*a*a*a*a*a*b",
        b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        false,
        false,
    ),
    (b"user:*:bookmarks", b"user:1:bookmarks", true, true),
    (b"user:*:bookmarks", b"user::bookmarks", true, true),
    (b"user:*:bookmarks", b"user:1:bookmark", false, false),
    (b"?", b"a", true, true),
    (b"?", b"ab", false, false),
    (b"*?", b"a", true, true),
    (b"a?c", b"abc", true, true),
    (b"[abc]", b"b", true, true),
    (b"[abc]", b"d", false, false),
    (b"[abc]", b"B", false, true),
    (b"[^abc]", b"d", true, true),
    (b"[^abc]", b"a", false, false),
    (b"[a-c]", b"b", true, true),
    (b"[c-a]", b"b", true, true), // reversed range
    (b"[a-c]", b"d", false, false),
    (b"[A-C]", b"b", false, true),
    (b"[Z-a]", b"_", true, false), // nocase lowers the ends to `z`..`a`: empty
    (b"[\\A]", b"a", false, false), // escapes in a class never fold case
    (b"[A]", b"a", false, true),
    (b"\\A", b"a", false, true),
    (b"\\*", b"*", true, true),
    (b"\\*", b"a", false, false),
    (b"\\?", b"?", true, true),
    (b"a\\", b"a\\", true, true), // a trailing lone backslash is literal
    (b"a\\", b"a", false, false),
    (b"[\\]]", b"]", true, true),
    (b"[\\-]", b"-", true, true),
    (b"[-a]", b"-", true, true),
    (b"[abc", b"a", true, true), // unclosed: the class runs to the end
    (b"[abc", b"[", false, false),
    (b"x[abc", b"xb", true, true),
    (b"[", b"[", false, false),
    (b"[", b"a", false, false),
    (b"[^", b"a", true, true),
    (b"[\\", b"\\", true, true),
    (b"[]", b"]", false, false), // empty class: never matches
    (b"[]a]", b"a]", false, false),
    (b"[^]", b"x", true, true),
    (b"[^]x", b"ax", true, true),
    (b"[a-]", b"]", true, true), // `-]` is a range `]`..=`a`, and the class is open
    (b"[a-]", b"_", true, true),
    (b"[a-]", b"b", false, false),
    (b"[a-]", b"-", false, false),
    (b"[a-]x", b"x", true, true),
    (b"[a-]x", b"_x", false, false),
    (b"[a-\xff]", b"\x00", true, true), // range ends are signed chars: -1..=97
    (b"[a-\xff]", b"\xff", true, true),
    (b"[a-\xff]", b"\x80", false, false),
    (b"[a-\xff]", b"b", false, false),
    (b"[\x80-\xff]", b"\xc0", true, true),
    (b"ABC", b"abc", false, true),
];

#[test]
fn stringmatch_table() {
    for &(pattern, key, exact, nocase) in CASES {
        let show = (
            String::from_utf8_lossy(pattern),
            String::from_utf8_lossy(key),
        );
        assert_eq!(stringmatch(pattern, key, false), exact, "{show:?}");
        assert_eq!(stringmatch(pattern, key, true), nocase, "{show:?} nocase");
        assert_eq!(
            stringmatchlen(pattern, key, false),
            exact,
            "{show:?} reference"
        );
        assert_eq!(
            stringmatchlen(pattern, key, true),
            nocase,
            "{show:?} reference nocase"
        );
        let keys_semantics = exact || (pattern == b"*");
        assert_eq!(
            Glob::redis(pattern).matches(key),
            keys_semantics,
            "{show:?} glob"
        );
    }
}

#[test]
fn glob_star_matches_every_key_like_keys() {
    let glob = Glob::new(b"*").unwrap();
    assert!(glob.matches(b"") && glob.matches(b"x"));
    assert!(!Glob::new(b"**").unwrap().matches(b""));
}

#[test]
fn strict_glob_refuses_surely_mistaken_patterns() {
    let err = |p: &[u8]| Glob::new(p).unwrap_err();
    assert_eq!(
        err(b"user:[abc"),
        GlobError::UnclosedClass {
            at: 5,
            dash_bracket: false
        }
    );
    assert_eq!(
        err(b"[a-]"),
        GlobError::UnclosedClass {
            at: 0,
            dash_bracket: true
        }
    );
    assert!(err(b"[a-]").to_string().contains("range ending at `]`"));
    assert!(err(b"[").to_string().starts_with("unbalanced `[` in glob"));
    assert_eq!(err(b"a[]b"), GlobError::EmptyClass { at: 1 });
    assert_eq!(err(b"ab\\"), GlobError::TrailingBackslash);
    for ok in [
        &b"a[^]"[..],
        b"\\[",
        b"[\\]]",
        b"[z-a]",
        b"\\\\",
        b"[-a]",
        b"[a\\-]",
    ] {
        assert!(Glob::new(ok).is_ok(), "{}", String::from_utf8_lossy(ok));
    }
}

#[test]
fn literal_prefix_and_shape() {
    let g = |p: &[u8]| Glob::new(p).unwrap();
    assert_eq!(g(b"quran:*").literal_prefix(), b"quran:");
    assert!(g(b"quran:*").is_prefix() && !g(b"quran:*").is_literal());
    assert!(g(b"quran:**").is_prefix());
    assert_eq!(g(b"a\\*b*").literal_prefix(), b"a*b");
    assert!(g(b"a\\*b*").is_prefix());
    assert!(g(b"a\\*b").is_literal() && g(b"a\\*b").matches(b"a*b"));
    assert!(!g(b"a\\*b").matches(b"axb"));
    assert_eq!(g(b"user:*:bookmarks").literal_prefix(), b"user:");
    assert!(!g(b"user:*:bookmarks").is_prefix());
    assert!(!g(b"user:*:bookmarks").is_literal());
    assert!(g(b"*").is_prefix() && g(b"*").literal_prefix().is_empty());
    assert!(!g(b"**").is_prefix());
    assert!(g(b"[ab]*").literal_prefix().is_empty());
    assert!(g(b"config").is_literal());
}

/// Bytes that exercise every branch: metacharacters, letters in both cases, the
/// range-ends `Z _ a`, and a byte that is negative as a C `char`.
pub(super) const ALPHABET: &[u8] = b"abcAB?*[]^-\\Z_\xe9";

fn bytes_over(
    alphabet: &'static [u8],
    len: std::ops::Range<usize>,
) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(alphabet), len)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn stringmatch_agrees_with_redis_code(
        pattern in bytes_over(ALPHABET, 0..10),
        key in bytes_over(ALPHABET, 0..8),
        nocase in any::<bool>(),
    ) {
        prop_assert_eq!(stringmatch(&pattern, &key, nocase), stringmatchlen(&pattern, &key, nocase));
    }

    #[test]
    fn compiled_glob_agrees_with_stringmatch(
        pattern in bytes_over(ALPHABET, 0..10),
        keys in prop::collection::vec(bytes_over(ALPHABET, 0..8), 1..16),
    ) {
        let lenient = Glob::redis(&pattern);
        let strict = Glob::new(&pattern).ok();
        for key in &keys {
            let expected = pattern == b"*" || stringmatch(&pattern, key, false);
            prop_assert_eq!(lenient.matches(key), expected, "key {:?}", key);
            if let Some(strict) = &strict {
                prop_assert_eq!(strict.matches(key), expected, "strict, key {:?}", key);
            }
        }
    }
}
