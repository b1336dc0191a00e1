//! otrp-fleet (being written).
