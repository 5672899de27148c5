//! Kubernetes' naming rules for names, namespaces and labels, as the API server checks them
//! (`k8s.io/apimachinery/pkg/util/validation`).

const DNS_LABEL_RULE: &str = "a lowercase RFC 1123 label: at most 63 characters, lowercase \
                              letters, digits and '-', starting and ending with a letter or digit";
const DNS_SUBDOMAIN_RULE: &str = "a lowercase RFC 1123 subdomain: at most 253 characters, \
                                  lowercase letters, digits, '-' and '.', each dot-separated \
                                  part starting and ending with a letter or digit";
const PATH_SEGMENT_RULE: &str = "names of this kind may not be '.' or '..' or contain '/' or '%'";
const LABEL_VALUE_RULE: &str = "at most 63 characters: letters, digits, '-', '_' and '.', \
                                starting and ending with a letter or digit";
const LABEL_NAME_RULE: &str = "a label key is an optional DNS subdomain prefix and '/', then at \
                               most 63 characters: letters, digits, '-', '_' and '.', starting \
                               and ending with a letter or digit";

/// Lowercase letters, digits and '-', starting and ending with a letter or digit: an RFC 1123
/// label without its length limit.
fn is_dns_part(part: &str) -> bool {
    let bytes = part.as_bytes();
    let alphanumeric = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    bytes.first().is_some_and(alphanumeric)
        && bytes.last().is_some_and(alphanumeric)
        && bytes.iter().all(|b| alphanumeric(b) || *b == b'-')
}

fn is_dns_label(name: &str) -> bool {
    name.len() <= 63 && is_dns_part(name)
}

/// Parts of a subdomain may exceed 63 characters: the API server's regex allows it.
fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns_part)
}

/// Label values and the name part of label keys share one rule; values may also be empty.
fn is_label_token(token: &str) -> bool {
    let bytes = token.as_bytes();
    let edge = |b: u8| b.is_ascii_alphanumeric();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && edge(bytes[0])
        && edge(bytes[bytes.len() - 1])
}

/// Why `name` is not a valid `metadata.name` for `group`/`kind`, if it is not.
pub(crate) fn name_problem(group: &str, kind: &str, name: &str) -> Option<&'static str> {
    match (group, kind) {
        ("", "Namespace" | "Service") => (!is_dns_label(name)).then_some(DNS_LABEL_RULE),
        // RBAC names such as `system:aggregate-to-view` only have to be URL path segments.
        (
            "rbac.authorization.k8s.io",
            "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding",
        ) => {
            let bad = name.is_empty() || name == "." || name == ".." || name.contains(['/', '%']);
            bad.then_some(PATH_SEGMENT_RULE)
        }
        _ => (!is_dns_subdomain(name)).then_some(DNS_SUBDOMAIN_RULE),
    }
}

/// Why `name` is not an RFC 1123 label (the rule for namespaces), if it is not.
pub(crate) fn dns_label_problem(name: &str) -> Option<&'static str> {
    (!is_dns_label(name)).then_some(DNS_LABEL_RULE)
}

/// Why `key` is not a valid label key, if it is not.
pub(crate) fn label_key_problem(key: &str) -> Option<&'static str> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let valid = is_label_token(name) && prefix.is_none_or(is_dns_subdomain);
    (!valid).then_some(LABEL_NAME_RULE)
}

/// Why `value` is not a valid label value, if it is not.
pub(crate) fn label_value_problem(value: &str) -> Option<&'static str> {
    (!value.is_empty() && !is_label_token(value)).then_some(LABEL_VALUE_RULE)
}

#[cfg(test)]
mod tests {
    use super::{dns_label_problem, label_key_problem, label_value_problem, name_problem};

    #[test]
    fn most_names_are_dns_subdomains() {
        assert!(name_problem("apps", "Deployment", "api-v2.example").is_none());
        assert!(name_problem("apps", "Deployment", "API").is_some());
        assert!(name_problem("apps", "Deployment", "-api").is_some());
        assert!(name_problem("apps", "Deployment", "a..b").is_some());
        assert!(name_problem("apps", "Deployment", &"a".repeat(254)).is_some());
    }

    #[test]
    fn namespaces_and_services_are_dns_labels() {
        assert!(name_problem("", "Service", "api.v2").is_some());
        assert!(name_problem("", "Namespace", &"a".repeat(64)).is_some());
        assert!(name_problem("", "Namespace", "team-a").is_none());
        assert!(dns_label_problem("team.a").is_some());
    }

    #[test]
    fn rbac_names_may_hold_colons() {
        let group = "rbac.authorization.k8s.io";
        assert!(name_problem(group, "ClusterRole", "system:aggregate-to-view").is_none());
        assert!(name_problem(group, "ClusterRole", "a/b").is_some());
        assert!(name_problem(group, "RoleBinding", "..").is_some());
    }

    #[test]
    fn label_rules_match_the_api_server() {
        assert!(label_key_problem("capstan.io/discriminator").is_none());
        assert!(label_key_problem("app.kubernetes.io/name").is_none());
        assert!(label_key_problem("Tier").is_none());
        assert!(label_key_problem("Capstan.io/x").is_some());
        assert!(label_key_problem("a/b/c").is_some());
        assert!(label_key_problem("").is_some());
        assert!(label_value_problem("").is_none());
        assert!(label_value_problem("v1.2_beta-3").is_none());
        assert!(label_value_problem("a b").is_some());
        assert!(label_value_problem("-a").is_some());
        assert!(label_value_problem(&"a".repeat(64)).is_some());
    }
}
