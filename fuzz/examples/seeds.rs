//! Writes the seed corpus of every fuzz target into `fuzz/corpus/<target>/` (the
//! committed seeds; `scripts/fuzz` keeps what the fuzzer adds elsewhere):
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example seeds
//! ```
//!
//! Requests come from the scripts of the differential tests (`tests/differential.rs`),
//! in RESP and inline form; configurations from `proxy.toml`, `deploy/` and the test
//! configurations; envelopes are packed by the proxy's own code. The first byte(s) of
//! each seed steer the target as `src/props.rs` describes.

use std::{fs, path::Path};

use respite::{
    compress,
    policy::Compress,
    protocol::request::{encode_command, split_inline},
};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let corpus = root.join("fuzz/corpus");
    let write = |target: &str, name: &str, data: &[u8]| {
        let dir = corpus.join(target);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(name), data).unwrap();
    };
    let differential = fs::read_to_string(root.join("tests/differential.rs")).unwrap();
    for (i, script) in scripts(&differential).into_iter().enumerate() {
        let lines: Vec<&str> = script.lines().take(40).collect();
        let mut resp = vec![0x3F]; // reads of 64 bytes, default limits
        let mut inline = vec![0x07]; // reads of 8 bytes
        for line in &lines {
            let args = split_inline(line.as_bytes()).unwrap_or_default();
            if !args.is_empty() {
                resp.extend_from_slice(&encode_command(&args));
            }
            inline.extend_from_slice(line.as_bytes());
            inline.extend_from_slice(b"\r\n");
        }
        write(
            "request_parser",
            &format!("differential-{i:02}.resp"),
            &resp,
        );
        write(
            "request_parser",
            &format!("differential-{i:02}.inline"),
            &inline,
        );
    }

    for (i, frame) in REPLIES.iter().enumerate() {
        write(
            "reply_scanner",
            &format!("reply-{i:02}"),
            &[&[0x07][..], frame].concat(),
        );
    }
    write(
        "reply_scanner",
        "all",
        &[vec![0x00], REPLIES.concat()].concat(),
    );

    let doc = json(3000);
    let values: [(&str, Vec<u8>); 5] = [
        ("doc", doc.clone()),
        ("short", b"hello".to_vec()),
        ("magic", b"\xFERSP\x01 looks like an envelope".to_vec()),
        ("zeros", vec![0; 5000]),
        ("envelope", compress::pack(&doc, Compress::Zstd, 1).unwrap()),
    ];
    for (name, value) in &values {
        for (codec, c) in [
            ("zstd", Compress::Zstd),
            ("lz4", Compress::Lz4),
            ("raw", Compress::None),
        ] {
            if let Some(stored) = compress::pack(value, c, 1) {
                write(
                    "envelope",
                    &format!("{name}-{codec}"),
                    &[&[0][..], &stored].concat(),
                );
                write(
                    "envelope",
                    &format!("{name}-{codec}-header"),
                    &[&[1][..], &stored].concat(),
                );
            }
        }
        write(
            "envelope",
            &format!("{name}-pack"),
            &[&[2, 0][..], value].concat(),
        );
    }
    let mut hostile = compress::MAGIC.to_vec();
    hostile.extend_from_slice(&[1, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0]);
    write("envelope", "hostile-length", &[&[1][..], &hostile].concat());

    let mut configs = vec![
        (
            "proxy.toml".to_owned(),
            fs::read_to_string(root.join("proxy.toml")).unwrap(),
        ),
        (
            "docker.toml".to_owned(),
            fs::read_to_string(root.join("deploy/docker/proxy.toml")).unwrap(),
        ),
    ];
    for file in [
        "tests/compression.rs",
        "tests/ttl.rs",
        "tests/l1.rs",
        "tests/reload.rs",
    ] {
        let text = fs::read_to_string(root.join(file)).unwrap();
        let stem = Path::new(file).file_stem().unwrap().to_string_lossy();
        for (i, block) in raw_strings(&text).into_iter().enumerate() {
            if block.contains("[[namespace]]") || block.contains("[server]") {
                configs.push((format!("{stem}-{i:02}.toml"), block.to_owned()));
            }
        }
    }
    for (name, text) in configs.iter().take(40) {
        write("config", name, text.as_bytes());
    }

    for (i, (pattern, key)) in GLOBS.iter().enumerate() {
        for nocase in [0, 1] {
            let control = (pattern.len() as u8) << 1 | nocase;
            let seed = [&[control][..], pattern, key].concat();
            write("glob", &format!("glob-{i:02}-{nocase}"), &seed);
        }
    }
}

/// The command scripts of the differential tests: the text of each
/// `.text(r#"…"#)`, without the `~` marks of unordered replies.
fn scripts(source: &str) -> Vec<String> {
    source
        .split(".text(")
        .skip(1)
        .filter_map(|s| raw_strings(s).into_iter().next())
        .map(|text| {
            text.lines()
                .map(|l| l.trim().trim_start_matches('~').trim())
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect()
}

/// The raw string literals (`r#"…"#`) of Rust source text.
fn raw_strings(source: &str) -> Vec<&str> {
    source
        .split("r#\"")
        .skip(1)
        .filter_map(|s| s.split("\"#").next())
        .collect()
}

fn json(n: usize) -> Vec<u8> {
    let mut s = String::from("[");
    let mut i = 0;
    while s.len() < n {
        s.push_str(&format!(
            r#"{{"id":{i},"name":"item {i}","tags":["a","b"]}},"#
        ));
        i += 1;
    }
    s.into_bytes()
}

const REPLIES: &[&[u8]] = &[
    b"+OK\r\n",
    b"-ERR wrong number of arguments for 'get' command\r\n",
    b":42\r\n",
    b"$5\r\nhello\r\n",
    b"$0\r\n\r\n",
    b"$-1\r\n",
    b"*-1\r\n",
    b"*0\r\n",
    b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n",
    b"*3\r\n$3\r\nfoo\r\n$-1\r\n$6\r\nb\r\nr\r\n\r\n",
    b"%2\r\n+a\r\n:1\r\n+b\r\n*2\r\n:1\r\n:2\r\n",
    b"~2\r\n+a\r\n+b\r\n",
    b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
    b"_\r\n",
    b",3.14\r\n",
    b"#t\r\n",
    b"(12345678901234567890\r\n",
    b"!5\r\nerror\r\n",
    b"=7\r\ntxt:abc\r\n",
    b"|1\r\n+key\r\n+val\r\n:5\r\n",
    b"*2\r\n|1\r\n+k\r\n+v\r\n:1\r\n:2\r\n",
];

const GLOBS: &[(&[u8], &[u8])] = &[
    (b"quran:*", b"quran:2:255"),
    (b"user:*:bookmarks", b"user:42:bookmarks"),
    (b"h?llo", b"hello"),
    (b"h[ae]llo", b"hallo"),
    (b"h[^e]llo", b"hbllo"),
    (b"h[a-b]llo", b"hallo"),
    (b"h[z-a]llo", b"hmllo"),
    (b"[a-", b"b"),
    (b"[a-]x", b"-]x"),
    (b"\\*x", b"*x"),
    (b"a\\", b"a\\"),
    (b"[]", b"x"),
    (b"[^]", b"x"),
    (b"*a*b*c*", b"xaybzc"),
    (b"[\xe9-a]", b"\x80"),
    (b"*", b""),
    (b"", b""),
];
