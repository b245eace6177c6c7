//! Connection-state changers: HELLO, SELECT, CLIENT ID / SETNAME / TRACKING, RESET,
//! QUIT, malformed and unknown commands, writes the proxy's table does not know, and
//! clients that leave while blocked.

use rand::Rng;

use super::{Cmd, Gen, Pred, Step};
use crate::{
    args,
    check::Check,
    keys::{self, Kind},
};

impl Gen<'_> {
    pub fn hello(&mut self) -> Cmd {
        let name = format!("fz-c{}-hello", self.client);
        let (a, proto): (Vec<Vec<u8>>, Option<bool>) = match self.rng.random_range(0..8) {
            0..=3 if !self.pred.resp3 => (args!["HELLO", 3], Some(true)),
            0..=2 => (args!["HELLO", 2], Some(false)),
            3 | 4 => (args!["HELLO"], None),
            5 => (args!["HELLO", 3, "SETNAME", name], Some(true)),
            6 => (args!["HELLO", 4], None),
            _ => (args!["HELLO", 2, "SETNAME", name], Some(false)),
        };
        // Refused while subscribed in RESP2: the protocol stays.
        if let Some(resp3) = proto
            && (!self.pred.subscribed() || self.pred.resp3)
        {
            self.pred.resp3 = resp3;
        }
        Cmd::new(a, Check::Hello)
    }

    pub fn select(&mut self) -> Cmd {
        match self.rng.random_range(0..10) {
            0 => Cmd::exact(args!["SELECT", self.pick(&["99", "x", "-1"])]),
            _ => Cmd::exact(args!["SELECT", self.rng.random_range(0..keys::DBS)]),
        }
    }

    /// CLIENT ID makes the proxy relay this client on a connection of its own.
    pub fn client_id(&mut self) -> Cmd {
        self.pred.relay = true;
        Cmd::new(args!["CLIENT", "ID"], Check::Id)
    }

    pub fn tracking(&mut self) -> Cmd {
        if !self.pred.resp3 && self.chance(0.5) {
            return self.hello();
        }
        if !self.pred.tracking {
            self.pred.tracking = true;
            self.pred.relay = true;
            let mut a = args!["CLIENT", "TRACKING", "ON"];
            match self.rng.random_range(0..6) {
                0 => a.push(b"OPTIN".to_vec()),
                1 => a.push(b"OPTOUT".to_vec()),
                2 => a.push(b"NOLOOP".to_vec()),
                3 => {
                    a.push(b"BCAST".to_vec());
                    for ns in &self.target.namespaces {
                        a.extend(args!["PREFIX", format!("{}:c{}:", ns.prefix, self.client)]);
                    }
                }
                _ => {}
            }
            return Cmd::exact(a);
        }
        match self.rng.random_range(0..6) {
            0 => {
                self.pred.tracking = false;
                Cmd::exact(args!["CLIENT", "TRACKING", "OFF"])
            }
            1 => Cmd::exact(args!["CLIENT", "CACHING", self.pick(&["YES", "NO"])]),
            2 => Cmd::exact(args!["CLIENT", "GETREDIR"]),
            3 => Cmd::exact(args!["CLIENT", "TRACKINGINFO"]),
            _ => {
                // A read that registers the key, so that the next write invalidates it.
                let ns = self.ns();
                let kind = self.pick(&[Kind::Str, Kind::Doc]);
                Cmd::exact(args!["GET", self.key(&ns, kind)])
            }
        }
    }

    pub fn setname(&mut self) -> Cmd {
        match self.rng.random_range(0..6) {
            0 | 1 => {
                let seq = self.next_seq();
                Cmd::exact(args![
                    "CLIENT",
                    "SETNAME",
                    format!("fz-c{}-{seq}", self.client)
                ])
            }
            2 | 3 => Cmd::exact(args!["CLIENT", "GETNAME"]),
            4 => Cmd::exact(args!["CLIENT", "SETNAME", ""]),
            _ => Cmd::exact(args!["CLIENT", "SETNAME", "bad name"]),
        }
    }

    pub fn reset(&mut self) -> Cmd {
        self.pred = Pred::default();
        Cmd::exact(args!["RESET"])
    }

    pub fn quit(&mut self) -> Cmd {
        self.pred = Pred::default();
        Cmd::exact(args!["QUIT"])
    }

    /// Inline commands and protocol errors, with what Redis answers them (checked in
    /// the direct run): an error and a closed connection for broken framing.
    pub fn malformed(&mut self) -> Step {
        let ns = self.ns();
        let key = self.key(&ns, Kind::Str);
        let cases: Vec<(Vec<u8>, usize, bool)> = vec![
            (b"PING\r\n".to_vec(), 1, false),
            (b"  PING  \r\n".to_vec(), 1, false),
            (b"PING\n".to_vec(), 1, false),
            (b"ECHO \"hello world\"\r\n".to_vec(), 1, false),
            (format!("SET {key} \"a b\\x41\"\r\n").into_bytes(), 1, false),
            (format!("GET {key}\r\n").into_bytes(), 1, false),
            (b"GET\r\n".to_vec(), 1, false),
            (b"PING\r\nECHO x\r\n".to_vec(), 2, false),
            (b"\r\n".to_vec(), 0, false),
            (b"*0\r\n".to_vec(), 0, false),
            (b"*-1\r\n".to_vec(), 0, false),
            (
                b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nping\r\n".to_vec(),
                2,
                false,
            ),
            (b"SET \"unbalanced\r\n".to_vec(), 1, true),
            (b"*2\r\n$3\r\nGET\r\n:5\r\n".to_vec(), 1, true),
            (b"*1\r\n$-1\r\n".to_vec(), 1, true),
            (b"*abc\r\n".to_vec(), 1, true),
            (b"*99999999999\r\n".to_vec(), 1, true),
            (b"*1\r\n$9999999999\r\n".to_vec(), 1, true),
        ];
        // Right after a command whose reply was skipped, input that closes the
        // connection only with the `unacked-close` family.
        let cases: Vec<_> = cases
            .into_iter()
            .filter(|(_, _, closes)| !closes || !self.after_unacked || self.on("unacked-close"))
            .collect();
        let (bytes, replies, closes) = cases[self.rng.random_range(0..cases.len())].clone();
        if closes {
            self.pred = Pred::default();
        }
        Step::Raw {
            bytes,
            replies,
            closes,
        }
    }

    /// Commands Redis does not know, wrong arities, odd names: errors, the same both ways.
    pub fn unknown(&mut self) -> Cmd {
        let ns = self.ns();
        let key = self.key(&ns, Kind::Str);
        match self.rng.random_range(0..8) {
            0 => Cmd::exact(args!["FUZZNOSUCH", key, "b"]),
            1 => Cmd::exact(args!["gEt", key]),
            2 => Cmd::exact(args!["GET"]),
            3 => Cmd::exact(args!["SET", key]),
            4 => Cmd::exact(args!["CLIENT", "NOSUCH"]),
            5 => Cmd::exact(args!["OBJECT", "NOSUCH", key]),
            6 => Cmd::exact(args![""]),
            _ => Cmd::exact(args![b"G\x00T".as_slice(), key]),
        }
    }

    /// A write under a name the proxy's table does not know (Redis renamed it), to
    /// an element just written and read (so cached): the read again must not be
    /// served from L1 (issue 12 item 7).
    pub fn unknown_write(&mut self) -> Step {
        let ns = self.ns();
        let (setup, read, write) = match self.rng.random_range(0..3) {
            0 => {
                let k = self.key(&ns, Kind::Hash);
                (
                    args!["HSET", &k, "f1", "x"],
                    args!["HGET", &k, "f1"],
                    args![self.name("HDEL"), k, "f1"],
                )
            }
            1 => {
                let k = self.key(&ns, Kind::Set);
                (
                    args!["SADD", &k, "a"],
                    args!["SMEMBERS", &k],
                    args![self.name("SREM"), k, "a"],
                )
            }
            _ => {
                let k = self.key(&ns, Kind::List);
                (
                    args!["RPUSH", &k, "a"],
                    args!["LRANGE", &k, 0, -1],
                    args![self.name("LTRIM"), k, 1, -1],
                )
            }
        };
        let check = if read[0] == b"SMEMBERS" {
            Check::Sorted
        } else {
            Check::Exact
        };
        let read = Cmd::new(read, check);
        let cmds = vec![Cmd::exact(setup), read.clone(), Cmd::exact(write), read];
        // Pipelined, the last read reaches the proxy before Redis's invalidation can.
        if self.chance(0.5) {
            return Step::Cmds(cmds);
        }
        let mut steps = cmds.into_iter().map(Step::one);
        let first = steps.next().expect("four");
        self.enqueue(steps);
        first
    }

    /// Issue 12 item 8: a named connection sends a blocking pop and two writes behind
    /// it, then goes away; a new connection then pushes to the list and looks.
    pub fn abandon(&mut self) -> Step {
        let ns = self.ns();
        let list = self.key(&ns, Kind::List);
        let dest = self.key(&ns, Kind::List);
        let counter = self.key(&ns, Kind::Str);
        self.pred = Pred::default();
        self.enqueue([
            Step::one(Cmd::exact(args!["LPUSH", &list, "after-abandon"])),
            Step::one(Cmd::exact(args!["LRANGE", &list, 0, -1])),
            Step::one(Cmd::exact(args!["LRANGE", &dest, 0, -1])),
            Step::one(Cmd::exact(args!["GET", &counter])),
        ]);
        let seq = self.next_seq();
        Step::Abandon {
            name: format!("fz-abandon-c{}-{seq}", self.client),
            list,
            dest,
            counter,
        }
    }
}
