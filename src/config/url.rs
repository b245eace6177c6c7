//! `upstream.url`: where Redis is, whether the connections to it use TLS
//! (`rediss://`) and how the proxy logs in, parsed once; shown only with the password
//! hidden.

use std::{fmt, sync::Arc};

/// Where Redis is, parsed from `redis://[user:pass@]host:port[/db]` (`rediss://`: the
/// same over TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamAddr {
    pub host: String,
    pub port: u16,
    /// `rediss://`: every connection to Redis speaks TLS.
    pub tls: bool,
    pub creds: Option<Arc<Credentials>>,
    pub db: u32,
}

/// AUTH credentials; `user: None` is Redis's `default` user via `AUTH <password>`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credentials {
    pub user: Option<String>,
    pub pass: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("pass", &"<hidden>")
            .finish()
    }
}

impl UpstreamAddr {
    pub fn parse(s: &str) -> Result<Self, String> {
        let shown = redact(s);
        let url = url::Url::parse(s).map_err(|e| format!("`{shown}` is not a URL: {e}"))?;
        let tls = match url.scheme() {
            "redis" => false,
            "rediss" => true,
            other => return Err(format!("scheme `{other}` is not redis:// or rediss://")),
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("`{shown}` has no host"))?
            .trim_matches(|c| c == '[' || c == ']')
            .to_owned();
        let decode = |p: &str| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned()
        };
        let creds = url.password().map(|pass| {
            Arc::new(Credentials {
                user: Some(decode(url.username())).filter(|u| !u.is_empty()),
                pass: decode(pass),
            })
        });
        let db = match url.path().trim_start_matches('/') {
            "" => 0,
            d => d.parse().map_err(|_| format!("`{d}` is not a db number"))?,
        };
        Ok(Self {
            host,
            port: url.port().unwrap_or(6379),
            tls,
            creds,
            db,
        })
    }
}

/// The URL as it may be logged or printed: `redis://user:***@host:port/db` (or
/// `rediss://…`).
impl fmt::Display for UpstreamAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", if self.tls { "rediss" } else { "redis" })?;
        if let Some(c) = &self.creds {
            write!(f, "{}:***@", c.user.as_deref().unwrap_or(""))?;
        }
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "{host}:{}", self.port)?;
        if self.db != 0 {
            write!(f, "/{}", self.db)?;
        }
        Ok(())
    }
}

/// `url` with any password replaced by `***`, for messages about a URL that may not
/// parse.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let a = UpstreamAddr::parse("redis://127.0.0.1:6379").unwrap();
        assert_eq!((a.host.as_str(), a.port, a.db), ("127.0.0.1", 6379, 0));
        assert!(a.creds.is_none());
        let a = UpstreamAddr::parse("redis://app:p%40ss@redis.local/3").unwrap();
        assert_eq!((a.host.as_str(), a.port, a.db), ("redis.local", 6379, 3));
        let c = a.creds.clone().unwrap();
        assert_eq!((c.user.as_deref(), c.pass.as_str()), (Some("app"), "p@ss"));
        assert_eq!(a.to_string(), "redis://app:***@redis.local:6379/3");
        let a = UpstreamAddr::parse("redis://:secret@[::1]:7000").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("::1", 7000));
        assert_eq!(a.creds.clone().unwrap().user, None);
        assert_eq!(a.to_string(), "redis://:***@[::1]:7000");
        assert!(!format!("{a:?}").contains("secret"));
    }

    #[test]
    fn rediss_is_tls() {
        let a = UpstreamAddr::parse("rediss://app:pw@redis.internal:6380/1").unwrap();
        assert!(a.tls);
        assert_eq!((a.host.as_str(), a.port, a.db), ("redis.internal", 6380, 1));
        assert_eq!(a.to_string(), "rediss://app:***@redis.internal:6380/1");
        assert!(!UpstreamAddr::parse("redis://h").unwrap().tls);
        assert_eq!(redact("rediss://u:pw@h:1"), "rediss://u:***@h:1");
    }

    #[test]
    fn refuses_bad_urls() {
        assert!(UpstreamAddr::parse("http://x").is_err());
        assert!(UpstreamAddr::parse("redis://x/abc").is_err());
        assert!(UpstreamAddr::parse("nonsense").is_err());
        let e = UpstreamAddr::parse("redis://u:hunter2@/x").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn redacts() {
        assert_eq!(redact("redis://u:pw@h:1/2"), "redis://u:***@h:1/2");
        assert_eq!(redact("redis://:pw@h"), "redis://:***@h");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
        assert_eq!(redact("garbage"), "garbage");
    }
}
