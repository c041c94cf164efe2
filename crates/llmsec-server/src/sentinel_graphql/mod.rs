//! Sentinel's GraphQL schema, merged into `/graphql`:
//!
//! ```graphql
//! type Query {
//!   anomalies(filter: AnomalyFilter, timeRange: TimeRange!, pagination: Pagination): AnomalyConnection!
//!   anomaly(id: ID!): Anomaly
//!   metrics(names: [String!]!, dimensions: [DimensionInput!], timeRange: TimeRange!,
//!           aggregation: Aggregation!, granularity: Granularity!): [MetricSeries!]!
//!   statistics(timeRange: TimeRange!, groupBy: [String!]): Statistics!
//!   detectors(filter: DetectorFilter): [Detector!]!
//!   alerts(filter: AlertFilter, timeRange: TimeRange!): AlertConnection!
//! }
//! type Mutation {
//!   acknowledgeAnomaly(id: ID!, acknowledgedBy: String!, note: String): Anomaly!
//!   updateDetector(id: ID!, config: DetectorConfigInput!): Detector!
//!   testDetector(id: ID!, testData: JSON!): DetectorTestResult!
//! }
//! type Subscription {
//!   anomalyDetected(filter: AnomalyFilter): Anomaly!
//!   metricsUpdated(names: [String!]!): MetricUpdate!
//! }
//! ```
//! Reads need scope `read`; `acknowledgeAnomaly` needs `triage` (which
//! `admin` includes); `updateDetector` and `testDetector` need `admin`.
//! Everything is confined to the caller's tenant: `updateDetector` changes
//! the caller's tenant's detector only, and an id of another tenant's
//! anomaly or detector is not found.
//!
//! The GraphQL object, input and enum types and their conversions from
//! Sentinel's own types are in `types`; the query root in `query`, the
//! mutation root in `mutation`, and the subscription root in
//! `subscription`. This module holds the scope check they share.

mod campaigns;
mod mutation;
mod query;
mod subscription;
mod types;

pub use self::campaigns::{CampaignsMutation, CampaignsQuery};
pub use self::mutation::SentinelMutation;
pub use self::query::SentinelQuery;
pub use self::subscription::{METRICS_EVERY, SentinelSubscription};
pub use self::types::*;
