//! Image references as workloads spell them, and which of them point into a
//! given ECR registry.
//!
//! `123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/web:v1`,
//! `...amazonaws.com/team/web@sha256:...`, or both a tag and a digest. A
//! reference without a registry host (`nginx:1.27`) is Docker Hub's, and a
//! reference to any other registry is not ours: both are ignored.

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// The registry host, without a port.
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl std::fmt::Display for ImageRef {
    /// The reference as a workload would spell it: it parses back to the
    /// same `ImageRef`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// One ECR registry: an account in a region. Also names whose workloads an
/// inventory saw.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Registry {
    pub account: String,
    pub region: String,
}

impl std::fmt::Display for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.account, self.region)
    }
}

impl Registry {
    /// Whether `host` is one of this registry's endpoints: the standard
    /// (`dkr.ecr`), FIPS (`dkr.ecr-fips`), dual-stack (`dkr-ecr`, `.on.aws`)
    /// and dual-stack FIPS (`dkr-ecr-fips`) hosts, in the commercial, China
    /// and GovCloud partitions. DNS names are case-insensitive, and a fully
    /// qualified name may end in a dot.
    pub fn is_host(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        let host = host.strip_suffix('.').unwrap_or(&host);
        let Some(rest) = host.strip_prefix(&format!("{}.", self.account)) else {
            return false;
        };
        const ENDPOINTS: [(&str, &[&str]); 4] = [
            ("dkr.ecr.", &["amazonaws.com", "amazonaws.com.cn"]),
            ("dkr.ecr-fips.", &["amazonaws.com"]),
            ("dkr-ecr.", &["on.aws", "on.amazonwebservices.com.cn"]),
            ("dkr-ecr-fips.", &["on.aws"]),
        ];
        ENDPOINTS.iter().any(|(service, domains)| {
            rest.strip_prefix(service)
                .and_then(|r| r.strip_prefix(self.region.as_str()))
                .and_then(|r| r.strip_prefix('.'))
                .is_some_and(|domain| domains.contains(&domain))
        })
    }
}

/// Parses a reference; `None` when it is not a well-formed reference.
pub fn parse(reference: &str) -> Option<ImageRef> {
    let reference = reference.trim();
    // Kubernetes reports a container's imageID with a runtime prefix.
    let reference = reference
        .strip_prefix("docker-pullable://")
        .or_else(|| reference.strip_prefix("docker://"))
        .unwrap_or(reference);
    if reference.is_empty() || reference.chars().any(char::is_whitespace) {
        return None;
    }
    let (name, digest) = match reference.split_once('@') {
        Some((name, digest)) if digest.contains(':') => (name, Some(digest.to_owned())),
        Some(_) => return None,
        None => (reference, None),
    };
    // The tag is after the last ':' of the last path component.
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (path, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (
            &name[..last_slash + i],
            Some(name[last_slash + i + 1..].to_owned()),
        ),
        None => (name, None),
    };
    if tag.as_deref() == Some("") {
        return None;
    }
    let (registry, repository) = match path.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            let host = first.split(':').next().unwrap_or(first);
            (host.to_owned(), rest.to_owned())
        }
        _ => ("docker.io".to_owned(), path.to_owned()),
    };
    if repository.is_empty() {
        return None;
    }
    Some(ImageRef {
        registry,
        repository,
        tag,
        digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";

    #[track_caller]
    fn check(reference: &str, expected: Option<(&str, &str, Option<&str>, Option<&str>)>) {
        let got = parse(reference);
        let want = expected.map(|(registry, repository, tag, digest)| ImageRef {
            registry: registry.into(),
            repository: repository.into(),
            tag: tag.map(Into::into),
            digest: digest.map(Into::into),
        });
        assert_eq!(got, want, "{reference}");
    }

    #[test]
    fn references() {
        let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        check(
            &format!("{HOST}/team/web:v1"),
            Some((HOST, "team/web", Some("v1"), None)),
        );
        check(&format!("{HOST}/web"), Some((HOST, "web", None, None)));
        check(
            &format!("{HOST}/web@{d}"),
            Some((HOST, "web", None, Some(d))),
        );
        check(
            &format!("{HOST}/web:v1@{d}"),
            Some((HOST, "web", Some("v1"), Some(d))),
        );
        check(
            &format!("{HOST}:443/web:v1"),
            Some((HOST, "web", Some("v1"), None)),
        );
        check(
            "nginx:1.27",
            Some(("docker.io", "nginx", Some("1.27"), None)),
        );
        check(
            "library/nginx",
            Some(("docker.io", "library/nginx", None, None)),
        );
        check(
            "localhost/web:x",
            Some(("localhost", "web", Some("x"), None)),
        );
        check("", None);
        check("a b", None);
        check(&format!("{HOST}/web:"), None);
        check(&format!("{HOST}/web@nodigest"), None);
        check(&format!("{HOST}/"), None);
        for text in [
            format!("{HOST}/team/web:v1"),
            format!("{HOST}/web@{d}"),
            format!("{HOST}/web:v1@{d}"),
            "docker.io/nginx:1.27".to_owned(),
        ] {
            let parsed = parse(&text).unwrap();
            assert_eq!(parsed.to_string(), text);
            assert_eq!(parse(&parsed.to_string()), Some(parsed));
        }
    }

    #[test]
    fn registry_hosts() {
        let registry = Registry {
            account: "123456789012".into(),
            region: "eu-west-1".into(),
        };
        assert!(registry.is_host(HOST));
        for host in [
            "123456789012.dkr.ecr-fips.eu-west-1.amazonaws.com",
            "123456789012.dkr-ecr.eu-west-1.on.aws",
            "123456789012.dkr-ecr-fips.eu-west-1.on.aws",
            "123456789012.DKR.ECR.EU-WEST-1.AMAZONAWS.COM",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com.",
        ] {
            assert!(registry.is_host(host), "{host}");
        }
        let china = Registry {
            account: "123456789012".into(),
            region: "cn-north-1".into(),
        };
        assert!(china.is_host("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"));
        assert!(china.is_host("123456789012.dkr-ecr.cn-north-1.on.amazonwebservices.com.cn"));
        assert!(!registry.is_host("123456789012.dkr-ecr.eu-west-1.on.aws.evil.example"));
        assert!(!registry.is_host("123456789012.dkr-ecr.eu-west-1.amazonaws.com"));
        assert!(!registry.is_host("123456789012.dkr.ecr.eu-west-1x.amazonaws.com"));
        assert!(!registry.is_host("123456789012.dkr-ecr.eu-west-1.on.aws.cn"));
        assert!(!registry.is_host("123456789012.dkr.ecr.us-east-1.amazonaws.com"));
        assert!(!registry.is_host("210987654321.dkr.ecr.eu-west-1.amazonaws.com"));
        assert!(!registry.is_host("docker.io"));
        assert!(!registry.is_host("123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.example"));
    }
}
