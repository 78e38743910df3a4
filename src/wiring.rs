//! The one place the pipeline is put together: [`wire`] builds the [`Indexer`] (enrichment,
//! rules, alerts, the S3 trail store) and the cluster's [`OpenSearch`] client from a
//! [`Config`]. `bootstrap` and `cwl-indexer` both call it and differ only in where the AWS
//! credentials come from ([`Aws`]).

use aws_credential_types::provider::SharedCredentialsProvider;

use crate::config::{BulkAction, Config};
use crate::deliver::{Auth, AuthError, OpenSearch};
use crate::indexer::Indexer;
use crate::ingest::TrailStore;
use crate::signals::{Alerts, EnrichError, Enrichment};

/// The AWS side of the wiring: a region and credentials, each optional. The function reads
/// them from its environment ([`Aws::from_env`]); the CLI from aws-config's full chain.
#[derive(Debug, Clone, Default)]
pub struct Aws {
    /// The region of S3, SNS (and SigV4, unless `OPENSEARCH_REGION` says otherwise).
    pub region: Option<String>,
    /// The credentials of the function's role, or the CLI user's.
    pub credentials: Option<SharedCredentialsProvider>,
}

impl Aws {
    /// Lambda's: the role's credentials and `AWS_REGION`, from the environment, with no
    /// network call at cold start.
    pub fn from_env() -> Self {
        Self {
            region: std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()),
            credentials: crate::deliver::credentials_from_env(),
        }
    }
}

/// What [`wire`] builds.
#[derive(Debug)]
pub struct Wired {
    /// The indexer, with everything `config` asks for.
    pub indexer: Indexer,
    /// The cluster, when `config` names one (`OPENSEARCH_ENDPOINT`); `None` for a dry run.
    pub opensearch: Option<OpenSearch>,
}

/// Why the pipeline could not be put together; the function stops at cold start with it.
#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    /// The GeoIP databases or the rules could not be loaded.
    #[error(transparent)]
    Enrichment(#[from] EnrichError),
    /// The cluster's authentication could not be set up.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// `ALERT_TOPIC_ARN` is set, but a region or credentials are missing.
    #[error("ALERT_TOPIC_ARN needs {0}")]
    Alerts(&'static str),
}

/// Builds the indexer and the cluster client from `config`, with `aws`'s region and
/// credentials for SigV4, SNS alerts and S3. Makes no network call.
///
/// The S3 trail store is built when a region and credentials are at hand (or an
/// `S3_ENDPOINT_URL`, which then takes `us-east-1` if no region is set); without it, an S3
/// notification fails with a message saying so.
pub fn wire(config: Config, aws: &Aws) -> Result<Wired, WiringError> {
    if let Some(warning) = serverless_warning(&config) {
        tracing::warn!(aoss_collection_type = "timeseries", "{warning}");
    }
    let opensearch = match &config.sink {
        Some(sink) => Some(OpenSearch::new(
            sink,
            Auth::new(&sink.auth, aws.credentials.clone())?,
            &config,
        )?),
        None => None,
    };
    let enrichment = Enrichment::load(&config.signals)?;
    let alerts = alerts(&config, aws)?;
    let region = aws
        .region
        .clone()
        .or_else(|| config.s3_endpoint.as_ref().map(|_| "us-east-1".to_owned()));
    let trails = match (region, aws.credentials.clone()) {
        (Some(region), Some(credentials)) => Some(TrailStore::new(region, credentials, config.s3_endpoint.as_ref())),
        _ => None,
    };
    let mut indexer = Indexer::new(config).with_enrichment(enrichment);
    if let Some(alerts) = alerts {
        indexer = indexer.with_alerts(alerts);
    }
    if let Some(trails) = trails {
        indexer = indexer.with_trail_store(trails);
    }
    Ok(Wired { indexer, opensearch })
}

/// The cold-start warning of a time-series collection, which cannot give "nothing twice".
pub(crate) fn serverless_warning(config: &Config) -> Option<&'static str> {
    (config.bulk_action == BulkAction::IndexWithoutId).then_some(
        "AOSS_COLLECTION_TYPE=timeseries: OpenSearch Serverless time-series collections refuse custom \
         _ids, so documents are written with `index` and no _id, and a redelivered batch (a Lambda \
         retry, a lost response, a re-run back-fill) is indexed TWICE; nothing is lost. For \
         exactly-once, use a search collection (AOSS_COLLECTION_TYPE=search, ServerlessCollectionType=SEARCH)",
    )
}

/// The SNS alerts, if `ALERT_TOPIC_ARN` is set.
fn alerts(config: &Config, aws: &Aws) -> Result<Option<Alerts>, WiringError> {
    let signals = &config.signals;
    let Some(topic) = signals.alert_topic_arn.clone() else {
        return Ok(None);
    };
    let region = aws.region.clone().ok_or(WiringError::Alerts("AWS_REGION"))?;
    let credentials = aws
        .credentials
        .clone()
        .ok_or(WiringError::Alerts("AWS credentials (the function's role)"))?;
    Ok(Some(Alerts::new(
        topic,
        region,
        credentials,
        signals.sns_endpoint.as_ref(),
        signals.alert_min_severity,
        signals.dashboards_url.clone(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dry_run_needs_no_cluster_and_alerts_need_a_region() {
        let wired = wire(Config::default(), &Aws::default()).unwrap();
        assert!(wired.opensearch.is_none());
        let mut config = Config::default();
        config.signals.alert_topic_arn = Some("arn:aws:sns:eu-west-1:111122223333:t".into());
        let err = wire(config, &Aws::default()).unwrap_err();
        assert_eq!(err.to_string(), "ALERT_TOPIC_ARN needs AWS_REGION");
    }

    #[test]
    fn only_time_series_collections_warn_of_duplicates() {
        assert_eq!(serverless_warning(&Config::default()), None);
        let config = Config {
            bulk_action: BulkAction::IndexWithoutId,
            ..Config::default()
        };
        let warning = serverless_warning(&config).unwrap();
        for needle in [
            "AOSS_COLLECTION_TYPE=timeseries",
            "no _id",
            "TWICE",
            "search collection",
        ] {
            assert!(warning.contains(needle), "{needle}: {warning}");
        }
    }
}
