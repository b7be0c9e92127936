//! The worker/core/queue recommendation: one worker per RX queue, pinned to a core on the NIC's
//! NUMA node, avoiding the cores that take the NIC's interrupts where possible.

use std::collections::{BTreeMap, BTreeSet};

/// What the plan is computed from.
#[derive(Clone, Debug, Default)]
pub struct PlanInput {
    /// RX queue numbers of the interface.
    pub queues: Vec<u32>,
    /// Online CPU cores.
    pub online: Vec<u32>,
    /// Cores of the NIC's NUMA node (empty: unknown, use all online cores).
    pub numa_cores: Vec<u32>,
    /// Queue → cores its interrupt is affine to.
    pub irq_cores: BTreeMap<u32, Vec<u32>>,
}

/// One worker of the plan.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Assignment {
    /// Worker index.
    pub worker: u32,
    /// The RX queue it serves.
    pub queue: u32,
    /// The core it is pinned to.
    pub core: u32,
    /// Why this core is less than ideal, if it is.
    pub note: Option<String>,
}

/// Computes the plan. Core preference per queue: an unused core of the NUMA node that takes
/// none of the NIC's interrupts; then an unused one that takes none of this queue's; then any
/// unused core of the node; then any unused online core (off-node); then a shared core.
pub fn plan(input: &PlanInput) -> Vec<Assignment> {
    let online: BTreeSet<u32> = input.online.iter().copied().collect();
    let mut local: Vec<u32> =
        input.numa_cores.iter().copied().filter(|c| online.contains(c)).collect();
    if local.is_empty() {
        local = input.online.clone();
    }
    let all_irq: BTreeSet<u32> = input.irq_cores.values().flatten().copied().collect();
    let mut used: BTreeSet<u32> = BTreeSet::new();
    let mut out = Vec::new();
    for (worker, &queue) in input.queues.iter().enumerate() {
        let own_irq: BTreeSet<u32> =
            input.irq_cores.get(&queue).into_iter().flatten().copied().collect();
        let free = |c: &&u32| !used.contains(*c);
        let pick =
            local
                .iter()
                .filter(free)
                .find(|c| !all_irq.contains(c))
                .map(|&c| (c, None))
                .or_else(|| {
                    local.iter().filter(free).find(|c| !own_irq.contains(c)).map(|&c| {
                        (c, Some("takes another queue's interrupts of this NIC".to_owned()))
                    })
                })
                .or_else(|| {
                    local.iter().find(|c| !used.contains(c)).map(|&c| {
                        (c, Some("takes this queue's interrupt (no other core left)".to_owned()))
                    })
                })
                .or_else(|| {
                    input.online.iter().find(|c| !used.contains(c)).map(|&c| {
                        (c, Some("not on the NIC's NUMA node (no local core left)".to_owned()))
                    })
                })
                .or_else(|| {
                    let c = *local.get(worker % local.len().max(1))?;
                    Some((c, Some("shared with another worker: more queues than cores".to_owned())))
                });
        let Some((core, note)) = pick else { break };
        used.insert(core);
        out.push(Assignment { worker: worker as u32, queue, core, note });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(queues: u32, online: u32, numa: &[u32], irq: &[(u32, &[u32])]) -> PlanInput {
        PlanInput {
            queues: (0..queues).collect(),
            online: (0..online).collect(),
            numa_cores: numa.to_vec(),
            irq_cores: irq.iter().map(|(q, c)| (*q, c.to_vec())).collect(),
        }
    }

    fn cores(p: &[Assignment]) -> Vec<u32> {
        p.iter().map(|a| a.core).collect()
    }

    #[test]
    fn one_worker_per_queue_on_free_cores() {
        let p = plan(&input(4, 8, &[], &[]));
        assert_eq!(cores(&p), [0, 1, 2, 3]);
        assert_eq!(p.iter().map(|a| a.queue).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert!(p.iter().all(|a| a.note.is_none()));
    }

    #[test]
    fn stays_on_the_numa_node() {
        let p = plan(&input(2, 8, &[4, 5, 6, 7], &[]));
        assert_eq!(cores(&p), [4, 5]);
        // Offline NUMA cores are skipped.
        let mut i = input(2, 6, &[4, 5, 6, 7], &[]);
        i.online = vec![0, 1, 2, 3, 4, 5];
        assert_eq!(cores(&plan(&i)), [4, 5]);
    }

    #[test]
    fn avoids_irq_cores_when_possible() {
        let p = plan(&input(2, 4, &[], &[(0, &[0]), (1, &[1])]));
        assert_eq!(cores(&p), [2, 3]);
        assert!(p.iter().all(|a| a.note.is_none()));
    }

    #[test]
    fn falls_back_to_other_queues_irq_cores_then_own() {
        // 4 queues, 4 cores, each queue's IRQ on its own core: every core takes some IRQ, so
        // each queue gets a core that takes another queue's interrupt, never its own.
        let irq: Vec<(u32, &[u32])> = vec![(0, &[0]), (1, &[1]), (2, &[2]), (3, &[3])];
        let p = plan(&input(4, 4, &[], &irq));
        for a in &p {
            assert_ne!(a.core, a.queue, "{a:?}");
        }
        assert_eq!(p.iter().map(|a| a.core).collect::<BTreeSet<_>>().len(), 4);
        // Only core 0 left for queue 0 whose IRQ is on core 0.
        let p = plan(&input(1, 1, &[], &[(0, &[0])]));
        assert_eq!(cores(&p), [0]);
        assert!(p[0].note.as_deref().unwrap().contains("this queue's interrupt"));
    }

    #[test]
    fn spills_off_node_then_shares() {
        let p = plan(&input(3, 4, &[2, 3], &[]));
        assert_eq!(cores(&p), [2, 3, 0]);
        assert!(p[2].note.as_deref().unwrap().contains("NUMA"));
        let p = plan(&input(3, 2, &[], &[]));
        assert_eq!(p.len(), 3, "one worker per queue even when cores run out");
        assert!(p[2].note.as_deref().unwrap().contains("shared"));
    }

    #[test]
    fn no_queues_no_workers() {
        assert!(plan(&input(0, 4, &[], &[])).is_empty());
        assert!(plan(&input(2, 0, &[], &[])).is_empty());
    }
}
