//! The QEMU command line (pure), so what the microVM gets — and does not get — is reviewable.

use std::path::PathBuf;

use crate::Accel;

/// Name of the virtio-serial port the guest agent listens on.
pub const AGENT_PORT: &str = "airlock0";

/// Everything the command line depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuConfig {
    /// Accelerator.
    pub accel: Accel,
    /// vCPUs.
    pub vcpus: u8,
    /// Guest memory, MiB.
    pub memory_mib: u32,
    /// Kernel image.
    pub kernel: PathBuf,
    /// Initramfs.
    pub initramfs: PathBuf,
    /// The sandbox's qcow2 overlay over the read-only base.
    pub overlay: PathBuf,
    /// Unix socket QEMU listens on for the agent channel.
    pub agent_socket: PathBuf,
    /// Unix socket QEMU listens on for QMP.
    pub qmp_socket: PathBuf,
    /// File the serial console is written to.
    pub console_log: PathBuf,
}

/// The argument vector for `qemu-system-x86_64`.
///
/// Under KVM the machine is `microvm` (no PCI, no firmware; ACPI on, because Debian's kernels do
/// not take virtio-mmio devices from the command line). Under TCG `microvm` did not boot here, so
/// it is `q35` with virtio-pci. Either way: no NIC, no USB, no display, no default devices, one
/// disk, one virtio-serial port, QMP, and QEMU's seccomp sandbox.
pub fn qemu_args(c: &QemuConfig) -> Vec<String> {
    let (machine, cpu, accel, bus) = match c.accel {
        Accel::Kvm => (
            "microvm,acpi=on,pit=off,pic=off,rtc=on",
            "host,-arch-capabilities",
            "kvm",
            "device",
        ),
        // A 128 MiB translation cache instead of the default 1 GiB keeps an idle sandbox's RSS down.
        Accel::Tcg => ("q35", "max", "tcg,tb-size=128", "pci"),
    };
    let s = |x: &str| x.to_string();
    let p = |x: &PathBuf| x.display().to_string();
    vec![
        s("-name"),
        s("airlock-sandbox"),
        s("-M"),
        s(machine),
        s("-accel"),
        s(accel),
        s("-cpu"),
        s(cpu),
        s("-smp"),
        c.vcpus.to_string(),
        s("-m"),
        c.memory_mib.to_string(),
        s("-nodefaults"),
        s("-no-user-config"),
        s("-nographic"),
        s("-nic"),
        s("none"),
        s("-no-reboot"),
        s("-sandbox"),
        s("on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"),
        s("-serial"),
        format!("file:{}", p(&c.console_log)),
        s("-kernel"),
        p(&c.kernel),
        s("-initrd"),
        p(&c.initramfs),
        s("-append"),
        s("console=ttyS0 root=/dev/vda rw quiet loglevel=3 panic=-1 tsc=reliable no_timer_check"),
        s("-drive"),
        format!(
            "id=root,file={},format=qcow2,if=none,cache=unsafe,discard=unmap",
            p(&c.overlay)
        ),
        s("-device"),
        format!("virtio-blk-{bus},drive=root"),
        s("-device"),
        format!("virtio-serial-{bus},max_ports=2"),
        s("-chardev"),
        format!("socket,id=agent,path={},server=on,wait=off", p(&c.agent_socket)),
        s("-device"),
        format!("virtserialport,chardev=agent,name={AGENT_PORT}"),
        s("-qmp"),
        format!("unix:{},server=on,wait=off", p(&c.qmp_socket)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(accel: Accel) -> QemuConfig {
        QemuConfig {
            accel,
            vcpus: 2,
            memory_mib: 768,
            kernel: "/c/vmlinuz".into(),
            initramfs: "/c/initramfs.cpio".into(),
            overlay: "/s/overlay.qcow2".into(),
            agent_socket: "/s/agent.sock".into(),
            qmp_socket: "/s/qmp.sock".into(),
            console_log: "/s/console.log".into(),
        }
    }

    fn after<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn tcg_is_q35_with_pci() {
        let a = qemu_args(&cfg(Accel::Tcg));
        assert_eq!(after(&a, "-M"), ["q35"]);
        assert_eq!(after(&a, "-accel"), ["tcg,tb-size=128"]);
        assert!(after(&a, "-device").contains(&"virtio-blk-pci,drive=root"));
        assert_eq!(after(&a, "-smp"), ["2"]);
        assert_eq!(after(&a, "-m"), ["768"]);
    }

    #[test]
    fn kvm_is_microvm_with_acpi_and_mmio() {
        let a = qemu_args(&cfg(Accel::Kvm));
        assert!(after(&a, "-M")[0].starts_with("microvm,acpi=on"));
        assert!(after(&a, "-device").contains(&"virtio-serial-device,max_ports=2"));
        assert_eq!(after(&a, "-cpu"), ["host,-arch-capabilities"]);
    }

    #[test]
    fn deny_by_default() {
        for accel in [Accel::Kvm, Accel::Tcg] {
            let a = qemu_args(&cfg(accel));
            assert_eq!(after(&a, "-nic"), ["none"]);
            assert!(a.contains(&"-nodefaults".to_string()));
            assert!(!a.iter().any(|x| x.contains("netdev")
                || x.contains("virtfs")
                || x.contains("9p")
                || x.contains("usb")));
            // Exactly one disk and one serial port.
            assert_eq!(after(&a, "-drive").len(), 1);
            assert_eq!(after(&a, "-device").len(), 3);
            assert!(after(&a, "-sandbox")[0].starts_with("on,"));
        }
    }
}
