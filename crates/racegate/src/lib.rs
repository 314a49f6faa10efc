//! racegate: one gate that all GPU work passes through.
#![deny(missing_docs)]
