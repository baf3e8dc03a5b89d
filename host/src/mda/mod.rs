//! mda (to be written)
