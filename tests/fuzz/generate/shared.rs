//! Shared keys and channels: every client writes values unique to (client, sequence)
//! and reads what the others wrote; the replies are compared by shape and the values
//! checked by the read-your-writes model (`model.rs`). Pipelines of a write and a read
//! of one key are the pattern of issue 12 item 6.

use rand::Rng;

use super::{Cmd, Gen, Step};
use crate::{
    args,
    check::{Access, Check, Reg},
    keys::{self, Ns},
};

impl Gen<'_> {
    /// A value no other write has: `v<client>.<seq>`, padded past the compression
    /// threshold one time in three.
    fn unique_value(&mut self) -> Vec<u8> {
        let seq = self.next_seq();
        let mut v = format!("v{}.{seq}", self.client);
        if self.chance(0.33) {
            v.push_str(" padding padding padding padding padding padding");
        }
        v.into_bytes()
    }

    fn string_reg(&mut self, ns: &Ns) -> Reg {
        let n = self.rng.random_range(0..keys::shared_keys());
        Reg {
            key: keys::shared_key(ns, n),
            field: None,
        }
    }

    fn hash_reg(&mut self, ns: &Ns) -> Reg {
        let n = self.rng.random_range(0..keys::shared_keys());
        Reg {
            key: keys::shared_hash(ns, n),
            field: Some(self.pick(&["f1", "f2"]).to_string()),
        }
    }

    fn read(reg: &Reg) -> Cmd {
        let args = match &reg.field {
            None => args!["GET", &reg.key],
            Some(f) => args!["HGET", &reg.key, f],
        };
        Cmd::new(
            args,
            Check::Shared(vec![Access::Read {
                reg: reg.clone(),
                at: None,
            }]),
        )
    }

    fn write(&mut self, reg: &Reg) -> Cmd {
        let value = self.unique_value();
        let args = match &reg.field {
            None => args!["SET", &reg.key, value.clone()],
            Some(f) => args!["HSET", &reg.key, f, value.clone()],
        };
        let access = Access::Write {
            reg: reg.clone(),
            value: Some(value),
        };
        Cmd::new(args, Check::Shared(vec![access]))
    }

    /// One write to a shared register (also sent while replies are off).
    pub fn shared_write(&mut self) -> Cmd {
        let ns = self.ns_preferring(|ns| ns.l1);
        let reg = if self.chance(0.7) {
            self.string_reg(&ns)
        } else {
            self.hash_reg(&ns)
        };
        self.write(&reg)
    }

    /// One command on shared keys, or (family `shared-pipeline`) a pipeline of writes
    /// and reads of one key.
    pub fn shared(&mut self) -> Step {
        let ns = self.ns_preferring(|ns| ns.l1);
        let reg = if self.chance(0.75) {
            self.string_reg(&ns)
        } else {
            self.hash_reg(&ns)
        };
        let one = |c: Cmd| Step::Cmds(vec![c]);
        let pipelines = self.on("shared-pipeline");
        match self.rng.random_range(0..14) {
            6..=8 | 13 if !pipelines => one(Self::read(&reg)),
            0..=2 => one(self.write(&reg)),
            3..=5 => one(Self::read(&reg)),
            6 | 7 => Step::Cmds(vec![self.write(&reg), Self::read(&reg)]),
            8 => Step::Cmds(vec![Self::read(&reg), self.write(&reg), Self::read(&reg)]),
            9 if reg.field.is_none() => {
                let other = self.string_reg(&ns);
                let reads = vec![
                    Access::Read {
                        reg: reg.clone(),
                        at: Some(0),
                    },
                    Access::Read {
                        reg: other.clone(),
                        at: Some(1),
                    },
                ];
                one(Cmd::new(
                    args!["MGET", &reg.key, &other.key],
                    Check::Shared(reads),
                ))
            }
            10 if reg.field.is_none() => {
                let value = self.unique_value();
                let (args, at) = if self.chance(0.5) {
                    (args!["GETSET", &reg.key, value.clone()], None)
                } else {
                    (args!["SET", &reg.key, value.clone(), "GET"], None)
                };
                let access = vec![
                    Access::Read {
                        reg: reg.clone(),
                        at,
                    },
                    Access::Write {
                        reg: reg.clone(),
                        value: Some(value),
                    },
                ];
                one(Cmd::new(args, Check::Shared(access)))
            }
            11 if reg.field.is_none() => {
                let access = vec![
                    Access::Read {
                        reg: reg.clone(),
                        at: None,
                    },
                    Access::Write {
                        reg: reg.clone(),
                        value: None,
                    },
                ];
                one(Cmd::new(args!["GETDEL", &reg.key], Check::Shared(access)))
            }
            12 => {
                let args = match &reg.field {
                    None => args!["DEL", &reg.key],
                    Some(f) if self.target.renamed("HDEL").is_none() => args!["HDEL", &reg.key, f],
                    Some(_) => return one(self.write(&reg)),
                };
                let access = vec![Access::Write {
                    reg: reg.clone(),
                    value: None,
                }];
                one(Cmd::new(args, Check::Shared(access)))
            }
            13 => Step::Cmds(vec![self.write(&reg), self.write(&reg), Self::read(&reg)]),
            _ => one(Self::read(&reg)),
        }
    }

    /// PUBLISH on a shared channel (unique payload; the receiver count depends on the
    /// others), or on the client's own channels (exact: only it listens there).
    pub fn publish_shared(&mut self) -> Cmd {
        let c = self.client;
        match self.rng.random_range(0..8) {
            0..=3 => {
                let channel = keys::shared_channel(self.rng.random_range(0..keys::SHARED_CHANNELS));
                let seq = self.next_seq();
                let payload = format!("p{c}.{seq}").into_bytes();
                let access = Access::Publish {
                    channel: channel.clone(),
                    payload: payload.clone(),
                };
                Cmd::new(
                    args!["PUBLISH", channel, payload],
                    Check::Shared(vec![access]),
                )
            }
            4 | 5 => Cmd::exact(args![
                "PUBLISH",
                keys::own_channel(c, self.rng.random_range(0..3)),
                "own"
            ]),
            6 => Cmd::exact(args!["SPUBLISH", keys::own_shard_channel(c, 0), "own"]),
            _ => Cmd::exact(args![
                self.pick(&["PUBSUB"]),
                self.pick(&["NUMSUB", "SHARDNUMSUB"]),
                keys::own_channel(c, 0),
                keys::own_shard_channel(c, 0)
            ]),
        }
    }
}
