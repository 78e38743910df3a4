//! The field aliases of the document template: ECS names (`event.action`, `cloud.region`, ...)
//! and the `ecs` names of Security Analytics' CloudTrail log type, each pointing at a concrete
//! field (a top-level field or a promoted one, never a `flat_object` child: an alias there
//! finds nothing, silently). Aliases cost nothing at ingest; documents must never write at
//! their paths (the node refuses such a document), which is why their roots are in
//! [`super::ADDED_FIELDS`].

/// ECS names for the top-level CloudTrail fields, as Elastic's CloudTrail integration names
/// them. `cloud.account.id` is the account the event was recorded in (`recipientAccountId`);
/// the caller's account stays `aws.cloudtrail.user_identity.accountId`. `source.address` is the
/// raw `sourceIPAddress` (service names too), beside `source.ip`, which holds addresses only.
pub const ECS_ALIASES: &[(&str, &str)] = &[
    ("event.action", "eventName"),
    ("event.provider", "eventSource"),
    ("event.id", "eventID"),
    ("cloud.region", "awsRegion"),
    ("cloud.account.id", "recipientAccountId"),
    ("user_agent.original", "userAgent"),
    ("source.address", "sourceIPAddress"),
];

/// The `ecs` names of Security Analytics' CloudTrail log type
/// (`fixtures/security-analytics/cloudtrail_logtype.json`), 42 of its 43 fields:
/// `responseElements.ConsoleLogin` is given the same `ecs` name as
/// `responseElements.publiclyAccessible` there, and an alias has one target, so it is found
/// under its promoted name only. `userIdentity.webIdFederationData.federatedProvider` is where
/// CloudTrail writes it, under `sessionContext`. `aws.cloudtrail.response_elements.text` points
/// at the `responseElements` root (free-form; on clusters without `flat_object` or `flattened`,
/// at its `@json` copy).
pub const SECURITY_ANALYTICS_ALIASES: &[(&str, &str)] = &[
    ("aws.cloudtrail.event_name", "eventName"),
    ("aws.cloudtrail.event_source", "eventSource"),
    ("aws.cloudtrail.event_version", "eventVersion"),
    ("aws.cloudtrail.event_id", "eventID"),
    ("aws.cloudtrail.event_type", "eventType"),
    ("aws.cloudtrail.event_category", "eventCategory"),
    ("aws.cloudtrail.error_message", "errorMessage"),
    ("aws.cloudtrail.error_code", "errorCode"),
    ("aws.cloudtrail.api_version", "apiVersion"),
    ("aws.cloudtrail.aws_region", "awsRegion"),
    (
        "aws.cloudtrail.additional_event_data.loginTo",
        "aws.cloudtrail.additionalEventData.LoginTo",
    ),
    (
        "aws.cloudtrail.additional_event_data.mfaUsed",
        "aws.cloudtrail.additionalEventData.MFAUsed",
    ),
    ("aws.cloudtrail.response_elements.text", "responseElements"),
    ("aws.cloudtrail.request_id", "requestID"),
    ("aws.cloudtrail.source_ip_address", "sourceIPAddress"),
    ("aws.cloudtrail.user_agent", "userAgent"),
    ("aws.cloudtrail.vpc_endpoint_id", "vpcEndpointId"),
    (
        "aws.cloudtrail.response_elements.pending_modified_values.master_user_password",
        "aws.cloudtrail.responseElements.pendingModifiedValues.masterUserPassword",
    ),
    (
        "aws.cloudtrail.response_elements.publicly_accessible",
        "aws.cloudtrail.responseElements.publiclyAccessible",
    ),
    (
        "aws.cloudtrail.request_parameters.arn",
        "aws.cloudtrail.requestParameters.arn",
    ),
    (
        "aws.cloudtrail.request_parameters.attribute",
        "aws.cloudtrail.requestParameters.attribute",
    ),
    (
        "aws.cloudtrail.request_parameters.username",
        "aws.cloudtrail.requestParameters.userName",
    ),
    (
        "aws.cloudtrail.request_parameters.roleArn",
        "aws.cloudtrail.requestParameters.roleArn",
    ),
    (
        "aws.cloudtrail.request_parameters.roleSessionName",
        "aws.cloudtrail.requestParameters.roleSessionName",
    ),
    (
        "aws.cloudtrail.request_parameters.container_definitions.command",
        "aws.cloudtrail.requestParameters.containerDefinitions.command",
    ),
    ("aws.cloudtrail.user_identity.type", "userIdentity.type"),
    ("aws.cloudtrail.user_identity.principalId", "userIdentity.principalId"),
    ("aws.cloudtrail.user_identity.arn", "userIdentity.arn"),
    ("aws.cloudtrail.user_identity.accountId", "userIdentity.accountId"),
    ("aws.cloudtrail.user_identity.accessKeyId", "userIdentity.accessKeyId"),
    (
        "aws.cloudtrail.user_identity.identityProvider",
        "userIdentity.identityProvider",
    ),
    ("aws.cloudtrail.user_identity.userName", "userIdentity.userName"),
    ("aws.cloudtrail.user_identity.invokedBy", "userIdentity.invokedBy"),
    (
        "aws.cloudtrail.user_identity.session_context.session_issuer.type",
        "userIdentity.sessionContext.sessionIssuer.type",
    ),
    (
        "aws.cloudtrail.user_identity.session_context.session_issuer.arn",
        "userIdentity.sessionContext.sessionIssuer.arn",
    ),
    (
        "aws.cloudtrail.user_identity.session_context.attributes.creationDate",
        "userIdentity.sessionContext.attributes.creationDate",
    ),
    (
        "aws.cloudtrail.user_identity.session_context.attributes.mfaAuthenticated",
        "userIdentity.sessionContext.attributes.mfaAuthenticated",
    ),
    (
        "aws.cloudtrail.user_identity.web_id_federation_data.federatedProvider",
        "aws.cloudtrail.userIdentity.sessionContext.webIdFederationData.federatedProvider",
    ),
    ("aws.cloudtrail.resources.ARN", "resources.ARN"),
    ("aws.cloudtrail.resources.account_uid", "resources.accountId"),
    ("aws.cloudtrail.resources.type", "resources.type"),
    ("timestamp", "@timestamp"),
];

/// The fields computed at ingest (keywords), since no alias can derive them.
pub const COMPUTED_FIELDS: &[&str] = &["event.outcome", "user.name"];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ADDED_FIELDS, PROMOTED, PROMOTED_PREFIX, top_level};

    #[test]
    fn every_alias_targets_a_field_the_schema_maps_concretely() {
        for (alias, target) in ECS_ALIASES.iter().chain(SECURITY_ANALYTICS_ALIASES) {
            let root = alias.split('.').next().unwrap_or_default();
            assert!(ADDED_FIELDS.contains(&root), "{alias}: its root must be ours");
            let concrete = target.starts_with('@')
                || PROMOTED.iter().any(|(p, _)| format!("{PROMOTED_PREFIX}{p}") == *target)
                || *target == "responseElements"
                || !matches!(
                    top_level(target.split('.').next().unwrap_or_default()),
                    crate::schema::Shape::Flat
                );
            assert!(concrete, "{alias} -> {target}");
            assert!(!COMPUTED_FIELDS.contains(alias), "{alias}");
        }
    }
}
