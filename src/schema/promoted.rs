//! The promoted fields: well-known subfields of the free-form subtrees (`requestParameters`,
//! `responseElements`, `additionalEventData`, `serviceEventDetails`, and one path of
//! `userIdentity`), each copied at ingest to a typed, aggregatable field `aws.cloudtrail.<path>`.

/// The prefix of every promoted field: `aws.cloudtrail.` + the source path, the names OpenSearch's
/// CloudTrail integration uses (README "What gets indexed", notes/promoted-fields.md).
pub const PROMOTED_PREFIX: &str = "aws.cloudtrail.";

/// The type of a promoted field, and so which values its shape check lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promote {
    /// `keyword` (`ignore_above` 1024): strings, numbers, booleans, in their JSON text.
    Keyword,
    /// `long` with `ignore_malformed`: JSON integers and strings of 1 to 18 digits (an optional `-`).
    Long,
    /// `boolean`: `true`/`false` and the strings `"true"`/`"false"`.
    Boolean,
    /// `ip` with `ignore_malformed`: strings that parse as an IPv4 or IPv6 address.
    Ip,
}

/// The longest string a promoted keyword takes (the mapping's `ignore_above`, in characters):
/// longer ones would be left out by the node anyway, so the encoder does not send them.
pub const MAX_PROMOTED_STRING: usize = 1024;

/// Well-known subfields of the free-form subtrees, copied at ingest to `PROMOTED_PREFIX + path`
/// (notes/promoted-fields.md says why each, counted on the 1,557 shared records, the Sigma
/// rules and Security Analytics' log type). No path is a prefix of another (a test checks it).
pub const PROMOTED: &[(&str, Promote)] = &[
    ("requestParameters.bucketName", Promote::Keyword),
    ("requestParameters.key", Promote::Keyword),
    ("additionalEventData.bytesTransferredOut", Promote::Long),
    ("additionalEventData.bytesTransferredIn", Promote::Long),
    ("additionalEventData.SignatureVersion", Promote::Keyword),
    ("additionalEventData.AuthenticationMethod", Promote::Keyword),
    ("additionalEventData.CipherSuite", Promote::Keyword),
    ("requestParameters.roleArn", Promote::Keyword),
    ("requestParameters.roleSessionName", Promote::Keyword),
    ("requestParameters.sourceIdentity", Promote::Keyword),
    ("requestParameters.durationSeconds", Promote::Long),
    ("responseElements.assumedRoleUser.arn", Promote::Keyword),
    ("responseElements.credentials.accessKeyId", Promote::Keyword),
    ("requestParameters.userName", Promote::Keyword),
    ("requestParameters.groupName", Promote::Keyword),
    ("requestParameters.roleName", Promote::Keyword),
    ("requestParameters.policyArn", Promote::Keyword),
    ("requestParameters.policyName", Promote::Keyword),
    ("responseElements.accessKey.accessKeyId", Promote::Keyword),
    ("responseElements.accessKey.userName", Promote::Keyword),
    ("responseElements.ConsoleLogin", Promote::Keyword),
    ("additionalEventData.MFAUsed", Promote::Keyword),
    ("additionalEventData.LoginTo", Promote::Keyword),
    ("additionalEventData.CredentialType", Promote::Keyword),
    ("requestParameters.instanceType", Promote::Keyword),
    ("requestParameters.instancesSet.items.instanceId", Promote::Keyword),
    ("requestParameters.instanceId", Promote::Keyword),
    ("responseElements.instancesSet.items.instanceId", Promote::Keyword),
    ("responseElements.instancesSet.items.privateIpAddress", Promote::Ip),
    ("requestParameters.instancesSet.items.imageId", Promote::Keyword),
    ("requestParameters.imageId", Promote::Keyword),
    ("responseElements.imageId", Promote::Keyword),
    ("requestParameters.snapshotId", Promote::Keyword),
    (
        "requestParameters.createVolumePermission.add.items.userId",
        Promote::Keyword,
    ),
    ("requestParameters.attribute", Promote::Keyword),
    ("requestParameters.groupId", Promote::Keyword),
    (
        "requestParameters.ipPermissions.items.ipRanges.items.cidrIp",
        Promote::Keyword,
    ),
    (
        "requestParameters.ipPermissions.items.ipv6Ranges.items.cidrIpv6",
        Promote::Keyword,
    ),
    ("requestParameters.ipPermissions.items.fromPort", Promote::Long),
    ("requestParameters.ipPermissions.items.toPort", Promote::Long),
    ("requestParameters.ipPermissions.items.ipProtocol", Promote::Keyword),
    ("requestParameters.cidrBlock", Promote::Keyword),
    ("requestParameters.functionName", Promote::Keyword),
    ("requestParameters.layers", Promote::Keyword),
    ("requestParameters.keyId", Promote::Keyword),
    ("requestParameters.kmsKeyId", Promote::Keyword),
    ("responseElements.keyMetadata.keyId", Promote::Keyword),
    ("serviceEventDetails.keyId", Promote::Keyword),
    ("requestParameters.secretId", Promote::Keyword),
    ("requestParameters.name", Promote::Keyword),
    ("requestParameters.names", Promote::Keyword),
    ("requestParameters.trailName", Promote::Keyword),
    ("requestParameters.detectorId", Promote::Keyword),
    ("requestParameters.enable", Promote::Boolean),
    ("requestParameters.configurationRecorderName", Promote::Keyword),
    ("requestParameters.logGroupName", Promote::Keyword),
    ("requestParameters.instanceIds", Promote::Keyword),
    ("requestParameters.documentName", Promote::Keyword),
    ("requestParameters.dBInstanceIdentifier", Promote::Keyword),
    ("requestParameters.dBClusterIdentifier", Promote::Keyword),
    ("requestParameters.dBSnapshotIdentifier", Promote::Keyword),
    ("requestParameters.valuesToAdd", Promote::Keyword),
    ("requestParameters.publiclyAccessible", Promote::Boolean),
    ("responseElements.publiclyAccessible", Promote::Boolean),
    (
        "responseElements.pendingModifiedValues.masterUserPassword",
        Promote::Keyword,
    ),
    ("requestParameters.containerDefinitions.command", Promote::Keyword),
    ("requestParameters.arn", Promote::Keyword),
    ("requestParameters.resourceArn", Promote::Keyword),
    (
        "userIdentity.sessionContext.webIdFederationData.federatedProvider",
        Promote::Keyword,
    ),
];

/// The mapping of a promoted field's type.
pub fn promoted_mapping_type(kind: Promote) -> &'static str {
    match kind {
        Promote::Keyword => "keyword",
        Promote::Long => "long",
        Promote::Boolean => "boolean",
        Promote::Ip => "ip",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_promoted_path_is_a_prefix_of_another_and_none_repeats() {
        for (i, (a, _)) in PROMOTED.iter().enumerate() {
            for (j, (b, _)) in PROMOTED.iter().enumerate() {
                assert!(i == j || (a != b && !b.starts_with(&format!("{a}."))), "{a} / {b}");
            }
        }
        assert!(PROMOTED.len() >= 40);
    }

    #[test]
    fn every_promoted_path_is_under_a_subtree_that_can_hold_it() {
        for (path, _) in PROMOTED {
            let root = path.split('.').next().unwrap_or_default();
            assert!(
                matches!(
                    root,
                    "requestParameters"
                        | "responseElements"
                        | "additionalEventData"
                        | "serviceEventDetails"
                        | "userIdentity"
                ),
                "{path}"
            );
        }
    }
}
