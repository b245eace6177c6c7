//! The CLIENT subcommands about connections: `LIST`, `INFO`, `KILL` answer about
//! respite's own clients (what a client connected to Redis directly would see), after
//! Redis has checked the arguments (so every version's errors are its own); `SETINFO`
//! and `NO-EVICT` are kept by the proxy, as the Redis behind it would answer them.
//!
//! Redis checks a `CLIENT KILL` with filters as `CLIENT KILL <filters> ADDR 0.0.0.0:0`:
//! the last `ADDR` wins and no connection has that address, so nothing is killed
//! there. `CLIENT LIST` is sent as is (it changes nothing).

use std::time::Instant;

use bytes::Bytes;

use super::{
    Phase, Session,
    clients::{LastCmd, SetInfo, flag},
    listing::{self, Filter, Parsed},
};
use crate::{
    command::{Classified, Route},
    error::Error,
    protocol::{reply, request::Request},
};

/// The routes [`Session::who`] answers.
pub(super) fn about_clients(route: Route) -> bool {
    lists_clients(route) || route == Route::ClientSetInfo
}

/// CLIENT LIST, INFO, KILL: about respite's clients, never about Redis's (refused
/// inside MULTI, where Redis would run them about its own).
pub(super) fn lists_clients(route: Route) -> bool {
    matches!(
        route,
        Route::ClientList | Route::ClientInfo | Route::ClientKill
    )
}

/// Above this many clients, `CLIENT LIST` is written off the event loop.
const LIST_INLINE: usize = 1000;

impl Session {
    /// `CLIENT LIST|INFO|KILL|SETINFO`; false for any other command.
    pub(super) async fn who(&mut self, req: &Request, class: &Classified) -> bool {
        let (args, n) = (&req.args, req.args.len());
        // Any other arity: Redis answers its own error (and does nothing).
        let frame = match class.route {
            Route::ClientList if n >= 2 => match self.list(args).await {
                Ok(filter) => return self.answer_list(filter),
                Err(frame) => frame,
            },
            Route::ClientInfo if n == 2 => self.info(args).await,
            Route::ClientKill if n >= 3 => self.kill(args).await,
            Route::ClientSetInfo if n == 4 => self.set_info(args).await,
            _ => return false,
        };
        self.reply(frame);
        true
    }

    /// Records the command being dispatched, for `CLIENT LIST`.
    pub(super) fn note_command(&mut self, req: &Request, class: &Classified) {
        self.shown.cmds += 1;
        self.shown.stale = true;
        self.shown.cmd = match class.effective() {
            Some(spec) => LastCmd::Known(spec.name),
            // A name the table does not know: at most 64 bytes of it are kept.
            None => LastCmd::Other(Bytes::copy_from_slice(
                &req.name()[..req.name().len().min(64)],
            )),
        };
    }

    /// Records a `RESPITE …` command (`cmd=respite`), for `CLIENT LIST` and the idle
    /// timeout.
    pub(super) fn note_admin(&mut self) {
        self.shown.cmds += 1;
        self.shown.stale = true;
        self.shown.cmd = LastCmd::Known("respite");
    }

    /// Publishes the session's state for other clients' `CLIENT LIST`: after a turn
    /// that dispatched commands, or now (`force`, for a listing).
    pub(super) fn publish(&mut self, force: bool) {
        if !force && !self.shown.stale {
            return;
        }
        self.shown.stale = false;
        let now = crate::metrics::clock::recent();
        let active = std::mem::take(&mut self.shown.active);
        let (subs, multi, flags) = self.link_shown();
        let shown = &self.shown;
        self.entry.update(|s| {
            if s.key != self.key {
                s.key = self.key.clone();
            }
            if s.name != self.name {
                s.name = self.name.clone();
            }
            if s.lib_name != shown.lib_name || s.lib_ver != shown.lib_ver {
                s.lib_name = shown.lib_name.clone();
                s.lib_ver = shown.lib_ver.clone();
            }
            if s.cmds != shown.cmds {
                s.cmds = shown.cmds;
                s.cmd = shown.cmd.clone();
                s.last_active = now;
            }
            if active {
                s.last_active = now;
            }
            (s.subs, s.multi, s.flags) = (subs, multi, flags);
            s.redir = shown.redir.map_or(-1, |id| id as i64);
            s.qbuf = self.inbuf.len();
            s.qbuf_free = self.inbuf.capacity() - self.inbuf.len();
            (s.obl, s.oll, s.omem) = (self.out.len(), self.pending.len(), self.queued());
            (s.net_in, s.net_out) = (shown.net_in, shown.net_out);
        });
    }

    /// Subscriptions, MULTI queue length and flags, as `CLIENT LIST` shows them.
    fn link_shown(&self) -> ([usize; 3], i64, u16) {
        let mut flags = 0;
        if self.shown.no_evict {
            flags |= flag::NO_EVICT;
        }
        if self.phase == Phase::Closing {
            flags |= flag::CLOSING;
        }
        if self.shown.tracking {
            flags |= flag::TRACKING;
        }
        let Some(own) = self.link.own() else {
            return ([0; 3], -1, flags);
        };
        let subs = own.conn.subscriptions();
        let multi = own
            .multi
            .as_ref()
            .map_or(-1, |m| m.client_commands() as i64);
        for (on, bit) in [
            (subs.iter().any(|&n| n > 0), flag::PUBSUB),
            (own.monitor, flag::MONITOR),
            (multi >= 0, flag::MULTI),
            (self.pending.waits_forever(), flag::BLOCKED),
        ] {
            if on {
                flags |= bit;
            }
        }
        (subs, multi, flags)
    }

    /// Sends `args` to Redis on the client's shared connection (as its user): its
    /// reply, or its error as `Err`.
    async fn redis_says(&self, args: Vec<Bytes>) -> Result<Bytes, Bytes> {
        let asked = self
            .pool
            .conn(self.id)
            .request(Request::from_args(args).raw);
        match asked.await {
            Ok(Ok(frame)) if reply::is_error(&frame) => Err(frame),
            Ok(Ok(frame)) => Ok(frame),
            Ok(Err(e)) => Err(e.to_reply()),
            Err(_) => Err(Error::ConnectionLost.to_reply()),
        }
    }

    /// Checks `CLIENT LIST|INFO <args>` with Redis and learns its line format.
    async fn check_listing(&self, args: &[Bytes]) -> Result<(), Bytes> {
        let clients = &self.ctx.clients;
        let text = self.redis_says(args.to_vec()).await?;
        if let Some(line) = first_line(&text) {
            clients.learn_template(&line);
        } else if clients.template().is_none() {
            let info = vec![args[0].clone(), Bytes::from_static(b"INFO")];
            let text = self.redis_says(info).await?;
            first_line(&text).inspect(|line| clients.learn_template(line));
        }
        Ok(())
    }

    /// `CLIENT LIST [TYPE t] [ID id …] …`: checked by Redis, then the filter.
    async fn list(&mut self, args: &[Bytes]) -> Result<Filter, Bytes> {
        self.check_listing(args).await?;
        match Filter::parse(&args[2..], false) {
            Parsed::Filter(f) => Ok(f),
            Parsed::Dangling(_) => Err(Error::refused("syntax error").to_reply()),
            Parsed::Unknown(name) => Err(unsupported_filter(&name)),
        }
    }

    /// Writes the lines of the clients `filter` keeps (off the event loop when there
    /// are many clients: copying their states and writing the lines).
    fn answer_list(&mut self, filter: Filter) -> bool {
        self.publish(true);
        let clients = self.ctx.clients.clone();
        let (me, resp3) = (self.id, self.key.resp3);
        let render = move || {
            // One listing written at a time: pipelined CLIENT LISTs of many clients
            // wait for each other instead of each holding a copy of the text.
            let _one = clients.listing.lock().expect("listing");
            let template = clients.template().unwrap_or_default();
            let fields = listing::fields_of(&template);
            let now = Instant::now();
            let mut text = Vec::with_capacity(clients.count() * 256);
            clients.each(|e, s| {
                if filter.matches(e, s, me, now) {
                    listing::line(&mut text, &fields, e, s, now);
                }
            });
            listing::text_reply(&text, resp3)
        };
        if self.ctx.clients.count() <= LIST_INLINE {
            self.reply(render());
            return true;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::task::spawn_blocking(move || tx.send(Ok(render())));
        self.await_later(rx, false);
        true
    }

    /// `CLIENT INFO`: this client's line.
    async fn info(&mut self, args: &[Bytes]) -> Bytes {
        if let Err(frame) = self.check_listing(args).await {
            return frame;
        }
        self.publish(true);
        let template = self.ctx.clients.template().unwrap_or_default();
        let fields = listing::fields_of(&template);
        let mut line = Vec::with_capacity(256);
        let state = self.entry.state();
        listing::line(&mut line, &fields, &self.entry, &state, Instant::now());
        listing::text_reply(&line, self.key.resp3)
    }

    /// `CLIENT KILL ip:port` or `CLIENT KILL <filter> <value> …`.
    async fn kill(&mut self, args: &[Bytes]) -> Bytes {
        if args.len() == 3 {
            // Redis checks the user may run CLIENT KILL; the address is respite's to find.
            let probe = [&args[0][..], &args[1], b"ADDR", b"0.0.0.0:0"].map(Bytes::copy_from_slice);
            if let Err(frame) = self.redis_says(probe.to_vec()).await {
                return frame;
            }
            return self.kill_addr(&args[2]);
        }
        let filters = &args[2..];
        let (checked, dangling) = match Filter::parse(filters, true) {
            Parsed::Dangling(at) => (&filters[..at], true),
            _ => (filters, false),
        };
        let mut probe = vec![args[0].clone(), args[1].clone()];
        probe.extend_from_slice(checked);
        probe.extend([
            Bytes::from_static(b"ADDR"),
            Bytes::from_static(b"0.0.0.0:0"),
        ]);
        if let Err(frame) = self.redis_says(probe).await {
            return frame;
        }
        match Filter::parse(filters, true) {
            Parsed::Filter(f) if !dangling => reply::integer(self.kill_matching(&f)),
            Parsed::Unknown(name) => unsupported_filter(&name),
            _ => Error::refused("syntax error").to_reply(),
        }
    }

    /// Kills every client `f` matches; how many.
    fn kill_matching(&mut self, f: &Filter) -> i64 {
        let (me, now) = (self.id, Instant::now());
        let (mut killed, mut me_too) = (0, false);
        self.ctx.clients.each(|e, s| {
            if !f.matches(e, s, me, now) {
                return;
            }
            if e.id == me {
                me_too = true;
                killed += 1;
            } else if e.kill() {
                killed += 1;
            }
        });
        if me_too {
            self.close(); // after this reply, as Redis does
        }
        killed
    }

    /// The old form: `CLIENT KILL ip:port`.
    fn kill_addr(&mut self, addr: &Bytes) -> Bytes {
        let f = Filter {
            addr: Some(addr.clone()),
            ..Filter::default()
        };
        match self.kill_matching(&f) {
            0 => Error::refused("No such client").to_reply(),
            _ => Bytes::from_static(reply::OK),
        }
    }

    /// `CLIENT SETINFO LIB-NAME|LIB-VER value`, answered as the Redis behind the
    /// proxy would (7.0 does not know it).
    async fn set_info(&mut self, args: &[Bytes]) -> Bytes {
        if self.ctx.clients.setinfo() == SetInfo::Unknown {
            let info = [b"COMMAND", &b"INFO"[..], b"client|setinfo"].map(Bytes::from_static);
            let known = match self.redis_says(info.to_vec()).await {
                Ok(frame) => frame.windows(7).any(|w| w.eq_ignore_ascii_case(b"setinfo")),
                Err(frame) => return frame,
            };
            let s = if known {
                SetInfo::Supported
            } else {
                SetInfo::Unsupported
            };
            self.ctx.clients.set_setinfo(s);
        }
        if self.ctx.clients.setinfo() == SetInfo::Unsupported {
            let msg = format!(
                "ERR unknown subcommand '{}'. Try CLIENT HELP.",
                lossy(&args[1])
            );
            return Error::refused(msg).to_reply();
        }
        match self.keep_info(&args[2], &args[3]) {
            Ok(()) => Bytes::from_static(reply::OK),
            Err(e) => e.to_reply(),
        }
    }

    fn keep_info(&mut self, attr: &Bytes, value: &Bytes) -> Result<(), Error> {
        let slot = if attr.eq_ignore_ascii_case(b"lib-name") {
            &mut self.shown.lib_name
        } else if attr.eq_ignore_ascii_case(b"lib-ver") {
            &mut self.shown.lib_ver
        } else {
            return Err(Error::refused(format!(
                "ERR Unrecognized option '{}'",
                lossy(attr)
            )));
        };
        if value.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
            return Err(Error::refused(format!(
                "ERR {} cannot contain spaces, newlines or special characters.",
                lossy(attr)
            )));
        }
        // A copy: a slice would keep the whole input buffer it came in alive.
        *slot = (!value.is_empty()).then(|| Bytes::copy_from_slice(value));
        Ok(())
    }

    /// `CLIENT NO-EVICT ON|OFF`: respite does not evict clients; the flag is shown.
    pub(super) fn no_evict(&mut self, on: &[u8]) -> Bytes {
        if on.eq_ignore_ascii_case(b"on") || on.eq_ignore_ascii_case(b"off") {
            self.shown.no_evict = on.eq_ignore_ascii_case(b"on");
            Bytes::from_static(reply::OK)
        } else {
            Error::refused("syntax error").to_reply()
        }
    }
}

/// The first line of a `CLIENT LIST`/`CLIENT INFO` reply (bulk or verbatim string).
fn first_line(frame: &[u8]) -> Option<String> {
    let body = &frame[frame.iter().position(|&b| b == b'\n')? + 1..];
    let body = body.strip_prefix(b"txt:").unwrap_or(body);
    let line = body.split(|&b| b == b'\n').next()?;
    line.starts_with(b"id=")
        .then(|| String::from_utf8_lossy(line).trim_end().to_string())
}

fn unsupported_filter(name: &[u8]) -> Bytes {
    Error::refused(format!(
        "ERR CLIENT filter '{}' is not supported through respite",
        lossy(name)
    ))
    .to_reply()
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
