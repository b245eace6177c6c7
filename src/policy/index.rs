//! The structure behind [`Policy::lookup`](super::Policy::lookup): radix trees over
//! the literal parts of the rules, so a lookup costs a couple of short walks however
//! many rules there are.
//!
//! Each rule is filed under the node of its pattern's literal prefix, in the
//! forward tree:
//! - `session:*` (literal then `*`): the node's `prefix_rule`, matched by every key
//!   that walks through the node;
//! - `config` (no wildcard): the node's `exact_rule`, matched when the key ends there;
//! - other globs (`user:*:bookmarks`): the node's `globs`, tried with the matcher
//!   only when the key walks through the node.
//!
//! Globs that start with a wildcard but end with literal bytes (`*:lock`) are filed
//! under their literal suffix in the backward tree, walked from the key's end. Only
//! the globs with neither (`*lock*`) sit at the forward root, tried for every key.
//!
//! A lookup takes the smallest rule index among the prefix and exact hits, then tries
//! the glob candidates met on the walks in file order, stopping at the first that
//! matches or whose index is not smaller than the best found.

use super::glob::{Glob, starts_with};

/// No rule.
const NONE: u32 = u32::MAX;

/// Glob lists a lookup defers until both walks are done; more are tried at once
/// (still correct, with less pruning).
const PENDING: usize = 8;

#[derive(Debug, Clone)]
pub(super) struct Index {
    /// By literal prefix; `forward[0]` is the root (the empty prefix).
    forward: Vec<Node>,
    /// By literal suffix, for globs without a literal prefix. Edge labels are in key
    /// order; `first` holds each label's last byte.
    backward: Vec<Node>,
    /// (rule index, glob) of the rules that need the matcher, in file order.
    globs: Vec<(u32, Glob)>,
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// First rule `<path>*`, or NONE.
    prefix_rule: u32,
    /// First rule matching exactly `<path>`, or NONE.
    exact_rule: u32,
    /// Positions in `Index::globs`, in file order, of the globs filed here.
    globs: Box<[u32]>,
    /// The byte each edge is chosen by, sorted, parallel to `edges`.
    first: Box<[u8]>,
    edges: Box<[Edge]>,
}

#[derive(Debug, Clone)]
struct Edge {
    label: Box<[u8]>,
    child: u32,
}

/// What the rules filed under one literal contribute to its node.
#[derive(Default)]
struct Slot {
    prefix_rule: Option<u32>,
    exact_rule: Option<u32>,
    globs: Vec<u32>,
}

type Slots = std::collections::BTreeMap<Vec<u8>, Slot>;

impl Index {
    /// Builds the index from each rule's glob, given in file order.
    pub(super) fn build<'a>(rules: impl IntoIterator<Item = &'a Glob>) -> Index {
        let (mut forward, mut backward) = (Slots::new(), Slots::new());
        forward.insert(Vec::new(), Slot::default());
        backward.insert(Vec::new(), Slot::default());
        let mut globs = Vec::new();
        for (index, glob) in rules.into_iter().enumerate() {
            let index = u32::try_from(index).expect("fewer than 4 billion rules");
            let (prefix, suffix) = (glob.literal_prefix(), glob.literal_suffix());
            if glob.is_prefix() || glob.is_literal() {
                let slot = forward.entry(prefix.to_vec()).or_default();
                let rule = if glob.is_prefix() {
                    &mut slot.prefix_rule
                } else {
                    &mut slot.exact_rule
                };
                rule.get_or_insert(index);
                continue;
            }
            let slot = if prefix.is_empty() && !suffix.is_empty() {
                backward
                    .entry(suffix.iter().rev().copied().collect())
                    .or_default()
            } else {
                forward.entry(prefix.to_vec()).or_default()
            };
            slot.globs.push(globs.len() as u32);
            globs.push((index, glob.clone()));
        }
        let mut backward = radix_tree(backward.into_iter().collect());
        for node in &mut backward {
            for edge in node.edges.iter_mut() {
                edge.label.reverse();
            }
        }
        Index {
            forward: radix_tree(forward.into_iter().collect()),
            backward,
            globs,
        }
    }

    /// The index of the first rule in file order that matches `key`.
    #[inline]
    pub(super) fn lookup(&self, key: &[u8]) -> Option<usize> {
        let mut best = NONE;
        let mut deferred = Deferred::default();
        let (mut id, mut pos) = (0, 0);
        loop {
            let node = &self.forward[id as usize];
            best = best.min(node.prefix_rule);
            if let Some(now) = deferred.push(&node.globs) {
                best = self.first_glob(now, key, best);
            }
            let Some(&byte) = key.get(pos) else {
                best = best.min(node.exact_rule);
                break;
            };
            let Some(edge) = node.edge(byte) else { break };
            if !starts_with(&key[pos..], &edge.label) {
                break;
            }
            pos += edge.label.len();
            id = edge.child;
        }
        let (mut id, mut end) = (0, key.len());
        while end > 0 {
            let Some(edge) = self.backward[id as usize].edge(key[end - 1]) else {
                break;
            };
            let len = edge.label.len();
            if end < len || !starts_with(&key[end - len..end], &edge.label) {
                break;
            }
            end -= len;
            id = edge.child;
            if let Some(now) = deferred.push(&self.backward[id as usize].globs) {
                best = self.first_glob(now, key, best);
            }
        }
        for globs in &deferred.lists[..deferred.len] {
            best = self.first_glob(globs, key, best);
        }
        (best != NONE).then_some(best as usize)
    }

    /// The smaller of `best` and the first of `globs` that matches `key`.
    fn first_glob(&self, globs: &[u32], key: &[u8], best: u32) -> u32 {
        for &g in globs {
            let (index, glob) = &self.globs[g as usize];
            if *index >= best {
                break;
            }
            if glob.matches(key) {
                return *index;
            }
        }
        best
    }
}

/// Glob lists met on the walks, tried once the walks have lowered `best`.
#[derive(Default)]
struct Deferred<'a> {
    lists: [&'a [u32]; PENDING],
    len: usize,
}

impl<'a> Deferred<'a> {
    /// Keeps `globs` for later, or hands them back when full.
    #[inline]
    fn push(&mut self, globs: &'a [u32]) -> Option<&'a [u32]> {
        if globs.is_empty() {
            None
        } else if self.len < PENDING {
            self.lists[self.len] = globs;
            self.len += 1;
            None
        } else {
            Some(globs)
        }
    }
}

impl Node {
    #[inline]
    fn edge(&self, byte: u8) -> Option<&Edge> {
        self.first.binary_search(&byte).ok().map(|e| &self.edges[e])
    }
}

/// Builds a radix tree from slots sorted by key, the first being the root's (the
/// empty key). Iterative, so a long chain of nested keys cannot exhaust the stack.
fn radix_tree(mut entries: Vec<(Vec<u8>, Slot)>) -> Vec<Node> {
    let root = std::mem::take(&mut entries[0].1);
    let mut nodes = vec![root.into_node()];
    // (entries lo..hi, all extending the node's path of length depth, node id)
    let mut work = vec![(1, entries.len(), 0, 0usize)];
    while let Some((mut lo, hi, depth, id)) = work.pop() {
        let (mut first, mut edges) = (Vec::new(), Vec::new());
        while lo < hi {
            let byte = entries[lo].0[depth];
            let end = lo + entries[lo..hi].partition_point(|e| e.0[depth] == byte);
            // Sorted, so the group's common prefix is that of its first and last.
            let (a, z) = (&entries[lo].0, &entries[end - 1].0);
            let common = a[depth..]
                .iter()
                .zip(&z[depth..])
                .take_while(|(x, y)| x == y);
            let split = depth + common.count();
            let label: Box<[u8]> = a[depth..split].into();
            let mut next = lo;
            let slot = if entries[lo].0.len() == split {
                next += 1;
                std::mem::take(&mut entries[lo].1)
            } else {
                Slot::default()
            };
            let child = nodes.len();
            nodes.push(slot.into_node());
            first.push(byte);
            edges.push(Edge {
                label,
                child: child as u32,
            });
            work.push((next, end, split, child));
            lo = end;
        }
        nodes[id].first = first.into();
        nodes[id].edges = edges.into();
    }
    nodes
}

impl Slot {
    fn into_node(self) -> Node {
        Node {
            prefix_rule: self.prefix_rule.unwrap_or(NONE),
            exact_rule: self.exact_rule.unwrap_or(NONE),
            globs: self.globs.into(),
            ..Node::default()
        }
    }
}
