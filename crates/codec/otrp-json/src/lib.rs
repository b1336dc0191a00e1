//! Placeholder crate root; the real content lands with issue #2.
#![cfg_attr(not(feature = "std"), no_std)]
