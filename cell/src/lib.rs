//! The cell: a long-lived hardened container whose main process, the executor, runs one job
//! after another, each in fresh namespaces.
//!
//! - [`denied`]: the system calls both walls refuse.
//! - [`protocol`]: the frames a node and an executor exchange over the attach stream (the node
//!   uses only this).
//! - `executor` (feature `executor`): the program itself, installed in every runtime image.

pub mod denied;
pub mod protocol;

#[cfg(feature = "executor")]
pub mod executor;
