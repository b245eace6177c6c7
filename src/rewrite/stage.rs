//! A command on its way through the rewriting stages.

use bytes::Bytes;

use super::post::{Outgoing, Shape};
use crate::{
    command::Classified,
    protocol::request::{Request, encode_command},
};

pub struct Rewrite<'a> {
    pub req: &'a Request,
    pub class: &'a Classified,
    /// Replaced arguments; `None` while the client's own are kept.
    pub args: Option<Vec<Bytes>>,
    /// Commands sent right after, on the same connection; replies dropped.
    pub extras: Vec<Vec<Bytes>>,
    /// How the reply is restored.
    pub shape: Shape,
}

impl<'a> Rewrite<'a> {
    pub fn new(req: &'a Request, class: &'a Classified) -> Self {
        Self {
            req,
            class,
            args: None,
            extras: Vec::new(),
            shape: Shape::Raw,
        }
    }

    /// The arguments as they will be sent.
    pub fn args(&self) -> &[Bytes] {
        self.args.as_deref().unwrap_or(&self.req.args)
    }

    /// The arguments, to be changed.
    pub fn args_mut(&mut self) -> &mut Vec<Bytes> {
        self.args.get_or_insert_with(|| self.req.args.clone())
    }

    /// The bytes to send and how to shape the reply.
    pub fn finish(self) -> Outgoing {
        if self.args.is_none() && self.extras.is_empty() && self.shape == Shape::Raw {
            return Outgoing::plain(self.req);
        }
        let mut cmd = match &self.args {
            Some(args) => encode_command(args).to_vec(),
            None => self.req.raw.to_vec(),
        };
        for extra in &self.extras {
            cmd.extend_from_slice(&encode_command(extra));
        }
        Outgoing::with_extras(Bytes::from(cmd), self.extras.len() as u32, self.shape)
    }
}
