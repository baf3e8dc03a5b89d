//! Where relayed mail goes: smarthost or MX hosts.
