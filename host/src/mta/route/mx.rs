//! Which MX hosts to try, and in what order, before any address lookup:
//! null MX (RFC 7505), our own place in the list (mail loops, backup MX),
//! preference order with equal preferences shuffled (RFC 5321 §5.1).

use rand::seq::SliceRandom;
use rand::Rng;

use super::RouteError;

/// More MX hosts than this are not tried (RFC 5321 §5.1 lets a client
/// limit the list; Postfix and OpenSMTPD cap it too).
pub const MAX_MX: usize = 10;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mx {
    pub preference: u16,
    /// Lower case, no trailing dot.
    pub name: String,
}

/// Who we are in the MX list.
#[derive(Clone, Copy, Debug)]
pub enum Role<'a> {
    /// Normal relaying: our hostname, whose MX entries (and every worse
    /// one) would send the mail back to us.
    Primary(&'a str),
    /// `backup [mx NAME]`: our name in the list; only better MXs are tried.
    Backup(&'a str),
}

pub fn normalise(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// The MX hosts to try, best first, at most [`MAX_MX`].
pub fn select(
    records: &[(u16, String)],
    domain: &str,
    role: Role<'_>,
    rng: &mut impl Rng,
) -> Result<Vec<Mx>, RouteError> {
    let all: Vec<Mx> = records
        .iter()
        .map(|(preference, name)| Mx {
            preference: *preference,
            name: normalise(name),
        })
        .collect();
    if !all.is_empty() && all.iter().all(|mx| mx.name.is_empty()) {
        return Err(RouteError::permanent(
            "5.1.10",
            "Domain does not accept mail".into(),
        ));
    }
    // A null MX beside real ones is a broken zone: the real ones may work.
    let mut list: Vec<Mx> = all.into_iter().filter(|mx| !mx.name.is_empty()).collect();

    let (me, backup) = match role {
        Role::Primary(me) => (normalise(me), false),
        Role::Backup(me) => (normalise(me), true),
    };
    if let Some(ours) = list
        .iter()
        .filter(|mx| mx.name == me)
        .map(|mx| mx.preference)
        .min()
    {
        list.retain(|mx| mx.preference < ours);
        if list.is_empty() {
            return Err(if backup {
                // Perhaps the primary is being moved in DNS: keep the mail
                // and retry rather than bounce or deliver it as primary.
                RouteError::temporary(
                    "4.4.6",
                    format!("MX loop: {me} is the best MX for {domain}, not relaying as backup"),
                )
            } else {
                RouteError::permanent("5.4.6", format!("mail for {domain} loops back to myself"))
            });
        }
    }

    list.sort_by_key(|mx| mx.preference);
    for group in list.chunk_by_mut(|a, b| a.preference == b.preference) {
        group.shuffle(rng);
    }
    let mut seen = std::collections::HashSet::new();
    list.retain(|mx| seen.insert(mx.name.clone()));
    list.truncate(MAX_MX);
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn recs(list: &[(u16, &str)]) -> Vec<(u16, String)> {
        list.iter().map(|(p, n)| (*p, n.to_string())).collect()
    }

    fn names(list: &[Mx]) -> Vec<&str> {
        list.iter().map(|mx| mx.name.as_str()).collect()
    }

    fn pick(list: &[(u16, &str)], role: Role<'_>) -> Result<Vec<Mx>, RouteError> {
        select(
            &recs(list),
            "example.org",
            role,
            &mut StdRng::seed_from_u64(1),
        )
    }

    const ME: Role<'static> = Role::Primary("me.example.net");

    #[test]
    fn ordered_by_preference_names_normalised() {
        let got = pick(
            &[
                (20, "B.example.org."),
                (5, "a.example.org."),
                (30, "c.example.org"),
            ],
            ME,
        )
        .unwrap();
        assert_eq!(
            names(&got),
            ["a.example.org", "b.example.org", "c.example.org"]
        );
        assert_eq!(got[0].preference, 5);
    }

    #[test]
    fn equal_preferences_are_shuffled_but_stay_in_their_rank() {
        let list = [(10, "a1"), (10, "a2"), (10, "a3"), (20, "b"), (5, "first")];
        let mut orders = std::collections::HashSet::new();
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..50 {
            let got = select(&recs(&list), "example.org", ME, &mut rng).unwrap();
            let got = names(&got);
            assert_eq!(got[0], "first");
            assert_eq!(got[4], "b");
            orders.insert(got[1..4].join(","));
        }
        assert!(orders.len() > 1, "never shuffled: {orders:?}");
    }

    #[test]
    fn a_lone_null_mx_refuses_mail() {
        let err = pick(&[(0, ".")], ME).unwrap_err();
        assert!(err.permanent);
        assert_eq!(err.enhanced, "5.1.10");
        assert_eq!(err.to_string(), "5.1.10 Domain does not accept mail");
    }

    #[test]
    fn a_null_mx_among_real_ones_is_ignored() {
        let got = pick(&[(0, "."), (10, "mx.example.org")], ME).unwrap();
        assert_eq!(names(&got), ["mx.example.org"]);
    }

    #[test]
    fn our_own_entry_and_worse_ones_are_dropped() {
        let list = [(10, "a"), (20, "ME.example.net."), (20, "peer"), (30, "c")];
        assert_eq!(names(&pick(&list, ME).unwrap()), ["a"]);
    }

    #[test]
    fn being_the_best_mx_is_a_loop() {
        let err = pick(&[(10, "me.example.net"), (20, "b")], ME).unwrap_err();
        assert!(err.permanent);
        assert_eq!(err.enhanced, "5.4.6");
        assert_eq!(err.text, "mail for example.org loops back to myself");
    }

    #[test]
    fn backup_keeps_only_better_mxs() {
        let list = [
            (10, "p1"),
            (10, "p2"),
            (20, "backup.example.net"),
            (30, "c"),
        ];
        let got = pick(&list, Role::Backup("backup.example.net.")).unwrap();
        let mut got = names(&got);
        got.sort();
        assert_eq!(got, ["p1", "p2"]);
    }

    #[test]
    fn backup_that_is_the_best_mx_waits() {
        let err = pick(
            &[(10, "Backup.example.net"), (20, "x")],
            Role::Backup("backup.example.net"),
        )
        .unwrap_err();
        assert!(!err.permanent);
        assert_eq!(err.enhanced, "4.4.6");
        assert!(err.text.starts_with("MX loop"), "{err}");
    }

    #[test]
    fn backup_not_listed_keeps_them_all() {
        let got = pick(&[(10, "a"), (20, "b")], Role::Backup("other")).unwrap();
        assert_eq!(names(&got), ["a", "b"]);
    }

    #[test]
    fn duplicates_are_tried_once_and_the_list_is_capped() {
        let many: Vec<(u16, String)> = (0..15).map(|i| (i, format!("mx{i}"))).collect();
        let got = select(&many, "d", ME, &mut StdRng::seed_from_u64(0)).unwrap();
        assert_eq!(got.len(), MAX_MX);
        assert_eq!(got[9].name, "mx9");
        let got = pick(&[(10, "a"), (20, "A."), (30, "b")], ME).unwrap();
        assert_eq!(names(&got), ["a", "b"]);
        assert_eq!(got[0].preference, 10);
    }
}
