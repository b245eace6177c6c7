//! The static command table: every Redis 7.2 command (Sentinel excepted), sorted by
//! name so that [`lookup`] can binary-search it, plus the subcommand tables of
//! container commands and the key finders that need parsing.
//!
//! Kinds follow Redis's command flags, with the proxy's view where they differ:
//! PFCOUNT is a write (it may rewrite the HyperLogLog's cached cardinality), EVAL,
//! EVALSHA and FCALL are writes (their keys may be modified), XREAD is a read unless it
//! carries BLOCK. Arities and key positions are Redis's own; the tests compare them
//! with a running `redis-server`.

use bytes::Bytes;

use super::spec::Kind::{Admin, Blocking, Connection, PubSub, Read, Stateful, Write};
use super::spec::{Cache, Keys, Kind, Route, Spec, Writes, find};

const fn cmd(name: &'static str, kind: Kind, arity: i32, keys: Keys) -> Spec {
    Spec::new(name, kind, arity, keys)
}

const fn range(first: usize, last: isize, step: usize) -> Keys {
    Keys::Range { first, last, step }
}

const fn numkeys(at: usize) -> Keys {
    Keys::NumKeys { at, dest: None }
}

const fn numkeys_dest(at: usize, dest: usize) -> Keys {
    Keys::NumKeys {
        at,
        dest: Some(dest),
    }
}

const NONE: Keys = Keys::None;
/// The usual single key right after the name.
const K1: Keys = range(1, 1, 1);
/// The key after a subcommand (OBJECT ENCODING key, XINFO STREAM key, …).
const K2: Keys = range(2, 2, 1);
/// Every argument is a key (DEL, MGET, EXISTS, …).
const ALL: Keys = range(1, -1, 1);
/// Container commands: the keys of the subcommand.
const SUB: Keys = Keys::Custom(subcommand_keys);

/// Every top-level command, sorted by name.
pub fn commands() -> &'static [Spec] {
    COMMANDS
}

/// The top-level command called `name` (any case). Never allocates.
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    find(COMMANDS, name, 0)
}

pub(super) static COMMANDS: &[Spec] = &[
    cmd("acl", Admin, -2, SUB).with_subcommands(ACL_SUBCOMMANDS),
    cmd("append", Write, 3, K1),
    cmd("asking", Connection, 1, NONE),
    cmd("auth", Connection, -2, NONE).with_route(Route::Auth),
    cmd("bgrewriteaof", Admin, 1, NONE),
    cmd("bgsave", Admin, -1, NONE),
    cmd("bitcount", Read, -2, K1).cached(Cache::Yes),
    cmd("bitfield", Write, -2, K1),
    cmd("bitfield_ro", Read, -2, K1),
    cmd("bitop", Write, -4, range(2, -1, 1)).with_writes(Writes::First),
    cmd("bitpos", Read, -3, K1).cached(Cache::Yes),
    cmd("blmove", Blocking, 6, range(1, 2, 1)).with_route(Route::Blocking),
    cmd("blmpop", Blocking, -5, numkeys(2)).with_route(Route::Blocking),
    cmd("blpop", Blocking, -3, range(1, -2, 1)).with_route(Route::Blocking),
    cmd("brpop", Blocking, -3, range(1, -2, 1)).with_route(Route::Blocking),
    cmd("brpoplpush", Blocking, 4, range(1, 2, 1)).with_route(Route::Blocking),
    cmd("bzmpop", Blocking, -5, numkeys(2)).with_route(Route::Blocking),
    cmd("bzpopmax", Blocking, -3, range(1, -2, 1)).with_route(Route::Blocking),
    cmd("bzpopmin", Blocking, -3, range(1, -2, 1)).with_route(Route::Blocking),
    cmd("client", Admin, -2, SUB).with_subcommands(CLIENT_SUBCOMMANDS),
    cmd("cluster", Admin, -2, SUB).with_subcommands(CLUSTER_SUBCOMMANDS),
    cmd("command", Admin, -1, SUB).with_subcommands(COMMAND_SUBCOMMANDS),
    cmd("config", Admin, -2, SUB).with_subcommands(CONFIG_SUBCOMMANDS),
    cmd("copy", Write, -3, range(1, 2, 1)),
    cmd("dbsize", Read, 1, NONE),
    cmd("debug", Admin, -2, NONE).with_route(Route::Own),
    cmd("decr", Write, 2, K1),
    cmd("decrby", Write, 3, K1),
    cmd("del", Write, -2, ALL),
    cmd("discard", Stateful, 1, NONE).with_route(Route::Discard),
    cmd("dump", Read, 2, K1),
    cmd("echo", Connection, 2, NONE),
    cmd("eval", Write, -3, numkeys(2)).with_route(Route::Own),
    cmd("eval_ro", Read, -3, numkeys(2)).with_route(Route::Own),
    cmd("evalsha", Write, -3, numkeys(2)).with_route(Route::Own),
    cmd("evalsha_ro", Read, -3, numkeys(2)).with_route(Route::Own),
    cmd("exec", Stateful, 1, NONE).with_route(Route::Exec),
    cmd("exists", Read, -2, ALL).cached(Cache::OneKey),
    cmd("expire", Write, -3, K1),
    cmd("expireat", Write, -3, K1),
    cmd("expiretime", Read, 2, K1),
    cmd("failover", Admin, -1, NONE),
    cmd("fcall", Write, -3, numkeys(2)).with_route(Route::Own),
    cmd("fcall_ro", Read, -3, numkeys(2)).with_route(Route::Own),
    cmd("flushall", Write, -1, NONE),
    cmd("flushdb", Write, -1, NONE),
    cmd("function", Admin, -2, SUB).with_subcommands(FUNCTION_SUBCOMMANDS),
    cmd("geoadd", Write, -5, K1),
    cmd("geodist", Read, -4, K1),
    cmd("geohash", Read, -2, K1),
    cmd("geopos", Read, -2, K1),
    // Writes only with STORE/STOREDIST, like SORT.
    cmd("georadius", Write, -6, Keys::Custom(georadius_keys)).with_writes(Writes::Rest),
    cmd("georadius_ro", Read, -6, K1),
    cmd("georadiusbymember", Write, -5, Keys::Custom(georadius_keys)).with_writes(Writes::Rest),
    cmd("georadiusbymember_ro", Read, -5, K1),
    cmd("geosearch", Read, -7, K1),
    cmd("geosearchstore", Write, -8, range(1, 2, 1)).with_writes(Writes::First),
    cmd("get", Read, 2, K1).cached(Cache::Yes),
    cmd("getbit", Read, 3, K1).cached(Cache::Yes),
    cmd("getdel", Write, 2, K1),
    cmd("getex", Write, -2, K1),
    cmd("getrange", Read, 4, K1).cached(Cache::Yes),
    cmd("getset", Write, 3, K1),
    cmd("hdel", Write, -3, K1),
    cmd("hello", Connection, -1, NONE).with_route(Route::Hello),
    cmd("hexists", Read, 3, K1).cached(Cache::Yes),
    cmd("hget", Read, 3, K1).cached(Cache::Yes),
    cmd("hgetall", Read, 2, K1).cached(Cache::Yes),
    cmd("hincrby", Write, 4, K1),
    cmd("hincrbyfloat", Write, 4, K1),
    cmd("hkeys", Read, 2, K1).cached(Cache::Yes),
    cmd("hlen", Read, 2, K1).cached(Cache::Yes),
    cmd("hmget", Read, -3, K1).cached(Cache::Yes),
    cmd("hmset", Write, -4, K1),
    cmd("hrandfield", Read, -2, K1),
    cmd("hscan", Read, -3, K1),
    cmd("hset", Write, -4, K1),
    cmd("hsetnx", Write, 4, K1),
    cmd("hstrlen", Read, 3, K1).cached(Cache::Yes),
    cmd("hvals", Read, 2, K1).cached(Cache::Yes),
    cmd("incr", Write, 2, K1),
    cmd("incrby", Write, 3, K1),
    cmd("incrbyfloat", Write, 3, K1),
    cmd("info", Admin, -1, NONE),
    cmd("keys", Read, 2, NONE),
    cmd("lastsave", Admin, 1, NONE),
    cmd("latency", Admin, -2, SUB).with_subcommands(LATENCY_SUBCOMMANDS),
    cmd("lcs", Read, -3, range(1, 2, 1)),
    cmd("lindex", Read, 3, K1).cached(Cache::Yes),
    cmd("linsert", Write, 5, K1),
    cmd("llen", Read, 2, K1).cached(Cache::Yes),
    cmd("lmove", Write, 5, range(1, 2, 1)),
    cmd("lmpop", Write, -4, numkeys(1)),
    cmd("lolwut", Admin, -1, NONE),
    cmd("lpop", Write, -2, K1),
    cmd("lpos", Read, -3, K1).cached(Cache::Yes),
    cmd("lpush", Write, -3, K1),
    cmd("lpushx", Write, -3, K1),
    cmd("lrange", Read, 4, K1).cached(Cache::Yes),
    cmd("lrem", Write, 4, K1),
    cmd("lset", Write, 4, K1),
    cmd("ltrim", Write, 4, K1),
    cmd("memory", Admin, -2, SUB).with_subcommands(MEMORY_SUBCOMMANDS),
    cmd("mget", Read, -2, ALL),
    cmd("migrate", Write, -6, Keys::Custom(migrate_keys)),
    cmd("module", Admin, -2, SUB).with_subcommands(MODULE_SUBCOMMANDS),
    cmd("monitor", Admin, 1, NONE).with_route(Route::Sticky),
    cmd("move", Write, 3, K1),
    cmd("mset", Write, -3, range(1, -1, 2)),
    cmd("msetnx", Write, -3, range(1, -1, 2)),
    cmd("multi", Stateful, 1, NONE).with_route(Route::Multi),
    cmd("object", Read, -2, SUB).with_subcommands(OBJECT_SUBCOMMANDS),
    cmd("persist", Write, 2, K1),
    cmd("pexpire", Write, -3, K1),
    cmd("pexpireat", Write, -3, K1),
    cmd("pexpiretime", Read, 2, K1),
    cmd("pfadd", Write, -2, K1),
    // Redis flags it read-only, but it may rewrite the HyperLogLog's cached cardinality.
    cmd("pfcount", Write, -2, ALL),
    cmd("pfdebug", Write, 3, K2),
    cmd("pfmerge", Write, -2, ALL).with_writes(Writes::First),
    cmd("pfselftest", Admin, 1, NONE),
    cmd("ping", Connection, -1, NONE),
    cmd("psetex", Write, 4, K1),
    cmd("psubscribe", PubSub, -2, NONE).with_route(Route::Subscribe),
    cmd("psync", Admin, -3, NONE).with_route(Route::Refuse),
    cmd("pttl", Read, 2, K1),
    cmd("publish", PubSub, 3, NONE),
    cmd("pubsub", PubSub, -2, SUB).with_subcommands(PUBSUB_SUBCOMMANDS),
    cmd("punsubscribe", PubSub, -1, NONE).with_route(Route::Unsubscribe),
    cmd("quit", Connection, -1, NONE).with_route(Route::Quit),
    cmd("randomkey", Read, 1, NONE),
    cmd("readonly", Connection, 1, NONE),
    cmd("readwrite", Connection, 1, NONE),
    cmd("rename", Write, 3, range(1, 2, 1)),
    cmd("renamenx", Write, 3, range(1, 2, 1)),
    cmd("replconf", Admin, -1, NONE).with_route(Route::Refuse),
    cmd("replicaof", Admin, 3, NONE),
    cmd("reset", Connection, 1, NONE).with_route(Route::Reset),
    cmd("restore", Write, -4, K1),
    cmd("restore-asking", Write, -4, K1),
    cmd("role", Admin, 1, NONE),
    cmd("rpop", Write, -2, K1),
    cmd("rpoplpush", Write, 3, range(1, 2, 1)),
    cmd("rpush", Write, -3, K1),
    cmd("rpushx", Write, -3, K1),
    cmd("sadd", Write, -3, K1),
    cmd("save", Admin, 1, NONE),
    cmd("scan", Read, -2, NONE),
    cmd("scard", Read, 2, K1).cached(Cache::Yes),
    cmd("script", Admin, -2, SUB).with_subcommands(SCRIPT_SUBCOMMANDS),
    cmd("sdiff", Read, -2, ALL),
    cmd("sdiffstore", Write, -3, ALL).with_writes(Writes::First),
    cmd("select", Connection, 2, NONE).with_route(Route::Select),
    cmd("set", Write, -3, K1),
    cmd("setbit", Write, 4, K1),
    cmd("setex", Write, 4, K1),
    cmd("setnx", Write, 3, K1),
    cmd("setrange", Write, 4, K1),
    cmd("shutdown", Admin, -1, NONE).with_route(Route::Own),
    cmd("sinter", Read, -2, ALL),
    cmd("sintercard", Read, -3, numkeys(1)),
    cmd("sinterstore", Write, -3, ALL).with_writes(Writes::First),
    cmd("sismember", Read, 3, K1).cached(Cache::Yes),
    cmd("slaveof", Admin, 3, NONE),
    cmd("slowlog", Admin, -2, SUB).with_subcommands(SLOWLOG_SUBCOMMANDS),
    cmd("smembers", Read, 2, K1).cached(Cache::Yes),
    cmd("smismember", Read, -3, K1).cached(Cache::Yes),
    cmd("smove", Write, 4, range(1, 2, 1)),
    // Writes only with STORE: the destination is every key but the first.
    cmd("sort", Write, -2, Keys::Custom(sort_keys)).with_writes(Writes::Rest),
    cmd("sort_ro", Read, -2, K1),
    cmd("spop", Write, -2, K1),
    // Shard channels are not keys (COMMAND GETKEYS agrees).
    cmd("spublish", PubSub, 3, NONE),
    cmd("srandmember", Read, -2, K1),
    cmd("srem", Write, -3, K1),
    cmd("sscan", Read, -3, K1),
    cmd("ssubscribe", PubSub, -2, NONE).with_route(Route::Subscribe),
    cmd("strlen", Read, 2, K1).cached(Cache::Yes),
    cmd("subscribe", PubSub, -2, NONE).with_route(Route::Subscribe),
    cmd("substr", Read, 4, K1).cached(Cache::Yes),
    cmd("sunion", Read, -2, ALL),
    cmd("sunionstore", Write, -3, ALL).with_writes(Writes::First),
    cmd("sunsubscribe", PubSub, -1, NONE).with_route(Route::Unsubscribe),
    cmd("swapdb", Write, 3, NONE),
    cmd("sync", Admin, 1, NONE).with_route(Route::Refuse),
    cmd("time", Admin, 1, NONE),
    cmd("touch", Read, -2, ALL),
    cmd("ttl", Read, 2, K1),
    cmd("type", Read, 2, K1).cached(Cache::Yes),
    cmd("unlink", Write, -2, ALL),
    cmd("unsubscribe", PubSub, -1, NONE).with_route(Route::Unsubscribe),
    cmd("unwatch", Stateful, 1, NONE).with_route(Route::Unwatch),
    cmd("wait", Blocking, 3, NONE).with_route(Route::Blocking),
    cmd("waitaof", Blocking, 4, NONE).with_route(Route::Blocking),
    cmd("watch", Stateful, -2, ALL).with_route(Route::Watch),
    cmd("xack", Write, -4, K1),
    cmd("xadd", Write, -5, K1),
    cmd("xautoclaim", Write, -6, K1),
    cmd("xclaim", Write, -6, K1),
    cmd("xdel", Write, -3, K1),
    cmd("xgroup", Write, -2, SUB).with_subcommands(XGROUP_SUBCOMMANDS),
    cmd("xinfo", Read, -2, SUB).with_subcommands(XINFO_SUBCOMMANDS),
    cmd("xlen", Read, 2, K1).cached(Cache::Yes),
    cmd("xpending", Read, -3, K1),
    cmd("xrange", Read, -4, K1).cached(Cache::Yes),
    // With BLOCK, classify() makes both kind and route Blocking.
    cmd("xread", Read, -4, Keys::Custom(xread_keys)),
    cmd("xreadgroup", Write, -7, Keys::Custom(xread_keys)),
    cmd("xrevrange", Read, -4, K1).cached(Cache::Yes),
    cmd("xsetid", Write, -3, K1),
    cmd("xtrim", Write, -4, K1),
    cmd("zadd", Write, -4, K1),
    cmd("zcard", Read, 2, K1).cached(Cache::Yes),
    cmd("zcount", Read, 4, K1).cached(Cache::Yes),
    cmd("zdiff", Read, -3, numkeys(1)),
    cmd("zdiffstore", Write, -4, numkeys_dest(2, 1)).with_writes(Writes::First),
    cmd("zincrby", Write, 4, K1),
    cmd("zinter", Read, -3, numkeys(1)),
    cmd("zintercard", Read, -3, numkeys(1)),
    cmd("zinterstore", Write, -4, numkeys_dest(2, 1)).with_writes(Writes::First),
    cmd("zlexcount", Read, 4, K1).cached(Cache::Yes),
    cmd("zmpop", Write, -4, numkeys(1)),
    cmd("zmscore", Read, -3, K1).cached(Cache::Yes),
    cmd("zpopmax", Write, -2, K1),
    cmd("zpopmin", Write, -2, K1),
    cmd("zrandmember", Read, -2, K1),
    cmd("zrange", Read, -4, K1).cached(Cache::Yes),
    cmd("zrangebylex", Read, -4, K1).cached(Cache::Yes),
    cmd("zrangebyscore", Read, -4, K1).cached(Cache::Yes),
    cmd("zrangestore", Write, -5, range(1, 2, 1)).with_writes(Writes::First),
    cmd("zrank", Read, -3, K1).cached(Cache::Yes),
    cmd("zrem", Write, -3, K1),
    cmd("zremrangebylex", Write, 4, K1),
    cmd("zremrangebyrank", Write, 4, K1),
    cmd("zremrangebyscore", Write, 4, K1),
    cmd("zrevrange", Read, -4, K1).cached(Cache::Yes),
    cmd("zrevrangebylex", Read, -4, K1).cached(Cache::Yes),
    cmd("zrevrangebyscore", Read, -4, K1).cached(Cache::Yes),
    cmd("zrevrank", Read, -3, K1).cached(Cache::Yes),
    cmd("zscan", Read, -3, K1),
    cmd("zscore", Read, 3, K1).cached(Cache::Yes),
    cmd("zunion", Read, -3, numkeys(1)),
    cmd("zunionstore", Write, -4, numkeys_dest(2, 1)).with_writes(Writes::First),
];

pub(super) static ACL_SUBCOMMANDS: &[Spec] = &[
    cmd("acl|cat", Admin, -2, NONE),
    cmd("acl|deluser", Admin, -3, NONE),
    cmd("acl|dryrun", Admin, -4, NONE),
    cmd("acl|genpass", Admin, -2, NONE),
    cmd("acl|getuser", Admin, 3, NONE),
    cmd("acl|help", Admin, 2, NONE),
    cmd("acl|list", Admin, 2, NONE),
    cmd("acl|load", Admin, 2, NONE),
    cmd("acl|log", Admin, -2, NONE),
    cmd("acl|save", Admin, 2, NONE),
    cmd("acl|setuser", Admin, -3, NONE),
    cmd("acl|users", Admin, 2, NONE),
    cmd("acl|whoami", Admin, 2, NONE),
];

pub(super) static CLIENT_SUBCOMMANDS: &[Spec] = &[
    cmd("client|caching", Connection, 3, NONE),
    cmd("client|getname", Connection, 2, NONE).with_route(Route::ClientGetName),
    cmd("client|getredir", Admin, 2, NONE),
    cmd("client|help", Admin, 2, NONE),
    cmd("client|id", Connection, 2, NONE).with_route(Route::ClientId),
    // Valkey 8.1: the connection reads keys past their expiry (import mode).
    cmd("client|import-source", Connection, 3, NONE).with_route(Route::Sticky),
    cmd("client|info", Admin, 2, NONE).with_route(Route::ClientInfo),
    cmd("client|kill", Admin, -3, NONE).with_route(Route::ClientKill),
    cmd("client|list", Admin, -2, NONE).with_route(Route::ClientList),
    cmd("client|no-evict", Connection, 3, NONE).with_route(Route::ClientNoop),
    // Redis 7.2: reads on its connection leave the LRU alone (L1 hits never touch it).
    cmd("client|no-touch", Connection, 3, NONE).with_route(Route::Sticky),
    cmd("client|pause", Admin, -3, NONE).with_route(Route::Own),
    cmd("client|reply", Connection, 3, NONE).with_route(Route::ClientReply),
    cmd("client|setinfo", Connection, 4, NONE).with_route(Route::ClientSetInfo),
    cmd("client|setname", Connection, 3, NONE).with_route(Route::ClientSetName),
    cmd("client|tracking", Connection, -3, NONE).with_route(Route::Sticky),
    cmd("client|trackinginfo", Admin, 2, NONE),
    cmd("client|unblock", Admin, -3, NONE).with_route(Route::Own),
    cmd("client|unpause", Admin, 2, NONE).with_route(Route::Unpause),
];

pub(super) static CLUSTER_SUBCOMMANDS: &[Spec] = &[
    cmd("cluster|addslots", Admin, -3, NONE),
    cmd("cluster|addslotsrange", Admin, -4, NONE),
    cmd("cluster|bumpepoch", Admin, 2, NONE),
    cmd("cluster|count-failure-reports", Admin, 3, NONE),
    cmd("cluster|countkeysinslot", Admin, 3, NONE),
    cmd("cluster|delslots", Admin, -3, NONE),
    cmd("cluster|delslotsrange", Admin, -4, NONE),
    cmd("cluster|failover", Admin, -2, NONE),
    cmd("cluster|flushslots", Admin, 2, NONE),
    cmd("cluster|forget", Admin, 3, NONE),
    cmd("cluster|getkeysinslot", Admin, 4, NONE),
    cmd("cluster|help", Admin, 2, NONE),
    cmd("cluster|info", Admin, 2, NONE),
    cmd("cluster|keyslot", Admin, 3, NONE),
    cmd("cluster|links", Admin, 2, NONE),
    cmd("cluster|meet", Admin, -4, NONE),
    cmd("cluster|myid", Admin, 2, NONE),
    cmd("cluster|myshardid", Admin, 2, NONE),
    cmd("cluster|nodes", Admin, 2, NONE),
    cmd("cluster|replicas", Admin, 3, NONE),
    cmd("cluster|replicate", Admin, 3, NONE),
    cmd("cluster|reset", Admin, -2, NONE),
    cmd("cluster|saveconfig", Admin, 2, NONE),
    cmd("cluster|set-config-epoch", Admin, 3, NONE),
    cmd("cluster|setslot", Admin, -4, NONE),
    cmd("cluster|shards", Admin, 2, NONE),
    cmd("cluster|slaves", Admin, 3, NONE),
    cmd("cluster|slots", Admin, 2, NONE),
];

pub(super) static COMMAND_SUBCOMMANDS: &[Spec] = &[
    cmd("command|count", Admin, 2, NONE),
    cmd("command|docs", Admin, -2, NONE),
    cmd("command|getkeys", Admin, -4, NONE),
    cmd("command|getkeysandflags", Admin, -4, NONE),
    cmd("command|help", Admin, 2, NONE),
    cmd("command|info", Admin, -2, NONE),
    cmd("command|list", Admin, -2, NONE),
];

pub(super) static CONFIG_SUBCOMMANDS: &[Spec] = &[
    cmd("config|get", Admin, -3, NONE),
    cmd("config|help", Admin, 2, NONE),
    cmd("config|resetstat", Admin, 2, NONE),
    cmd("config|rewrite", Admin, 2, NONE),
    cmd("config|set", Admin, -4, NONE),
];

pub(super) static FUNCTION_SUBCOMMANDS: &[Spec] = &[
    cmd("function|delete", Write, 3, NONE),
    cmd("function|dump", Admin, 2, NONE),
    cmd("function|flush", Write, -2, NONE),
    cmd("function|help", Admin, 2, NONE),
    cmd("function|kill", Admin, 2, NONE).with_route(Route::Own),
    cmd("function|list", Admin, -2, NONE),
    cmd("function|load", Write, -3, NONE),
    cmd("function|restore", Write, -3, NONE),
    cmd("function|stats", Admin, 2, NONE),
];

pub(super) static LATENCY_SUBCOMMANDS: &[Spec] = &[
    cmd("latency|doctor", Admin, 2, NONE),
    cmd("latency|graph", Admin, 3, NONE),
    cmd("latency|help", Admin, 2, NONE),
    cmd("latency|histogram", Admin, -2, NONE),
    cmd("latency|history", Admin, 3, NONE),
    cmd("latency|latest", Admin, 2, NONE),
    cmd("latency|reset", Admin, -2, NONE),
];

pub(super) static MEMORY_SUBCOMMANDS: &[Spec] = &[
    cmd("memory|doctor", Admin, 2, NONE),
    cmd("memory|help", Admin, 2, NONE),
    cmd("memory|malloc-stats", Admin, 2, NONE),
    cmd("memory|purge", Admin, 2, NONE),
    cmd("memory|stats", Admin, 2, NONE),
    cmd("memory|usage", Read, -3, K2),
];

pub(super) static MODULE_SUBCOMMANDS: &[Spec] = &[
    cmd("module|help", Admin, 2, NONE),
    cmd("module|list", Admin, 2, NONE),
    cmd("module|load", Admin, -3, NONE),
    cmd("module|loadex", Admin, -3, NONE),
    cmd("module|unload", Admin, 3, NONE),
];

pub(super) static OBJECT_SUBCOMMANDS: &[Spec] = &[
    cmd("object|encoding", Read, 3, K2),
    cmd("object|freq", Read, 3, K2),
    cmd("object|help", Read, 2, NONE),
    cmd("object|idletime", Read, 3, K2),
    cmd("object|refcount", Read, 3, K2),
];

pub(super) static PUBSUB_SUBCOMMANDS: &[Spec] = &[
    cmd("pubsub|channels", PubSub, -2, NONE),
    cmd("pubsub|help", PubSub, 2, NONE),
    cmd("pubsub|numpat", PubSub, 2, NONE),
    cmd("pubsub|numsub", PubSub, -2, NONE),
    cmd("pubsub|shardchannels", PubSub, -2, NONE),
    cmd("pubsub|shardnumsub", PubSub, -2, NONE),
];

pub(super) static SCRIPT_SUBCOMMANDS: &[Spec] = &[
    cmd("script|debug", Admin, 3, NONE),
    cmd("script|exists", Admin, -3, NONE),
    cmd("script|flush", Admin, -2, NONE),
    cmd("script|help", Admin, 2, NONE),
    cmd("script|kill", Admin, 2, NONE).with_route(Route::Own),
    cmd("script|load", Admin, 3, NONE),
];

pub(super) static SLOWLOG_SUBCOMMANDS: &[Spec] = &[
    cmd("slowlog|get", Admin, -2, NONE),
    cmd("slowlog|help", Admin, 2, NONE),
    cmd("slowlog|len", Admin, 2, NONE),
    cmd("slowlog|reset", Admin, 2, NONE),
];

pub(super) static XGROUP_SUBCOMMANDS: &[Spec] = &[
    cmd("xgroup|create", Write, -5, K2),
    cmd("xgroup|createconsumer", Write, 5, K2),
    cmd("xgroup|delconsumer", Write, 5, K2),
    cmd("xgroup|destroy", Write, 4, K2),
    cmd("xgroup|help", Read, 2, NONE),
    cmd("xgroup|setid", Write, -5, K2),
];

pub(super) static XINFO_SUBCOMMANDS: &[Spec] = &[
    cmd("xinfo|consumers", Read, 4, K2),
    cmd("xinfo|groups", Read, 3, K2),
    cmd("xinfo|help", Read, 2, NONE),
    cmd("xinfo|stream", Read, -3, K2),
];

fn subcommand_keys(args: &[Bytes]) -> Vec<usize> {
    let container = args.first().and_then(|name| lookup(name));
    let sub = container
        .zip(args.get(1))
        .and_then(|(spec, sub)| spec.subcommand(sub));
    sub.map_or_else(Vec::new, |sub| sub.keys.positions(args))
}

pub(super) fn is_xread(spec: &Spec) -> bool {
    matches!(spec.name, "xread" | "xreadgroup")
}

/// What XREAD/XREADGROUP's options say before the streams.
pub(super) struct XreadScan {
    pub(super) block: bool,
    /// Index of the STREAMS keyword.
    pub(super) streams: Option<usize>,
}

/// Options of XREAD/XREADGROUP and how many arguments each spans. Walking them (rather
/// than searching for STREAMS) keeps a group or consumer named "streams" from being
/// taken for the keyword.
const XREAD_OPTIONS: &[(&[u8], usize)] =
    &[(b"block", 2), (b"count", 2), (b"group", 3), (b"noack", 1)];

pub(super) fn xread_scan(args: &[Bytes]) -> XreadScan {
    let mut scan = XreadScan {
        block: false,
        streams: None,
    };
    let mut i = 1;
    while let Some(arg) = args.get(i) {
        if arg.eq_ignore_ascii_case(b"streams") {
            scan.streams = Some(i);
            break;
        }
        let Some(&(option, width)) = XREAD_OPTIONS
            .iter()
            .find(|(o, _)| arg.eq_ignore_ascii_case(o))
        else {
            break;
        };
        scan.block |= option == b"block";
        i += width;
    }
    scan
}

/// `STREAMS k1 k2 … id1 id2 …`: the first half after the keyword (rounded down for an
/// odd count, a syntax error that `COMMAND GETKEYS` answers the same way).
fn xread_keys(args: &[Bytes]) -> Vec<usize> {
    let Some(streams) = xread_scan(args).streams else {
        return Vec::new();
    };
    let rest = args.len() - streams - 1;
    (streams + 1..streams + 1 + rest / 2).collect()
}

/// `SORT key [BY p] [LIMIT o c] [GET p …] [ASC|DESC] [ALPHA] [STORE dest]`: the key and
/// the last STORE destination, as Redis applies it.
fn sort_keys(args: &[Bytes]) -> Vec<usize> {
    let mut keys = single_key(args, 1);
    let mut i = 2;
    while let Some(arg) = args.get(i) {
        i += if arg.eq_ignore_ascii_case(b"limit") {
            3
        } else if arg.eq_ignore_ascii_case(b"by") || arg.eq_ignore_ascii_case(b"get") {
            2
        } else if arg.eq_ignore_ascii_case(b"store") && i + 1 < args.len() {
            keys.truncate(1);
            keys.push(i + 1);
            2
        } else {
            1
        };
    }
    keys
}

/// `GEORADIUS key lon lat r unit … [STORE k] [STOREDIST k]` (and BYMEMBER): the key and
/// every STORE/STOREDIST destination after index 5. Redis writes only the last one but
/// `COMMAND GETKEYS` reports all, and an extra key is harmless where a missing one
/// would leave a stale cache entry.
fn georadius_keys(args: &[Bytes]) -> Vec<usize> {
    let mut keys = single_key(args, 1);
    let mut i = 5;
    while let Some(arg) = args.get(i) {
        let is_store = arg.eq_ignore_ascii_case(b"store") || arg.eq_ignore_ascii_case(b"storedist");
        if is_store && i + 1 < args.len() {
            keys.push(i + 1);
            i += 1;
        }
        i += 1;
    }
    keys
}

/// `MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH pw] [AUTH2 user pw]
/// [KEYS k …]`: the key at 3, or the keys after KEYS when the key is empty.
fn migrate_keys(args: &[Bytes]) -> Vec<usize> {
    let mut i = 6;
    while let Some(arg) = args.get(i) {
        if arg.eq_ignore_ascii_case(b"keys") {
            return match args.get(3) {
                Some(key) if key.is_empty() => (i + 1..args.len()).collect(),
                _ => Vec::new(),
            };
        }
        i += if arg.eq_ignore_ascii_case(b"auth") {
            2
        } else if arg.eq_ignore_ascii_case(b"auth2") {
            3
        } else {
            1
        };
    }
    single_key(args, 3)
}

/// The single key at `at`, if present.
fn single_key(args: &[Bytes], at: usize) -> Vec<usize> {
    if at < args.len() {
        vec![at]
    } else {
        Vec::new()
    }
}

/// Checks against a real `redis-server` (7.0 or later; `REDIS_SERVER` overrides the
/// binary): the table covers every command it knows, with its arity, and
/// `key_positions` agrees with `COMMAND GETKEYS`.
#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::io::{BufRead, BufReader, Read as _, Write as _};
    use std::net::TcpStream;
    use std::process::Child;
    use std::time::Duration;

    use super::super::{Keys, key_positions, lookup};
    use super::*;

    /// Commands of Redis 7.2 (and Valkey 8.1) that a Redis 7.0 server does not know.
    const NEWER_THAN_7_0: &[&str] = &[
        "waitaof",
        "client|no-touch",
        "client|setinfo",
        "cluster|myshardid",
        "client|import-source",
    ];
    /// Arities that changed in 7.2 (ZRANK/ZREVRANK gained WITHSCORE).
    const ARITY_CHANGED: &[&str] = &["zrank", "zrevrank"];
    /// Shard channels: Redis's legacy first/last/step cover them, but they are not keys.
    const CHANNELS_NOT_KEYS: &[&str] = &["spublish", "ssubscribe", "sunsubscribe"];

    /// COMMAND GETKEYS errors meaning "no keys here": none by design, or a malformed
    /// key layout (which `key_positions` answers with no keys as well).
    const NO_KEYS_ERRORS: &[&str] = &["has no key arguments", "Invalid arguments specified"];

    #[derive(Debug)]
    enum Reply {
        Status(String),
        Error(String),
        Int(i64),
        Bulk(Option<Vec<u8>>),
        Array(Option<Vec<Reply>>),
    }

    impl Reply {
        fn items(&self) -> &[Reply] {
            match self {
                Reply::Array(Some(items)) => items,
                other => panic!("expected an array, got {other:?}"),
            }
        }

        fn text(&self) -> String {
            match self {
                Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
                Reply::Status(s) => s.clone(),
                other => panic!("expected a string, got {other:?}"),
            }
        }

        fn int(&self) -> i64 {
            match self {
                Reply::Int(n) => *n,
                other => panic!("expected an integer, got {other:?}"),
            }
        }
    }

    /// A `redis-server` child process on a free port, killed on drop.
    struct Server {
        child: Child,
        stream: TcpStream,
    }

    impl Server {
        fn start() -> Server {
            let (child, stream) = crate::protocol::test_redis::spawn();
            Server { child, stream }
        }

        fn connect(&self) -> Conn {
            Conn::new(self.stream.try_clone().unwrap())
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    struct Conn {
        writer: TcpStream,
        reader: BufReader<TcpStream>,
    }

    impl Conn {
        fn new(stream: TcpStream) -> Conn {
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            Conn {
                reader: BufReader::new(stream.try_clone().unwrap()),
                writer: stream,
            }
        }

        fn call(&mut self, args: &[Bytes]) -> Reply {
            let mut out = format!("*{}\r\n", args.len()).into_bytes();
            for arg in args {
                out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
                out.extend_from_slice(arg);
                out.extend_from_slice(b"\r\n");
            }
            self.writer.write_all(&out).unwrap();
            self.read()
        }

        fn call_str(&mut self, line: &str) -> Reply {
            self.call(&words(line))
        }

        fn line(&mut self) -> String {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            line.trim_end_matches("\r\n").to_owned()
        }

        fn read(&mut self) -> Reply {
            let line = self.line();
            let (tag, rest) = line.split_at(1);
            match tag {
                "+" => Reply::Status(rest.to_owned()),
                "-" => Reply::Error(rest.to_owned()),
                ":" => Reply::Int(rest.parse().unwrap()),
                "$" => Reply::Bulk(self.bulk(rest.parse().unwrap())),
                "*" => {
                    let n: i64 = rest.parse().unwrap();
                    Reply::Array((n >= 0).then(|| (0..n).map(|_| self.read()).collect()))
                }
                _ => panic!("unexpected reply line {line:?}"),
            }
        }

        fn bulk(&mut self, len: i64) -> Option<Vec<u8>> {
            let len = usize::try_from(len).ok()?;
            let mut buf = vec![0; len + 2];
            self.reader.read_exact(&mut buf).unwrap();
            buf.truncate(len);
            Some(buf)
        }
    }

    /// Splits a command line on spaces; `""` stands for an empty argument.
    fn words(line: &str) -> Vec<Bytes> {
        let word = |w: &str| {
            if w == "\"\"" {
                Bytes::new()
            } else {
                Bytes::copy_from_slice(w.as_bytes())
            }
        };
        line.split_whitespace().map(word).collect()
    }

    fn all_specs() -> impl Iterator<Item = &'static Spec> {
        COMMANDS
            .iter()
            .flat_map(|spec| std::iter::once(spec).chain(spec.subcommands))
    }

    /// Commands for COMMAND GETKEYS, `;`-separated: at least one per keyed command of
    /// Redis 7.0, plus option and malformed-input variants.
    const GETKEYS_SAMPLES: &str = r#"
        APPEND k v; BITCOUNT k; BITFIELD k GET u8 0; BITFIELD_RO k GET u8 0; BITOP AND d a b;
        BITPOS k 1; BLMOVE a b LEFT RIGHT 0; BLMPOP 0 2 a b LEFT; BLPOP a b 0; BRPOP a b 0;
        BRPOPLPUSH a b 0; BZMPOP 0 2 a b MIN; BZPOPMAX a b 0; BZPOPMIN a b 0; COPY a b;
        COPY a b DB 1 REPLACE; DECR k; DECRBY k 1; DEL a b c; DUMP k; EVAL s 2 a b x;
        EVAL s 0; EVAL_RO s 1 a; EVALSHA h 2 a b; EVALSHA_RO h 1 a; EXISTS a b; EXPIRE k 10;
        EXPIREAT k 10; EXPIRETIME k; FCALL f 2 a b x; FCALL_RO f 1 a; GEOADD k 0 0 m;
        GEODIST k a b; GEOHASH k a; GEOPOS k a; GEORADIUS k 0 0 1 m;
        GEORADIUS k 0 0 1 m STORE d; GEORADIUS k 0 0 1 m STOREDIST d; GEORADIUS_RO k 0 0 1 m;
        GEORADIUSBYMEMBER k m 1 km; GEORADIUSBYMEMBER k m 1 km STORE d;
        GEORADIUSBYMEMBER_RO k m 1 km; GEOSEARCH k FROMMEMBER m BYRADIUS 1 m;
        GEOSEARCHSTORE d s FROMMEMBER m BYRADIUS 1 m; GET k; GETBIT k 0; GETDEL k; GETEX k;
        GETEX k EX 10; GETRANGE k 0 1; GETSET k v; HDEL k f; HEXISTS k f; HGET k f;
        HGETALL k; HINCRBY k f 1; HINCRBYFLOAT k f 1; HKEYS k; HLEN k; HMGET k f g;
        HMSET k f v; HRANDFIELD k; HSCAN k 0; HSET k f v; HSETNX k f v; HSTRLEN k f; HVALS k;
        INCR k; INCRBY k 1; INCRBYFLOAT k 1; LCS a b; LINDEX k 0; LINSERT k BEFORE p v;
        LLEN k; LMOVE a b LEFT RIGHT; LMPOP 2 a b LEFT; LPOP k; LPOS k v; LPUSH k v;
        LPUSHX k v; LRANGE k 0 1; LREM k 0 v; LSET k 0 v; LTRIM k 0 1; MGET a b;
        MIGRATE h 1 k 0 5000; MIGRATE h 1 "" 0 5000 KEYS a b;
        MIGRATE h 1 "" 0 5000 COPY REPLACE AUTH pw KEYS a b;
        MIGRATE h 1 "" 0 5000 AUTH2 u pw KEYS a; MOVE k 1; MSET a 1 b 2; MSETNX a 1 b 2;
        PERSIST k; PEXPIRE k 1; PEXPIREAT k 1; PEXPIRETIME k; PFADD k a; PFCOUNT a b;
        PFDEBUG GETREG k; PFMERGE d a b; PSETEX k 1 v; PTTL k; RENAME a b; RENAMENX a b;
        RESTORE k 0 x; RESTORE-ASKING k 0 x; RPOP k; RPOPLPUSH a b; RPUSH k v; RPUSHX k v;
        SADD k m; SCARD k; SDIFF a b; SDIFFSTORE d a b; SET k v; SET k v EX 10 GET;
        SETBIT k 0 1; SETEX k 1 v; SETNX k v; SETRANGE k 0 v; SINTER a b;
        SINTERCARD 2 a b LIMIT 1; SINTERSTORE d a b; SISMEMBER k m; SMEMBERS k;
        SMISMEMBER k m; SMOVE a b m; SORT k; SORT k BY p STORE d;
        SORT k LIMIT 0 1 GET p ALPHA STORE d; SORT_RO k; SPOP k; SRANDMEMBER k; SREM k m;
        SSCAN k 0; STRLEN k; SUBSTR k 0 1; SUNION a b; SUNIONSTORE d a b; TOUCH a b; TTL k;
        TYPE k; UNLINK a b; WATCH a b; XACK k g 0-1; XADD k * f v; XAUTOCLAIM k g c 0 0;
        XCLAIM k g c 0 0-1; XDEL k 0-1; XLEN k; XPENDING k g; XRANGE k - +;
        XREAD COUNT 1 BLOCK 0 STREAMS a b 0 0; XREAD STREAMS a 0;
        XREADGROUP GROUP g c STREAMS a >;
        XREADGROUP GROUP g c COUNT 1 BLOCK 0 NOACK STREAMS a b > >; XREVRANGE k + -;
        XSETID k 0-1; XTRIM k MAXLEN 1; ZADD k 1 m; ZCARD k; ZCOUNT k 0 1; ZDIFF 2 a b;
        ZDIFFSTORE d 2 a b; ZINCRBY k 1 m; ZINTER 2 a b; ZINTERCARD 2 a b;
        ZINTERSTORE d 2 a b; ZLEXCOUNT k - +; ZMPOP 2 a b MIN; ZMSCORE k m; ZPOPMAX k;
        ZPOPMIN k; ZRANDMEMBER k; ZRANGE k 0 1; ZRANGEBYLEX k - +; ZRANGEBYSCORE k 0 1;
        ZRANGESTORE d s 0 1; ZRANK k m; ZREM k m; ZREMRANGEBYLEX k - +;
        ZREMRANGEBYRANK k 0 1; ZREMRANGEBYSCORE k 0 1; ZREVRANGE k 0 1; ZREVRANGEBYLEX k + -;
        ZREVRANGEBYSCORE k 1 0; ZREVRANK k m; ZSCAN k 0; ZSCORE k m; ZUNION 2 a b;
        ZUNIONSTORE d 2 a b WEIGHTS 1 2; OBJECT ENCODING k; OBJECT FREQ k; OBJECT IDLETIME k;
        OBJECT REFCOUNT k; OBJECT HELP; MEMORY USAGE k; MEMORY USAGE k SAMPLES 5;
        XINFO CONSUMERS k g; XINFO GROUPS k; XINFO STREAM k; XINFO STREAM k FULL;
        XGROUP CREATE k g $; XGROUP CREATECONSUMER k g c; XGROUP DELCONSUMER k g c;
        XGROUP DESTROY k g; XGROUP SETID k g $; PING x; PUBLISH c m; SPUBLISH c m;
        SSUBSCRIBE c; KEYS *; FLUSHDB ASYNC; CONFIG GET maxmemory;
        MIGRATE h 1 k 0 5000 KEYS a; XREAD STREAMS a b 0;
        XREADGROUP GROUP streams c STREAMS a >; XREAD COUNT 1 STREAMS streams 0;
        SORT k STORE d1 STORE d2; SORT k STORE; GEORADIUS k 0 0 1 m STORE d STOREDIST e;
        GEORADIUSBYMEMBER k m 1 km STOREDIST d; GEORADIUS k 0 0 1 m STORE; MSET k v k;
        BLPOP a 0; EVAL s -1 a
    "#;

    fn getkeys_samples() -> impl Iterator<Item = &'static str> {
        GETKEYS_SAMPLES
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    fn sample_name(sample: &str) -> String {
        let mut words = sample.split_whitespace().map(str::to_ascii_lowercase);
        let name = words.next().unwrap();
        match lookup(name.as_bytes()) {
            Some(spec) if !spec.subcommands.is_empty() => {
                format!("{name}|{}", words.next().unwrap())
            }
            _ => name,
        }
    }

    #[test]
    fn key_positions_match_command_getkeys() {
        let server = Server::start();
        let mut conn = server.connect();
        for sample in getkeys_samples() {
            let args = words(sample);
            let mut query = words("COMMAND GETKEYS");
            query.extend(args.iter().cloned());
            let want: Vec<String> = match conn.call(&query) {
                Reply::Error(e) if NO_KEYS_ERRORS.iter().any(|no| e.contains(no)) => Vec::new(),
                Reply::Error(e) => panic!("{sample}: {e}"),
                reply => reply.items().iter().map(Reply::text).collect(),
            };
            let got: Vec<String> = key_positions(&args)
                .iter()
                .map(|&i| String::from_utf8_lossy(&args[i]).into_owned())
                .collect();
            assert_eq!(got, want, "{sample}");
        }
    }

    #[test]
    fn every_keyed_command_has_a_getkeys_sample() {
        let sampled: HashSet<String> = getkeys_samples().map(sample_name).collect();
        for spec in all_specs() {
            let keyed = !matches!(spec.keys, Keys::None) && spec.subcommands.is_empty();
            assert!(
                !keyed || sampled.contains(spec.name),
                "no GETKEYS sample for {}",
                spec.name
            );
        }
    }

    #[test]
    fn table_covers_command_list() {
        let server = Server::start();
        let mut conn = server.connect();
        let listed: HashSet<String> = conn
            .call_str("COMMAND LIST")
            .items()
            .iter()
            .map(Reply::text)
            .collect();
        let ours: HashSet<String> = all_specs().map(|s| s.name.to_owned()).collect();
        let mut missing: Vec<&String> = listed.difference(&ours).collect();
        missing.sort();
        assert!(missing.is_empty(), "missing from the table: {missing:?}");
        let extra = ours
            .iter()
            .filter(|n| !listed.contains(*n) && !NEWER_THAN_7_0.contains(&n.as_str()));
        assert_eq!(
            extra.collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "unknown to redis-server"
        );
    }

    #[test]
    fn table_agrees_with_command_info() {
        let server = Server::start();
        let mut conn = server.connect();
        let info = conn.call_str("COMMAND INFO");
        for entry in info.items() {
            check_info(entry);
            for sub in entry.items()[9].items() {
                check_info(sub);
            }
        }
    }

    /// One COMMAND INFO entry: name, arity, flags, first, last, step, ….
    fn check_info(entry: &Reply) {
        let fields = entry.items();
        let name = fields[0].text();
        let spec = find_spec(&name).unwrap_or_else(|| panic!("{name} missing from the table"));
        if !ARITY_CHANGED.contains(&name.as_str()) {
            assert_eq!(i64::from(spec.arity), fields[1].int(), "arity of {name}");
        }
        let flags: HashSet<String> = fields[2].items().iter().map(Reply::text).collect();
        check_kind(spec, &flags);
        let range = (fields[3].int(), fields[4].int(), fields[5].int());
        check_range(spec, range, flags.contains("movablekeys"));
    }

    fn find_spec(name: &str) -> Option<&'static Spec> {
        all_specs().find(|s| s.name == name)
    }

    fn check_kind(spec: &Spec, flags: &HashSet<String>) {
        let name = spec.name;
        let kind = spec.kind;
        if flags.contains("write") {
            assert!(
                matches!(kind, Write | Blocking),
                "{name} is a write, not {kind:?}"
            );
        }
        if flags.contains("readonly") && name != "pfcount" {
            assert!(!matches!(kind, Write), "{name} is read-only");
        }
        if flags.contains("blocking") && !is_xread(spec) {
            assert_eq!(kind, Blocking, "{name}");
        }
        if flags.contains("pubsub") {
            assert_eq!(kind, PubSub, "{name}");
        }
        if spec.cache != Cache::No {
            assert!(
                flags.contains("readonly"),
                "{name} is cached, not read-only"
            );
        }
    }

    fn check_range(spec: &Spec, (first, last, step): (i64, i64, i64), movable: bool) {
        let name = spec.name;
        if let Keys::Range {
            first: f,
            last: l,
            step: s,
        } = spec.keys
        {
            assert_eq!(
                (f as i64, l as i64, s as i64),
                (first, last, step),
                "key range of {name}"
            );
        } else if first != 0 && !movable {
            assert!(
                CHANNELS_NOT_KEYS.contains(&name),
                "{name} should use its key range"
            );
        }
    }
}
