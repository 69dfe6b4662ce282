//! Lists come in bounded pages: `GET /v1/users` and `GET /v1/peers` return at most
//! `routes::PAGE_MAX` items with the next page's cursor in `x-next-after`, filter on
//! the server, and the client pages through them transparently.

use vpnctl_api::body::{AccessState, InviteQuery, PeerQuery, UserQuery};
use vpnctl_api::routes::{NEXT_AFTER_HEADER, PAGE_MAX};
use vpnctl_core::{IssuePeer, KeyPair, NewUser, UserId};
use vpnctl_testbed::control_plane::{ControlPlane, nodes_add};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_peers_come_in_pages() {
    let cp = ControlPlane::start().await;
    let admin = cp.admin();
    let bot = cp.bot();
    let users = 1_203;
    for i in 0..users {
        cp.vpn
            .create_user(NewUser {
                name: format!("user-{i:04}"),
                device_limit: Some(2_000),
                ..Default::default()
            })
            .unwrap();
    }

    // A bare GET is one bounded page with a cursor.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let raw = http
        .get(format!("{}/v1/users", cp.url))
        .bearer_auth(cp.bot_token.expose())
        .send()
        .await
        .unwrap();
    let next = raw.headers().get(NEXT_AFTER_HEADER).cloned();
    let first: Vec<serde_json::Value> = raw.json().await.unwrap();
    assert_eq!(first.len(), PAGE_MAX);
    assert!(next.is_some(), "a full page says where the next starts");

    // Pages of 500 follow each other without gap or repeat.
    let mut query = UserQuery {
        limit: Some(500),
        ..UserQuery::default()
    };
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let page = bot.users_page(&query).await.unwrap();
        sizes.push(page.items.len());
        seen.extend(page.items.into_iter().map(|u| u.name));
        match page.next {
            Some(n) => query.after = Some(UserId(n)),
            None => break,
        }
    }
    assert_eq!(sizes, [500, 500, 203]);
    let expected: Vec<String> = (0..users).map(|i| format!("user-{i:04}")).collect();
    assert_eq!(seen, expected);
    // A limit above the maximum is the maximum; the client pages transparently.
    let big = bot
        .users_page(&UserQuery {
            limit: Some(50_000),
            ..UserQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(big.items.len(), PAGE_MAX);
    let all = bot.users().await.unwrap();
    assert_eq!(all.len(), 1_203);

    // Filtered on the server, case-insensitive.
    let mut found = Vec::new();
    let mut query = UserQuery {
        name: Some("USER-11".into()),
        limit: Some(7),
        ..UserQuery::default()
    };
    loop {
        let page = bot.users_page(&query).await.unwrap();
        assert!(page.items.len() <= 7);
        found.extend(page.items.into_iter().map(|u| u.name));
        match page.next {
            Some(n) => query.after = Some(UserId(n)),
            None => break,
        }
    }
    let want: Vec<String> = expected
        .iter()
        .filter(|n| n.contains("user-11"))
        .cloned()
        .collect();
    assert_eq!(found, want);

    // Peers: a node's 1,100 peers in pages; a user's own; the client gets them all.
    let node = cp.enrolled_node("fra1").await.node;
    let owner = cp.vpn.users().unwrap()[0].id;
    cp.vpn
        .issue_peers(
            (0..1_100)
                .map(|i| IssuePeer {
                    user: owner,
                    node: node.id,
                    device: format!("d{i}"),
                    public_key: Some(KeyPair::generate().public),
                })
                .collect(),
        )
        .unwrap();
    let on_node = PeerQuery {
        node: Some(node.id),
        ..PeerQuery::default()
    };
    let page = admin.peers_page(&on_node).await.unwrap();
    assert_eq!(page.items.len(), PAGE_MAX);
    let rest = admin
        .peers_page(&PeerQuery {
            after: page.next.map(vpnctl_core::PeerId),
            ..on_node.clone()
        })
        .await
        .unwrap();
    assert_eq!((rest.items.len(), rest.next), (100, None));
    assert_eq!(admin.peers(on_node.clone()).await.unwrap().len(), 1_100);
    assert_eq!(
        admin.peers(PeerQuery::default()).await.unwrap().len(),
        1_100
    );
    let mine = admin
        .peers_page(&PeerQuery {
            user: Some(owner),
            limit: Some(600),
            ..PeerQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(mine.items.len(), 600);
    assert!(mine.next.is_some());
    let ids: Vec<u64> = mine.items.iter().map(|p| p.id.0).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in id order");

    // Users by id, as a peer listing names their owners: those that exist, in id
    // order, once each; the client splits any number into requests of PAGE_MAX.
    let all_ids: Vec<UserId> = all.iter().map(|u| u.id).collect();
    cp.vpn.delete_user(all_ids[5]).unwrap();
    let asked = [
        all_ids[9],
        all_ids[5],
        all_ids[2],
        all_ids[9],
        UserId(999_999),
    ];
    let named: Vec<(UserId, String)> = bot
        .users_by_id(&asked)
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.id, u.name))
        .collect();
    assert_eq!(
        named,
        [
            (all_ids[2], "user-0002".to_owned()),
            (all_ids[9], "user-0009".to_owned())
        ]
    );
    let mut shuffled: Vec<UserId> = all_ids.iter().rev().copied().collect();
    shuffled.extend_from_slice(&all_ids[..10]);
    let back: Vec<UserId> = bot
        .users_by_id(&shuffled)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    let mut want = all_ids.clone();
    want.remove(5);
    assert_eq!(
        back, want,
        "1,212 ids, reversed, some twice: each once, in id order"
    );
    let get = |query: String| {
        let http = http.clone();
        let url = format!("{}/v1/users?{query}", cp.url);
        let token = cp.bot_token.expose().to_owned();
        async move {
            let r = http.get(url).bearer_auth(token).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, body) = get(format!("ids=u{},{}", all_ids[0], all_ids[1])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Vec<serde_json::Value>>(&body)
            .unwrap()
            .len(),
        2
    );
    for loose in ["ids=", "ids=1,,2", "ids=1,"] {
        let (status, body) = get(loose.into()).await;
        assert_eq!(status, 400, "{loose}: {body}");
        assert!(body.contains("is not a list of ids"), "{loose}: {body}");
    }
    let (status, body) = get("ids=1,two".into()).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("ids: invalid UserId") && body.contains("two"),
        "{body}"
    );
    let many: Vec<String> = (1..=PAGE_MAX + 1).map(|i| i.to_string()).collect();
    let (status, body) = get(format!("ids={}", many.join(","))).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("at most 1000 users at once, not 1001"),
        "{body}"
    );

    // Peers by id, as the dashboard reads again the rows events named: a revoked
    // one is not there, the rest come in id order, once each, whatever the filter.
    let peers = admin.peers(on_node.clone()).await.unwrap();
    let revoked = peers[3].id;
    cp.vpn.revoke_peer(revoked).unwrap();
    let mut asked: Vec<vpnctl_core::PeerId> = peers.iter().rev().map(|p| p.id).collect();
    asked.extend([peers[0].id, vpnctl_core::PeerId(999_999)]);
    let back = admin.peers_by_id(&asked).await.unwrap();
    let want: Vec<_> = peers.iter().filter(|p| p.id != revoked).cloned().collect();
    assert_eq!(back, want, "1,102 ids, reversed, one twice, two not there");
    let url = format!(
        "{}/v1/peers?ids=p{},{}&node=999&limit=1",
        cp.url, peers[1].id, peers[0].id
    );
    let r = http
        .get(url)
        .bearer_auth(cp.admin_token.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().get(NEXT_AFTER_HEADER).is_none());
    let two: Vec<vpnctl_core::Peer> = r.json().await.unwrap();
    assert_eq!(two, peers[..2], "ids decide; the page fields are ignored");
    let many: Vec<String> = (1..=PAGE_MAX + 1).map(|i| i.to_string()).collect();
    let r = http
        .get(format!("{}/v1/peers?ids={}", cp.url, many.join(",")))
        .bearer_auth(cp.admin_token.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("at most 1000 peers at once, not 1001"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_filter_by_region() {
    let cp = ControlPlane::start().await;
    let admin = cp.admin();
    // Nodes as `vpnctl nodes add` makes them: two in de-fra, one in nl-ams.
    let mut nodes = Vec::new();
    for (name, region, pool) in [
        ("fra-1", "de-fra", "10.8.0.0/16"),
        ("ams-1", "nl-ams", "10.9.0.0/16"),
        ("fra-2", "de-fra", "10.10.0.0/16"),
    ] {
        let node = cp
            .register(&nodes_add(name, region, "vpn.example.com:51820", pool))
            .await;
        nodes.push(cp.enroll(node.id).await.node);
    }
    let users: Vec<UserId> = (0..5)
        .map(|i| {
            cp.vpn
                .create_user(NewUser {
                    name: format!("user-{i}"),
                    device_limit: Some(2_000),
                    ..Default::default()
                })
                .unwrap()
                .id
        })
        .collect();
    // 1,500 peers whose ids interleave the three nodes.
    cp.vpn
        .issue_peers(
            (0..1_500)
                .map(|i| IssuePeer {
                    user: users[i % 5],
                    node: nodes[i % 3].id,
                    device: format!("d{i}"),
                    public_key: Some(KeyPair::generate().public),
                })
                .collect(),
        )
        .unwrap();
    let all = admin.peers(PeerQuery::default()).await.unwrap();
    let in_fra: Vec<_> = all
        .iter()
        .filter(|p| p.node != nodes[1].id)
        .map(|p| p.id)
        .collect();
    assert_eq!(in_fra.len(), 1_000);

    // Pages of 400 merge the region's two nodes in id order, without gap or repeat.
    let mut query = PeerQuery {
        region: Some("de-fra".into()),
        limit: Some(400),
        ..PeerQuery::default()
    };
    let (mut seen, mut sizes) = (Vec::new(), Vec::new());
    loop {
        let page = admin.peers_page(&query).await.unwrap();
        sizes.push(page.items.len());
        seen.extend(page.items.iter().map(|p| p.id));
        match page.next {
            Some(n) => query.after = Some(vpnctl_core::PeerId(n)),
            None => break,
        }
    }
    assert_eq!(sizes, [400, 400, 200]);
    assert_eq!(seen, in_fra);
    // Exactly a full page: no cursor to an empty one. The code's case is ignored.
    let whole = admin
        .peers_page(&PeerQuery {
            region: Some("DE-FRA".into()),
            ..PeerQuery::default()
        })
        .await
        .unwrap();
    assert_eq!((whole.items.len(), whole.next), (PAGE_MAX, None));
    // The client pages transparently; core's unpaged reader agrees.
    let region = |code: &str| PeerQuery {
        region: Some(code.into()),
        ..PeerQuery::default()
    };
    let ams = admin.peers(region("nl-ams")).await.unwrap();
    assert_eq!(ams.len(), 500);
    assert!(ams.iter().all(|p| p.node == nodes[1].id));
    let core = cp
        .vpn
        .peers(vpnctl_core::PeerFilter {
            region: Some("de-fra".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(core.iter().map(|p| p.id).collect::<Vec<_>>(), in_fra);

    // Combined with a user and a node; a node outside the region, or a region no
    // node has, selects nothing (an empty list, not an error).
    let theirs = admin
        .peers(PeerQuery {
            user: Some(users[2]),
            ..region("de-fra")
        })
        .await
        .unwrap();
    let want: Vec<_> = all
        .iter()
        .filter(|p| p.user == users[2] && p.node != nodes[1].id)
        .map(|p| p.id)
        .collect();
    assert_eq!(theirs.iter().map(|p| p.id).collect::<Vec<_>>(), want);
    assert_eq!(want.len(), 200);
    let on_fra2 = admin
        .peers(PeerQuery {
            node: Some(nodes[2].id),
            ..region("de-fra")
        })
        .await
        .unwrap();
    assert_eq!(on_fra2.len(), 500);
    assert!(on_fra2.iter().all(|p| p.node == nodes[2].id));
    for query in [
        PeerQuery {
            node: Some(nodes[1].id),
            ..region("de-fra")
        },
        region("xx-nowhere"),
        PeerQuery {
            user: Some(users[0]),
            ..region("xx-nowhere")
        },
    ] {
        let page = admin.peers_page(&query).await.unwrap();
        assert!(page.items.is_empty() && page.next.is_none(), "{query:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_filter_by_their_users_access() {
    let cp = ControlPlane::start().await;
    let admin = cp.admin();
    let mut nodes = Vec::new();
    for (name, region, pool) in [
        ("fra-1", "de-fra", "10.8.0.0/16"),
        ("ams-1", "nl-ams", "10.9.0.0/16"),
    ] {
        let node = cp
            .register(&nodes_add(name, region, "vpn.example.com:51820", pool))
            .await;
        nodes.push(cp.enroll(node.id).await.node);
    }
    let user = |name: &str| {
        cp.vpn
            .create_user(NewUser {
                name: name.into(),
                device_limit: Some(100),
                ..Default::default()
            })
            .unwrap()
            .id
    };
    let (busy, gone, quiet) = (user("busy"), user("gone"), user("quiet"));
    // 45 peers of an active user first, then 6 of one an admin disables, on both
    // nodes, then 3 more of another active user.
    let issue = |owner, count: usize, from: usize| {
        (0..count)
            .map(|i| IssuePeer {
                user: owner,
                node: nodes[(from + i) % 2].id,
                device: format!("d{}", from + i),
                public_key: Some(KeyPair::generate().public),
            })
            .collect::<Vec<_>>()
    };
    cp.vpn.issue_peers(issue(busy, 45, 0)).unwrap();
    cp.vpn.issue_peers(issue(gone, 6, 100)).unwrap();
    cp.vpn.issue_peers(issue(quiet, 3, 200)).unwrap();
    admin
        .set_user_state(gone, vpnctl_core::UserState::Disabled)
        .await
        .unwrap();
    let all = admin.peers(PeerQuery::default()).await.unwrap();
    let of = |owner| -> Vec<_> {
        all.iter()
            .filter(|p| p.user == owner)
            .map(|p| p.id)
            .collect()
    };
    let access = |state| PeerQuery {
        access: Some(state),
        ..PeerQuery::default()
    };
    let ids = |peers: Vec<vpnctl_core::Peer>| peers.into_iter().map(|p| p.id).collect::<Vec<_>>();

    // The client pages through to exactly the disabled user's devices, in id order.
    let disabled = ids(admin.peers(access(AccessState::Disabled)).await.unwrap());
    assert_eq!(disabled, of(gone));
    let active = ids(admin.peers(access(AccessState::Active)).await.unwrap());
    assert_eq!(active, [of(busy), of(quiet)].concat());
    assert!(
        admin
            .peers(access(AccessState::Lapsed))
            .await
            .unwrap()
            .is_empty()
    );
    // A page reads at most 20 × limit peers: the first 40 are all active, so a page
    // of 2 comes back empty with a cursor to go on from.
    let first = admin
        .peers_page(&PeerQuery {
            limit: Some(2),
            ..access(AccessState::Disabled)
        })
        .await
        .unwrap();
    assert!(first.items.is_empty());
    assert_eq!(first.next, Some(all[39].id.0));
    // With a region, a node, and the user: the same rule, on the server.
    let on_ams = ids(admin
        .peers(PeerQuery {
            region: Some("nl-ams".into()),
            ..access(AccessState::Disabled)
        })
        .await
        .unwrap());
    let want: Vec<_> = all
        .iter()
        .filter(|p| p.user == gone && p.node == nodes[1].id)
        .map(|p| p.id)
        .collect();
    assert_eq!((on_ams.len(), &on_ams), (3, &want));
    let on_node = ids(admin
        .peers(PeerQuery {
            node: Some(nodes[1].id),
            ..access(AccessState::Disabled)
        })
        .await
        .unwrap());
    assert_eq!(on_node, want);
    for (owner, state, count) in [
        (gone, AccessState::Disabled, 6),
        (gone, AccessState::Active, 0),
        (busy, AccessState::Active, 45),
    ] {
        let theirs = admin
            .peers(PeerQuery {
                user: Some(owner),
                ..access(state)
            })
            .await
            .unwrap();
        assert_eq!(theirs.len(), count, "{state}");
    }
    // An unknown state is a 400 naming the four.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let bad = http
        .get(format!("{}/v1/peers?access=expired", cp.url))
        .bearer_auth(cp.admin_token.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let text = bad.text().await.unwrap();
    assert!(
        text.contains("active") && text.contains("disabled"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_filter_by_device_name() {
    let cp = ControlPlane::start().await;
    let admin = cp.admin();
    let mut nodes = Vec::new();
    for (name, region, pool) in [
        ("fra-1", "de-fra", "10.8.0.0/16"),
        ("ams-1", "nl-ams", "10.9.0.0/16"),
    ] {
        let node = cp
            .register(&nodes_add(name, region, "vpn.example.com:51820", pool))
            .await;
        nodes.push(cp.enroll(node.id).await.node);
    }
    let user = |name: &str| {
        cp.vpn
            .create_user(NewUser {
                name: name.into(),
                device_limit: Some(100),
                ..Default::default()
            })
            .unwrap()
            .id
    };
    let (ann, bob) = (user("ann"), user("bob"));
    let issue = |owner, node: usize, device: String| IssuePeer {
        user: owner,
        node: nodes[node].id,
        device,
        public_key: Some(KeyPair::generate().public),
    };
    // 30 laptops first, then the phones, then tablets.
    cp.vpn
        .issue_peers(
            (0..30)
                .map(|i| issue(ann, i % 2, format!("laptop-{i}")))
                .collect(),
        )
        .unwrap();
    let phones = cp
        .vpn
        .issue_peers(vec![
            issue(ann, 0, "iPhone 15".into()),
            issue(bob, 1, "IPHONE".into()),
            issue(bob, 0, "Айфон мамы".into()),
        ])
        .unwrap();
    cp.vpn
        .issue_peers(
            (0..5)
                .map(|i| issue(bob, i % 2, format!("tablet-{i}")))
                .collect(),
        )
        .unwrap();
    let ids = |peers: Vec<vpnctl_core::Peer>| peers.into_iter().map(|p| p.id).collect::<Vec<_>>();
    let named = |text: &str| PeerQuery {
        device: Some(text.into()),
        ..PeerQuery::default()
    };
    let phone = |i: usize| phones[i].peer.id;

    // Contained, any case, in id order; the client pages past the 20 × limit bound.
    assert_eq!(
        ids(admin.peers(named("iphone")).await.unwrap()),
        [phone(0), phone(1)]
    );
    assert_eq!(ids(admin.peers(named("АЙФОН")).await.unwrap()), [phone(2)]);
    assert_eq!(ids(admin.peers(named("e 1")).await.unwrap()), [phone(0)]);
    assert!(admin.peers(named("router")).await.unwrap().is_empty());
    let first = admin
        .peers_page(&PeerQuery {
            limit: Some(1),
            ..named("iphone")
        })
        .await
        .unwrap();
    assert!(first.items.is_empty(), "the first 20 peers are laptops");
    let all = admin.peers(PeerQuery::default()).await.unwrap();
    assert_eq!(first.next, Some(all[19].id.0));
    // With a user, a node and a region: the same rule.
    let with = |q: PeerQuery| async { ids(admin.peers(q).await.unwrap()) };
    assert_eq!(
        with(PeerQuery {
            user: Some(bob),
            ..named("iphone")
        })
        .await,
        [phone(1)]
    );
    assert_eq!(
        with(PeerQuery {
            region: Some("de-fra".into()),
            ..named("IPHONE")
        })
        .await,
        [phone(0)]
    );
    assert_eq!(
        with(PeerQuery {
            node: Some(nodes[0].id),
            ..named("tablet")
        })
        .await,
        all.iter()
            .filter(|p| p.device.starts_with("tablet") && p.node == nodes[0].id)
            .map(|p| p.id)
            .collect::<Vec<_>>()
    );
    // As the query string a script writes, and core's unpaged reader agrees.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let raw: Vec<vpnctl_core::Peer> = http
        .get(format!("{}/v1/peers?device=iPhone%2015", cp.url))
        .bearer_auth(cp.admin_token.expose())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ids(raw), [phone(0)]);
    let core = cp
        .vpn
        .peers(vpnctl_core::PeerFilter {
            device: Some("Iphone".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(ids(core), [phone(0), phone(1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_log_reads_backwards_from_its_end() {
    let cp = ControlPlane::start().await;
    let admin = cp.admin();
    for i in 0..30 {
        cp.vpn
            .create_user(NewUser {
                name: format!("user-{i:02}"),
                ..Default::default()
            })
            .unwrap();
    }
    let all = admin.events(None, Some(1_000)).await.unwrap();
    assert!(all.len() >= 30);
    let last = all.last().unwrap().seq;

    // The newest ten, oldest first, and the ten before them.
    let newest = admin.events_before(None, Some(10)).await.unwrap();
    let seqs: Vec<u64> = newest.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, ((last - 9)..=last).collect::<Vec<_>>());
    let before = admin.events_before(Some(seqs[0]), Some(10)).await.unwrap();
    let seqs: Vec<u64> = before.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, ((last - 19)..=(last - 10)).collect::<Vec<_>>());
    // Before the first event there is nothing.
    let first = all.first().unwrap().seq;
    assert!(
        admin
            .events_before(Some(first), Some(10))
            .await
            .unwrap()
            .is_empty()
    );

    // Forwards and backwards at once is a clear 400.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let both = http
        .get(format!("{}/v1/events?after=1&before=5", cp.url))
        .bearer_auth(cp.admin_token.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), 400);
    let text = both.text().await.unwrap();
    assert!(text.contains("not both"), "{text}");
}

/// `?access=` filters users on the server by where their access stands now, as
/// core's `Access::of` judges it: an end date passed counts before the sweep
/// marked the user lapsed, a used-up quota is `suspended`; combined with `name`,
/// and an unknown state is a 400 naming the four.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_filter_by_access_state() {
    let clock = vpnctl_core::ManualClock::new(vpnctl_core::Timestamp::now());
    let cp = ControlPlane::builder().clock(&clock).start().await;
    let bot = cp.bot();
    let mut ids = Vec::new();
    for i in 0..30 {
        let u = cp
            .vpn
            .create_user(NewUser {
                name: format!("member-{i:02}"),
                ..Default::default()
            })
            .unwrap();
        ids.push(u.id);
    }
    // 10..15 lapsed by an admin; 15..20 reach their end date while nothing sweeps.
    let now = cp.vpn.now().seconds();
    for &id in &ids[10..15] {
        cp.vpn
            .set_access(id, Some(vpnctl_core::Timestamp(now - 60)))
            .unwrap();
    }
    for &id in &ids[15..20] {
        cp.vpn
            .set_access(id, Some(vpnctl_core::Timestamp(now + 60)))
            .unwrap();
    }
    clock.advance(120);
    assert!(!cp.vpn.user(ids[15]).unwrap().lapsed, "not swept yet");
    for &id in &ids[20..25] {
        cp.vpn
            .set_user_state(id, vpnctl_core::UserState::Disabled)
            .unwrap();
    }
    // 25 uses up its traffic quota on a node.
    let node = cp.enrolled_node("fra1").await.node;
    let peer = cp
        .vpn
        .issue_peer(IssuePeer {
            user: ids[25],
            node: node.id,
            device: "phone".into(),
            public_key: Some(KeyPair::generate().public),
        })
        .unwrap();
    cp.vpn
        .update_user(
            ids[25],
            vpnctl_core::UserPatch {
                quota: Some(Some(vpnctl_core::Quota {
                    bytes: 1_000,
                    period: vpnctl_core::QuotaPeriod::Monthly,
                })),
                ..Default::default()
            },
        )
        .unwrap();
    cp.vpn
        .record_report(
            node.id,
            &vpnctl_core::wire::NodeReport {
                applied_revision: 0,
                interface_up: true,
                listen_port: Some(51820),
                public_key: None,
                peers: vec![vpnctl_core::wire::PeerStats {
                    public_key: peer.peer.public_key,
                    endpoint: None,
                    last_handshake: None,
                    rx_bytes: 700,
                    tx_bytes: 400,
                }],
                system: vpnctl_core::wire::SystemStats::default(),
                strays_removed: Vec::new(),
                errors: Vec::new(),
                at: vpnctl_core::Timestamp(0),
                health_port: None,
            },
        )
        .unwrap();
    assert!(cp.vpn.user(ids[25]).unwrap().suspended);

    let list = |access: Option<AccessState>, name: Option<&str>| {
        let bot = bot.clone();
        let name = name.map(str::to_owned);
        async move {
            let mut query = UserQuery {
                access,
                name,
                limit: Some(4),
                ..UserQuery::default()
            };
            let mut found = Vec::new();
            loop {
                let page = bot.users_page(&query).await.unwrap();
                found.extend(page.items.into_iter().map(|u| u.id));
                match page.next {
                    Some(n) => query.after = Some(UserId(n)),
                    None => break,
                }
            }
            found
        }
    };
    let active: Vec<_> = ids[..10].iter().chain(&ids[26..]).copied().collect();
    assert_eq!(list(Some(AccessState::Active), None).await, active);
    assert_eq!(list(Some(AccessState::Lapsed), None).await, ids[10..20]);
    assert_eq!(list(Some(AccessState::Disabled), None).await, ids[20..25]);
    assert_eq!(list(Some(AccessState::Suspended), None).await, ids[25..26]);
    assert_eq!(list(None, None).await, ids);
    assert_eq!(
        list(Some(AccessState::Lapsed), Some("MEMBER-1")).await,
        ids[10..20]
    );
    assert_eq!(
        list(Some(AccessState::Active), Some("member-1")).await,
        Vec::<UserId>::new()
    );

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let bad = http
        .get(format!("{}/v1/users?access=expired", cp.url))
        .bearer_auth(cp.bot_token.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), reqwest::StatusCode::BAD_REQUEST);
    let text = bad.text().await.unwrap();
    assert!(
        text.contains("active") && text.contains("suspended") && text.contains("disabled"),
        "{text}"
    );
}

/// Invites come in pages too: a bare GET is one bounded page with a cursor, pages
/// follow each other without gap or repeat, and the client reads them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invites_come_in_pages() {
    let cp = ControlPlane::start().await;
    let admin = cp.admin();
    let total = PAGE_MAX + 37;
    for i in 0..total {
        cp.vpn
            .create_invite(vpnctl_core::NewInvite {
                label: format!("inv-{i:04}"),
                ..Default::default()
            })
            .unwrap();
    }
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let raw = http
        .get(format!("{}/v1/invites", cp.url))
        .bearer_auth(cp.admin_token.expose())
        .send()
        .await
        .unwrap();
    assert!(raw.headers().get(NEXT_AFTER_HEADER).is_some());
    let first: Vec<serde_json::Value> = raw.json().await.unwrap();
    assert_eq!(first.len(), PAGE_MAX);

    let mut query = InviteQuery {
        limit: Some(400),
        ..InviteQuery::default()
    };
    let mut labels = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let page = admin.invites_page(&query).await.unwrap();
        sizes.push(page.items.len());
        labels.extend(page.items.into_iter().map(|i| i.label));
        match page.next {
            Some(n) => query.after = Some(vpnctl_core::InviteId(n)),
            None => break,
        }
    }
    assert_eq!(sizes, [400, 400, 237]);
    let want: Vec<String> = (0..total).map(|i| format!("inv-{i:04}")).collect();
    assert_eq!(labels, want);
    let all = admin.invites().await.unwrap();
    assert_eq!(all.len(), total);
    // Admin only, as before.
    let refused = cp.bot().invites().await.unwrap_err();
    assert_eq!(refused.status(), Some(403));
}
