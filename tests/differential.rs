//! Differential tests: each script runs straight against Redis and then through the
//! proxy (fresh connections, flushed server), and every reply must be the same bytes.
//! Scripts avoid replies that depend on timing or randomness; where Redis leaves the
//! order open, the line is marked `~` and compared with aggregates sorted.

mod support;

use support::{
    ServerKind, Stack, pseudo_random_bytes,
    resp::{decode, encode_command},
    script::{Script, assert_same},
};

fn check(script: Script) {
    let stack = Stack::start();
    assert_same(&stack, &script);
}

#[test]
fn strings() {
    check(Script::new("strings").text(
        r#"
        SET s:a hello
        GET s:a
        SET s:a world XX GET
        GET s:a
        SET s:b x NX
        SET s:b y NX
        SET s:b y NX GET
        SET s:c v XX
        GET s:c
        SET s:a v1 EX 1000
        TTL s:a
        SET s:a v2 KEEPTTL
        TTL s:a
        SET s:a v3 PX 5000000
        TTL s:a
        SET s:a v4 EXAT 9999999999
        EXPIRETIME s:a
        SET s:a v5 PXAT 9999999999123
        PEXPIRETIME s:a
        GETEX s:a PERSIST
        TTL s:a
        GETEX s:a EX 100
        TTL s:a
        GETEX s:a PXAT 9999999999000
        PEXPIRETIME s:a
        GETEX s:missing
        GETEX s:a EX 0
        GETDEL s:a
        GETDEL s:a
        GET s:a
        SETNX s:nx 1
        SETNX s:nx 2
        SETEX s:ex 1000 v
        TTL s:ex
        PSETEX s:pex 5000000 v
        TTL s:pex
        GETSET s:nx 3
        SET n 10
        INCR n
        INCRBY n 5
        DECR n
        DECRBY n 3
        INCRBY n -100
        INCRBYFLOAT n 1.5
        INCRBYFLOAT n -0.25
        INCRBYFLOAT n 1e3
        GET n
        SET big 9223372036854775807
        INCR big
        INCR s:b
        INCRBYFLOAT s:b 1
        APPEND s:app abc
        APPEND s:app def
        GET s:app
        GETRANGE s:app 1 3
        GETRANGE s:app -2 -1
        GETRANGE s:app 10 20
        SUBSTR s:app 0 1
        SETRANGE s:app 1 XYZ
        GET s:app
        SETRANGE s:pad 5 hi
        GET s:pad
        STRLEN s:app
        STRLEN s:missing
        MSET m1 a m2 b m3 c
        MGET m1 m2 missing m3
        MSETNX m1 x m4 y
        MSETNX m5 x m6 y
        MGET m4 m5 m6
        SET lcs1 ohmytext
        SET lcs2 mynewtext
        LCS lcs1 lcs2
        LCS lcs1 lcs2 LEN
        LCS lcs1 lcs2 IDX MINMATCHLEN 2 WITHMATCHLEN
        SET s:e ""
        GET s:e
        STRLEN s:e
        SET s:a v EX 0
        SET s:a v EX notanumber
        SET s:a v NX XX
        SET s:a v EX 10 PX 100
        SET s:a v BADOPTION
        GETEX s:b PERSIST EX 10
        "#,
    ));
}

#[test]
fn expiry() {
    check(Script::new("expiry").text(
        r#"
        SET e1 v
        TTL e1
        PTTL e1
        EXPIRE e1 1000
        TTL e1
        EXPIRE e1 2000 NX
        EXPIRE e1 2000 XX
        TTL e1
        EXPIRE e1 500 GT
        EXPIRE e1 5000 GT
        EXPIRE e1 100 LT
        TTL e1
        EXPIRE e1 1000 NX XX
        EXPIRE e1 1000 GT LT
        EXPIRE e1 abc
        PEXPIRE e1 3000000
        TTL e1
        EXPIREAT e1 9999999999
        EXPIRETIME e1
        PEXPIREAT e1 9999999999123
        PEXPIRETIME e1
        EXPIRETIME e1
        PERSIST e1
        TTL e1
        PTTL e1
        EXPIRETIME e1
        PERSIST e1
        TTL missing
        PTTL missing
        EXPIRETIME missing
        EXPIRE missing 10
        PERSIST missing
        SET e2 v
        EXPIRE e2 -1
        EXISTS e2
        SET e3 v
        PEXPIRE e3 0
        GET e3
        SET e4 v
        EXPIREAT e4 1
        GET e4
        SET e5 v EX 100
        SET e5 w
        TTL e5
        SET e6 v EX 100
        APPEND e6 x
        TTL e6
        RENAME e6 e7
        TTL e7
        HSET e8 f v
        EXPIRE e8 1000
        HSET e8 g w
        TTL e8
        "#,
    ));
}

#[test]
fn keys() {
    let stack = Stack::start();
    // A DUMP payload made by this very server, for RESTORE.
    let mut direct = stack.direct();
    direct.cmd("SET src payload-value");
    let dump = decode(&direct.cmd("DUMP src")).text().unwrap().to_vec();
    direct.cmd("FLUSHALL");

    let script = Script::new("keys")
        .text(
            r#"
            MSET k:1 a k:2 b k:3 c other x
            EXISTS k:1 k:2 nope k:1
            TYPE k:1
            TYPE nope
            LPUSH klist a
            TYPE klist
            HSET khash f v
            TYPE khash
            SADD kset a
            TYPE kset
            ZADD kz 1 a
            TYPE kz
            XADD kstream 1-1 f v
            TYPE kstream
            DBSIZE
            RENAME k:1 k:renamed
            GET k:renamed
            GET k:1
            RENAME nope x
            RENAMENX k:2 k:3
            RENAMENX k:2 k:4
            RENAMENX k:4 k:2
            COPY k:2 k:copy
            GET k:copy
            COPY k:2 k:copy
            COPY k:2 k:copy REPLACE
            COPY k:2 k:db1 DB 1
            COPY nope k:x
            DEL k:copy nope
            UNLINK k:renamed
            EXISTS k:renamed
            TOUCH k:2 nope
            ~ SCAN 0 MATCH k:* COUNT 1000
            ~ SCAN 0 TYPE list COUNT 1000
            ~ KEYS *
            ~ KEYS k:?
            KEYS nomatch*
            SET enc:int 12345
            OBJECT ENCODING enc:int
            SET enc:emb hello
            OBJECT ENCODING enc:emb
            SET enc:raw aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
            OBJECT ENCODING enc:raw
            RPUSH enc:list a b
            OBJECT ENCODING enc:list
            SADD enc:ints 1 2 3
            OBJECT ENCODING enc:ints
            OBJECT ENCODING nope
            DUMP nope
            SET dumped hello
            DUMP dumped
            MOVE k:2 1
            EXISTS k:2
            MOVE k:3 1
            MOVE k:3 99
            DBSIZE
            "#,
        )
        .cmd(&[b"RESTORE".as_slice(), b"k:restored", b"0", &dump])
        .cmd(&["GET", "k:restored"])
        .cmd(&[b"RESTORE".as_slice(), b"k:restored", b"0", &dump])
        .cmd(&[
            b"RESTORE".as_slice(),
            b"k:restored",
            b"0",
            &dump,
            b"REPLACE",
        ])
        .cmd(&[b"RESTORE".as_slice(), b"k:ttl", b"5000000", &dump])
        .cmd(&["TTL", "k:ttl"])
        .cmd(&["RESTORE", "k:bad", "0", "not-a-dump-payload"]);
    assert_same(&stack, &script);
}

#[test]
fn hashes() {
    let mut big = String::from("HSET bigh");
    for i in 0..200 {
        big.push_str(&format!(" f{i} v{i}"));
    }
    check(
        Script::new("hashes")
            .text(
                r#"
                HSET h f1 v1 f2 v2
                HSET h f1 v1b
                HGET h f1
                HGET h nope
                HGET nope f1
                HMGET h f1 nope f2
                HGETALL h
                HGETALL nope
                HSETNX h f1 x
                HSETNX h f3 v3
                HDEL h f3 nope
                HLEN h
                HEXISTS h f1
                HEXISTS h nope
                HKEYS h
                HVALS h
                HINCRBY h n 5
                HINCRBY h n -7
                HINCRBY h f1 1
                HINCRBYFLOAT h fl 2.5
                HINCRBYFLOAT h fl 0.1
                HSTRLEN h f1
                HMSET h a 1 b 2
                ~ HSCAN h 0 COUNT 100
                ~ HSCAN h 0 MATCH f* COUNT 100
                ~ HRANDFIELD h 100
                ~ HRANDFIELD h 100 WITHVALUES
                HRANDFIELD nope
                HSET h
                HSET h f
                OBJECT ENCODING h
                HDEL h f1 f2 fl n a b
                EXISTS h
                "#,
            )
            .text(&big)
            .text(
                r#"
                OBJECT ENCODING bigh
                HLEN bigh
                HGET bigh f150
                ~ HGETALL bigh
                ~ HKEYS bigh
                "#,
            ),
    );
}

#[test]
fn lists() {
    check(Script::new("lists").text(
        r#"
        RPUSH l a b c
        LPUSH l z
        LRANGE l 0 -1
        LLEN l
        LINDEX l 1
        LINDEX l 99
        LINDEX l -1
        LSET l 0 Z
        LSET l 99 x
        LSET nope 0 a
        LINSERT l BEFORE b x
        LINSERT l AFTER nope y
        LRANGE l 0 -1
        LREM l 1 x
        LPOS l c
        LPOS l nope
        RPUSH l a a
        LPOS l a RANK 2
        LPOS l a COUNT 0
        LTRIM l 0 3
        LRANGE l 0 -1
        LPOP l
        RPOP l
        LPOP l 2
        LPOP l 0
        LPOP nope
        LPOP nope 2
        RPUSHX nope a
        LPUSHX l q
        RPUSH src 1 2 3 4
        LMOVE src dst LEFT RIGHT
        RPOPLPUSH src dst
        LRANGE dst 0 -1
        LMPOP 2 nope src LEFT COUNT 2
        LMPOP 1 nope RIGHT
        LRANGE src 0 -1
        LRANGE nope 0 -1
        LRANGE l 5 1
        RPUSH l2
        LLEN nope
        OBJECT ENCODING dst
        "#,
    ));
}

#[test]
fn sets() {
    check(Script::new("sets").text(
        r#"
        SADD s1 a b c d
        SADD s2 c d e
        SADD s1 a
        SCARD s1
        SISMEMBER s1 a
        SISMEMBER s1 z
        SMISMEMBER s1 a z b
        ~ SMEMBERS s1
        ~ SUNION s1 s2
        ~ SINTER s1 s2
        ~ SDIFF s1 s2
        SINTERCARD 2 s1 s2
        SINTERCARD 2 s1 s2 LIMIT 1
        SUNIONSTORE s3 s1 s2
        SDIFFSTORE s4 s1 s2
        SINTERSTORE s5 s1 s2
        ~ SMEMBERS s3
        SMOVE s1 s2 a
        SMOVE s1 s2 nope
        SREM s1 b nope
        ~ SMEMBERS s1
        SADD ints 3 1 2
        SMEMBERS ints
        OBJECT ENCODING ints
        SADD one only
        SPOP one
        SPOP one
        SADD one2 only
        SRANDMEMBER one2
        SRANDMEMBER one2 5
        ~ SRANDMEMBER s2 100
        ~ SSCAN s2 0 COUNT 100
        SMEMBERS nope
        SCARD nope
        SADD s1
        "#,
    ));
}

#[test]
fn sorted_sets() {
    check(Script::new("sorted sets").text(
        r#"
        ZADD z 1 a 2 b 3 c
        ZADD z XX CH 5 a
        ZADD z NX 9 a
        ZADD z NX 4 d
        ZADD z GT 1 b
        ZADD z GT CH 7 b
        ZADD z INCR 2 c
        ZADD z 1.5 x -inf lo +inf hi
        ZADD z nan y
        ZADD z NX XX 1 a
        ZSCORE z a
        ZSCORE z x
        ZSCORE z lo
        ZSCORE z nope
        ZMSCORE z a nope b
        ZRANGE z 0 -1 WITHSCORES
        ZRANGE z (1 5 BYSCORE
        ZRANGE z +inf -inf BYSCORE REV LIMIT 0 2
        ZREVRANGE z 0 1 WITHSCORES
        ZRANK z a
        ZREVRANK z a
        ZRANK z nope
        ZCARD z
        ZCOUNT z -inf +inf
        ZCOUNT z (1 3
        ZINCRBY z 2.5 a
        ZREM z hi lo nope
        ZADD lex 0 a 0 b 0 c 0 d
        ZRANGE lex [a (c BYLEX
        ZRANGEBYLEX lex - +
        ZLEXCOUNT lex [b +
        ZREMRANGEBYLEX lex [a [a
        ZPOPMIN z
        ZPOPMAX z 2
        ZPOPMIN nope
        ZADD z2 1 a 2 b 10 q
        ZRANGESTORE zs z 0 -1
        ZUNIONSTORE zu 2 z z2 WEIGHTS 1 2
        ZRANGE zu 0 -1 WITHSCORES
        ZINTER 2 z z2 WITHSCORES
        ZINTERSTORE zi 2 z z2 AGGREGATE MAX
        ZDIFF 2 z2 z WITHSCORES
        ZINTERCARD 2 z z2
        ZREMRANGEBYSCORE z2 -inf 1
        ZREMRANGEBYRANK z2 0 0
        ZRANGE z2 0 -1 WITHSCORES
        ZADD single 1 only
        ZRANDMEMBER single
        ZRANDMEMBER single 3 WITHSCORES
        ~ ZSCAN z 0 COUNT 100
        ZMPOP 2 nope z MIN COUNT 2
        ZRANGE z 0 -1 WITHSCORES
        ZRANGEBYSCORE zu 0 100 WITHSCORES LIMIT 1 2
        ZREVRANGEBYSCORE zu 100 0
        ZADD z abc a
        "#,
    ));
}

#[test]
fn streams() {
    check(Script::new("streams").text(
        r#"
        XADD s 1-1 f v
        XADD s 1-2 f2 v2
        XADD s 2-0 a 1 b 2
        XADD s 1-1 x y
        XADD s 3-* c 3
        XLEN s
        XRANGE s - +
        XRANGE s - + COUNT 1
        XRANGE s (1-1 +
        XREVRANGE s + - COUNT 2
        XREAD COUNT 10 STREAMS s 0
        XREAD STREAMS s 3-0
        XREAD STREAMS s nope 0 0
        XGROUP CREATE s g 0
        XGROUP CREATE s g 0
        XGROUP CREATE nope g 0
        XGROUP CREATE nope g $ MKSTREAM
        XREADGROUP GROUP g c1 COUNT 2 STREAMS s >
        XPENDING s g
        XACK s g 1-1
        XACK s g 1-1
        XPENDING s g
        XREADGROUP GROUP g c2 STREAMS s >
        XREADGROUP GROUP g c2 STREAMS s >
        XREADGROUP GROUP g c1 STREAMS s 0
        XPENDING s g
        XINFO STREAM s
        XINFO GROUPS s
        XGROUP CREATECONSUMER s g c3
        XGROUP DELCONSUMER s g c3
        XAUTOCLAIM s g c3 0 0-0 COUNT 10
        XPENDING s g
        XTRIM s MAXLEN 2
        XDEL s 2-0 9-9
        XRANGE s - +
        XINFO STREAM s
        XGROUP SETID s g 0
        XINFO GROUPS s
        XGROUP DESTROY s g
        XGROUP DESTROY s g
        XADD nos NOMKSTREAM * f v
        EXISTS nos
        XADD s MAXLEN 1 10-0 last 1
        XRANGE s - +
        XINFO STREAM nope
        "#,
    ));
}

#[test]
fn bitmaps() {
    check(Script::new("bitmaps").text(
        r#"
        SETBIT b 7 1
        SETBIT b 100 1
        SETBIT b 7 0
        SETBIT b 7 1
        GETBIT b 7
        GETBIT b 8
        GETBIT b 100000
        GETBIT nope 1
        BITCOUNT b
        BITCOUNT b 0 0
        BITCOUNT b 0 7 BIT
        BITCOUNT nope
        BITPOS b 1
        BITPOS b 0
        BITPOS b 1 2 -1 BYTE
        BITPOS b 1 8 200 BIT
        BITPOS nope 1
        SET b2 "\xff\x00\x0f"
        BITOP AND dand b b2
        BITOP OR dor b b2
        BITOP XOR dxor b b2
        BITOP NOT dnot b2
        GET dand
        GET dor
        GET dxor
        GET dnot
        BITOP NOT dnot b b2
        BITFIELD bf SET u8 0 255 GET u8 0 INCRBY u4 4 3 OVERFLOW SAT INCRBY i8 8 200
        BITFIELD bf OVERFLOW FAIL INCRBY u8 0 10 OVERFLOW WRAP INCRBY u8 0 10
        BITFIELD_RO bf GET u8 0 GET i4 8
        BITFIELD bf GET u99 0
        GET bf
        SETBIT b -1 1
        SETBIT b 0 2
        SET str abc
        SETBIT str 0 1
        GET str
        "#,
    ));
}

#[test]
fn hyperloglog() {
    check(Script::new("hyperloglog").text(
        r#"
        PFADD hll a b c d
        PFADD hll a
        PFADD hll
        PFCOUNT hll
        PFADD hll2 c d e f g
        PFCOUNT hll hll2
        PFMERGE hll3 hll hll2
        PFCOUNT hll3
        GET hll3
        PFCOUNT nope
        SET notahll abc
        PFADD notahll a
        PFCOUNT notahll
        "#,
    ));
}

#[test]
fn geo() {
    check(Script::new("geo").text(
        r#"
        GEOADD g 13.361389 38.115556 Palermo 15.087269 37.502669 Catania
        GEOADD g NX CH 13.583333 37.316667 Agrigento
        GEODIST g Palermo Catania
        GEODIST g Palermo Catania km
        GEODIST g Palermo nope
        GEOPOS g Palermo nope Catania
        GEOHASH g Palermo Catania
        GEOSEARCH g FROMLONLAT 15 37 BYRADIUS 200 km ASC WITHCOORD WITHDIST WITHHASH
        GEOSEARCH g FROMMEMBER Palermo BYBOX 400 400 km DESC COUNT 2
        GEOSEARCHSTORE gs g FROMLONLAT 15 37 BYRADIUS 200 km STOREDIST
        ZRANGE gs 0 -1 WITHSCORES
        GEORADIUS g 15 37 200 km WITHDIST ASC
        GEORADIUSBYMEMBER g Palermo 300 km ASC
        GEORADIUS_RO g 15 37 200 km ASC COUNT 1
        GEOADD g 200 100 bad
        GEOSEARCH g FROMLONLAT 15 37 BYRADIUS 200 parsecs
        "#,
    ));
}

#[test]
fn scripting() {
    check(Script::new("scripting").text(
        r##"
        EVAL "return 1" 0
        EVAL "return {1,2,{3,'x'},redis.call('SET',KEYS[1],ARGV[1])}" 1 sk sv
        EVAL "return redis.call('GET',KEYS[1])" 1 sk
        EVAL "return redis.error_reply('MYERR boom')" 0
        EVAL "return redis.status_reply('FINE')" 0
        EVAL "return 3.99" 0
        EVAL "return nil" 0
        EVAL "return {1,nil,3}" 0
        EVAL "return redis.call('INCR', KEYS[1])" 1 sk
        EVAL "return redis.pcall('INCR', KEYS[1])" 1 sk
        EVAL "error('x')" 0
        EVAL "return" notanumber
        EVAL "syntax error here" 0
        EVALSHA 098e0f0d1448c0a81dafe820f66d460eb09263da 0 hello
        SCRIPT LOAD "return ARGV[1]"
        EVALSHA 098e0f0d1448c0a81dafe820f66d460eb09263da 0 hello
        evalsha 098E0F0D1448C0A81DAFE820F66D460EB09263DA 0 upper
        SCRIPT EXISTS 098e0f0d1448c0a81dafe820f66d460eb09263da ffffffffffffffffffffffffffffffffffffffff
        EVAL_RO "return redis.call('GET', KEYS[1])" 1 sk
        EVALSHA_RO d3c21d0c2b9ca22f82737626a27bcaf5d288f99f 1 sk
        EVAL_RO "return redis.call('SET', KEYS[1], 'x')" 1 sk
        FUNCTION LOAD "#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return args[1] end)\nredis.register_function{function_name='myro', callback=function(keys, args) return redis.call('GET', keys[1]) end, flags={'no-writes'}}"
        FCALL myfunc 0 hello
        FCALL_RO myro 1 sk
        FCALL_RO myfunc 0 hello
        FCALL nofunc 0
        FUNCTION LOAD "#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return 1 end)"
        FUNCTION LOAD REPLACE "#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return 2 end)"
        FCALL myfunc 0
        FUNCTION LIST
        FUNCTION LIST LIBRARYNAME nope
        FUNCTION DELETE mylib
        FUNCTION DELETE mylib
        EVAL "redis.call('SELECT', 1); return redis.call('SET', KEYS[1], 'in-db1')" 1 luak
        GET luak
        SELECT 1
        GET luak
        SELECT 0
        FCALL myfunc 0
        "##,
    ));
}

#[test]
fn errors() {
    check(
        Script::new("errors")
            .text(
                r#"
                SET str v
                LPUSH str a
                HGET str f
                SADD str a
                ZADD str 1 a
                XADD str 1-1 f v
                GET
                GET a b
                SET onlykey
                FOOBAR a b
                foobar
                FOOBAR "with space" "x\r\ny"
                CONFIG FOO
                OBJECT FOO k
                CLIENT NOSUCHSUB
                INCR str
                get str
                GeT str
                LINDEX str notanumber
                EXPIRE str notanumber
                ZADD z nan x
                HINCRBY h f notanumber
                SELECT notanumber
                DEL
                MSET a
                MSET a 1 b
                ""
                ECHO
                "#,
            )
            // An empty command is ignored without a reply; PING shows the stream is
            // still in step.
            .raw(b"*0\r\n*1\r\n$4\r\nPING\r\n", 1)
            .raw(b"*-1\r\n*1\r\n$4\r\nPING\r\n", 1)
            .cmd(&["ECHO", "still-in-sync"]),
    );
}

#[test]
fn connection_commands() {
    check(
        Script::new("connection")
            .text(
                r#"
                PING
                PING hello
                PING a b
                ECHO "hello world"
                COMMAND COUNT
                COMMAND INFO get set
                COMMAND GETKEYS SET a b
                COMMAND GETKEYS MSET a 1 b 2
                CLIENT GETNAME
                CLIENT SETNAME tester
                CLIENT GETNAME
                CLIENT SETNAME "bad name"
                @1 CLIENT GETNAME
                DBSIZE
                "#,
            )
            // CLIENT REPLY OFF/SKIP suppress replies; ON brings them back.
            .raw(b"*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$3\r\nOFF\r\n", 0)
            .raw(b"*3\r\n$3\r\nSET\r\n$2\r\nrk\r\n$3\r\noff\r\n", 0)
            .cmd(&["CLIENT", "REPLY", "ON"])
            .cmd(&["GET", "rk"])
            .raw(b"*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$4\r\nSKIP\r\n", 0)
            .raw(b"*3\r\n$3\r\nSET\r\n$2\r\nrk\r\n$4\r\nskip\r\n", 0)
            .cmd(&["GET", "rk"]),
    );
}

/// What Valkey 8.1 adds over Redis 7.0 (commands of Redis 7.2 included): replies
/// through the proxy are the server's.
#[test]
fn valkey_8_1_commands() {
    if support::skip_unless(ServerKind::Valkey, (8, 1), "commands newer than Redis 7.0") {
        return;
    }
    check(Script::new("valkey 8.1").text(
        r#"
            SET v:a old
            SET v:a new IFEQ old
            GET v:a
            SET v:a newer IFEQ old
            GET v:a
            SET v:a newer IFEQ new GET
            SET v:a x IFEQ newer EX 1000
            TTL v:a
            SET v:a y IFEQ x KEEPTTL
            TTL v:a
            SET v:missing x IFEQ y
            EXISTS v:missing
            SET v:a z IFEQ y NX
            SET v:a z IFEQ
            HSET v:h f 1 g 2
            ~ HSCAN v:h 0 NOVALUES
            ZADD v:z 1 a 2 b
            ZRANK v:z b WITHSCORE
            ZREVRANK v:z b WITHSCORE
            ~ ZSCAN v:z 0 NOSCORES
            SCRIPT LOAD "return 1"
            SCRIPT SHOW e0e1f9fabfc9d4800c877a703b823ac0578ff8db
            SCRIPT SHOW 0000000000000000000000000000000000000000
            COMMANDLOG LEN slow
            COMMANDLOG RESET slow
            COMMANDLOG GET 1 large-reply
            WAITAOF 0 0 0
            CLIENT SETINFO LIB-NAME respite-test
            CLIENT SETINFO LIB-VER 1.0
            CLIENT NO-TOUCH ON
            CLIENT NO-TOUCH OFF
            CLIENT CAPA redirect
            CLIENT IMPORT-SOURCE ON
            CLIENT SETNAME after
            CLIENT GETNAME
            "#,
    ));
}

#[test]
fn transactions() {
    check(Script::new("transactions").text(
        r#"
        MULTI
        SET t 1
        INCR t
        GET t
        LPUSH t x
        EXEC
        MULTI
        SET t 5
        DISCARD
        GET t
        MULTI
        EXEC
        MULTI
        SET t
        GET t
        EXEC
        GET t
        MULTI
        NOSUCHCOMMAND
        EXEC
        MULTI
        MULTI
        EXEC
        EXEC
        DISCARD
        MULTI
        WATCH x
        DISCARD
        # A write from another connection to a watched key aborts the transaction.
        SET w 1
        WATCH w
        @1 SET w 2
        MULTI
        INCR w
        EXEC
        GET w
        # No conflicting write: it goes through.
        WATCH w
        MULTI
        INCR w
        EXEC
        # A write by the same client before MULTI also aborts.
        WATCH w
        SET w 10
        MULTI
        INCR w
        EXEC
        # UNWATCH forgets the watched keys.
        WATCH w
        @1 SET w 20
        UNWATCH
        MULTI
        INCR w
        EXEC
        # WATCH on several keys, one touched by expiry-free DEL from elsewhere.
        SET w2 a
        WATCH w w2
        @1 DEL w2
        MULTI
        GET w
        EXEC
        # SELECT inside MULTI changes the connection's db for what follows.
        MULTI
        SELECT 1
        SET dbk one
        EXEC
        GET dbk
        SELECT 0
        GET dbk
        # A blocking command inside MULTI does not block.
        MULTI
        BLPOP nope 0
        BRPOPLPUSH nope dst 0
        EXEC
        # Pub/sub commands inside MULTI.
        MULTI
        SUBSCRIBE txch
        PING
        EXEC
        PING
        UNSUBSCRIBE txch
        PING
        # Queued errors with a valid command after them.
        MULTI
        SET a 1
        INCRBY a notanumber
        EXEC
        GET a
        "#,
    ));
}

#[test]
fn select() {
    check(Script::new("select").text(
        r#"
        SELECT 1
        SET sk one
        SELECT 0
        GET sk
        SET sk zero
        SELECT 1
        GET sk
        SELECT 99
        SELECT -1
        SELECT abc
        GET sk
        DBSIZE
        @1 GET sk
        @1 SELECT 1
        @1 GET sk
        SWAPDB 0 1
        GET sk
        @1 GET sk
        SELECT 0
        GET sk
        MOVE sk 2
        SELECT 2
        GET sk
        FLUSHDB
        GET sk
        SELECT 0
        DBSIZE
        "#,
    ));
}

#[test]
fn resp3() {
    check(Script::new("resp3").text(
        r#"
        mask:id HELLO 3
        HSET h a 1 b 2
        HGETALL h
        HGETALL nope
        SADD s x y z
        ~ SMEMBERS s
        ZADD z 1.5 m 2 n
        ZSCORE z m
        ZSCORE z nope
        ZRANGE z 0 -1 WITHSCORES
        ZPOPMIN z
        ZINCRBY z 0.25 n
        GET nope
        LPOP nope
        MGET nope h
        CONFIG GET maxmemory
        CONFIG GET nosuchparam
        EXISTS h
        INCRBYFLOAT f 1.5
        XADD st 1-1 f v
        XRANGE st - +
        XREAD STREAMS st 0
        XINFO STREAM st
        HRANDFIELD nope
        EVAL "return redis.call('HGETALL', KEYS[1])" 1 h
        EVAL "redis.setresp(3); return redis.call('HGETALL', KEYS[1])" 1 h
        EVAL "return {double=3.5}" 0
        BLPOP nope 0.01
        MULTI
        HGETALL h
        ZSCORE z n
        EXEC
        NOSUCHCOMMAND
        mask:id HELLO
        mask:id HELLO 2
        mask:id HELLO
        HGETALL h
        ZSCORE z n
        GET nope
        HELLO 4
        mask:id HELLO 3 SETNAME resp3client
        CLIENT GETNAME
        "#,
    ));
}

#[test]
fn every_resp3_reply_type() {
    // DEBUG PROTOCOL makes Redis send each RESP3 type (attribute, big number,
    // verbatim string, boolean, double, null, map, set) — in RESP2 its downgrade.
    let stack = Stack::start_with_redis(&["--enable-debug-command", "yes"], "");
    let types = [
        "string", "integer", "double", "bignum", "null", "array", "set", "map", "attrib",
        "verbatim", "true", "false",
    ];
    let mut script = Script::new("resp3 types");
    for (proto, push_replies) in [("2", 1), ("3", 2)] {
        script = script.text(&format!("mask:id HELLO {proto}"));
        for t in types {
            script = script.text(&format!("DEBUG PROTOCOL {t}"));
        }
        // In RESP3 a push frame and the reply (Redis 7.0 writes the push first, Valkey
        // 8.1 after).
        script = script
            .raw(
                &encode_command(&["DEBUG", "PROTOCOL", "push"]),
                push_replies,
            )
            .text("PING");
    }
    assert_same(&stack, &script);
}

#[test]
fn pipelines() {
    let cmds: Vec<Vec<Vec<u8>>> = (0..1000)
        .map(|i| {
            let args: Vec<String> = match i % 8 {
                0 => vec!["SET".into(), format!("p:{}", i % 50), format!("v{i}")],
                1 => vec!["GET".into(), format!("p:{}", (i + 7) % 50)],
                2 => vec!["INCR".into(), "counter".into()],
                3 => vec!["LPUSH".into(), "plist".into(), i.to_string()],
                4 => vec!["LRANGE".into(), "plist".into(), "0".into(), "2".into()],
                5 => vec!["EXISTS".into(), format!("p:{i}")],
                6 => vec![
                    "HSET".into(),
                    "ph".into(),
                    format!("f{}", i % 10),
                    i.to_string(),
                ],
                _ => vec!["DEL".into(), format!("p:{}", (i + 3) % 50)],
            };
            args.into_iter().map(String::into_bytes).collect()
        })
        .collect();
    // The same with a transaction and a big value inside the batch.
    let mut mixed: Vec<Vec<Vec<u8>>> = Vec::new();
    for i in 0..200 {
        mixed.push(vec![b"MULTI".to_vec()]);
        mixed.push(vec![b"INCR".to_vec(), b"m".to_vec()]);
        mixed.push(vec![
            b"SET".to_vec(),
            format!("big{i}").into_bytes(),
            vec![b'x'; 20_000 + i],
        ]);
        mixed.push(vec![b"EXEC".to_vec()]);
        mixed.push(vec![b"GET".to_vec(), format!("big{i}").into_bytes()]);
    }
    check(
        Script::new("pipelines")
            .pipeline(cmds)
            .cmd(&["GET", "counter"])
            .pipeline(mixed)
            .cmd(&["GET", "m"]),
    );
}

#[test]
fn stateful_pipelines() {
    // Commands that change the connection's state, written in one batch together with
    // the commands that depend on that state.
    let mut text = String::new();
    for round in 0..40 {
        let (db, next) = (round % 3, (round + 1) % 3);
        text += &format!("SELECT {db}\nSET st:{round} db{db}\nGET st:{round}\n");
        text += "mask:id HELLO 3\nHGETALL h\nZSCORE z m\nGET nope\nmask:id HELLO 2\nZSCORE z m\n";
        text += &format!("MULTI\nINCR cnt\nSELECT {next}\nGET st:{round}\nEXEC\nGET st:{round}\n");
        text += "WATCH cnt\nMULTI\nINCR cnt\nEXEC\nUNWATCH\n";
        text += &format!("CLIENT SETNAME n{round}\nCLIENT GETNAME\n");
        // (One reply per channel: subscribe to one channel per command.)
        text += "PING\nSUBSCRIBE c1\nSUBSCRIBE c2\nPING\nUNSUBSCRIBE c1\nUNSUBSCRIBE c2\n";
        text += "ECHO after-subscribe\nLPUSH q x\nBRPOP q 1\n";
        if round % 10 == 0 {
            // Redis notices an expired blocking timeout on its next cron tick: keep few.
            text += "BLPOP nope 0.001\n";
        }
        if round % 10 == 9 {
            text += "RESET\nGET st:0\nCLIENT GETNAME\n";
        }
    }
    check(
        Script::new("stateful pipelines")
            .text("HSET h a 1\nZADD z 1.5 m")
            .pipeline_text(&text)
            .text("DBSIZE\nSELECT 1\nDBSIZE\nSELECT 2\nDBSIZE\nCLIENT GETNAME"),
    );
}

#[test]
fn large_commands() {
    let numbered = |cmd: &str, key: &str, n: usize, item: &dyn Fn(usize) -> Vec<String>| {
        let mut args = vec![cmd.to_string()];
        if !key.is_empty() {
            args.push(key.to_string());
        }
        args.extend((0..n).flat_map(item));
        args
    };
    let mset = numbered("MSET", "", 20_000, &|i| {
        vec![format!("lk:{i}"), format!("v{i}")]
    });
    let mget = numbered("MGET", "", 40_000, &|i| vec![format!("lk:{i}")]);
    let sadd = numbered("SADD", "bigset", 50_000, &|i| vec![format!("m{i}")]);
    let hset = numbered("HSET", "bighash", 10_000, &|i| {
        vec![format!("f{i}"), i.to_string()]
    });
    let hmget = numbered("HMGET", "bighash", 10_000, &|i| vec![format!("f{}", i * 2)]);
    let zadd = numbered("ZADD", "bigz", 10_000, &|i| {
        vec![i.to_string(), format!("z{i}")]
    });
    let rpush = numbered("RPUSH", "biglist", 50_000, &|i| vec![i.to_string()]);
    let del = numbered("DEL", "", 20_000, &|i| vec![format!("lk:{}", i * 2)]);
    check(
        Script::new("large commands")
            .cmd(&mset)
            .cmd(&mget)
            .cmd(&sadd)
            .cmd(&["SCARD", "bigset"])
            .cmd(&["SMISMEMBER", "bigset", "m0", "m49999", "m50000"])
            .cmd(&hset)
            .cmd(&hmget)
            .cmd(&zadd)
            .cmd(&["ZRANGE", "bigz", "0", "-1", "WITHSCORES"])
            .cmd(&rpush)
            .cmd(&["LRANGE", "biglist", "0", "-1"])
            .cmd(&del)
            .cmd(&["DBSIZE"]),
    );
}

#[test]
fn binary_safe_values() {
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let value: Vec<u8> = all_bytes.iter().cycle().take(1024).copied().collect();
    let one_mb = pseudo_random_bytes(1 << 20, 1);
    let eight_mb = pseudo_random_bytes(8 << 20, 2);
    let fake_resp = b"*1\r\n$3\r\nfoo\r\n+OK\r\n-ERR no\r\n:1\r\n".to_vec();
    let crlfs = b"\r\n\r\n\r\r\n\n".repeat(1000);
    let s = Script::new("binary")
        .cmd(&[b"SET".as_slice(), &all_bytes, &value])
        .cmd(&[b"GET".as_slice(), &all_bytes])
        .cmd(&[b"STRLEN".as_slice(), &all_bytes])
        .cmd(&[b"GETRANGE".as_slice(), &all_bytes, b"10", b"20"])
        .cmd(&[b"APPEND".as_slice(), &all_bytes, b"\r\n\x00"])
        .cmd(&[b"GET".as_slice(), &all_bytes])
        .cmd(&[b"SET".as_slice(), b"fake", &fake_resp])
        .cmd(&[b"GET".as_slice(), b"fake"])
        .cmd(&[b"SET".as_slice(), b"crlf", &crlfs])
        .cmd(&[b"GET".as_slice(), b"crlf"])
        .cmd(&[b"HSET".as_slice(), b"bh", &all_bytes, &fake_resp])
        .cmd(&[b"HGETALL".as_slice(), b"bh"])
        .cmd(&[b"SET".as_slice(), b"mb1", &one_mb])
        .cmd(&[b"GET".as_slice(), b"mb1"])
        .cmd(&[b"STRLEN".as_slice(), b"mb1"])
        .cmd(&[b"SET".as_slice(), b"mb8", &eight_mb])
        .cmd(&[b"GET".as_slice(), b"mb8"])
        .cmd(&[b"APPEND".as_slice(), b"mb8", b"tail"])
        .cmd(&[b"STRLEN".as_slice(), b"mb8"])
        .cmd(&[b"GETRANGE".as_slice(), b"mb8", b"4000000", b"4000100"])
        .cmd(&[b"MSET".as_slice(), b"x1", &one_mb, b"x2", &crlfs])
        .cmd(&[b"MGET".as_slice(), b"x1", b"nope", b"x2"])
        .cmd(&[b"RPUSH".as_slice(), b"bl", &one_mb, &all_bytes, b""])
        .cmd(&[b"LRANGE".as_slice(), b"bl", b"0", b"-1"])
        .cmd(&[b"ECHO".as_slice(), &eight_mb])
        .cmd(&[b"GETDEL".as_slice(), b"mb8"]);
    check(s);
}

#[test]
fn inline_commands() {
    check(
        Script::new("inline")
            .raw(b"PING\r\n", 1)
            .raw(b"SET a b\r\n", 1)
            .raw(b"GET a\r\n", 1)
            .raw(b"SET k \"a b\"\r\n", 1)
            .raw(b"GET k\r\n", 1)
            .raw(b"SET k2 'single quoted'\r\n", 1)
            .raw(b"GET k2\r\n", 1)
            .raw(b"ECHO \"\\x41\\x42\\r\\n\"\r\n", 1)
            .raw(b"PING\n", 1)
            .raw(b"   PING    \r\n", 1)
            .raw(b"\r\n", 0)
            .raw(b"PING\r\nPING\r\nECHO two\r\n", 3)
            .raw(
                b"SET mixed 1\r\n*2\r\n$3\r\nGET\r\n$5\r\nmixed\r\nINCR mixed\r\n",
                3,
            )
            .raw(b"FOO bar\r\n", 1)
            .raw(b"get a\r\n", 1)
            .raw(b"SET k3 \"\"\r\n", 1)
            .raw(b"STRLEN k3\r\n", 1)
            .cmd(&["GET", "k"])
            // Unbalanced quotes: a protocol error, then Redis closes the connection.
            .raw(b"SET k \"abc\r\n", 1)
            .expect_eof(),
    );
}

/// SELECT then AUTH as a user who may not SELECT: Redis keeps the connection in the db
/// it selected. AUTH then SELECT stays refused, also once the first order made the
/// proxy open connections for that db and user. The same with HELLO 3 AUTH. And a db
/// the default user may not SELECT either (`+select|9` only): AUTH as one who may
/// (alice), then SELECT.
#[test]
fn select_then_auth_as_a_user_who_may_not_select() {
    let stack = Stack::start();
    let mut direct = stack.direct();
    for setup in [
        "ACL SETUSER limited on >pass ~* &* +@all -select",
        "ACL SETUSER alice on >alicepw ~* &* +@all",
        "ACL SETUSER default -select +select|0 +select|9",
    ] {
        direct.assert_cmd(setup, b"+OK\r\n");
    }
    let script = Script::new("select-then-auth").text(
        r#"
        SELECT 9
        AUTH limited pass
        ACL WHOAMI
        SET k in9
        GET k
        SELECT 9
        SELECT 0
        GET k
        DBSIZE
        @1 AUTH limited pass
        @1 SELECT 9
        @1 GET k
        @1 SELECT 0
        @1 SELECT x
        @1 DBSIZE
        @2 SELECT 9
        @2 mask:id HELLO 3 AUTH limited pass
        @2 GET k
        @2 SELECT 9
        @2 GET k
        @2 mask:id HELLO 2
        @2 GET k
        @3 mask:id HELLO 3 AUTH limited pass
        @3 SELECT 9
        @3 GET k
        @4 mask:id HELLO 3
        @4 SELECT 9
        @4 AUTH limited pass
        @4 GET k
        @4 RESET
        @4 GET k
        @4 SELECT 9
        @4 GET k
        @5 SELECT 5
        @5 AUTH alice alicepw
        @5 SELECT 5
        @5 SET k in5
        @5 SELECT 99
        @5 GET k
        @6 mask:id HELLO 3 AUTH alice alicepw
        @6 SELECT 5
        @6 GET k
        @6 SELECT 9
        @6 AUTH limited pass
        @6 GET k
        "#,
    );
    assert_same(&stack, &script);
}

#[test]
fn auth_and_acl() {
    let stack = Stack::start();
    let mut direct = stack.direct();
    for setup in [
        "ACL SETUSER alice on >alicepw ~* &* +@all",
        "ACL SETUSER bob on >bobpw ~bob:* resetchannels -@all +get +set +acl|whoami +ping",
    ] {
        direct.assert_cmd(setup, b"+OK\r\n");
    }
    let script = Script::new("auth").text(
        r#"
        ACL WHOAMI
        AUTH alice wrongpw
        AUTH alice alicepw
        ACL WHOAMI
        SET shared 1
        AUTH bob bobpw
        ACL WHOAMI
        SET bob:k v
        GET bob:k
        SET shared 2
        INCR bob:k
        GET shared
        PING
        @1 ACL WHOAMI
        @1 GET shared
        AUTH alice alicepw
        GET shared
        AUTH onlyapassword
        AUTH nosuchuser pw
        ACL WHOAMI
        mask:id HELLO 3 AUTH bob bobpw
        ACL WHOAMI
        GET bob:nope
        HELLO 2 AUTH bob wrong
        ACL WHOAMI
        mask:id HELLO 2 AUTH default anything
        ACL WHOAMI
        GET shared
        "#,
    );
    assert_same(&stack, &script);
}
