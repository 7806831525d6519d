//! Adaptive streaming of sandbox screens to operators (command view, video). Placeholder: the
//! streaming work (framebuffer mirror, encoders, transports, adaptation) lands here next; the guest
//! agent's damage-region frame stream it will consume exists already (`airlock-protocol`).
