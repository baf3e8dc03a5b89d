//! lka (to be written)
