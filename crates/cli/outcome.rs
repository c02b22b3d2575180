//! How a verb ended, as every verb returns it; `main` turns it into the exit status (an
//! error is exit 2).

/// How a verb ended, when it did not simply succeed.
#[derive(Debug)]
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 1: a command was rejected, a check failed, an id is unknown, an import refused.
    Failed,
}
