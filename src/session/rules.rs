//! Namespace rules applied to the commands a client sends: what actually goes
//! upstream for each command (see `post.rs` for how the reply comes back).

use super::{Session, post::Outgoing};
use crate::{command::Classified, protocol::request::Request};

impl Session {
    /// The bytes to send for `req` under the current namespace rules.
    pub(super) fn outgoing(&self, req: &Request, _class: &Classified) -> Outgoing {
        Outgoing::plain(req)
    }
}
