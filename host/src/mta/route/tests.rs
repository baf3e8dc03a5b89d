//! Routing rules against an in-memory DNS table.

use super::*;

const ME: &str = "mail.example.net";

fn mx_dest() -> Destination {
    Destination::Mx {
        backup: false,
        backup_mx: None,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

async fn hops(t: &Table, dest: &Destination, domain: &str) -> Result<Vec<Hop>, RouteError> {
    route(t, dest, domain, ME, 2525).await
}

fn summary(hops: &[Hop]) -> Vec<(String, String, u16, u16)> {
    hops.iter()
        .map(|h| (h.name.clone(), h.addr.to_string(), h.port, h.preference))
        .collect()
}

#[tokio::test]
async fn mx_hosts_in_preference_order_with_all_their_addresses() {
    let t = Table::default()
        .mx(
            "example.org",
            &[(20, "mx2.example.org."), (10, "mx1.example.org.")],
        )
        .host("mx1.example.org", &["127.0.0.2", "::1"])
        .host("mx2.example.org", &["127.0.0.3"]);
    let got = hops(&t, &mx_dest(), "Example.ORG").await.unwrap();
    assert_eq!(
        summary(&got),
        [
            ("mx1.example.org".into(), "127.0.0.2".into(), 2525, 10),
            ("mx1.example.org".into(), "::1".into(), 2525, 10),
            ("mx2.example.org".into(), "127.0.0.3".into(), 2525, 20),
        ]
    );
}

#[tokio::test]
async fn no_mx_means_the_domain_itself() {
    let t = Table::default()
        .mx_err("example.org", LookupError::NoRecords)
        .host("example.org", &["127.0.0.9"]);
    let got = hops(&t, &mx_dest(), "example.org").await.unwrap();
    assert_eq!(
        summary(&got),
        [("example.org".into(), "127.0.0.9".into(), 2525, 0)]
    );
}

#[tokio::test]
async fn implicit_mx_without_address_bounces() {
    let t = Table::default()
        .mx_err("example.org", LookupError::NoRecords)
        .host_err("example.org", LookupError::NoRecords);
    let err = hops(&t, &mx_dest(), "example.org").await.unwrap_err();
    assert!(err.permanent);
    assert_eq!(err.enhanced, "5.1.2");
}

#[tokio::test]
async fn nxdomain_bounces() {
    let err = hops(&Table::default(), &mx_dest(), "nowhere.example")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "5.1.2 Domain not found");
    assert!(err.permanent);
}

#[tokio::test]
async fn null_mx_bounces() {
    let t = Table::default().mx("example.org", &[(0, ".")]);
    let err = hops(&t, &mx_dest(), "example.org").await.unwrap_err();
    assert_eq!(err.to_string(), "5.1.10 Domain does not accept mail");
    assert!(err.permanent);
}

#[tokio::test]
async fn dns_failure_on_mx_waits() {
    let t = Table::default().mx_err("example.org", LookupError::Temporary("SERVFAIL".into()));
    let err = hops(&t, &mx_dest(), "example.org").await.unwrap_err();
    assert!(!err.permanent);
    assert_eq!(err.enhanced, "4.4.3");
    assert!(err.text.contains("SERVFAIL"), "{err}");
}

#[tokio::test]
async fn mx_hosts_without_address_are_skipped() {
    let t = Table::default()
        .mx(
            "example.org",
            &[
                (10, "gone.example.org"),
                (10, "empty.example.org"),
                (20, "ok.example.org"),
            ],
        )
        .host_err("empty.example.org", LookupError::NoRecords)
        .host("ok.example.org", &["127.0.0.4"]);
    let got = hops(&t, &mx_dest(), "example.org").await.unwrap();
    assert_eq!(
        summary(&got),
        [("ok.example.org".into(), "127.0.0.4".into(), 2525, 20)]
    );
}

#[tokio::test]
async fn no_mx_host_with_an_address_waits() {
    let t = Table::default().mx("example.org", &[(10, "gone.example.org")]);
    let err = hops(&t, &mx_dest(), "example.org").await.unwrap_err();
    assert!(!err.permanent);
    assert_eq!(err.enhanced, "4.4.4");

    let t = Table::default()
        .mx(
            "example.org",
            &[(10, "gone.example.org"), (20, "slow.example.org")],
        )
        .host_err(
            "slow.example.org",
            LookupError::Temporary("timed out".into()),
        );
    let err = hops(&t, &mx_dest(), "example.org").await.unwrap_err();
    assert!(!err.permanent);
    assert_eq!(err.enhanced, "4.4.3");
    assert!(err.text.contains("slow.example.org: timed out"), "{err}");
}

#[tokio::test]
async fn an_address_shared_by_two_mx_hosts_is_tried_once() {
    let t = Table::default()
        .mx(
            "example.org",
            &[(10, "a.example.org"), (20, "b.example.org")],
        )
        .host("a.example.org", &["127.0.0.5"])
        .host("b.example.org", &["127.0.0.5", "127.0.0.6"]);
    let got = hops(&t, &mx_dest(), "example.org").await.unwrap();
    let addrs: Vec<String> = got.iter().map(|h| h.addr.to_string()).collect();
    assert_eq!(addrs, ["127.0.0.5", "127.0.0.6"]);
}

#[tokio::test]
async fn idn_domains_are_looked_up_in_a_labels() {
    let t = Table::default()
        .mx("xn--bcher-kva.example", &[(10, "mx.example.org")])
        .host("mx.example.org", &["127.0.0.7"]);
    let got = hops(&t, &mx_dest(), "Bücher.example").await.unwrap();
    assert_eq!(got[0].addr, ip("127.0.0.7"));
    let err = hops(&t, &mx_dest(), "bad domain.example")
        .await
        .unwrap_err();
    assert!(err.permanent);
    assert_eq!(err.enhanced, "5.1.2");
}

#[tokio::test]
async fn address_literals_need_no_dns() {
    let t = Table::default();
    let got = hops(&t, &mx_dest(), "[127.0.0.8]").await.unwrap();
    assert_eq!(
        summary(&got),
        [("127.0.0.8".into(), "127.0.0.8".into(), 2525, 0)]
    );
    let got = hops(&t, &mx_dest(), "[IPv6:::1]").await.unwrap();
    assert_eq!(got[0].addr, ip("::1"));
}

#[tokio::test]
async fn our_own_mx_entry_and_worse_ones_are_dropped() {
    let t = Table::default()
        .mx(
            "example.org",
            &[
                (10, "best.example.org"),
                (20, "MAIL.example.net."),
                (30, "worse.example.org"),
            ],
        )
        .host("best.example.org", &["127.0.0.10"])
        .host("worse.example.org", &["127.0.0.11"]);
    let got = hops(&t, &mx_dest(), "example.org").await.unwrap();
    assert_eq!(
        summary(&got),
        [("best.example.org".into(), "127.0.0.10".into(), 2525, 10)]
    );
}

#[tokio::test]
async fn mail_that_would_come_back_bounces() {
    let t = Table::default().mx("example.org", &[(10, "mail.example.net")]);
    let err = hops(&t, &mx_dest(), "example.org").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "5.4.6 mail for example.org loops back to myself"
    );
    // Implicit MX pointing at ourselves too.
    let t = Table::default().mx_err("mail.example.net", LookupError::NoRecords);
    let err = hops(&t, &mx_dest(), "mail.example.net").await.unwrap_err();
    assert_eq!(err.enhanced, "5.4.6");
}

#[tokio::test]
async fn backup_mx_relays_only_to_better_mxs() {
    let t = Table::default()
        .mx(
            "example.org",
            &[
                (10, "primary.example.org"),
                (20, "mail.example.net"),
                (30, "other"),
            ],
        )
        .host("primary.example.org", &["127.0.0.12"])
        .host("other", &["127.0.0.13"]);
    let backup = Destination::Mx {
        backup: true,
        backup_mx: None,
    };
    let got = hops(&t, &backup, "example.org").await.unwrap();
    assert_eq!(
        summary(&got),
        [("primary.example.org".into(), "127.0.0.12".into(), 2525, 10)]
    );

    // Named: our hostname does not matter, the name does.
    let named = Destination::Mx {
        backup: true,
        backup_mx: Some("Other.".into()),
    };
    let got = hops(&t, &named, "example.org").await.unwrap();
    let names: Vec<&str> = got.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["primary.example.org"]);
}

#[tokio::test]
async fn backup_mx_that_is_the_best_waits() {
    let t = Table::default()
        .mx("example.org", &[(10, "mail.example.net"), (20, "other")])
        .host("other", &["127.0.0.13"]);
    let backup = Destination::Mx {
        backup: true,
        backup_mx: None,
    };
    let err = hops(&t, &backup, "example.org").await.unwrap_err();
    assert!(!err.permanent);
    assert_eq!(err.enhanced, "4.4.6");
}

#[tokio::test]
async fn backup_mx_not_listed_tries_them_all() {
    let t = Table::default()
        .mx("example.org", &[(10, "a"), (20, "b")])
        .host("a", &["127.0.0.14"])
        .host("b", &["127.0.0.15"]);
    let backup = Destination::Mx {
        backup: true,
        backup_mx: Some("elsewhere.example".into()),
    };
    let got = hops(&t, &backup, "example.org").await.unwrap();
    assert_eq!(got.len(), 2);
}

#[tokio::test]
async fn smarthost_by_name_and_by_address() {
    let t = Table::default().host("relay.example.net", &["127.0.0.20", "::1"]);
    let dest = Destination::Smarthost("smtp+tls://Relay.example.net:587".parse().unwrap());
    let got = hops(&t, &dest, "anywhere.example").await.unwrap();
    assert_eq!(
        summary(&got),
        [
            ("relay.example.net".into(), "127.0.0.20".into(), 587, 0),
            ("relay.example.net".into(), "::1".into(), 587, 0),
        ]
    );
    let dest = Destination::Smarthost("[::1]:10025".parse().unwrap());
    let got = hops(&t, &dest, "anywhere.example").await.unwrap();
    assert_eq!(summary(&got), [("::1".into(), "::1".into(), 10025, 0)]);
}

#[tokio::test]
async fn smarthost_trouble_waits_even_if_the_name_does_not_exist() {
    let dest = Destination::Smarthost("relay.example.net".parse().unwrap());
    let err = hops(&Table::default(), &dest, "d").await.unwrap_err();
    assert!(!err.permanent);
    assert_eq!(err.enhanced, "4.4.4");
    let t = Table::default().host_err("relay.example.net", LookupError::Temporary("x".into()));
    let err = hops(&t, &dest, "d").await.unwrap_err();
    assert!(!err.permanent);
    assert_eq!(err.enhanced, "4.4.3");
}

#[test]
fn destination_from_relay_options() {
    let opts = RelayOptions {
        host: Some("smtps://label@relay.example.net".into()),
        ..Default::default()
    };
    let Destination::Smarthost(url) = Destination::from_options(&opts).unwrap() else {
        panic!("not a smarthost");
    };
    assert_eq!(url.port, 465);

    assert_eq!(
        Destination::from_options(&RelayOptions::default()).unwrap(),
        mx_dest()
    );
    let opts = RelayOptions {
        backup_mx: Some("mx2.example.org".into()),
        ..Default::default()
    };
    assert_eq!(
        Destination::from_options(&opts).unwrap(),
        Destination::Mx {
            backup: true,
            backup_mx: Some("mx2.example.org".into())
        }
    );
    let opts = RelayOptions {
        backup: true,
        host: Some("relay".into()),
        ..Default::default()
    };
    assert_eq!(
        Destination::from_options(&opts),
        Err(DestinationError::BackupWithHost)
    );
    let opts = RelayOptions {
        host: Some("ftp://relay".into()),
        ..Default::default()
    };
    assert!(matches!(
        Destination::from_options(&opts),
        Err(DestinationError::Url(UrlError::UnknownScheme(_)))
    ));
}

#[tokio::test]
async fn the_daemon_resolver_is_a_route_resolver() {
    // Compile-time check that Dns fits, and that route() futures are Send
    // (the mta runs them in spawned tasks).
    fn is_send<T: Send>(_: &T) {}
    let dns = crate::dns::Dns::new(Some("127.0.0.1:9".parse().unwrap())).unwrap();
    let dest = mx_dest();
    let fut = route(&dns, &dest, "example.org", ME, 25);
    is_send(&fut);
}
