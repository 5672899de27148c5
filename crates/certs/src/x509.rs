//! The certificate a Secret serves: the first certificate of its `tls.crt`, read as
//! cert-manager reads it (`pki.DecodeX509CertificateBytes`).

use k8s_openapi::jiff::Timestamp;
use serde::Serialize;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;
use x509_parser::prelude::{FromDer as _, X509Certificate};

/// What the served certificate says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Served {
    /// The subject, as RFC 4514 text (`CN=web.example.com`).
    pub subject: String,
    /// The issuer, as RFC 4514 text.
    pub issuer: String,
    /// The serial number, in lowercase hex.
    pub serial: String,
    /// The subject's DNS names.
    pub dns_names: Vec<String>,
    /// The subject's IP addresses.
    pub ip_addresses: Vec<String>,
    /// The public key's algorithm: `rsa`, `ecdsa`, `ed25519` or `other`.
    pub key_algorithm: &'static str,
    /// Start of validity.
    pub not_before: Timestamp,
    /// End of validity.
    pub not_after: Timestamp,
    /// Certificates in `tls.crt`, the served one first.
    pub chain_length: usize,
}

impl Served {
    /// Whether the certificate names `name`, literally or through a wildcard of one label.
    pub fn covers(&self, name: &str) -> bool {
        self.dns_names.iter().any(|san| {
            san.eq_ignore_ascii_case(name)
                || san.strip_prefix("*.").is_some_and(|parent| {
                    name.split_once('.')
                        .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(parent))
                })
        }) || self.ip_addresses.iter().any(|ip| ip == name)
    }
}

/// Reads the first certificate of a PEM chain. Like cert-manager, every PEM block must be a
/// certificate and text around the blocks is ignored.
///
/// # Errors
///
/// What is wrong with the PEM or the certificate, for a message about the Secret holding it.
pub fn parse_chain(pem: &[u8]) -> Result<Served, String> {
    let mut blocks = Vec::new();
    for block in Pem::iter_from_buffer(pem) {
        let block = block.map_err(|error| format!("not valid PEM: {error}"))?;
        blocks.push(block);
    }
    let Some(first) = blocks.first() else {
        return Err("holds no PEM certificate".to_owned());
    };
    for (index, block) in blocks.iter().enumerate() {
        X509Certificate::from_der(&block.contents).map_err(|error| {
            format!(
                "PEM block {} is not an X.509 certificate: {error}",
                index + 1
            )
        })?;
    }
    let (_, cert) = X509Certificate::from_der(&first.contents)
        .map_err(|error| format!("not an X.509 certificate: {error}"))?;
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    if let Ok(Some(names)) = cert.subject_alternative_name() {
        for name in &names.value.general_names {
            match name {
                GeneralName::DNSName(dns) => dns_names.push((*dns).to_owned()),
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_text(bytes) {
                        ip_addresses.push(ip);
                    }
                }
                _ => {}
            }
        }
    }
    let key_algorithm = match cert
        .public_key()
        .algorithm
        .algorithm
        .to_id_string()
        .as_str()
    {
        "1.2.840.113549.1.1.1" => "rsa",
        "1.2.840.10045.2.1" => "ecdsa",
        "1.3.101.112" => "ed25519",
        _ => "other",
    };
    Ok(Served {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: cert.raw_serial_as_string().replace(':', ""),
        dns_names,
        ip_addresses,
        key_algorithm,
        not_before: time(cert.validity().not_before.timestamp()),
        not_after: time(cert.validity().not_after.timestamp()),
        chain_length: blocks.len(),
    })
}

fn time(seconds: i64) -> Timestamp {
    // X.509 times end at year 9999, inside jiff's range.
    Timestamp::from_second(seconds).unwrap_or(Timestamp::MAX)
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?).to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_chain;

    fn issued(names: &[&str]) -> rcgen::CertifiedKey<rcgen::KeyPair> {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        rcgen::generate_simple_self_signed(names).unwrap()
    }

    #[test]
    fn the_first_certificate_of_a_chain_is_the_served_one_and_the_chain_is_counted() {
        let leaf = issued(&["web.example.com", "10.0.0.1"]);
        let other = issued(&["ca.example.com"]);
        let chain = format!("junk before\n{}{}", leaf.cert.pem(), other.cert.pem());
        let served = parse_chain(chain.as_bytes()).unwrap();
        assert_eq!(served.dns_names, ["web.example.com"]);
        assert_eq!(served.ip_addresses, ["10.0.0.1"]);
        assert_eq!(served.chain_length, 2);
        assert_eq!(served.key_algorithm, "ecdsa");
        assert!(served.covers("web.example.com"));
        assert!(!served.covers("api.example.com"));
    }

    #[test]
    fn a_wildcard_covers_one_label() {
        let served = parse_chain(issued(&["*.example.com"]).cert.pem().as_bytes()).unwrap();
        assert!(served.covers("web.example.com"));
        assert!(!served.covers("a.web.example.com"));
        assert!(!served.covers("example.com"));
    }

    #[test]
    fn malformed_pem_and_other_blocks_are_errors_not_panics() {
        assert_eq!(
            parse_chain(b"no pem here").unwrap_err(),
            "holds no PEM certificate"
        );
        let truncated = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        assert!(
            parse_chain(truncated.as_bytes())
                .unwrap_err()
                .starts_with("PEM block 1 is not an X.509 certificate")
        );
        let key = issued(&["web.example.com"]).signing_key.serialize_pem();
        assert!(parse_chain(key.as_bytes()).is_err());
    }
}
