//! The test internet itself: dnsmasq answers for the test zone, the web server serves
//! and records clients, `curl` in another namespace resolves through that namespace's
//! own resolv.conf. Needs root (namespaces).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use vpnctl_testbed::internet::{Dnsmasq, WebServer, curl, lookup};
use vpnctl_testbed::{Names, Netns, require_root_and_tools, veth};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resolves_and_fetches_from_the_test_internet() {
    require_root_and_tools();
    let names = Names::new();
    let inet = Netns::new(&names.netns("inet"));
    let client = Netns::new(&names.netns("cli"));
    veth(
        &names.iface("l"),
        &inet,
        "203.0.113.1/24",
        &client,
        "203.0.113.2/24",
    );
    inet.ip(&["addr", "add", "203.0.113.53/32", "dev", "lo"]);
    inet.ip(&["addr", "add", "203.0.113.80/32", "dev", "lo"]);

    let www: IpAddr = "203.0.113.80".parse().unwrap();
    let dns = Dnsmasq::start(
        &inet,
        "203.0.113.53".parse().unwrap(),
        &[("www.example.test", &[www])],
    );
    let web = WebServer::start(
        &inet,
        &[SocketAddr::new(www, 80)],
        "hello from the test internet\n",
    );

    // Asked directly from the client namespace.
    let answer = lookup(
        &client,
        dns.addr(),
        "www.example.test",
        Duration::from_secs(2),
    )
    .unwrap();
    assert_eq!(answer.rcode, 0);
    assert_eq!(answer.addrs, vec![www]);

    // Without a resolv.conf of its own the client uses the host's, which knows nothing
    // of the test zone; with one pointing at dnsmasq, curl resolves and fetches.
    client.set_resolv_conf("nameserver 203.0.113.53\n");
    let page = curl(
        &client,
        "http://www.example.test/",
        Duration::from_secs(5),
        &[],
    )
    .unwrap();
    assert_eq!(page, "hello from the test internet\n");
    assert_eq!(web.clients().len(), 1);
    assert_eq!(
        web.clients()[0].ip(),
        "203.0.113.2".parse::<IpAddr>().unwrap()
    );

    // A stopped resolver is silence, and curl says it cannot resolve.
    let mut dns = dns;
    dns.stop();
    assert!(
        lookup(
            &client,
            "203.0.113.53:53".parse().unwrap(),
            "www.example.test",
            Duration::from_millis(300)
        )
        .is_err()
    );
    let err = curl(
        &client,
        "http://www.example.test/",
        Duration::from_secs(3),
        &[],
    )
    .unwrap_err();
    assert!(err.contains("resolve"), "{err}");
    let etc = client.etc_dir();
    drop(client);
    assert!(
        !etc.exists(),
        "the namespace's /etc/netns dir is removed with it"
    );
}
