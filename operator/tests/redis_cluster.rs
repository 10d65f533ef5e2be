//! Cluster formation against six real `redis-server --cluster-enabled yes` processes on
//! loopback ports, started unjoined. Covers what users of Redis operators actually hit:
//! first formation, a node back on a new address, a full stop with every node on a new
//! address, and re-running formation on a healthy cluster. Processes die with the test.

use std::time::Duration;

use synckairos_operator::redis_cluster::{
    ClusterReport, RedisAdmin, SLOTS, TcpAdmin, ensure_cluster, parse_nodes,
};
use synckairos_tests::host::free_port;
use synckairos_tests::redis::RedisProcess;

const BUDGET: Duration = Duration::from_secs(30);

fn admin() -> TcpAdmin {
    TcpAdmin {
        password: None,
        timeout: Duration::from_secs(2),
    }
}

/// Cluster-mode nodes that keep `nodes.conf` and an AOF in their directory,
/// so a node restarted on a new port rejoins with its id and data.
const NODE_ARGS: &[&str] = &[
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    "nodes.conf",
    "--cluster-node-timeout",
    "3000",
    "--appendonly",
    "yes",
    "--save",
    "",
];

/// Nodes started unjoined, each with its own directory (the test kit's
/// `RedisProcess`: killed on drop, restartable on a new port).
struct Cluster {
    _root: tempfile::TempDir,
    nodes: Vec<RedisProcess>,
}

impl Cluster {
    async fn start(n: usize) -> Self {
        let root = tempfile::tempdir().unwrap();
        let nodes: Vec<RedisProcess> = (0..n)
            .map(|i| {
                let dir = root.path().join(format!("node{i}"));
                std::fs::create_dir_all(&dir).unwrap();
                RedisProcess::new(dir, NODE_ARGS)
            })
            .collect();
        for node in &nodes {
            node.start_on_free_port().await.unwrap();
        }
        Self { _root: root, nodes }
    }

    fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(RedisProcess::addr).collect()
    }

    async fn form(&self) -> ClusterReport {
        ensure_cluster(&admin(), &self.addrs(), 3, BUDGET)
            .await
            .unwrap()
    }

    async fn text(&self, i: usize, args: &[&str]) -> String {
        admin()
            .command(&self.nodes[i].addr(), args)
            .await
            .unwrap()
            .text()
            .unwrap()
    }

    /// Address of the primary serving `key`, from node 0's view.
    async fn owner(&self, key: &str) -> String {
        let slot = match admin()
            .command(&self.nodes[0].addr(), &["CLUSTER", "KEYSLOT", key])
            .await
            .unwrap()
        {
            synckairos_operator::redis_cluster::Reply::Int(n) => n as u32,
            other => panic!("{other:?}"),
        };
        let view = parse_nodes(&self.text(0, &["CLUSTER", "NODES"]).await);
        view.iter()
            .find(|l| l.is_primary() && l.slots.iter().any(|&(a, b)| a <= slot && slot <= b))
            .map(|l| {
                // myself may be printed without its IP before it learnt it
                if l.addr.starts_with(':') {
                    self.nodes[0].addr()
                } else {
                    l.addr.clone()
                }
            })
            .unwrap()
    }

    /// Facts the tests check independently of the report: per-node state and known nodes,
    /// and the topology from node 0 (ids, roles, slot counts).
    async fn facts(&self) -> (Vec<String>, Vec<(String, bool, u32, Option<String>)>) {
        let mut infos = Vec::new();
        for i in 0..self.nodes.len() {
            let info = self.text(i, &["CLUSTER", "INFO"]).await;
            let get = |k: &str| {
                info.lines()
                    .find_map(|l| l.trim().strip_prefix(k).map(str::to_string))
                    .unwrap()
            };
            infos.push(format!(
                "{}/{}",
                get("cluster_state:"),
                get("cluster_known_nodes:")
            ));
        }
        let mut topo: Vec<_> = parse_nodes(&self.text(0, &["CLUSTER", "NODES"]).await)
            .into_iter()
            .map(|l| {
                (
                    l.id.clone(),
                    l.is_primary(),
                    l.slot_count(),
                    l.master.clone(),
                )
            })
            .collect();
        topo.sort();
        (infos, topo)
    }
}

fn assert_three_by_three(topo: &[(String, bool, u32, Option<String>)]) {
    let primaries: Vec<_> = topo.iter().filter(|t| t.1).collect();
    assert_eq!(primaries.len(), 3, "{topo:?}");
    let total: u32 = primaries.iter().map(|t| t.2).sum();
    assert_eq!(total, SLOTS);
    for p in &primaries {
        assert!((5461..=5462).contains(&p.2), "uneven split {topo:?}");
        let reps = topo
            .iter()
            .filter(|t| t.3.as_deref() == Some(p.0.as_str()))
            .count();
        assert_eq!(reps, 1, "each primary needs one replica: {topo:?}");
    }
}

async fn wait_ok(c: &Cluster) -> (Vec<String>, Vec<(String, bool, u32, Option<String>)>) {
    let deadline = tokio::time::Instant::now() + BUDGET;
    loop {
        let f = c.facts().await;
        if f.0.iter().all(|s| s == "ok/6") || tokio::time::Instant::now() > deadline {
            return f;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_six_unjoined_nodes_and_rerun_changes_nothing() {
    let c = Cluster::start(6).await;
    // unjoined: every node knows only itself
    assert!(c.facts().await.0.iter().all(|s| s.ends_with("/1")));
    let t0 = std::time::Instant::now();
    let r = c.form().await;
    println!(
        "formation of 6 nodes: {:?}, {} actions",
        t0.elapsed(),
        r.actions.len()
    );
    assert!(r.is_ok(), "{r:?}");
    assert_eq!((r.primaries, r.replicas, r.nodes), (3, 3, 6));
    let (infos, topo) = wait_ok(&c).await;
    assert!(infos.iter().all(|s| s == "ok/6"), "{infos:?}");
    assert_three_by_three(&topo);

    let again = c.form().await;
    assert!(
        again.actions.is_empty(),
        "a healthy cluster was changed: {:?}",
        again.actions
    );
    assert_eq!(c.facts().await.1, topo, "topology changed on re-run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_back_on_a_new_port_is_healed() {
    let c = Cluster::start(6).await;
    assert!(c.form().await.is_ok());
    let before = wait_ok(&c).await.1;
    let old = c.nodes[4].addr();
    c.nodes[4].shutdown(&[]).await.unwrap();
    c.nodes[4].start_on_free_port().await.unwrap();
    assert_ne!(old, c.nodes[4].addr());
    let t0 = std::time::Instant::now();
    let r = c.form().await;
    println!(
        "heal after one node moved: {:?}, actions {:?}",
        t0.elapsed(),
        r.actions
    );
    assert!(r.is_ok(), "{r:?}");
    let (infos, topo) = wait_ok(&c).await;
    assert!(infos.iter().all(|s| s == "ok/6"), "{infos:?}");
    assert_three_by_three(&topo);
    let ids = |t: &[(String, bool, u32, Option<String>)]| {
        t.iter().map(|x| x.0.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&topo),
        ids(&before),
        "node ids must survive the restart"
    );
    // every node sees node 4 at its new address
    let id4 = c.text(4, &["CLUSTER", "MYID"]).await;
    for i in 0..6 {
        if i == 4 {
            continue;
        }
        let view = parse_nodes(&c.text(i, &["CLUSTER", "NODES"]).await);
        let l = view.iter().find(|l| l.id == id4).unwrap();
        assert_eq!(
            l.addr,
            c.nodes[4].addr(),
            "node {i} still has the old address"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_stop_and_restart_on_new_ports_keeps_cluster_and_data() {
    let c = Cluster::start(6).await;
    assert!(c.form().await.is_ok());
    let before = wait_ok(&c).await.1;
    let keys: Vec<String> = (0..300).map(|i| format!("session:{i}")).collect();
    for k in &keys {
        let owner = c.owner(k).await;
        admin()
            .command(&owner, &["SET", k, &format!("v-{k}")])
            .await
            .unwrap();
    }
    let old_addrs = c.addrs();
    for n in &c.nodes {
        n.shutdown(&[]).await.unwrap();
    }
    for n in &c.nodes {
        n.start_on_free_port().await.unwrap();
    }
    assert!(c.addrs().iter().all(|a| !old_addrs.contains(a)));
    let t0 = std::time::Instant::now();
    let r = c.form().await;
    println!(
        "heal after full stop on new ports: {:?}, {} actions",
        t0.elapsed(),
        r.actions.len()
    );
    assert!(r.is_ok(), "{r:?}");
    let (infos, topo) = wait_ok(&c).await;
    assert!(infos.iter().all(|s| s == "ok/6"), "{infos:?}");
    assert_three_by_three(&topo);
    let ids = |t: &[(String, bool, u32, Option<String>)]| {
        t.iter().map(|x| x.0.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&topo),
        ids(&before),
        "the same cluster must come back, not a new one"
    );
    for k in &keys {
        let owner = c.owner(k).await;
        let v = admin().command(&owner, &["GET", k]).await.unwrap().text();
        assert_eq!(v, Some(format!("v-{k}")), "{k} lost");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_in_forgets_the_removed_replica() {
    let mut c = Cluster::start(6).await;
    assert!(c.form().await.is_ok());
    wait_ok(&c).await;
    // remove a replica for good, as a StatefulSet scale-in removes the highest ordinal
    let mut replica = None;
    for i in (0..6).rev() {
        if c.text(i, &["CLUSTER", "NODES"])
            .await
            .contains("myself,slave")
        {
            replica = Some(i);
            break;
        }
    }
    let replica = replica.expect("a replica");
    let gone = c.nodes.remove(replica);
    gone.shutdown(&[]).await.unwrap();
    // the others flag it failed after cluster-node-timeout; formation then forgets it
    let deadline = tokio::time::Instant::now() + BUDGET;
    let report = loop {
        let r = ensure_cluster(&admin(), &c.addrs(), 3, BUDGET)
            .await
            .unwrap();
        if r.nodes == 5 || tokio::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (report.nodes, report.primaries, report.replicas),
        (5, 3, 2),
        "{report:?}"
    );
    assert!(report.is_ok(), "{report:?}");
    for i in 0..5 {
        let info = c.text(i, &["CLUSTER", "INFO"]).await;
        assert!(info.contains("cluster_known_nodes:5"), "node {i}: {info}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_client_authenticates() {
    let root = tempfile::tempdir().unwrap();
    let node = RedisProcess::new(root.path(), &["--requirepass", "s3cret", "--save", ""]);
    node.start_on(free_port().unwrap()).await.unwrap();
    let with = TcpAdmin {
        password: Some("s3cret".into()),
        timeout: Duration::from_secs(2),
    };
    assert_eq!(
        with.command(&node.addr(), &["PING"]).await.unwrap().text(),
        Some("PONG".into())
    );
    let e = admin().command(&node.addr(), &["PING"]).await.unwrap_err();
    assert!(e.to_string().contains("NOAUTH"), "{e}");
    let wrong = TcpAdmin {
        password: Some("nope".into()),
        timeout: Duration::from_secs(2),
    };
    assert!(wrong.command(&node.addr(), &["PING"]).await.is_err());
}
