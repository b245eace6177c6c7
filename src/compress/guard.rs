//! In-place changes (APPEND, SETRANGE, SETBIT, BITFIELD, INCR…, HINCRBY…) of a value
//! that may be stored as an envelope.
//!
//! The command runs inside a Lua script that first reads the value's first 16 bytes
//! (`GETRANGE key 0 15`, or `HGET key field`). When they start like an envelope:
//! - a raw envelope (a client's value that starts with the magic, stored as it is):
//!   a string change is made on the value inside (unwrapped first); a counter change
//!   runs on the stored bytes, which fail to parse as a number just as the value
//!   does;
//! - any other (compressed, or not valid): refused with an error naming the
//!   namespace.
//!
//! Otherwise it runs the client's command with `redis.pcall` and returns its reply,
//! Redis's own errors included. A string change can make a value start with the
//! magic (`APPEND` to an empty key, `SETRANGE … 0 "\xFE"`, `SETBIT`): the script then
//! stores it in a raw envelope (`SET … KEEPTTL`), so it still reads back as written.
//! One script, so check and change are atomic; inside MULTI it is queued like any
//! command.
//!
//! Replies pass through Lua's numbers (doubles): exact for lengths, bits and floats
//! (INCRBYFLOAT answers with a string), but not for integers past 2^53. So for the
//! INCR family the script answers `{value after}` (read with GET/HGET) and
//! [`super::Restore::Integer`] turns that back into the integer reply. BITFIELD's
//! 64-bit fields past 2^53 are the one reply that may differ from Redis's.

use bytes::Bytes;

/// ARGV: mode (`s` string key, `h` hash field; `si`/`hi` also answer `{value after}`),
/// field (for `h`), the error to answer, then the client's command.
pub const SCRIPT: &str = r"-- respite: in-place changes of values that may be stored in an envelope
local mode = ARGV[1]
local key = KEYS[1]
-- The header of a raw envelope (codec 0) of an n-byte value.
local function raw_header(n)
  local h = '\254RSP\1\0\0\0\0\0' .. string.char(n % 256, math.floor(n / 256) % 256,
    math.floor(n / 65536) % 256, math.floor(n / 16777216) % 256)
  local s1, s2 = 0, 0
  for i = 1, 14 do
    s1 = (s1 + string.byte(h, i)) % 255
    s2 = (s2 + s1) % 255
  end
  return h .. string.char(s1, s2)
end
local hash = string.sub(mode, 1, 1) == 'h'
local h
if hash then
  h = redis.pcall('HGET', key, ARGV[2])
else
  h = redis.pcall('GETRANGE', key, 0, 15)
end
if type(h) == 'string' and string.sub(h, 1, 4) == '\254RSP' then
  local len = hash and #h or redis.call('STRLEN', key)
  if len < 16 or string.sub(h, 1, 16) ~= raw_header(len - 16) then
    return redis.error_reply(ARGV[3])
  end
  if mode == 's' then
    redis.call('SET', key, string.sub(redis.call('GET', key), 17), 'KEEPTTL')
  end
end
local r = redis.pcall(unpack(ARGV, 4))
if mode == 's' and redis.pcall('GETRANGE', key, 0, 3) == '\254RSP' then
  local v = redis.call('GET', key)
  if #v < 4294967296 then
    redis.call('SET', key, raw_header(#v) .. v, 'KEEPTTL')
  end
end
if type(r) == 'number' and mode == 'si' then
  return {redis.call('GET', key)}
elseif type(r) == 'number' and mode == 'hi' then
  return {redis.call('HGET', key, ARGV[2])}
end
return r
";

/// How a guarded command reads the value it changes, and what it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A string key (APPEND, SETRANGE, SETBIT, BITFIELD, INCRBYFLOAT).
    String,
    /// A string key, integer reply (INCR, INCRBY, DECR, DECRBY).
    StringInteger,
    /// A hash field, float reply as a string (HINCRBYFLOAT).
    Field,
    /// A hash field, integer reply (HINCRBY).
    FieldInteger,
}

/// The guarded form of a command: `args` (name first) of a change to `args[1]`
/// (and, for a hash, field `args[2]`) in namespace `namespace`.
pub fn guarded(args: &[Bytes], target: Target, namespace: &str) -> Vec<Bytes> {
    let (mode, field) = match target {
        Target::String => ("s", Bytes::new()),
        Target::StringInteger => ("si", Bytes::new()),
        Target::Field => ("h", args[2].clone()),
        Target::FieldInteger => ("hi", args[2].clone()),
    };
    let mut out = Vec::with_capacity(args.len() + 7);
    out.extend([
        Bytes::from_static(b"EVAL"),
        Bytes::from_static(SCRIPT.as_bytes()),
        Bytes::from_static(b"1"),
        args[1].clone(),
        Bytes::from_static(mode.as_bytes()),
        field,
        Bytes::from(refusal(&args[0], namespace)),
    ]);
    out.extend(args.iter().cloned());
    out
}

/// The error an in-place change of an enveloped value gets (without the `-`).
pub fn refusal(command: &[u8], namespace: &str) -> String {
    format!(
        "ERR {} cannot change a value respite stores compressed (namespace `{namespace}`): write the whole value with SET/HSET instead",
        String::from_utf8_lossy(command).to_uppercase()
    )
    .replace(['\r', '\n'], " ")
}
