//! The field table shared by the document encoder and the index template, so the shapes
//! the encoder lets through and the mappings the cluster enforces can never disagree; and the
//! promoted fields ([`promoted`]), the typed copies of well-known subtree paths, and the
//! field aliases ([`aliases`]) that give the platforms' names to concrete fields.

pub mod aliases;
pub mod promoted;

pub use aliases::{COMPUTED_FIELDS, ECS_ALIASES, SECURITY_ANALYTICS_ALIASES};
pub use promoted::{MAX_PROMOTED_STRING, PROMOTED, PROMOTED_PREFIX, Promote};

/// How a field is mapped, and so which JSON values it accepts without rejecting a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `keyword` (with `ignore_above`): strings, numbers, booleans, null, arrays of those.
    Keyword,
    /// `text` with a `keyword` sub-field: the same values as [`Shape::Keyword`].
    Text,
    /// `date` with `ignore_malformed`: the same values as [`Shape::Keyword`].
    Date,
    /// A free-form subtree: `flat_object` (OpenSearch ≥ 2.7), `flattened` (Elasticsearch), or an
    /// unindexed object on older clusters. Accepts objects, arrays of objects and null.
    Flat,
    /// An object with known children and `dynamic: false`: unknown children are kept in
    /// `_source` but never mapped, so they cannot conflict. Accepts an object, an array of
    /// objects or null whose known children have their own shapes.
    Object(&'static [(&'static str, Shape)]),
}

/// The fields the indexer itself writes, or the template holds aliases under (`event`,
/// `cloud`, `user_agent`, `timestamp`: a document writing a value at an alias path is refused
/// whole). A record's own top-level key with one of these names (or any name OpenSearch would
/// refuse, see [`is_awkward_name`]) is moved under `@unindexed` instead of producing a
/// duplicate key or a refused document.
pub const ADDED_FIELDS: [&str; 18] = [
    "@id",
    "@timestamp",
    "@owner",
    "@log_group",
    "@log_stream",
    "@message",
    "@parse_error",
    "@unindexed",
    "@json",
    "source",
    "signal",
    "aws",
    "event",
    "cloud",
    "user_agent",
    "user",
    "timestamp",
    "threat",
];

/// True for top-level keys that cannot be indexed under their own name: ours, names
/// starting with `_` (OpenSearch's metadata fields `_id`, `_source`, ... are refused inside
/// documents), empty names, and dotted names (which OpenSearch would expand into objects,
/// possibly into a mapped field of another type).
pub fn is_awkward_name(key: &str) -> bool {
    key.is_empty() || key.starts_with('_') || key.contains('.') || ADDED_FIELDS.contains(&key)
}

/// The longest string a [`Shape::Flat`] value may hold. `flat_object` indexes each leaf as a
/// keyword term (`path=value`) and Lucene refuses terms over 32,766 bytes; `flat_object` has
/// no `ignore_above`, so a longer string would reject the whole document.
pub const MAX_FLAT_STRING: usize = 30_000;

const SESSION_ISSUER: &[(&str, Shape)] = &[
    ("type", Shape::Keyword),
    ("principalId", Shape::Keyword),
    ("arn", Shape::Keyword),
    ("accountId", Shape::Keyword),
    ("userName", Shape::Keyword),
];

const SESSION_ATTRIBUTES: &[(&str, Shape)] = &[("creationDate", Shape::Keyword), ("mfaAuthenticated", Shape::Keyword)];

const SESSION_CONTEXT: &[(&str, Shape)] = &[
    ("attributes", Shape::Object(SESSION_ATTRIBUTES)),
    ("sessionIssuer", Shape::Object(SESSION_ISSUER)),
    ("webIdFederationData", Shape::Flat),
    ("sourceIdentity", Shape::Keyword),
    ("ec2RoleDelivery", Shape::Keyword),
    ("assumedRoot", Shape::Keyword),
];

const USER_IDENTITY: &[(&str, Shape)] = &[
    ("type", Shape::Keyword),
    ("principalId", Shape::Keyword),
    ("arn", Shape::Keyword),
    ("accountId", Shape::Keyword),
    ("accessKeyId", Shape::Keyword),
    ("userName", Shape::Keyword),
    ("invokedBy", Shape::Keyword),
    ("identityProvider", Shape::Keyword),
    ("credentialId", Shape::Keyword),
    ("sessionContext", Shape::Object(SESSION_CONTEXT)),
    (
        "onBehalfOf",
        Shape::Object(&[("userId", Shape::Keyword), ("identityStoreArn", Shape::Keyword)]),
    ),
    (
        "inScopeOf",
        Shape::Object(&[
            ("issuerType", Shape::Keyword),
            ("credentialsIssuedTo", Shape::Keyword),
            ("issuerAccountId", Shape::Keyword),
        ]),
    ),
];

const RESOURCE: &[(&str, Shape)] = &[
    ("ARN", Shape::Keyword),
    ("accountId", Shape::Keyword),
    ("type", Shape::Keyword),
];

const TLS_DETAILS: &[(&str, Shape)] = &[
    ("tlsVersion", Shape::Keyword),
    ("cipherSuite", Shape::Keyword),
    ("clientProvidedHostHeader", Shape::Keyword),
];

const ADDENDUM: &[(&str, Shape)] = &[
    ("reason", Shape::Keyword),
    ("updatedFields", Shape::Keyword),
    ("originalRequestID", Shape::Keyword),
    ("originalEventID", Shape::Keyword),
];

/// Every documented top-level CloudTrail field, in the order of AWS's "CloudTrail record
/// contents" page. A top-level key not listed here is treated as [`Shape::Flat`].
pub const CLOUDTRAIL_FIELDS: &[(&str, Shape)] = &[
    ("eventTime", Shape::Date),
    ("eventVersion", Shape::Keyword),
    ("userIdentity", Shape::Object(USER_IDENTITY)),
    ("eventSource", Shape::Keyword),
    ("eventName", Shape::Keyword),
    ("awsRegion", Shape::Keyword),
    ("sourceIPAddress", Shape::Keyword),
    ("userAgent", Shape::Keyword),
    ("errorCode", Shape::Keyword),
    ("errorMessage", Shape::Text),
    ("requestParameters", Shape::Flat),
    ("responseElements", Shape::Flat),
    ("additionalEventData", Shape::Flat),
    ("requestID", Shape::Keyword),
    ("eventID", Shape::Keyword),
    ("eventType", Shape::Keyword),
    ("apiVersion", Shape::Keyword),
    ("managementEvent", Shape::Keyword),
    ("readOnly", Shape::Keyword),
    ("resources", Shape::Object(RESOURCE)),
    ("recipientAccountId", Shape::Keyword),
    ("serviceEventDetails", Shape::Flat),
    ("sharedEventID", Shape::Keyword),
    ("vpcEndpointId", Shape::Keyword),
    ("vpcEndpointAccountId", Shape::Keyword),
    ("eventCategory", Shape::Keyword),
    ("addendum", Shape::Object(ADDENDUM)),
    ("sessionCredentialFromConsole", Shape::Keyword),
    ("edgeDeviceDetails", Shape::Flat),
    ("tlsDetails", Shape::Object(TLS_DETAILS)),
    ("insightDetails", Shape::Flat),
];

/// The shape of a top-level key: its CloudTrail shape, or [`Shape::Flat`] for unknown keys.
pub fn top_level(key: &str) -> Shape {
    // A match compiles to a length-then-bytes dispatch, cheaper per key than scanning the table.
    match key {
        "eventTime" => Shape::Date,
        "userIdentity" => Shape::Object(USER_IDENTITY),
        "errorMessage" => Shape::Text,
        "resources" => Shape::Object(RESOURCE),
        "addendum" => Shape::Object(ADDENDUM),
        "tlsDetails" => Shape::Object(TLS_DETAILS),
        "eventVersion"
        | "eventSource"
        | "eventName"
        | "awsRegion"
        | "sourceIPAddress"
        | "userAgent"
        | "errorCode"
        | "requestID"
        | "eventID"
        | "eventType"
        | "apiVersion"
        | "managementEvent"
        | "readOnly"
        | "recipientAccountId"
        | "sharedEventID"
        | "vpcEndpointId"
        | "vpcEndpointAccountId"
        | "eventCategory"
        | "sessionCredentialFromConsole" => Shape::Keyword,
        _ => Shape::Flat,
    }
}

/// A child's shape within an [`Shape::Object`], if the child is mapped.
pub fn child(children: &[(&str, Shape)], key: &str) -> Option<Shape> {
    children.iter().find(|(k, _)| *k == key).map(|(_, s)| *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_match_agrees_with_the_table() {
        for (key, shape) in CLOUDTRAIL_FIELDS {
            assert_eq!(top_level(key), *shape, "{key}");
        }
        assert_eq!(top_level("p_log_type"), Shape::Flat);
        assert_eq!(top_level("eventid"), Shape::Flat, "case matters");
    }
}
