//! The QEMU command line (pure), so what the microVM gets — and does not get — is reviewable.

use std::path::PathBuf;

use crate::Accel;

/// Name of the virtio-serial port the guest agent listens on.
pub const AGENT_PORT: &str = "airlock0";

/// QEMU machine type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    /// `microvm`: no PCI, no legacy devices, virtio-mmio found through ACPI.
    Microvm,
    /// `q35` with virtio-pci.
    Q35,
}

impl Machine {
    /// The machine for an accelerator: `microvm` under KVM, `q35` under TCG (measured here: under
    /// TCG `microvm,acpi=on` boots the kernel and init, but its virtio-mmio serial channel never
    /// reached the agent within 300 s). `AIRLOCK_QEMU_MACHINE=microvm|q35` overrides it.
    pub fn for_accel(accel: Accel) -> Machine {
        match std::env::var("AIRLOCK_QEMU_MACHINE").as_deref() {
            Ok("q35") => Machine::Q35,
            Ok("microvm") => Machine::Microvm,
            Ok(_) | Err(_) => match accel {
                Accel::Kvm => Machine::Microvm,
                Accel::Tcg => Machine::Q35,
            },
        }
    }
}

/// Everything the command line depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuConfig {
    /// Accelerator.
    pub accel: Accel,
    /// Machine type.
    pub machine: Machine,
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
    /// TCG translation cache, MiB (QEMU's default is 1 GiB; it is most of an idle TCG guest's RSS).
    pub tcg_tb_mib: u32,
}

/// Default TCG translation cache size, MiB.
pub const DEFAULT_TCG_TB_MIB: u32 = 32;

/// The argument vector for `qemu-system-x86_64`.
///
/// The machine comes from [`Machine::for_accel`]. Either way: no NIC, no USB, no display, no
/// default devices, one disk, one virtio-serial port, QMP, and QEMU's seccomp sandbox.
pub fn qemu_args(c: &QemuConfig) -> Vec<String> {
    let accel = match c.accel {
        Accel::Kvm => "kvm".to_string(),
        Accel::Tcg => format!("tcg,tb-size={}", c.tcg_tb_mib),
    };
    let cpu = match c.accel {
        // `-cpu host` aborts on some hosts ("failed to set MSR 0x10a") without this.
        Accel::Kvm => "host,-arch-capabilities",
        Accel::Tcg => "max",
    };
    let (machine, bus) = match c.machine {
        // Debian's kernels take virtio-mmio devices from ACPI only, so ACPI stays on.
        Machine::Microvm => ("microvm,acpi=on,pit=off,pic=off,rtc=on", "device"),
        Machine::Q35 => ("q35", "pci"),
    };
    let s = |x: &str| x.to_string();
    let p = |x: &PathBuf| x.display().to_string();
    vec![
        s("-name"),
        s("airlock-sandbox"),
        s("-M"),
        s(machine),
        s("-accel"),
        accel,
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

    fn cfg(accel: Accel, machine: Machine) -> QemuConfig {
        QemuConfig {
            accel,
            machine,
            vcpus: 2,
            memory_mib: 768,
            kernel: "/c/vmlinuz".into(),
            initramfs: "/c/initramfs.cpio".into(),
            overlay: "/s/overlay.qcow2".into(),
            agent_socket: "/s/agent.sock".into(),
            qmp_socket: "/s/qmp.sock".into(),
            console_log: "/s/console.log".into(),
            tcg_tb_mib: 32,
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
        let a = qemu_args(&cfg(Accel::Tcg, Machine::Q35));
        assert_eq!(after(&a, "-M"), ["q35"]);
        assert_eq!(after(&a, "-accel"), ["tcg,tb-size=32"]);
        assert!(after(&a, "-device").contains(&"virtio-blk-pci,drive=root"));
        assert_eq!(after(&a, "-smp"), ["2"]);
        assert_eq!(after(&a, "-m"), ["768"]);
    }

    #[test]
    fn kvm_is_microvm_with_acpi_and_mmio() {
        let a = qemu_args(&cfg(Accel::Kvm, Machine::Microvm));
        assert!(after(&a, "-M")[0].starts_with("microvm,acpi=on"));
        assert!(after(&a, "-device").contains(&"virtio-serial-device,max_ports=2"));
        assert_eq!(after(&a, "-cpu"), ["host,-arch-capabilities"]);
    }

    #[test]
    fn deny_by_default() {
        for (accel, machine) in [
            (Accel::Kvm, Machine::Microvm),
            (Accel::Tcg, Machine::Microvm),
            (Accel::Tcg, Machine::Q35),
        ] {
            let a = qemu_args(&cfg(accel, machine));
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
