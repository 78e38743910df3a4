//! Where a call came from: `sourceIPAddress` looked up in MaxMind-format databases (`.mmdb`),
//! loaded once at cold start. Reads both MaxMind's GeoIP2/GeoLite2 layouts and the flat
//! layout of the freely licensed ip-location-db files.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use maxminddb::{Mmap, Reader};
use serde::Deserialize;

use crate::signals::countries;

/// A database that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{var}={path}: {reason}")]
pub struct GeoError {
    /// The configuration variable that named it.
    pub var: &'static str,
    /// Its path.
    pub path: String,
    /// Why it cannot be read.
    pub reason: String,
}

/// The databases: one for country (and, in city databases, coordinates), one for ASNs.
#[derive(Default)]
pub struct GeoDb {
    location: Option<Reader<Mmap>>,
    asn: Option<Reader<Mmap>>,
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoDb")
            .field("location", &self.location.as_ref().map(|r| &r.metadata().database_type))
            .field("asn", &self.asn.as_ref().map(|r| &r.metadata().database_type))
            .finish()
    }
}

/// What the databases say about one address.
#[derive(Debug, Clone, PartialEq)]
pub struct Geo {
    /// The address looked up.
    pub ip: IpAddr,
    /// ISO 3166-1 alpha-2.
    pub country_iso_code: Option<String>,
    /// English name.
    pub country_name: Option<String>,
    /// `(lat, lon)`, from city databases.
    pub location: Option<(f64, f64)>,
    /// Autonomous system number.
    pub as_number: Option<u32>,
    /// Autonomous system organisation.
    pub as_organization: Option<String>,
}

impl Geo {
    /// An address nothing is known about (yet).
    pub fn unknown(ip: IpAddr) -> Self {
        Self {
            ip,
            country_iso_code: None,
            country_name: None,
            location: None,
            as_number: None,
            as_organization: None,
        }
    }
}

#[derive(Deserialize, Default)]
struct LocationRecord<'a> {
    // ip-location-db: {"country_code": "GB", "latitude": .., "longitude": ..}
    #[serde(borrow, default)]
    country_code: Option<&'a str>,
    #[serde(default)]
    latitude: Option<f64>,
    #[serde(default)]
    longitude: Option<f64>,
    // MaxMind: {"country": {"iso_code": "GB", "names": {"en": ...}}, "location": {...}}
    #[serde(borrow, default)]
    country: Option<MaxMindCountry<'a>>,
    #[serde(default)]
    location: Option<MaxMindLocation>,
}

#[derive(Deserialize)]
struct MaxMindCountry<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
    #[serde(borrow, default)]
    names: BTreeMap<&'a str, &'a str>,
}

#[derive(Deserialize)]
struct MaxMindLocation {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

#[derive(Deserialize)]
struct AsnRecord<'a> {
    #[serde(default)]
    autonomous_system_number: Option<u32>,
    #[serde(borrow, default)]
    autonomous_system_organization: Option<&'a str>,
}

/// Maps the file instead of reading it: a city database is 60 MB or more, and only the pages
/// lookups touch become resident, which keeps a 128 MB function within its memory.
fn open(var: &'static str, path: &Path) -> Result<Reader<Mmap>, GeoError> {
    // SAFETY: the database must not change while mapped. It is a deployment artifact (a
    // Lambda layer under /opt, read-only, or a file bundled with the function) that nothing
    // rewrites while the process runs.
    unsafe { Reader::open_mmap(path) }.map_err(|e| GeoError {
        var,
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

impl GeoDb {
    /// Opens the databases named by `GEOIP_DB` (country or city) and `GEOIP_ASN_DB`.
    pub fn open(location: Option<&Path>, asn: Option<&Path>) -> Result<Self, GeoError> {
        Ok(Self {
            location: location.map(|p| open("GEOIP_DB", p)).transpose()?,
            asn: asn.map(|p| open("GEOIP_ASN_DB", p)).transpose()?,
        })
    }

    /// True when no database is loaded.
    pub fn is_empty(&self) -> bool {
        self.location.is_none() && self.asn.is_none()
    }

    /// What the databases know about `ip`. A database error on one address is treated as
    /// "unknown": enrichment never fails a document.
    pub fn lookup(&self, ip: IpAddr) -> Geo {
        let mut geo = Geo::unknown(ip);
        if let Some(reader) = &self.location
            && let Ok(found) = reader.lookup(ip)
            && let Ok(Some(r)) = found.decode::<LocationRecord<'_>>()
        {
            let code = r.country_code.or_else(|| r.country.as_ref().and_then(|c| c.iso_code));
            geo.country_iso_code = code.map(str::to_owned);
            geo.country_name = r
                .country
                .as_ref()
                .and_then(|c| c.names.get("en").copied())
                .or_else(|| code.and_then(countries::name))
                .map(str::to_owned);
            let (lat, lon) = match &r.location {
                Some(l) => (l.latitude, l.longitude),
                None => (r.latitude, r.longitude),
            };
            geo.location = lat.zip(lon);
        }
        if let Some(reader) = &self.asn
            && let Ok(found) = reader.lookup(ip)
            && let Ok(Some(r)) = found.decode::<AsnRecord<'_>>()
        {
            geo.as_number = r.autonomous_system_number;
            geo.as_organization = r.autonomous_system_organization.map(str::to_owned);
        }
        geo
    }
}

/// The address to enrich from a `sourceIPAddress` value: the first public address of a
/// comma-separated list (`"81.2.69.142, 10.0.0.1"`), else its first address of any kind.
/// Service names, "AWS Internal" and addresses with leading zeros (refused by `std`, being
/// ambiguous) give `None`.
pub fn source_ip(value: &str) -> Option<(IpAddr, bool)> {
    let addresses = value.split(',').filter_map(|p| p.trim().parse::<IpAddr>().ok());
    let mut first = None;
    for ip in addresses {
        if is_public(&ip) {
            return Some((ip, true));
        }
        first.get_or_insert(ip);
    }
    first.map(|ip| (ip, false))
}

/// Globally routable: not private, loopback, link-local, shared (CGNAT), documentation,
/// benchmarking, multicast, reserved or unspecified.
pub fn is_public(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || v6.to_ipv4_mapped().is_some_and(|v4| !is_public(&IpAddr::V4(v4))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/geo")
    }

    #[test]
    fn source_ip_takes_the_first_public_address() {
        let ip = |s: &str| source_ip(s).map(|(ip, public)| (ip.to_string(), public));
        assert_eq!(ip("81.2.69.142, 192.168.10.10"), Some(("81.2.69.142".into(), true)));
        assert_eq!(ip("192.168.10.10, 81.2.69.142"), Some(("81.2.69.142".into(), true)));
        assert_eq!(ip("10.0.0.1"), Some(("10.0.0.1".into(), false)));
        assert_eq!(ip("2001:db8::1"), Some(("2001:db8::1".into(), false)));
        assert_eq!(
            ip("2a00:1450:4009:81f::200e"),
            Some(("2a00:1450:4009:81f::200e".into(), true))
        );
        for not_ip in [
            "AWS Internal",
            "s3.amazonaws.com",
            "",
            "010.0.0.1",
            "1.2.3",
            "::ffff:999.1.1.1",
        ] {
            assert_eq!(ip(not_ip), None, "{not_ip}");
        }
    }

    #[test]
    fn reserved_ranges_are_not_public() {
        for s in [
            "100.64.0.1",
            "198.18.0.1",
            "192.0.0.8",
            "192.0.2.1",
            "203.0.113.50",
            "240.0.0.1",
            "0.1.2.3",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(&s.parse().unwrap()), "{s}");
        }
        for s in ["8.8.8.8", "81.2.69.142", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(&s.parse().unwrap()), "{s}");
        }
    }

    #[test]
    fn both_database_layouts_are_read() {
        let db = GeoDb::open(
            Some(&fixtures().join("city-subset.mmdb")),
            Some(&fixtures().join("asn-subset.mmdb")),
        )
        .unwrap();
        let geo = db.lookup("81.2.69.142".parse().unwrap());
        assert_eq!(geo.country_iso_code.as_deref(), Some("GB"));
        assert_eq!(geo.country_name.as_deref(), Some("United Kingdom"));
        let (lat, lon) = geo.location.unwrap();
        assert!((51.0..52.0).contains(&lat) && (-1.0..1.0).contains(&lon), "{lat} {lon}");
        let geo = db.lookup("1.1.1.1".parse().unwrap());
        assert_eq!(
            (geo.as_number, geo.as_organization.as_deref()),
            (Some(13335), Some("Cloudflare, Inc."))
        );
        let country_only = GeoDb::open(Some(&fixtures().join("country-subset.mmdb")), None).unwrap();
        let geo = country_only.lookup("8.8.8.8".parse().unwrap());
        assert_eq!(geo.country_iso_code.as_deref(), Some("US"));
        assert_eq!(geo.location, None);
        // Unknown addresses are simply unknown.
        assert_eq!(db.lookup("10.0.0.1".parse().unwrap()).country_iso_code, None);
    }

    #[test]
    fn a_bad_database_names_its_variable() {
        let err = GeoDb::open(Some(Path::new("/nonexistent.mmdb")), None).unwrap_err();
        assert_eq!(err.var, "GEOIP_DB");
        let err = GeoDb::open(None, Some(&fixtures().join("expected.json"))).unwrap_err();
        assert_eq!(err.var, "GEOIP_ASN_DB");
    }
}
