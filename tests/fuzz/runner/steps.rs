//! The steps that are not plain commands: raw bytes (inline commands, malformed
//! input) and a client that leaves while blocked.

use super::{
    client::{ClientRun, REDIS_TIMEOUT, Res},
    compare::render_pair,
    side::Side,
};
use crate::{
    args,
    generate::Cmd,
    model::At,
    report::Kind,
    support::{
        Client,
        resp::{self, encode_command, show},
        wait_until,
    },
};

impl ClientRun<'_> {
    /// Bytes as they are, then the replies Redis gives them (and the close).
    pub(super) fn raw(&mut self, i: usize, bytes: &[u8], replies: usize, closes: bool) -> Res {
        let step = format!("step {i}: raw {}", show(bytes));
        let sent = self.send_both(bytes);
        self.commands += 1;
        let at = At {
            client: self.id,
            step: step.clone(),
        };
        for k in 0..replies {
            let label = format!("{step} (reply {k})");
            let [d, p] = [0, 1].map(|s| self.sides[s].read(&self.sess, false, &at, sent[s]));
            let d = match d {
                Ok((d, _)) => d.encode(),
                Err(e) => {
                    return Err(self.fail(Kind::FuzzerBug, label, format!("<{e}>"), String::new()));
                }
            };
            self.remember(format!("{label} -> {}", show(&d)));
            let p = p.map(|(p, _)| p.encode()).map_err(|e| format!("<{e}>"));
            if p.as_ref() != Ok(&d) {
                let (d, p) = render_pair(&d, &p);
                return Err(self.fail(Kind::Divergence, label, d, p));
            }
        }
        if closes {
            self.sides
                .iter_mut()
                .zip(sent)
                .for_each(|(s, t)| s.end_subscriptions(t));
            self.expect_close(&step)?;
        }
        self.compare_pushes(&step)
    }

    /// Issue 12 item 8 (see `Step::Abandon`): after the connection is gone, Redis has
    /// dropped the blocked command and the writes behind it; the proxy must too.
    pub(super) fn abandon(
        &mut self,
        i: usize,
        name: &str,
        [list, dest, counter]: [&String; 3],
    ) -> Res {
        let setup = [
            Cmd::exact(args!["CLIENT", "SETNAME", name]),
            Cmd::exact(args!["DEL", list]),
        ];
        self.cmds(i, &setup)?;
        let bytes: Vec<u8> = [
            args!["BRPOPLPUSH", list, dest, 0],
            args!["SET", counter, "abandoned"],
            args!["INCR", counter],
        ]
        .iter()
        .flat_map(|a| encode_command(a))
        .collect();
        self.send_both(&bytes);
        self.commands += 3;
        self.sides.iter_mut().for_each(Side::hang_up);
        let step = format!("step {i}: a client named {name} blocked in BRPOPLPUSH {list} leaves");
        self.remember(step.clone());
        let mut direct = Client::connect(self.addrs.direct);
        let named = format!(" name={name} ");
        let direct_gone = wait_until(REDIS_TIMEOUT, || {
            !client_list(&mut direct, |l| l.contains(&named))
        });
        if !direct_gone {
            return Err(self.fail(
                Kind::FuzzerBug,
                step,
                "<still connected>".into(),
                String::new(),
            ));
        }
        let mut behind = Client::connect(self.addrs.behind);
        let proxy_gone = wait_until(self.spec.timeout, || {
            !client_list(&mut behind, is_blocked_brpoplpush)
        });
        self.reconnect();
        if !proxy_gone {
            let proxy = format!(
                "a BRPOPLPUSH is still blocked in the proxy's Redis {:?} after the client left",
                self.spec.timeout
            );
            return Err(self.fail(Kind::Divergence, step, "<no blocked client>".into(), proxy));
        }
        Ok(())
    }
}

/// True when a line of `CLIENT LIST` matches.
fn client_list(admin: &mut Client, pred: impl Fn(&str) -> bool) -> bool {
    let reply = admin.call(&["CLIENT", "LIST"]);
    let text =
        String::from_utf8_lossy(resp::decode(&reply).text().unwrap_or_default()).into_owned();
    text.lines().any(|l| pred(&format!(" {l} ")))
}

fn is_blocked_brpoplpush(line: &str) -> bool {
    line.contains(" cmd=brpoplpush ")
        && line
            .split(' ')
            .any(|f| f.strip_prefix("flags=").is_some_and(|v| v.contains('b')))
}
