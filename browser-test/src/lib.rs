//! Empty: this package only holds `tests/browser.rs`.
