//! Redis Cluster formation and healing, done by the operator talking to the Redis pods.
//!
//! [`ensure_cluster`] is idempotent and safe at every reconcile: it only acts on what the
//! nodes report. It meets nodes that do not see each other at their current address (this
//! is also how a node that came back on a new IP is healed: MEET with a known node id
//! updates its address), forgets failed ids that are no longer pods, assigns unowned slots
//! (all 16384, evenly, on a fresh cluster), and attaches empty primaries as replicas of the
//! primary with the fewest replicas. Node ids and data survive restarts because
//! `nodes.conf` and the AOF live on each pod's volume. It never re-creates a cluster.
//!
//! The nodes are reached through the [`RedisAdmin`] trait so the logic can be driven by a
//! fake in unit tests; [`TcpAdmin`] is the real one (RESP2 over TCP).

pub mod resp;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

pub use resp::{Reply, RespError};

/// Number of hash slots in a Redis Cluster.
pub const SLOTS: u32 = 16384;

/// Sends one command to one node.
#[async_trait]
pub trait RedisAdmin: Send + Sync {
    /// Runs `args` on the node at `addr` (`host:port`).
    async fn command(&self, addr: &str, args: &[&str]) -> Result<Reply, RespError>;
}

/// The real admin client: a short connection per command, with AUTH when a password is set.
#[derive(Debug, Clone)]
pub struct TcpAdmin {
    /// Redis password (requirepass), if any.
    pub password: Option<String>,
    /// Per-command timeout.
    pub timeout: Duration,
}

#[async_trait]
impl RedisAdmin for TcpAdmin {
    async fn command(&self, addr: &str, args: &[&str]) -> Result<Reply, RespError> {
        resp::command(addr, self.password.as_deref(), args, self.timeout).await
    }
}

/// Why formation could not proceed (the reconcile reports it and tries again later).
#[derive(Debug, thiserror::Error)]
pub enum FormError {
    /// A node did not answer.
    #[error("node {addr}: {source}")]
    Node {
        /// The node.
        addr: String,
        /// What went wrong.
        source: RespError,
    },
    /// A reply did not look like Redis Cluster output.
    #[error("node {0}: unexpected reply")]
    Unexpected(String),
    /// Fewer nodes than shards.
    #[error("{nodes} nodes cannot hold {shards} shards")]
    TooFewNodes {
        /// Nodes given.
        nodes: usize,
        /// Shards wanted.
        shards: usize,
    },
}

/// What formation saw and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterReport {
    /// `cluster_state` of every node agrees on `ok`: `ok`; otherwise `fail` or `forming`.
    pub state: String,
    /// Slots owned by a primary in the first node's view.
    pub slots_assigned: u32,
    /// Members in the first node's view.
    pub nodes: usize,
    /// Primaries with slots.
    pub primaries: usize,
    /// Replicas.
    pub replicas: usize,
    /// Commands that changed the cluster (empty on a healthy cluster).
    pub actions: Vec<String>,
}

impl ClusterReport {
    /// The report of `view` (the first node's), counting the slots of the
    /// primaries `serves` accepts.
    fn of_view(
        state: String,
        view: &[NodeLine],
        serves: impl Fn(&NodeLine) -> bool,
        actions: Vec<String>,
    ) -> Self {
        ClusterReport {
            state,
            slots_assigned: view
                .iter()
                .filter(|l| serves(l))
                .map(NodeLine::slot_count)
                .sum(),
            nodes: view.len(),
            primaries: view
                .iter()
                .filter(|l| l.is_primary() && l.slot_count() > 0)
                .count(),
            replicas: view.iter().filter(|l| l.master.is_some()).count(),
            actions,
        }
    }

    /// Whether the cluster serves every slot.
    pub fn is_ok(&self) -> bool {
        self.state == "ok" && self.slots_assigned == SLOTS
    }
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLine {
    /// Node id.
    pub id: String,
    /// `ip:port` (bus port and hostname stripped).
    pub addr: String,
    /// Flags such as `myself`, `master`, `slave`, `fail`, `handshake`.
    pub flags: BTreeSet<String>,
    /// Primary id of a replica.
    pub master: Option<String>,
    /// `connected` or `disconnected`.
    pub link: String,
    /// Owned slot ranges (inclusive).
    pub slots: Vec<(u32, u32)>,
}

impl NodeLine {
    fn has(&self, flag: &str) -> bool {
        self.flags.contains(flag)
    }
    /// Primary (`master` flag).
    pub fn is_primary(&self) -> bool {
        self.has("master")
    }
    /// Slots owned.
    pub fn slot_count(&self) -> u32 {
        self.slots.iter().map(|(a, b)| b - a + 1).sum()
    }
    fn healthy_at(&self, addr: &str) -> bool {
        self.addr == addr
            && (self.link == "connected" || self.has("myself"))
            && !self.has("fail")
            && !self.has("handshake")
            && !self.has("noaddr")
    }
}

/// Parses `CLUSTER NODES` output.
pub fn parse_nodes(text: &str) -> Vec<NodeLine> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            let addr = f[1]
                .split(['@', ','])
                .next()
                .unwrap_or_default()
                .to_string();
            let slots = f[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|n| (n, n)),
                })
                .collect();
            Some(NodeLine {
                id: f[0].to_string(),
                addr,
                flags: f[2].split(',').map(str::to_string).collect(),
                master: (f[3] != "-").then(|| f[3].to_string()),
                link: f[7].to_string(),
                slots,
            })
        })
        .collect()
}

/// The even split of all slots over `shards` primaries: shard `i` gets this inclusive range.
pub fn slot_range(i: usize, shards: usize) -> (u32, u32) {
    let s = shards as u64;
    let total = u64::from(SLOTS);
    let lo = (i as u64 * total / s) as u32;
    let hi = ((i as u64 + 1) * total / s) as u32 - 1;
    (lo, hi)
}

struct Node<'a> {
    addr: &'a str,
    id: String,
    view: Vec<NodeLine>,
}

async fn cmd(admin: &dyn RedisAdmin, addr: &str, args: &[&str]) -> Result<Reply, FormError> {
    admin
        .command(addr, args)
        .await
        .map_err(|source| FormError::Node {
            addr: addr.to_string(),
            source,
        })
}

async fn text(admin: &dyn RedisAdmin, addr: &str, args: &[&str]) -> Result<String, FormError> {
    cmd(admin, addr, args)
        .await?
        .text()
        .ok_or_else(|| FormError::Unexpected(addr.to_string()))
}

async fn observe<'a>(
    admin: &dyn RedisAdmin,
    addrs: &'a [String],
) -> Result<Vec<Node<'a>>, FormError> {
    let mut out = Vec::with_capacity(addrs.len());
    for a in addrs {
        let id = text(admin, a, &["CLUSTER", "MYID"]).await?;
        let view = parse_nodes(&text(admin, a, &["CLUSTER", "NODES"]).await?);
        out.push(Node { addr: a, id, view });
    }
    Ok(out)
}

/// Pairs (a, b) where node a does not see node b healthy at b's current address.
fn unmet(nodes: &[Node<'_>]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (i, a) in nodes.iter().enumerate() {
        for (j, b) in nodes.iter().enumerate() {
            if i != j && !a.view.iter().any(|l| l.id == b.id && l.healthy_at(b.addr)) {
                out.push((i, j));
            }
        }
    }
    out
}

fn split_addr(addr: &str) -> (&str, &str) {
    addr.rsplit_once(':').unwrap_or((addr, "6379"))
}

/// Polls `observe` until `done` holds or the deadline passes; returns the last observation.
async fn wait_for<'a>(
    admin: &dyn RedisAdmin,
    addrs: &'a [String],
    deadline: Instant,
    done: impl Fn(&[Node<'_>]) -> bool,
) -> Result<Vec<Node<'a>>, FormError> {
    loop {
        let nodes = observe(admin, addrs).await?;
        if done(&nodes) || Instant::now() >= deadline {
            return Ok(nodes);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Forms or heals the cluster over `addrs` (in pod ordinal order) with `shards` primaries,
/// waiting at most `budget` for gossip to converge. Safe to call on a healthy cluster: it
/// then sends no command that changes anything.
pub async fn ensure_cluster(
    admin: &dyn RedisAdmin,
    addrs: &[String],
    shards: usize,
    budget: Duration,
) -> Result<ClusterReport, FormError> {
    if addrs.len() < shards || shards == 0 {
        return Err(FormError::TooFewNodes {
            nodes: addrs.len(),
            shards,
        });
    }
    let deadline = Instant::now() + budget;
    let mut actions = Vec::new();
    let mut nodes = observe(admin, addrs).await?;

    // 1. Meet: every node must see every other at its current address.
    let missing = unmet(&nodes);
    if !missing.is_empty() {
        for (i, j) in missing {
            let (host, port) = split_addr(nodes[j].addr);
            cmd(admin, nodes[i].addr, &["CLUSTER", "MEET", host, port]).await?;
            actions.push(format!("{} MEET {}", nodes[i].addr, nodes[j].addr));
        }
        nodes = wait_for(admin, addrs, deadline, |n| unmet(n).is_empty()).await?;
    }

    // Slots and roles are only decided on a converged view: a node that does not see all
    // the others yet could hand out slots someone else already owns.
    if !unmet(&nodes).is_empty() {
        return Ok(ClusterReport::of_view(
            "forming".into(),
            &nodes[0].view,
            NodeLine::is_primary,
            actions,
        ));
    }

    // 2. Forget ids that failed and are no pod of ours any more (a pod that lost its volume).
    let ours: BTreeSet<String> = nodes.iter().map(|n| n.id.clone()).collect();
    for n in &nodes {
        for l in &n.view {
            if !ours.contains(&l.id) && l.has("fail") && l.slots.is_empty() {
                cmd(admin, n.addr, &["CLUSTER", "FORGET", &l.id]).await?;
                actions.push(format!("{} FORGET {}", n.addr, l.id));
            }
        }
    }

    // 3. Slots: every slot must have an owner.
    let view = &nodes[0].view;
    let mut owned = vec![false; SLOTS as usize];
    for l in view
        .iter()
        .filter(|l| l.is_primary() && ours.contains(&l.id))
    {
        for &(a, b) in &l.slots {
            for s in a..=b {
                owned[s as usize] = true;
            }
        }
    }
    if owned.iter().any(|o| !o) {
        let primary_ids: BTreeSet<&str> = view
            .iter()
            .filter(|l| l.is_primary() && l.slot_count() > 0 && ours.contains(&l.id))
            .map(|l| l.id.as_str())
            .collect();
        let is_primary = |idx: usize| {
            view.iter()
                .any(|l| l.id == nodes[idx].id && l.is_primary() && l.master.is_none())
        };
        // Designated owner of each shard: ordinal i when it is (still) a primary; else the
        // first slotted primary (only happens after a failover with slots left unowned).
        let fallback = nodes
            .iter()
            .position(|n| primary_ids.contains(n.id.as_str()));
        for i in 0..shards {
            let owner = if is_primary(i) { Some(i) } else { fallback };
            let Some(owner) = owner else { continue };
            let (lo, hi) = slot_range(i, shards);
            let mut s = lo;
            while s <= hi {
                if owned[s as usize] {
                    s += 1;
                    continue;
                }
                let start = s;
                while s <= hi && !owned[s as usize] {
                    s += 1;
                }
                let (a, b) = (start.to_string(), (s - 1).to_string());
                cmd(
                    admin,
                    nodes[owner].addr,
                    &["CLUSTER", "ADDSLOTSRANGE", &a, &b],
                )
                .await?;
                actions.push(format!("{} ADDSLOTSRANGE {a} {b}", nodes[owner].addr));
            }
        }
        nodes = wait_for(admin, addrs, deadline, |n| {
            n.iter().all(|x| {
                x.view
                    .iter()
                    .filter(|l| l.is_primary())
                    .map(NodeLine::slot_count)
                    .sum::<u32>()
                    == SLOTS
            })
        })
        .await?;
    }

    // 4. Replicas: empty primaries replicate the primary with the fewest replicas.
    let view = nodes[0].view.clone();
    let mut replica_count: BTreeMap<String, usize> = view
        .iter()
        .filter(|l| l.is_primary() && l.slot_count() > 0)
        .map(|l| {
            let n = view
                .iter()
                .filter(|r| r.master.as_deref() == Some(l.id.as_str()))
                .count();
            (l.id.clone(), n)
        })
        .collect();
    let order: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
    let mut attached = false;
    for n in &nodes {
        let Some(line) = view.iter().find(|l| l.id == n.id) else {
            continue;
        };
        if !(line.is_primary() && line.slot_count() == 0) {
            continue;
        }
        let target = replica_count
            .iter()
            .min_by_key(|(id, c)| (**c, order.iter().position(|o| o == *id)))
            .map(|(id, _)| id.clone());
        let Some(target) = target else { break };
        cmd(admin, n.addr, &["CLUSTER", "REPLICATE", &target]).await?;
        actions.push(format!("{} REPLICATE {target}", n.addr));
        *replica_count.entry(target).or_default() += 1;
        attached = true;
    }

    // 5. Report, after waiting (bounded) for every node to say cluster_state:ok.
    let expect_replicas = attached;
    let mut states;
    loop {
        states = Vec::new();
        for a in addrs {
            let info = text(admin, a, &["CLUSTER", "INFO"]).await?;
            let state = info
                .lines()
                .find_map(|l| l.trim().strip_prefix("cluster_state:"))
                .unwrap_or("unknown")
                .to_string();
            states.push(state);
        }
        nodes = observe(admin, addrs).await?;
        // every node agrees that no member is left as an empty primary
        let replicas_seen = nodes.iter().all(|n| {
            n.view
                .iter()
                .all(|l| !(l.is_primary() && l.slot_count() == 0))
        });
        if (states.iter().all(|s| s == "ok") && (!expect_replicas || replicas_seen))
            || Instant::now() >= deadline
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let view = &nodes[0].view;
    let state = if states.iter().all(|s| s == "ok") {
        "ok".to_string()
    } else if states.iter().any(|s| s == "fail") {
        "fail".to_string()
    } else {
        "forming".to_string()
    };
    Ok(ClusterReport::of_view(
        state,
        view,
        |l| l.is_primary() && !l.has("fail"),
        actions,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_split_covers_every_slot_once() {
        for shards in [3usize, 4, 5, 7, 64] {
            let mut next = 0;
            let mut sizes = Vec::new();
            for i in 0..shards {
                let (lo, hi) = slot_range(i, shards);
                assert_eq!(lo, next);
                sizes.push(hi - lo + 1);
                next = hi + 1;
            }
            assert_eq!(next, SLOTS);
            assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
        }
    }

    #[test]
    fn parses_cluster_nodes_lines() {
        let t = "07c3 127.0.0.1:30004@40004,host myself,slave e7d1 0 0 1 connected\n\
                 e7d1 127.0.0.1:30001@40001 master - 0 1426238317239 1 connected 0-5460 5462 [5461->-abc]\n\
                 67ed :0@0 master,fail,noaddr - 0 0 2 disconnected\n";
        let n = parse_nodes(t);
        assert_eq!(n.len(), 3);
        assert_eq!(n[0].addr, "127.0.0.1:30004");
        assert_eq!(n[0].master.as_deref(), Some("e7d1"));
        assert!(n[0].healthy_at("127.0.0.1:30004"));
        assert_eq!(n[1].slots, vec![(0, 5460), (5462, 5462)]);
        assert_eq!(n[1].slot_count(), 5462);
        assert!(!n[2].healthy_at(":0"));
    }

    /// A node that refuses connections stops formation with an error naming it.
    struct Down;
    #[async_trait]
    impl RedisAdmin for Down {
        async fn command(&self, _: &str, _: &[&str]) -> Result<Reply, RespError> {
            Err(RespError::Timeout)
        }
    }

    #[tokio::test]
    async fn unreachable_node_is_an_error() {
        let addrs = vec!["10.0.0.1:6379".to_string(); 3];
        let e = ensure_cluster(&Down, &addrs, 3, Duration::from_millis(10))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("10.0.0.1:6379"), "{e}");
        let e = ensure_cluster(&Down, &addrs[..2], 3, Duration::from_millis(10))
            .await
            .unwrap_err();
        assert!(matches!(e, FormError::TooFewNodes { .. }));
    }
}
