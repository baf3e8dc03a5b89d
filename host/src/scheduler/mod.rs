//! scheduler (to be written)
