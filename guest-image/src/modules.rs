//! Which kernel module files to load, in which order, from `modules.dep`.

use std::collections::{HashMap, HashSet};

/// Why the module list could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModulesError {
    /// A line of modules.dep is malformed.
    #[error("modules.dep line {0} has no ':'")]
    BadLine(usize),
    /// Dependencies loop.
    #[error("module dependencies form a cycle through {0}")]
    Cycle(String),
}

/// Returns the module files (paths relative to the modules directory) to `insmod`, dependencies
/// first, for the `wanted` module names. Names not in `modules.dep` are assumed built into the
/// kernel and skipped. `-` and `_` are interchangeable in names, as for modprobe.
pub fn module_load_order(modules_dep: &str, wanted: &[String]) -> Result<Vec<String>, ModulesError> {
    let mut deps: HashMap<String, Vec<String>> = HashMap::new();
    let mut by_name: HashMap<String, String> = HashMap::new();
    for (i, line) in modules_dep.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (file, rest) = line.split_once(':').ok_or(ModulesError::BadLine(i + 1))?;
        deps.insert(
            file.to_string(),
            rest.split_whitespace().map(str::to_string).collect(),
        );
        by_name.insert(module_name(file), file.to_string());
    }
    let mut order = Vec::new();
    let mut done = HashSet::new();
    for name in wanted {
        if let Some(file) = by_name.get(&name.replace('-', "_")) {
            visit(file, &deps, &mut done, &mut HashSet::new(), &mut order)?;
        }
    }
    Ok(order)
}

fn module_name(file: &str) -> String {
    let base = file.rsplit('/').next().unwrap_or(file);
    let stem = base.split(".ko").next().unwrap_or(base);
    stem.replace('-', "_")
}

fn visit(
    file: &str,
    deps: &HashMap<String, Vec<String>>,
    done: &mut HashSet<String>,
    path: &mut HashSet<String>,
    order: &mut Vec<String>,
) -> Result<(), ModulesError> {
    if done.contains(file) {
        return Ok(());
    }
    if !path.insert(file.to_string()) {
        return Err(ModulesError::Cycle(file.to_string()));
    }
    for d in deps.get(file).map(Vec::as_slice).unwrap_or_default() {
        visit(d, deps, done, path, order)?;
    }
    path.remove(file);
    done.insert(file.to_string());
    order.push(file.to_string());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/fs/mbcache.ko kernel/lib/crc16.ko\n\
kernel/fs/jbd2/jbd2.ko:\nkernel/fs/mbcache.ko:\nkernel/lib/crc16.ko:\n\
kernel/drivers/block/virtio_blk.ko:\nkernel/drivers/virtio/virtio-pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko\n\
kernel/drivers/virtio/virtio_pci_modern_dev.ko:\n";

    #[test]
    fn dependencies_come_first_and_builtins_are_skipped() {
        let want: Vec<String> = ["virtio_pci", "virtio_blk", "ext4", "virtio_console"]
            .map(String::from)
            .into();
        let order = module_load_order(DEP, &want).expect("order");
        assert_eq!(
            order,
            vec![
                "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
                "kernel/drivers/virtio/virtio-pci.ko",
                "kernel/drivers/block/virtio_blk.ko",
                "kernel/fs/jbd2/jbd2.ko",
                "kernel/fs/mbcache.ko",
                "kernel/lib/crc16.ko",
                "kernel/fs/ext4/ext4.ko",
            ]
        );
    }

    #[test]
    fn cycles_and_garbage_are_errors() {
        assert!(matches!(
            module_load_order("a.ko: b.ko\nb.ko: a.ko\n", &["a".into()]),
            Err(ModulesError::Cycle(_))
        ));
        assert_eq!(
            module_load_order("nonsense\n", &[]),
            Err(ModulesError::BadLine(1))
        );
    }
}
