//! `WWW-Authenticate` challenges (RFC 7235 auth-params) and Docker token scopes.

/// A parsed challenge: the scheme (lower-cased) and its parameters (names lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The Bearer challenge's token endpoint, as the registry described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerChallenge {
    pub realm: url::Url,
    pub service: Option<String>,
    pub scope: Option<String>,
    /// RFC 6750's `error`: `invalid_token` (expired, bad signature) or `insufficient_scope`.
    pub error: Option<String>,
}

/// Parses one header value into its challenges. Malformed parts end the parse; what was read stays.
pub fn parse(header: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let mut p = Parser {
        s: header.as_bytes(),
        i: 0,
    };
    loop {
        p.skip(|b| b == b' ' || b == b',' || b == b'\t');
        let Some(word) = p.token() else { break };
        p.skip(|b| b == b' ' || b == b'\t');
        if p.peek() == Some(b'=') && !out.is_empty() {
            // `name=value`: a parameter of the current challenge.
            p.i += 1;
            p.skip(|b| b == b' ' || b == b'\t');
            let Some(value) = p.value() else { break };
            if let Some(last) = out.last_mut() {
                last.params.push((word.to_ascii_lowercase(), value));
            }
        } else {
            out.push(Challenge {
                scheme: word.to_ascii_lowercase(),
                params: Vec::new(),
            });
        }
    }
    out
}

/// The first Bearer challenge with a usable http(s) realm.
pub fn bearer(header: &str) -> Option<BearerChallenge> {
    parse(header)
        .into_iter()
        .filter(|c| c.scheme == "bearer")
        .find_map(|c| {
            let realm = url::Url::parse(c.param("realm")?)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))?;
            Some(BearerChallenge {
                realm,
                service: c.param("service").map(str::to_string),
                scope: c.param("scope").map(str::to_string),
                error: c.param("error").map(str::to_string),
            })
        })
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn skip(&mut self, f: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
    }
    /// RFC 7230 token characters (plus '/' for token68 values).
    fn token(&mut self) -> Option<String> {
        let start = self.i;
        self.skip(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b));
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
    fn value(&mut self) -> Option<String> {
        if self.peek() != Some(b'"') {
            return self.token();
        }
        self.i += 1;
        let mut v = Vec::new();
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b'"' => return Some(String::from_utf8_lossy(&v).into_owned()),
                b'\\' => {
                    v.push(self.peek()?);
                    self.i += 1;
                }
                _ => v.push(b),
            }
        }
        None // unterminated quoted string
    }
}

/// A Docker token scope for a repository: `repository:<name>:<actions>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepoScope<'a> {
    pub name: &'a str,
    pub actions: &'a str,
}

impl<'a> RepoScope<'a> {
    /// The scope a pull needs.
    pub fn pull(name: &'a str) -> RepoScope<'a> {
        RepoScope {
            name,
            actions: "pull",
        }
    }

    /// `repository:<name>:<actions>` (a name may hold a port's `:`, so actions are the last part).
    pub fn parse(scope: &'a str) -> Option<RepoScope<'a>> {
        let (name, actions) = scope.strip_prefix("repository:")?.rsplit_once(':')?;
        (!name.is_empty()).then_some(RepoScope { name, actions })
    }
}

impl std::fmt::Display for RepoScope<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "repository:{}:{}", self.name, self.actions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn docker_hub_challenge() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#;
        let b = bearer(h).unwrap();
        assert_eq!(b.realm.as_str(), "https://auth.docker.io/token");
        assert_eq!(b.service.as_deref(), Some("registry.docker.io"));
        assert_eq!(b.scope.as_deref(), Some("repository:library/alpine:pull"));
    }

    #[test]
    fn several_challenges_and_odd_spacing() {
        let h = r#"Basic realm="x", Bearer  realm = "http://127.0.0.1:15101/token" , service=testbed-registry,scope="repository:a/b:pull,push""#;
        let all = parse(h);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].scheme, "basic");
        let b = bearer(h).unwrap();
        assert_eq!(b.realm.as_str(), "http://127.0.0.1:15101/token");
        assert_eq!(b.service.as_deref(), Some("testbed-registry"));
        assert_eq!(b.scope.as_deref(), Some("repository:a/b:pull,push"));
    }

    #[test]
    fn escapes_in_quoted_strings() {
        let c = parse(r#"Bearer realm="http://h/t\"x\\",service="s""#);
        assert_eq!(c[0].param("realm"), Some("http://h/t\"x\\"));
        assert_eq!(c[0].param("service"), Some("s"));
    }

    #[rstest]
    #[case("")]
    #[case("Basic realm=\"registry\"")]
    #[case("Bearer")]
    #[case("Bearer realm=\"ftp://h/t\"")]
    #[case("Bearer realm=\"not a url\"")]
    #[case("Bearer realm=\"http://h/t")]
    #[case("Bearer service=\"s\"")]
    #[case("=,=,=\"\"\"")]
    #[case("Bearer realm=\u{0}")]
    fn no_usable_bearer(#[case] h: &str) {
        assert_eq!(bearer(h), None);
    }

    #[test]
    fn repository_scopes() {
        assert_eq!(
            RepoScope::pull("library/alpine").to_string(),
            "repository:library/alpine:pull"
        );
        assert_eq!(
            RepoScope::parse("repository:host:5000/a/b:pull,push"),
            Some(RepoScope {
                name: "host:5000/a/b",
                actions: "pull,push"
            })
        );
        for bad in [
            "registry:catalog:*",
            "repository:",
            "repository:x",
            "repository::pull",
        ] {
            assert_eq!(RepoScope::parse(bad), None, "{bad}");
        }
    }
}
