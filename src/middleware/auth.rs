//! Authentication (next issue).
