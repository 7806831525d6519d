//! The QEMU command line (pure), so what the microVM gets — and does not get — is reviewable.

use std::path::{Path, PathBuf};

use crate::share::{kernel_param, mount_tag};
use crate::{Accel, Share};

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
    /// Validated host folders, each served by its own virtiofsd.
    pub shares: Vec<VirtiofsShare>,
}

/// A share as the microVM sees it: a vhost-user-fs device whose virtiofsd listens on `socket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtiofsShare {
    /// The validated share.
    pub share: Share,
    /// The virtiofsd's vhost-user socket (in the sandbox's directory).
    pub socket: PathBuf,
}

/// Where a virtiofsd takes QEMU's vhost-user connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VirtiofsListen<'a> {
    /// It makes and listens on this socket itself (a read-only share's virtiofsd, run as root).
    Socket(&'a Path),
    /// It inherits the listening socket as this descriptor (a writable share's virtiofsd, run as
    /// the folder's owner, who may not create files in the sandbox's directory).
    Fd(i32),
}

/// The argument vector for the `virtiofsd` that serves one share, listening as `listen` says.
///
/// virtiofsd (the Rust one, 1.x) confines itself: `--sandbox=namespace` pivots into the shared
/// directory in its own mount (and, unprivileged, user) namespace under a seccomp filter, and opens
/// every path component relative to its parent with `O_NOFOLLOW`; the guest kernel resolves
/// symlink targets inside the guest. `--readonly` refuses writes in the daemon itself, below the
/// guest's `ro` mount. A writable share's virtiofsd runs as the folder's owner (the keeper starts
/// it so), which is what keeps the sandbox to that owner's rights on the host.
pub fn virtiofsd_args(share: &Share, listen: VirtiofsListen<'_>) -> Vec<String> {
    let mut a = vec![
        match listen {
            VirtiofsListen::Socket(socket) => format!("--socket-path={}", socket.display()),
            VirtiofsListen::Fd(fd) => format!("--fd={fd}"),
        },
        format!("--shared-dir={}", share.host.display()),
        "--sandbox=namespace".to_string(),
        "--cache=auto".to_string(),
        "--log-level=warn".to_string(),
    ];
    if !share.writable {
        a.push("--readonly".to_string());
    }
    a
}

/// Default TCG translation cache size, MiB.
pub const DEFAULT_TCG_TB_MIB: u32 = 32;

/// The argument vector for `qemu-system-x86_64`.
///
/// The machine comes from [`Machine::for_accel`]. Either way: no NIC, no USB, no display, no
/// default devices, one disk, one virtio-serial port, QMP, and QEMU's seccomp sandbox.
///
/// With shares: guest RAM becomes a shared memfd (vhost-user needs virtiofsd to map it; measured to
/// work under TCG as under KVM), one `vhost-user-fs` device per share on tag `airlock<n>`, and
/// `airlock.shares=` on the kernel command line for the guest's init to mount them.
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
    let shared = !c.shares.is_empty();
    let machine = if shared {
        format!("{machine},memory-backend=mem")
    } else {
        machine.to_string()
    };
    let mut append =
        s("console=ttyS0 root=/dev/vda rw quiet loglevel=3 panic=-1 tsc=reliable no_timer_check");
    let guest: Vec<Share> = c.shares.iter().map(|v| v.share.clone()).collect();
    if let Some(param) = kernel_param(&guest) {
        append = format!("{append} {param}");
    }
    let mut args = vec![
        s("-name"),
        s("airlock-sandbox"),
        s("-M"),
        machine,
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
        append,
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
    ];
    if shared {
        args.push(s("-object"));
        args.push(format!(
            "memory-backend-memfd,id=mem,size={}M,share=on",
            c.memory_mib
        ));
    }
    for (i, v) in c.shares.iter().enumerate() {
        args.push(s("-chardev"));
        args.push(format!("socket,id=fs{i},path={}", qemu_escape(&p(&v.socket))));
        args.push(s("-device"));
        args.push(format!("vhost-user-fs-{bus},chardev=fs{i},tag={}", mount_tag(i)));
    }
    args
}

/// Escapes a value for QEMU's `key=value,...` option syntax (a `,` is written `,,`).
fn qemu_escape(v: &str) -> String {
    v.replace(',', ",,")
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
            shares: vec![],
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

    fn with_shares(accel: Accel, machine: Machine) -> Vec<String> {
        let mut c = cfg(accel, machine);
        c.shares = vec![
            VirtiofsShare {
                share: Share {
                    host: "/srv/in".into(),
                    guest: "/data".into(),
                    writable: false,
                },
                socket: "/s/fs0.sock".into(),
            },
            VirtiofsShare {
                share: Share {
                    host: "/srv/out".into(),
                    guest: "/out".into(),
                    writable: true,
                },
                socket: "/s/fs,1.sock".into(),
            },
        ];
        qemu_args(&c)
    }

    #[test]
    fn shares_are_vhost_user_fs_devices_on_shared_memory_named_on_the_kernel_command_line() {
        let a = with_shares(Accel::Tcg, Machine::Q35);
        assert_eq!(after(&a, "-M"), ["q35,memory-backend=mem"]);
        assert_eq!(
            after(&a, "-object"),
            ["memory-backend-memfd,id=mem,size=768M,share=on"]
        );
        assert_eq!(
            after(&a, "-chardev")[1..],
            [
                "socket,id=fs0,path=/s/fs0.sock",
                "socket,id=fs1,path=/s/fs,,1.sock"
            ]
        );
        let devices = after(&a, "-device");
        assert!(devices.contains(&"vhost-user-fs-pci,chardev=fs0,tag=airlock0"));
        assert!(devices.contains(&"vhost-user-fs-pci,chardev=fs1,tag=airlock1"));
        assert!(after(&a, "-append")[0].ends_with(" airlock.shares=ro:/data,rw:/out"));
        // Still no NIC and QEMU's own sandbox.
        assert_eq!(after(&a, "-nic"), ["none"]);
        assert!(after(&a, "-sandbox")[0].contains("spawn=deny"));

        let k = with_shares(Accel::Kvm, Machine::Microvm);
        assert!(
            after(&k, "-M")[0].starts_with("microvm,acpi=on")
                && after(&k, "-M")[0].ends_with(",memory-backend=mem")
        );
        assert!(after(&k, "-device").contains(&"vhost-user-fs-device,chardev=fs0,tag=airlock0"));
        assert_eq!(after(&k, "-accel"), ["kvm"]);
    }

    #[test]
    fn read_only_shares_make_virtiofsd_refuse_writes() {
        let ro = Share {
            host: "/srv/in".into(),
            guest: "/data".into(),
            writable: false,
        };
        let a = virtiofsd_args(&ro, VirtiofsListen::Socket(Path::new("/s/fs0.sock")));
        assert!(a.contains(&"--readonly".to_string()));
        assert!(a.contains(&"--socket-path=/s/fs0.sock".to_string()));
        assert!(a.contains(&"--shared-dir=/srv/in".to_string()));
        assert!(a.contains(&"--sandbox=namespace".to_string()));
        let rw = Share { writable: true, ..ro };
        let a = virtiofsd_args(&rw, VirtiofsListen::Fd(3));
        assert!(!a.contains(&"--readonly".to_string()));
        assert!(a.contains(&"--fd=3".to_string()));
        assert!(!a.iter().any(|x| x.starts_with("--socket-path")));
    }
}
