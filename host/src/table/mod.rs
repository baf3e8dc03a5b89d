//! Lookup tables, table(5): loading (`file:`, `db:` via its text source,
//! inline lists and maps, `getpwnam`), the lookup services (key, list,
//! domain, netaddr, mailaddr, credentials, userinfo), aliases(5) values,
//! and the registry that serves and live-reloads tables by name.

mod aliases;
mod error;
mod lookup;
mod parse;
mod registry;
mod userinfo;

pub use aliases::{parse_alias_value, AliasError, AliasTarget};
pub use error::TableError;
pub use lookup::Table;
pub use registry::Tables;
pub use userinfo::UserInfo;

pub use lookup::{domain_matches, mailaddr_matches, netaddr_matches};
