//! The CPUs this process may run on: its affinity mask, which a container's
//! cpuset or a `taskset` narrows. Shards are pinned only inside it.

/// The CPU ids in this process's affinity mask, ascending. When the mask
/// cannot be read, every CPU the machine reports, so a start still works.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `cpu_set_t` is plain data, valid when zeroed; the kernel
    // writes at most `size_of::<cpu_set_t>()` bytes into it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } == 0;
    if !ok {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        return (0..n).collect();
    }
    // SAFETY: `set` was filled in by the kernel above; CPU_ISSET only reads it.
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_lists_only_cpus_of_the_mask() {
        let allowed = allowed_cpus();
        assert!(!allowed.is_empty());
        assert!(allowed.windows(2).all(|w| w[0] < w[1]), "ascending: {allowed:?}");
        // std counts the same mask, less any cgroup CPU quota.
        let n = std::thread::available_parallelism().unwrap().get();
        assert!(allowed.len() >= n, "{allowed:?} against {n}");
    }
}
