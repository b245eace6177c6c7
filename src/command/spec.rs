//! What a command is: its [`Kind`], [`Route`], [`Keys`] and [`Writes`], gathered in
//! one [`Spec`] per table entry, and the binary search of a sorted table.

use std::cmp::Ordering;

use bytes::Bytes;

/// What a command does, for metrics, caching and policy decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Reads data without changing it (GET, HGETALL, EXISTS, SCAN, OBJECT ENCODING, …).
    Read,
    /// May change data (SET, DEL, EXPIRE, EVAL, FCALL, SORT, PFCOUNT, FLUSHDB, …).
    Write,
    /// Server operations (CONFIG, INFO, SLOWLOG, ACL, CLUSTER, SCRIPT, MONITOR, …).
    Admin,
    /// Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
    Stateful,
    /// Waits on the server: BLPOP & co, WAIT, WAITAOF, XREAD/XREADGROUP with BLOCK.
    Blocking,
    /// Pub/sub: the SUBSCRIBE family, PUBLISH, SPUBLISH, PUBSUB.
    PubSub,
    /// Connection state: PING, SELECT, AUTH, HELLO, CLIENT SETNAME, …
    Connection,
    /// Not in the table; forwarded untouched.
    Unknown,
}

impl Kind {
    /// Every kind, in declaration order (for metrics that pre-register labels).
    pub const ALL: [Kind; 8] = [
        Kind::Read,
        Kind::Write,
        Kind::Admin,
        Kind::Stateful,
        Kind::Blocking,
        Kind::PubSub,
        Kind::Connection,
        Kind::Unknown,
    ];

    /// The metric label / log name of this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Read => "read",
            Kind::Write => "write",
            Kind::Admin => "admin",
            Kind::Stateful => "stateful",
            Kind::Blocking => "blocking",
            Kind::PubSub => "pubsub",
            Kind::Connection => "connection",
            Kind::Unknown => "unknown",
        }
    }
}

/// How the session must handle the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// Any shared pipelined upstream connection is fine.
    Forward,
    /// Needs a dedicated upstream connection while it waits (BLPOP, BRPOP, BRPOPLPUSH,
    /// BLMOVE, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP, WAIT, WAITAOF, XREAD/XREADGROUP with
    /// a BLOCK option).
    Blocking,
    Multi,
    Exec,
    Discard,
    Watch,
    Unwatch,
    /// Needs a connection of the client's own while it runs, so a slow or stuck one
    /// holds up no other client, and one that must reach a busy Redis waits behind
    /// nobody else's: scripts and functions, SCRIPT/FUNCTION KILL, SHUTDOWN, DEBUG,
    /// CLIENT PAUSE/UNBLOCK.
    Own,
    /// CLIENT UNPAUSE: as `Own`, and from a pooled client sent at once, before its
    /// earlier replies are in: they may wait on a shared connection behind another
    /// client's write that the pause holds, until the pause ends.
    Unpause,
    /// SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE: a connection of the client's own while it is
    /// subscribed.
    Subscribe,
    /// UNSUBSCRIBE, PUNSUBSCRIBE, SUNSUBSCRIBE (answered by the proxy when the client
    /// is not subscribed).
    Unsubscribe,
    /// Connection state the proxy does not model (MONITOR, CLIENT TRACKING): a
    /// connection of the client's own until RESET or disconnection.
    Sticky,
    Select,
    Auth,
    Hello,
    Reset,
    Quit,
    ClientId,
    ClientSetName,
    ClientGetName,
    ClientSetInfo,
    /// CLIENT LIST, CLIENT INFO, CLIENT KILL: about respite's own clients (Redis
    /// checks the arguments first).
    ClientList,
    ClientInfo,
    ClientKill,
    /// CLIENT NO-EVICT: a connection flag the proxy answers itself.
    ClientNoop,
    /// CLIENT REPLY ON|OFF|SKIP: the proxy drops the replies itself.
    ClientReply,
    /// SYNC, PSYNC, REPLCONF: replication through the proxy is not supported.
    Refuse,
}

impl Route {
    /// The log name of this route.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Forward => "forward",
            Route::Blocking => "blocking",
            Route::Multi => "multi",
            Route::Exec => "exec",
            Route::Discard => "discard",
            Route::Watch => "watch",
            Route::Unwatch => "unwatch",
            Route::Own => "own",
            Route::Unpause => "unpause",
            Route::Subscribe => "subscribe",
            Route::Unsubscribe => "unsubscribe",
            Route::Sticky => "sticky",
            Route::Select => "select",
            Route::Auth => "auth",
            Route::Hello => "hello",
            Route::Reset => "reset",
            Route::Quit => "quit",
            Route::ClientId => "client-id",
            Route::ClientSetName => "client-setname",
            Route::ClientGetName => "client-getname",
            Route::ClientSetInfo => "client-setinfo",
            Route::ClientList => "client-list",
            Route::ClientInfo => "client-info",
            Route::ClientKill => "client-kill",
            Route::ClientNoop => "client-noop",
            Route::ClientReply => "client-reply",
            Route::Refuse => "refuse",
        }
    }
}

/// Where a command's keys are.
#[derive(Debug, Clone, Copy)]
pub enum Keys {
    None,
    /// Redis's (first, last, step) convention: `last = -1` means the last argument,
    /// `-2` the one before, …
    Range {
        first: usize,
        last: isize,
        step: usize,
    },
    /// The key count is at `args[at]` and that many keys follow it (EVAL, FCALL, LMPOP,
    /// ZUNION, …); `dest` is a fixed key before the count (ZUNIONSTORE's destination).
    NumKeys {
        at: usize,
        dest: Option<usize>,
    },
    /// Anything that needs parsing: keyword searches (XREAD STREAMS, SORT STORE,
    /// GEORADIUS STORE, MIGRATE KEYS) and container commands, whose keys are those of
    /// the subcommand.
    Custom(fn(&[Bytes]) -> Vec<usize>),
}

impl Keys {
    /// Indexes into `args` (`args[0]` is the command name) of every key. Tolerates
    /// short or malformed commands: it never panics and never returns an index out of
    /// bounds.
    pub fn positions(&self, args: &[Bytes]) -> Vec<usize> {
        match *self {
            Keys::None => Vec::new(),
            Keys::Range { first, last, step } => range_positions(args.len(), first, last, step),
            Keys::NumKeys { at, dest } => numkeys_positions(args, at, dest),
            Keys::Custom(keys) => keys(args),
        }
    }

    /// The index of the first key, without allocating for the common layout.
    pub fn first(&self, args: &[Bytes]) -> Option<usize> {
        match *self {
            Keys::None => None,
            Keys::Range { first, last, .. } => {
                let argc = args.len();
                let last = if last < 0 {
                    argc.checked_sub(last.unsigned_abs())?
                } else {
                    last.unsigned_abs().min(argc.saturating_sub(1))
                };
                (first != 0 && first < argc && last >= first).then_some(first)
            }
            _ => self.positions(args).first().copied(),
        }
    }
}

/// Which of a command's keys it may modify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    /// None of them (reads, WATCH, …).
    None,
    /// All of them (SET, DEL, RENAME, LMOVE, EVAL, BLPOP, …).
    All,
    /// Only the first: the destination of SINTERSTORE, ZUNIONSTORE, BITOP, PFMERGE, …
    First,
    /// All but the first: the STORE key of SORT and GEORADIUS, when there is one.
    Rest,
}

impl Writes {
    pub(super) fn select(self, mut keys: Vec<usize>) -> Vec<usize> {
        match self {
            Writes::None => Vec::new(),
            Writes::All => keys,
            Writes::First => {
                keys.truncate(1);
                keys
            }
            Writes::Rest => keys.split_off(keys.len().min(1)),
        }
    }
}

/// One command (or subcommand) of the table.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Lower case: `"get"`; for a container the container (`"client"`); for a
    /// subcommand Redis's `container|sub` form (`"client|setname"`).
    pub name: &'static str,
    pub kind: Kind,
    /// Redis's arity convention: positive = exact count including the name, negative =
    /// at least `-arity`.
    pub arity: i32,
    pub keys: Keys,
    /// The route when no argument changes it (XREAD BLOCK does).
    pub route: Route,
    pub writes: Writes,
    /// Whether the L1 may answer it.
    pub cache: Cache,
    /// Sorted by name; empty unless this is a container command.
    pub subcommands: &'static [Spec],
}

/// Whether a read's reply may be cached: single-key reads whose reply depends only on
/// the key's value (not on time, randomness, cursors or other keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    No,
    Yes,
    /// Only when it names one key (`EXISTS k`).
    OneKey,
}

impl Spec {
    /// A command forwarded as is, modifying all its keys if it is a write.
    pub const fn new(name: &'static str, kind: Kind, arity: i32, keys: Keys) -> Spec {
        let writes = match kind {
            Kind::Write | Kind::Blocking => Writes::All,
            _ => Writes::None,
        };
        let route = Route::Forward;
        Spec {
            name,
            kind,
            arity,
            keys,
            route,
            writes,
            cache: Cache::No,
            subcommands: &[],
        }
    }

    pub const fn cached(mut self, cache: Cache) -> Spec {
        self.cache = cache;
        self
    }

    pub const fn with_route(mut self, route: Route) -> Spec {
        self.route = route;
        self
    }

    pub const fn with_writes(mut self, writes: Writes) -> Spec {
        self.writes = writes;
        self
    }

    pub const fn with_subcommands(mut self, subcommands: &'static [Spec]) -> Spec {
        self.subcommands = subcommands;
        self
    }

    /// Whether `argc` arguments (the name included) satisfy the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let need = self.arity.unsigned_abs() as usize;
        if self.arity < 0 {
            argc >= need
        } else {
            argc == need
        }
    }

    /// The subcommand part of a `container|sub` name, else the whole name.
    pub fn short_name(&self) -> &'static str {
        self.name.split_once('|').map_or(self.name, |(_, sub)| sub)
    }

    /// This container's subcommand `sub` (any case).
    pub fn subcommand(&self, sub: &[u8]) -> Option<&'static Spec> {
        // Subcommand names all start with "<container>|", which the search skips.
        find(self.subcommands, sub, self.name.len() + 1)
    }
}

/// Binary search of a sorted table, comparing `name` with each spec's name past `skip`
/// bytes.
pub(super) fn find(specs: &'static [Spec], name: &[u8], skip: usize) -> Option<&'static Spec> {
    let found = specs.binary_search_by(|spec| {
        let table_name = spec.name.as_bytes().get(skip..).unwrap_or_default();
        cmp_lowered(table_name, name)
    });
    found.ok().map(|i| &specs[i])
}

/// Compares a lower-case table name with a name as sent, ignoring ASCII case.
fn cmp_lowered(table_name: &[u8], sent: &[u8]) -> Ordering {
    table_name
        .iter()
        .copied()
        .cmp(sent.iter().map(u8::to_ascii_lowercase))
}

fn range_positions(argc: usize, first: usize, last: isize, step: usize) -> Vec<usize> {
    let last = if last < 0 {
        let back = last.unsigned_abs();
        match argc.checked_sub(back) {
            Some(last) => last,
            None => return Vec::new(),
        }
    } else {
        last.unsigned_abs().min(argc.saturating_sub(1))
    };
    if first == 0 || first >= argc || last < first {
        return Vec::new();
    }
    (first..=last).step_by(step.max(1)).collect()
}

fn numkeys_positions(args: &[Bytes], at: usize, dest: Option<usize>) -> Vec<usize> {
    let mut keys: Vec<usize> = dest.filter(|&d| d < args.len()).into_iter().collect();
    let count = args.get(at).and_then(|n| parse_count(n)).unwrap_or(0);
    let first = at + 1;
    keys.extend(first..first.saturating_add(count).min(args.len()));
    keys
}

/// A non-negative decimal count, as Redis parses `numkeys`.
fn parse_count(arg: &[u8]) -> Option<usize> {
    if arg.is_empty() || !arg.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(arg).ok()?.parse().ok()
}
