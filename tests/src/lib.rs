//! End-to-end tests against real sandboxes (QEMU microVM and gVisor), the real console in
//! Chromium and the desktop app under Xvfb: the tests are in `tests/`; their harness (a private
//! state directory per test, `airlock serve` spawned and driven through its API, local upstream
//! servers, ledger records read back typed) is `airlock_test_kit::e2e`.
