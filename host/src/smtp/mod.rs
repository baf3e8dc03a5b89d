//! smtp (to be written)
