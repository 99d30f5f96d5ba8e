//! What happens to a run's results once they are written: for now, copying a run folder to
//! Google Cloud Storage ([`gcs`]).

pub mod gcs;
