//! Client TLS and AUTH credentials for relaying.
