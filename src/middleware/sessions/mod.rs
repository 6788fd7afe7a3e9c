//! Sessions (next issue).
