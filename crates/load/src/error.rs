//! Why a load run could not be prepared or could not keep its results. What goes wrong with one
//! request is not here: that is a measurement (an error kind counted in the results).

pub use inferbench_schema::result_files::FileError;

/// Why a load run could not be prepared or could not keep its results.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The spec asks for what cannot run (no target, a rate rule, a stage list, a sweep whose
    /// probe found nothing to sweep).
    #[error("{0}")]
    Spec(String),
    /// The target URL or API cannot be used.
    #[error("{0}")]
    Target(String),
    /// The tokenizer could not be loaded.
    #[error("{0}")]
    Tokenizer(String),
    /// The dataset could not be read or sampled.
    #[error("{0}")]
    Dataset(String),
    /// A results file could not be written.
    #[error(transparent)]
    Output(#[from] FileError),
}

/// A one-off HTTP GET that got no answer (see [`crate::scrape::get`]).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct GetError(pub String);
