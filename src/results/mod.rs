//! Results: a benchmark's `results/` folder, published whole or not at all ([`store`]), and a run
//! folder copied to Google Cloud Storage ([`gcs`]). How results leave a load pod through the
//! Kubernetes API is a contract between the pod and the platform: `inferbench-schema`'s
//! [`handoff`](crate::schema::handoff).

pub mod gcs;
pub mod store;
