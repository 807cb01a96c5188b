//! The import controller's queue of tag imports: round robin across namespaces (and,
//! within a namespace, across registries), with a bound on imports in flight overall
//! and per registry. One namespace's thousand tags cannot starve another's single tag,
//! and a registry that hangs holds at most its own share of the slots: jobs of a full
//! registry wait while others pass them. Pure bookkeeping; calls nothing.
//!
//! Hand-written: tokio's `Semaphore` is first-come first-served (no fairness by key)
//! and a waiter on a full registry would hold its place in a global queue.

use std::collections::{HashMap, VecDeque};

/// Bounds on the imports in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImportLimits {
    /// `--import-concurrency`: imports in flight at most, all registries together.
    pub max_in_flight: usize,
    /// `--import-concurrency-per-registry`: imports in flight at most from one registry
    /// (sources that need no registry count as one registry, `""`).
    pub per_registry: usize,
}

/// Imports in flight at most, all registries together.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 32;
/// Imports in flight at most from one registry (the upstream client's own limit of
/// requests per registry host is 8, so more would only queue there).
pub const DEFAULT_PER_REGISTRY: usize = 8;

impl Default for ImportLimits {
    fn default() -> Self {
        ImportLimits {
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            per_registry: DEFAULT_PER_REGISTRY,
        }
    }
}

/// One namespace's queued jobs, per registry, in arrival order.
struct Namespace<T> {
    registries: VecDeque<(String, VecDeque<T>)>,
}

/// Jobs waiting to run, fair across namespaces, and the count of those running.
pub struct FairQueue<T> {
    limits: ImportLimits,
    /// Namespaces with queued jobs, in round-robin order.
    order: VecDeque<String>,
    namespaces: HashMap<String, Namespace<T>>,
    running: usize,
    running_per_registry: HashMap<String, usize>,
    queued: usize,
}

impl<T> FairQueue<T> {
    /// An empty queue with `limits` (each at least 1).
    pub fn new(limits: ImportLimits) -> Self {
        FairQueue {
            limits: ImportLimits {
                max_in_flight: limits.max_in_flight.max(1),
                per_registry: limits.per_registry.max(1),
            },
            order: VecDeque::new(),
            namespaces: HashMap::new(),
            running: 0,
            running_per_registry: HashMap::new(),
            queued: 0,
        }
    }

    /// Jobs queued (not running).
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Jobs running.
    pub fn running(&self) -> usize {
        self.running
    }

    /// Queues `job` of `namespace` against `registry`.
    pub fn push(&mut self, namespace: &str, registry: &str, job: T) {
        let ns = match self.namespaces.get_mut(namespace) {
            Some(ns) => ns,
            None => {
                self.order.push_back(namespace.to_string());
                self.namespaces
                    .entry(namespace.to_string())
                    .or_insert_with(|| Namespace {
                        registries: VecDeque::new(),
                    })
            }
        };
        match ns.registries.iter_mut().find(|(r, _)| r == registry) {
            Some((_, jobs)) => jobs.push_back(job),
            None => ns
                .registries
                .push_back((registry.to_string(), VecDeque::from([job]))),
        }
        self.queued += 1;
    }

    fn has_room(&self, registry: &str) -> bool {
        self.running_per_registry
            .get(registry)
            .copied()
            .unwrap_or(0)
            < self.limits.per_registry
    }

    /// The next job that may start now, with its registry, counted as running until
    /// [`done`](Self::done): the next namespace in turn that has a job whose registry
    /// has room. `None` when everything is full or nothing is queued.
    pub fn pop(&mut self) -> Option<(String, T)> {
        if self.running >= self.limits.max_in_flight {
            return None;
        }
        for _ in 0..self.order.len() {
            let name = self.order.pop_front()?;
            let Some(mut ns) = self.namespaces.remove(&name) else {
                continue;
            };
            let mut found = None;
            for _ in 0..ns.registries.len() {
                let Some((registry, mut jobs)) = ns.registries.pop_front() else {
                    break;
                };
                if self.has_room(&registry)
                    && let Some(job) = jobs.pop_front()
                {
                    // A burst's capacity is given back as the queue drains.
                    if jobs.capacity() > 64 && jobs.len() < jobs.capacity() / 4 {
                        jobs.shrink_to(jobs.len() * 2);
                    }
                    if !jobs.is_empty() {
                        ns.registries.push_back((registry.clone(), jobs));
                    }
                    found = Some((registry, job));
                    break;
                }
                if !jobs.is_empty() {
                    ns.registries.push_back((registry, jobs));
                }
            }
            if !ns.registries.is_empty() {
                self.order.push_back(name.clone());
                self.namespaces.insert(name, ns);
            }
            if let Some((registry, job)) = found {
                self.queued -= 1;
                self.running += 1;
                *self
                    .running_per_registry
                    .entry(registry.clone())
                    .or_default() += 1;
                return Some((registry, job));
            }
        }
        None
    }

    /// A job of `registry` that [`pop`](Self::pop) gave out finished (or was cancelled).
    pub fn done(&mut self, registry: &str) {
        self.running = self.running.saturating_sub(1);
        if let Some(n) = self.running_per_registry.get_mut(registry) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.running_per_registry.remove(registry);
            }
        }
    }

    /// Drops the queued jobs of `namespace` for which `cancel` holds; returns how many.
    pub fn cancel(&mut self, namespace: &str, mut cancel: impl FnMut(&T) -> bool) -> usize {
        let Some(ns) = self.namespaces.get_mut(namespace) else {
            return 0;
        };
        let mut dropped = 0;
        for (_, jobs) in ns.registries.iter_mut() {
            let before = jobs.len();
            jobs.retain(|j| !cancel(j));
            dropped += before - jobs.len();
        }
        ns.registries.retain(|(_, jobs)| !jobs.is_empty());
        if ns.registries.is_empty() {
            self.namespaces.remove(namespace);
            self.order.retain(|n| n != namespace);
        }
        self.queued -= dropped;
        dropped
    }

    /// Forgets every queued job and every running count (the controller restarts).
    pub fn clear(&mut self) {
        *self = FairQueue::new(self.limits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_in_flight: usize, per_registry: usize) -> ImportLimits {
        ImportLimits {
            max_in_flight,
            per_registry,
        }
    }

    #[test]
    fn a_draining_queue_gives_back_its_burst_capacity() {
        let mut q = FairQueue::new(limits(1, 1));
        for i in 0..10_000 {
            q.push("ns", "quay.io", i);
        }
        let capacity = |q: &FairQueue<i32>| {
            q.namespaces["ns"]
                .registries
                .iter()
                .map(|(_, jobs)| jobs.capacity())
                .sum::<usize>()
        };
        assert!(capacity(&q) >= 10_000);
        for _ in 0..9_990 {
            assert!(q.pop().is_some());
            q.done("quay.io");
        }
        assert_eq!(q.queued(), 10);
        assert!(capacity(&q) <= 64, "capacity {}", capacity(&q));
    }

    #[test]
    fn a_single_tag_of_another_namespace_passes_a_thousand() {
        let mut q = FairQueue::new(limits(4, 4));
        for i in 0..1000 {
            q.push("big", "quay.io", ("big", i));
        }
        q.push("small", "quay.io", ("small", 0));
        let (_, first) = q.pop().unwrap();
        let (_, second) = q.pop().unwrap();
        assert_eq!(first, ("big", 0));
        assert_eq!(second, ("small", 0));
    }

    #[test]
    fn a_full_registry_never_holds_back_another() {
        let mut q = FairQueue::new(limits(10, 2));
        for i in 0..5 {
            q.push("ns", "hangs.example", i);
        }
        q.push("ns", "healthy.example", 100);
        let mut got = Vec::new();
        while let Some((r, j)) = q.pop() {
            got.push((r, j));
        }
        assert_eq!(
            got,
            vec![
                ("hangs.example".to_string(), 0),
                ("healthy.example".to_string(), 100),
                ("hangs.example".to_string(), 1),
            ]
        );
        assert_eq!(q.running(), 3);
        assert_eq!(q.queued(), 3);
        q.done("hangs.example");
        assert_eq!(q.pop(), Some(("hangs.example".to_string(), 2)));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn the_global_bound_holds_and_done_frees_a_slot() {
        let mut q = FairQueue::new(limits(2, 8));
        for i in 0..3 {
            q.push(&format!("ns{i}"), &format!("r{i}"), i);
        }
        assert!(q.pop().is_some());
        assert!(q.pop().is_some());
        assert_eq!(q.pop(), None);
        q.done("r0");
        assert_eq!(q.pop(), Some(("r2".to_string(), 2)));
    }

    #[test]
    fn cancel_drops_only_matching_jobs() {
        let mut q = FairQueue::new(limits(1, 1));
        for i in 0..10 {
            q.push("ns", "r", i);
        }
        q.push("other", "r", 99);
        assert_eq!(q.cancel("ns", |j| *j % 2 == 0), 5);
        assert_eq!(q.queued(), 6);
        assert_eq!(q.cancel("ns", |_| true), 5);
        assert_eq!(q.pop(), Some(("r".to_string(), 99)));
        assert_eq!(q.queued(), 0);
    }
}
