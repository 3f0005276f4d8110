//! Measuring the pipeline and the people: the LFW pairs protocol, verification metrics, clustering
//! quality against ground truth. Pure functions over scores, plus the protocol's embedding pass.

pub mod clusters;
pub mod metrics;
pub mod pairs;
